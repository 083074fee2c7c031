"""`scale_by_apollo`: APOLLO's channel-wise (or tensor-wise) gradient scaling in optax.

APOLLO ("SGD-like memory, AdamW-level performance", arXiv 2412.05270) keeps Adam
moments of a random low-rank projection of each weight gradient, turns them into one
scaling factor per channel (or per tensor), and applies that factor to the raw,
full-size gradient. Per matrix leaf with gradient G and k completed steps:

  R = G_CxD @ P_DxR                    G with the compressed (smaller) axis last
  M = b1 M + (1 - b1) R;  V = b2 V + (1 - b2) R^2;  N = M / (sqrt(V) + eps)
  s = ||N|| / (||R|| + 1e-8)           per channel (row of R), or one scalar
  S = sqrt(scale) * s * G
  S = S / (max(||S|| / (prev + 1e-8), gamma) / gamma);  prev = ||S||   (limiter)
  update = c_t S,  c_t = sqrt(1 - b2^t) / (1 - b1^t),  t = k + 1

The output is a descent direction to be scaled by `-learning_rate`
(`optax.scale_by_learning_rate`), like `optax.scale_by_adam`.

Layout. A Flax kernel (in, out) has channels = the larger side, the smaller side is
compressed (the input side on a tie); leaves with more than two axes are viewed as
matrices by `layout`. The moments are stored as (channels, rank) = (max(m, n), r)
whatever the orientation; in the reference's torch (out=m, in=n) terms that is its
(m, r) for m >= n and the transpose of its (r, n) for m < n, and our P (D, r) is the
transpose of its (r, n) or its (m, r).

P is never stored: it is `projection_fn(key, D, rank, dtype)` with
`key = fold_in(fold_in(key(seed), leaf_index), count // update_proj_gap)`, where
`leaf_index` is the leaf's position in the flattened tree this transformation sees.
So it changes exactly at k = 0, gap, 2 gap, ... (moments and the limiter carry over),
and distinct leaves get distinct P even when their shapes match. The draws of leaves
that share a compressed size are batched with `jax.vmap` (the same values, far fewer
random-number ops to compile: a 24-layer model has 168 matrices).

Caveat inherited from the reference: after a step whose gradient is exactly zero the
limiter's `prev` is 0, so the next updates restart from ~1e-8 and grow by gamma a step.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from msr_jax.optim import labels
from msr_jax.optim import layout

ProjectionFn = Callable[[jax.Array, int, int, Any], jax.Array]

# The reference's guard in the scaling ratio and in the limiter's ratio.
_GUARD = 1e-8
SCALE_TYPES = ("channel", "tensor")


class ScaleByApolloState(NamedTuple):
  """State of `scale_by_apollo`; `mu`, `nu`, `prev_norm` mirror the parameter tree."""
  count: jax.Array  # int32 scalar: completed steps k.
  mu: optax.Updates  # per leaf (channels, rank): first moment of the projected gradient.
  nu: optax.Updates  # per leaf (channels, rank): second moment of the projected gradient.
  prev_norm: optax.Updates  # per leaf scalar: ||S|| of the last update, +inf before it.


def gaussian_projection(key: jax.Array, dim: int, rank: int,
                        dtype: Any = jnp.float32) -> jax.Array:
  """The reference's projection: i.i.d. N(0, 1/rank) entries, shape (dim, rank)."""
  return jax.random.normal(key, (dim, rank), dtype) / jnp.asarray(math.sqrt(rank), dtype)


def projection_key(seed: int | jax.Array, leaf_index: int, count: int | jax.Array,
                   update_proj_gap: int | jax.Array) -> jax.Array:
  """The key the default schedule hands to `projection_fn` for one leaf at step `count`."""
  leaf_key = jax.random.fold_in(jax.random.key(seed), leaf_index)
  return jax.random.fold_in(leaf_key, count // update_proj_gap)


def _is_python_number(x: Any) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool)


def _validate(rank, scale_type, update_proj_gap, b1, b2, eps, limiter_gamma, scale):
  # Only Python numbers are checked: under optax.inject_hyperparams they are arrays.
  if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
    raise ValueError(f"scale_by_apollo: rank must be a positive int (static under "
                     f"inject_hyperparams), got {rank!r}")
  if scale_type not in SCALE_TYPES:
    raise ValueError(f"scale_by_apollo: scale_type must be one of {SCALE_TYPES}, "
                     f"got {scale_type!r}")
  if _is_python_number(update_proj_gap) and (update_proj_gap < 1 or
                                             int(update_proj_gap) != update_proj_gap):
    raise ValueError(f"scale_by_apollo: update_proj_gap must be an int >= 1, "
                     f"got {update_proj_gap!r}")
  for name, value in (("b1", b1), ("b2", b2)):
    if _is_python_number(value) and not 0.0 <= value < 1.0:
      raise ValueError(f"scale_by_apollo: {name} must be in [0, 1), got {value!r}")
  if _is_python_number(eps) and eps < 0:
    raise ValueError(f"scale_by_apollo: eps must be >= 0, got {eps!r}")
  if _is_python_number(scale) and scale <= 0:
    raise ValueError(f"scale_by_apollo: scale must be > 0, got {scale!r}")
  if _is_python_number(limiter_gamma) and limiter_gamma < 1.0:
    raise ValueError(f"scale_by_apollo: limiter_gamma must be >= 1 or None, "
                     f"got {limiter_gamma!r}")


