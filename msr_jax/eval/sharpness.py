"""Sharpness of a loss surface from Hessian-vector products (jax).

Every function takes a scalar loss ``loss_fn(params, *loss_args) -> scalar``
over any pytree of floating-point parameters (an ``nnx.State``, a dict...).
The data the loss needs (a batch, a graphdef's arrays) go in ``loss_args`` so
that they are arguments of the compiled program, not constants baked into it.
``loss_fn`` itself is a static argument of ``jax.jit``: reuse the same function
object between calls (a fresh ``lambda`` each call recompiles).

The Hessian is never formed: ``hvp`` differentiates the gradient forward
(``jax.jvp`` of ``jax.grad``), which costs about one forward plus backward pass
(forward-over-reverse, the cheapest mode for HVPs).

Precision: vectors live in the parameters' dtype (tangents must match primals)
and inner products accumulate in at least float32. Cast bfloat16 parameters to
float32 before measuring if the eigenvalue's third digit matters.

References:
  Yao et al. 2020, "PyHessian: Neural Networks Through the Lens of the Hessian"
    (power iteration with a relative-change tolerance, Hutchinson trace).
  Hutchinson 1990 (Rademacher trace estimator).
  Pan & Li 2023, "Toward Understanding Why Adam Converges Faster Than SGD for
    Transformers" (directional sharpness d^T H d / |d|^2).
  Mirzadeh et al. 2020, "Understanding the Role of Training Regimes in Continual
    Learning" (forgetting ~ 0.5 d^T H d, bounded by 0.5 lambda_max |d|^2).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

LossFn = Callable[..., jax.Array]
PyTree = Any


def _acc_dtype(x) -> jnp.dtype:
  """float32 for half types, else the array's own float type (float64 stays)."""
  return jnp.promote_types(x.dtype, jnp.float32)


def tree_vdot(a: PyTree, b: PyTree) -> jax.Array:
  """Sum over leaves of <a, b>, accumulated in at least float32."""
  leaves = jax.tree.leaves(jax.tree.map(
      lambda x, y: jnp.vdot(x.astype(_acc_dtype(x)), y.astype(_acc_dtype(x))),
      a, b))
  return functools.reduce(jnp.add, leaves)


def _tree_normalize(v: PyTree) -> tuple[PyTree, jax.Array]:
  """v / |v| (v itself when |v| = 0, which only an exactly flat loss gives)."""
  norm = jnp.sqrt(tree_vdot(v, v))
  scale = jnp.where(norm > 0, 1.0 / jnp.where(norm > 0, norm, 1.0), 1.0)
  return jax.tree.map(lambda x: (x * scale).astype(x.dtype), v), norm


def _check_params(params: PyTree, where: str) -> None:
  leaves = jax.tree.leaves(params)
  if not leaves:
    raise ValueError(f"msr_jax/eval/sharpness.py: {where}: params has no leaves")
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    if not jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating):
      raise ValueError(
          f"msr_jax/eval/sharpness.py: {where}: parameter "
          f"{jax.tree_util.keystr(path)} has dtype {jnp.asarray(leaf).dtype}; "
          "only floating-point leaves have a Hessian (split with nnx.Param)")


def _check_like(params: PyTree, other: PyTree, name: str, where: str) -> None:
  if jax.tree.structure(params) != jax.tree.structure(other):
    raise ValueError(
        f"msr_jax/eval/sharpness.py: {where}: {name} must have the structure "
        f"of params;\n  params: {jax.tree.structure(params)}\n  {name}: "
        f"{jax.tree.structure(other)}")
  for (path, p), o in zip(jax.tree_util.tree_leaves_with_path(params),
                          jax.tree.leaves(other)):
    if jnp.shape(p) != jnp.shape(o):
      raise ValueError(
          f"msr_jax/eval/sharpness.py: {where}: {name}"
          f"{jax.tree_util.keystr(path)} has shape {jnp.shape(o)}, the "
          f"parameter has {jnp.shape(p)}")


def _hvp(loss_fn: LossFn, params: PyTree, vector: PyTree,
         loss_args: tuple) -> PyTree:
  grad_fn = lambda p: jax.grad(loss_fn)(p, *loss_args)
  vector = jax.tree.map(lambda v, p: v.astype(p.dtype), vector, params)
  return jax.jvp(grad_fn, (params,), (vector,))[1]