def _one_minus_power(b: jax.Array, t: jax.Array) -> jax.Array:
  # 1 - b^t without the cancellation of float32 `1 - b ** t` (3e-5 relative at t = 1).
  return -jnp.expm1(t * jnp.log(b))


def scale_by_apollo(
    rank: int,
    scale_type: str = "channel",
    scale: float | jax.Array = 1.0,
    update_proj_gap: int = 200,
    b1: float | jax.Array = 0.9,
    b2: float | jax.Array = 0.999,
    eps: float | jax.Array = 1e-6,
    limiter_gamma: Optional[float | jax.Array] = 1.01,
    bias_correction: bool = True,
    seed: int = 0,
    projection_fn: Optional[ProjectionFn] = None,
    mu_dtype: Optional[Any] = None,
    num_input_axes: layout.NumInputAxes = None,
) -> optax.GradientTransformation:
  """APOLLO's gradient scaling for a tree of matrices (see the module docstring).

  Args:
    rank: projection rank r (>= min(m, n) is allowed). Static.
    scale_type: "channel" (one factor per channel) or "tensor" (APOLLO-Mini). Static.
    scale: the reference's scale; the update is multiplied by sqrt(scale) (alpha).
    update_proj_gap: P is redrawn when count % update_proj_gap == 0.
    b1, b2, eps: Adam constants of the projected moments (no bias correction inside).
    limiter_gamma: norm-growth limiter; ||S|| grows by at most this factor per step.
      None disables it.
    bias_correction: multiply the update by sqrt(1 - b2^t) / (1 - b1^t).
    seed: root of the projection keys. Static.
    projection_fn: `(key, dim, rank, dtype) -> (dim, rank)` projection; default
      `gaussian_projection`. `dim` is the compressed axis' size. It is called under
      `jax.vmap` over the keys of all leaves that share `dim` (one batched draw, not
      one per leaf), so it must be a JAX function of the key. Static.
    mu_dtype: dtype of the first moment (the second follows the parameters), as in
      `optax.scale_by_adam`. Arithmetic is done in at least float32.
    num_input_axes: how leaves with more than two axes become matrices; see `layout`.

  Returns:
    An `optax.GradientTransformation` whose state is a `ScaleByApolloState`. Every
    leaf must have at least two axes: route vectors elsewhere with `optax.partition`
    (as `msr_jax.optim.apollo` does); a vector leaf is an error naming its path.
  """
  _validate(rank, scale_type, update_proj_gap, b1, b2, eps, limiter_gamma, scale)
  projection_fn = projection_fn or gaussian_projection
  mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

  def moment_shape(shape) -> tuple[int, int]:
    channels, _ = layout.channels_and_compressed(shape, num_input_axes)
    return channels, rank

  def init_fn(params):
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
      if jnp.ndim(leaf) < 2:
        raise ValueError(
            f"scale_by_apollo: parameter {labels.path_to_str(path)!r} has shape "
            f"{jnp.shape(leaf)}; APOLLO applies to leaves with >= 2 axes. Route vectors "
            "to another transformation with optax.partition (see msr_jax.optim.apollo).")
    mu = jax.tree.map(lambda p: jnp.zeros(moment_shape(p.shape), mu_dtype or p.dtype), params)
    nu = jax.tree.map(lambda p: jnp.zeros(moment_shape(p.shape), p.dtype), params)
    prev_norm = jax.tree.map(
        lambda p: jnp.full((), jnp.inf, jnp.promote_types(p.dtype, jnp.float32)), params)
    return ScaleByApolloState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu,
                              prev_norm=prev_norm)

  def as_matrix(g):
    """G as (channels, compressed) in the compute dtype, and whether it was transposed."""
    dtype = jnp.promote_types(g.dtype, jnp.float32)
    n_in, n_out = layout.matrix_dims(g.shape, num_input_axes)
    compress_inputs = layout.compresses_inputs(n_in, n_out)
    g_IxO = g.reshape(n_in, n_out).astype(dtype)
    return (g_IxO.T if compress_inputs else g_IxO), compress_inputs

  def projections(g_leaves, count):
    """P for every leaf; one batched draw per (dim, dtype) instead of one per leaf."""
    root = jax.random.key(seed)
    leaf_keys = jax.vmap(jax.random.fold_in, (None, 0))(root, jnp.arange(len(g_leaves)))
    keys = jax.vmap(jax.random.fold_in, (0, None))(leaf_keys, count // update_proj_gap)
    groups: dict[tuple[int, Any], list[int]] = {}
    for i, g_CxD in enumerate(g_leaves):
      groups.setdefault((g_CxD.shape[1], g_CxD.dtype), []).append(i)
    p_leaves = [None] * len(g_leaves)
    for (dim, dtype), indices in groups.items():
      draw = lambda key, dim=dim, dtype=dtype: projection_fn(key, dim, rank, dtype)
      p_GxDxR = jax.vmap(draw)(keys[jnp.asarray(indices)])
      if p_GxDxR.shape[1:] != (dim, rank):
        raise ValueError(f"projection_fn returned shape {p_GxDxR.shape[1:]}, "
                         f"expected {(dim, rank)}")
      for j, i in enumerate(indices):
        p_leaves[i] = p_GxDxR[j].astype(dtype)
    return p_leaves

  def update_leaf(g_CxD, p_DxR, mu, nu, prev_norm, c_t):
    dtype = g_CxD.dtype
    r_CxR = g_CxD @ p_DxR

    b1_, b2_, eps_ = (jnp.asarray(x, dtype) for x in (b1, b2, eps))
    mu_CxR = b1_ * mu.astype(dtype) + (1 - b1_) * r_CxR
    nu_CxR = b2_ * nu.astype(dtype) + (1 - b2_) * jnp.square(r_CxR)
    n_CxR = mu_CxR / (jnp.sqrt(nu_CxR) + eps_)

    if scale_type == "channel":
      factor_Cx1 = (jnp.linalg.norm(n_CxR, axis=1, keepdims=True) /
                    (jnp.linalg.norm(r_CxR, axis=1, keepdims=True) + _GUARD))
    else:
      factor_Cx1 = jnp.linalg.norm(n_CxR) / (jnp.linalg.norm(r_CxR) + _GUARD)
    s_CxD = g_CxD * (factor_Cx1 * jnp.sqrt(jnp.asarray(scale, dtype)))

    norm = jnp.linalg.norm(s_CxD)
    if limiter_gamma is not None:
      gamma = jnp.asarray(limiter_gamma, dtype)
      # prev_norm = +inf before the first step makes `limit` 1 there.
      limit = jnp.maximum(norm / (prev_norm.astype(dtype) + _GUARD), gamma) / gamma
      s_CxD = s_CxD / limit
      norm = norm / limit

    return (c_t.astype(dtype) * s_CxD, mu_CxR.astype(mu.dtype), nu_CxR.astype(nu.dtype),
            norm.astype(prev_norm.dtype))

  def update_fn(updates, state, params=None):
    del params
    t = (state.count + 1).astype(jnp.float32)
    if bias_correction:
      c_t = (jnp.sqrt(_one_minus_power(jnp.asarray(b2, jnp.float32), t)) /
             _one_minus_power(jnp.asarray(b1, jnp.float32), t))
    else:
      c_t = jnp.ones([], jnp.float32)
    g_leaves, treedef = jax.tree.flatten(updates)
    matrices = [as_matrix(g) for g in g_leaves]
    p_leaves = projections([g_CxD for g_CxD, _ in matrices], state.count)
    per_leaf = zip(matrices, p_leaves, treedef.flatten_up_to(state.mu),
                   treedef.flatten_up_to(state.nu), treedef.flatten_up_to(state.prev_norm))
    outs = [update_leaf(g_CxD, p_DxR, mu, nu, prev, c_t)
            for (g_CxD, _), p_DxR, mu, nu, prev in per_leaf]
    u_leaves = []
    for g, (_, compress_inputs), (u_CxD, *_) in zip(g_leaves, matrices, outs):
      u_IxO = u_CxD.T if compress_inputs else u_CxD
      u_leaves.append(u_IxO.reshape(g.shape).astype(g.dtype))
    new_updates = treedef.unflatten(u_leaves)
    mu, nu, prev_norm = (treedef.unflatten([o[j] for o in outs]) for j in (1, 2, 3))
    return new_updates, ScaleByApolloState(
        count=optax.safe_increment(state.count), mu=mu, nu=nu, prev_norm=prev_norm)

  return optax.GradientTransformation(init_fn, update_fn)