@functools.partial(jax.jit, static_argnums=0)
def _hvp_jit(loss_fn, params, vector, loss_args):
  return _hvp(loss_fn, params, vector, loss_args)


def hvp(loss_fn: LossFn, params: PyTree, vector: PyTree,
        loss_args: tuple = ()) -> PyTree:
  """Hessian-vector product H v (forward-over-reverse), jitted.

  Args:
    loss_fn: ``loss_fn(params, *loss_args) -> scalar``.
    params: the point at which the Hessian is taken.
    vector: a pytree shaped like ``params``.
    loss_args: further (traced) arguments of ``loss_fn``.

  Returns:
    ``H v`` shaped like ``params``.
  """
  _check_params(params, "hvp")
  _check_like(params, vector, "vector", "hvp")
  return _hvp_jit(loss_fn, params, vector, tuple(loss_args))


class TopEigen(NamedTuple):
  """Result of :func:`top_hessian_eigenvalue`.

  Attributes:
    eigenvalue: the Rayleigh quotient v^T H v at the last iteration.
    eigenvector: unit-norm pytree shaped like params.
    num_iters: Hessian-vector products used (<= max_iters).
  """
  eigenvalue: jax.Array
  eigenvector: PyTree
  num_iters: jax.Array


@functools.partial(jax.jit, static_argnums=0)
def _power_iteration(loss_fn, params, key, loss_args, max_iters, tol):
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  v0 = treedef.unflatten(
      [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])
  v0, _ = _tree_normalize(v0)
  acc = _acc_dtype(leaves[0])
  nan = jnp.array(jnp.nan, acc)

  def cond(state):
    i, _, lam, lam_prev = state
    # PyHessian: stop when |lam - lam_prev| / (|lam_prev| + 1e-6) < tol.
    converged = jnp.abs(lam - lam_prev) / (jnp.abs(lam_prev) + 1e-6) < tol
    return (i < max_iters) & ~((i >= 2) & converged)

  def body(state):
    i, v, lam, _ = state
    hv = _hvp(loss_fn, params, v, loss_args)
    new_lam = tree_vdot(v, hv).astype(acc)  # v has unit norm
    new_v, _ = _tree_normalize(hv)
    return i + 1, new_v, new_lam, lam

  i, v, lam, _ = jax.lax.while_loop(cond, body, (jnp.int32(0), v0, nan, nan))
  return TopEigen(lam, v, i)


def top_hessian_eigenvalue(loss_fn: LossFn, params: PyTree, key: jax.Array,
                           max_iters: int = 30, tol: float = 1e-3,
                           loss_args: tuple = ()) -> TopEigen:
  """Top Hessian eigenvalue by power iteration (PyHessian's method).

  Starts from a Gaussian vector drawn with ``key``, repeats ``v <- Hv/|Hv|``
  and stops after ``max_iters`` HVPs or when the Rayleigh quotient changes by
  less than ``tol`` relative to its previous value. The whole loop is one
  compiled ``lax.while_loop``.

  Power iteration finds the eigenvalue of largest magnitude. Near a minimum
  that is lambda_max; away from one, a negative eigenvalue can be larger in
  magnitude and is then what comes back (with its sign). The rate of
  convergence is |lambda_2 / lambda_1| per iteration, so a relative change
  below ``tol`` does not guarantee ``tol`` accuracy when the gap is small.

  Args:
    loss_fn: ``loss_fn(params, *loss_args) -> scalar``.
    params: pytree of floating-point arrays.
    key: PRNG key for the start vector.
    max_iters: most HVPs to spend (the spec's default: 30).
    tol: relative-change tolerance (the spec's default: 1e-3).
    loss_args: further (traced) arguments of ``loss_fn``.

  Returns:
    A :class:`TopEigen`.
  """
  _check_params(params, "top_hessian_eigenvalue")
  if max_iters < 1:
    raise ValueError(f"msr_jax/eval/sharpness.py: max_iters={max_iters} must "
                     "be >= 1")
  return _power_iteration(loss_fn, params, key, tuple(loss_args),
                          jnp.int32(max_iters), jnp.float32(tol))


class TraceEstimate(NamedTuple):
  """Result of :func:`hutchinson_trace`.

  Attributes:
    trace: the mean of the samples, an unbiased estimate of tr(H).
    stderr: the samples' standard deviation / sqrt(num_samples).
    samples_N: v_n^T H v_n for each Rademacher vector v_n.
  """
  trace: jax.Array
  stderr: jax.Array
  samples_N: jax.Array


@functools.partial(jax.jit, static_argnums=(0, 4))
def _hutchinson(loss_fn, params, key, loss_args, num_samples):
  leaves, treedef = jax.tree.flatten(params)

  def one_sample(sample_key):
    keys = jax.random.split(sample_key, len(leaves))
    v = treedef.unflatten([jax.random.rademacher(k, x.shape, x.dtype)
                           for k, x in zip(keys, leaves)])
    return tree_vdot(v, _hvp(loss_fn, params, v, loss_args))

  # lax.map, not vmap: one HVP's activations at a time, whatever num_samples.
  samples_N = jax.lax.map(one_sample, jax.random.split(key, num_samples))
  stderr = jnp.std(samples_N, ddof=1) / jnp.sqrt(num_samples) if (
      num_samples > 1) else jnp.array(jnp.nan, samples_N.dtype)
  return TraceEstimate(jnp.mean(samples_N), stderr, samples_N)


def hutchinson_trace(loss_fn: LossFn, params: PyTree, key: jax.Array,
                     num_samples: int, loss_args: tuple = ()) -> TraceEstimate:
  """Hutchinson's estimate of tr(H) with Rademacher vectors.

  E[v^T H v] = tr(H) for v with independent +-1 entries; the variance is
  2 * sum_{i != j} H_ij^2, so a diagonal Hessian is estimated exactly.

  Args:
    loss_fn: ``loss_fn(params, *loss_args) -> scalar``.
    params: pytree of floating-point arrays.
    key: PRNG key for the probe vectors.
    num_samples: number of Rademacher vectors (one HVP each).
    loss_args: further (traced) arguments of ``loss_fn``.

  Returns:
    A :class:`TraceEstimate`.
  """
  _check_params(params, "hutchinson_trace")
  if num_samples < 1:
    raise ValueError(f"msr_jax/eval/sharpness.py: num_samples={num_samples} "
                     "must be >= 1")
  return _hutchinson(loss_fn, params, key, tuple(loss_args), int(num_samples))


@functools.partial(jax.jit, static_argnums=0)
def _curvature(loss_fn, params, direction, loss_args):
  """Returns (d^T H d, d^T d)."""
  hd = _hvp(loss_fn, params, direction, loss_args)
  return tree_vdot(direction, hd), tree_vdot(direction, direction)


def directional_sharpness(loss_fn: LossFn, params: PyTree, direction: PyTree,
                          loss_args: tuple = ()) -> jax.Array:
  """Curvature along ``direction``: d^T H d / |d|^2 (Pan & Li 2023).

  Args:
    loss_fn: ``loss_fn(params, *loss_args) -> scalar``.
    params: the point at which the Hessian is taken.
    direction: ``d``, shaped like ``params`` (e.g. an update, new - old).
    loss_args: further (traced) arguments of ``loss_fn``.

  Returns:
    A scalar; NaN when ``d`` is exactly zero (no direction).
  """
  _check_params(params, "directional_sharpness")
  _check_like(params, direction, "direction", "directional_sharpness")
  dhd, dd = _curvature(loss_fn, params, direction, tuple(loss_args))
  return jnp.where(dd > 0, dhd / jnp.where(dd > 0, dd, 1.0), jnp.nan)


def quadratic_forgetting(loss_fn: LossFn, params: PyTree, direction: PyTree,
                         loss_args: tuple = ()) -> jax.Array:
  """Second-order prediction of the loss increase along d: 0.5 d^T H d.

  With ``loss_fn`` the retained tasks' loss, ``params`` the old parameters
  and ``d`` the fine-tuning update, this is Mirzadeh et al.'s (2020) quadratic
  forgetting estimate (exact up to the gradient term, which is ~0 at a
  minimum of the old loss). Compare it with the observed
  ``loss_fn(params + d) - loss_fn(params)``.

  Args:
    loss_fn: ``loss_fn(params, *loss_args) -> scalar``.
    params: the old parameters (where H_old is taken).
    direction: ``d``, shaped like ``params``.
    loss_args: further (traced) arguments of ``loss_fn``.

  Returns:
    A scalar.
  """
  _check_params(params, "quadratic_forgetting")
  _check_like(params, direction, "direction", "quadratic_forgetting")
  dhd, _ = _curvature(loss_fn, params, direction, tuple(loss_args))
  return 0.5 * dhd
