"""How far a fine-tuned model moved from its base: KL of outputs, CKA of states.

- ``kl_to_base``: mean per-token KL(base || current) over masked positions.
  Forgetting tracks this KL measured on the new task's distribution
  (Shenfeld et al. 2025, "RL's Razor: Why Online Reinforcement Learning
  Forgets Less").
- ``linear_cka``: linear centred kernel alignment between two sets of
  representations of the same N inputs (Kornblith et al. 2019, "Similarity of
  Neural Network Representations Revisited"). Used for context drift: the
  context's hidden states now against the base model's.

The model-running wrappers (``hidden_states``, ``model_kl_to_base``,
``hidden_state_cka``) take ``(graphdef, params)`` from
``nnx.split(model, nnx.Param)`` and are jitted with ``graphdef`` static, so the
parameters are arguments of the compiled program.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from msr_jax.model import forward
from msr_jax.model import hidden_states as model_hidden_states


def _check_logits(logits_base_BxTxV, logits_BxTxV, mask_BxT) -> None:
  base_shape, shape = jnp.shape(logits_base_BxTxV), jnp.shape(logits_BxTxV)
  if len(shape) != 3 or base_shape != shape:
    raise ValueError(
        "msr_jax/eval/similarity.py: logits_base_BxTxV and logits_BxTxV must "
        f"both be [batch, time, vocab] of one shape; got {base_shape} and {shape}")
  if jnp.shape(mask_BxT) != shape[:2]:
    raise ValueError(f"msr_jax/eval/similarity.py: mask_BxT has shape "
                     f"{jnp.shape(mask_BxT)}, the logits need {shape[:2]}")


@jax.jit
def token_kl(logits_base_BxTxV, logits_BxTxV):
  """KL(base || current) at every position, from logits, in float32.

  Uses log-softmax on both sides (no exp of raw logits). Vocabulary entries
  the base gives probability exactly 0 (logit -inf) contribute 0.

  Returns:
    ``kl_BxT`` (float32).
  """
  logp_base_BxTxV = jax.nn.log_softmax(logits_base_BxTxV.astype(jnp.float32), -1)
  logp_BxTxV = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32), -1)
  p_base_BxTxV = jnp.exp(logp_base_BxTxV)
  terms_BxTxV = jnp.where(p_base_BxTxV > 0,
                          p_base_BxTxV * (logp_base_BxTxV - logp_BxTxV), 0.0)
  return jnp.sum(terms_BxTxV, axis=-1)


@functools.partial(jax.jit, static_argnames="axis")
def _masked_kl_mean(logits_base_BxTxV, logits_BxTxV, mask_BxT, axis=None):
  """Mean of token_kl over the mask (over everything, or per row with axis=1)."""
  kl_BxT = token_kl(logits_base_BxTxV, logits_BxTxV)
  mask_BxT = mask_BxT.astype(jnp.float32)
  count = jnp.sum(mask_BxT, axis=axis)
  # where, not only a product: unmasked positions may hold NaN (padding).
  total = jnp.sum(jnp.where(mask_BxT > 0, kl_BxT * mask_BxT, 0.0), axis=axis)
  return jnp.where(count > 0, total / jnp.where(count > 0, count, 1.0), jnp.nan)


def kl_to_base(logits_base_BxTxV, logits_BxTxV, mask_BxT) -> jax.Array:
  """Mean per-token KL(base || current) over the masked positions.

  Args:
    logits_base_BxTxV: the base model's logits.
    logits_BxTxV: the current model's logits on the same tokens.
    mask_BxT: which positions count (bool or 0/1; fractional weights work as
      weights).

  Returns:
    A float32 scalar; NaN when the mask selects nothing.
  """
  _check_logits(logits_base_BxTxV, logits_BxTxV, mask_BxT)
  return _masked_kl_mean(logits_base_BxTxV, logits_BxTxV, jnp.asarray(mask_BxT))


def kl_to_base_per_row(logits_base_BxTxV, logits_BxTxV, mask_BxT) -> jax.Array:
  """Like :func:`kl_to_base` but one mean per row (for a bootstrap over items).

  Returns:
    ``kl_B`` (float32); NaN for rows whose mask selects nothing.
  """
  _check_logits(logits_base_BxTxV, logits_BxTxV, mask_BxT)
  return _masked_kl_mean(logits_base_BxTxV, logits_BxTxV, jnp.asarray(mask_BxT),
                         axis=1)


@jax.jit
def _linear_cka(x_NxD, y_NxE, mask_N):
  dtype = jnp.promote_types(jnp.promote_types(x_NxD.dtype, y_NxE.dtype),
                            jnp.float32)
  x_NxD, y_NxE = x_NxD.astype(dtype), y_NxE.astype(dtype)
  w_N = mask_N.astype(dtype)

  def centre(z_NxF):
    # Centre over the selected rows, then zero the rest: every Gram product
    # below then sums over the selected rows only, with static shapes.
    mean_F = jnp.sum(z_NxF * w_N[:, None], 0) / jnp.sum(w_N)
    z_NxF = (z_NxF - mean_F) * w_N[:, None]
    # CKA is scale-invariant; unit Frobenius norm keeps the 4th powers below
    # in range for large activations.
    norm = jnp.sqrt(jnp.sum(z_NxF**2))
    return z_NxF / jnp.where(norm > 0, norm, 1.0)

  x_NxD, y_NxE = centre(x_NxD), centre(y_NxE)
  n, d, e = x_NxD.shape[0], x_NxD.shape[1], y_NxE.shape[1]
  if n < max(d, e):  # N x N Gram matrices are the smaller ones.
    k_NxN, l_NxN = x_NxD @ x_NxD.T, y_NxE @ y_NxE.T
    hsic_xy, hsic_xx, hsic_yy = (jnp.sum(k_NxN * l_NxN), jnp.sum(k_NxN**2),
                                 jnp.sum(l_NxN**2))
  else:
    hsic_xy = jnp.sum((y_NxE.T @ x_NxD)**2)
    hsic_xx = jnp.sum((x_NxD.T @ x_NxD)**2)
    hsic_yy = jnp.sum((y_NxE.T @ y_NxE)**2)
  denom = jnp.sqrt(hsic_xx) * jnp.sqrt(hsic_yy)
  return jnp.where(denom > 0, hsic_xy / jnp.where(denom > 0, denom, 1.0),
                   jnp.nan)


def linear_cka(x_NxD, y_NxE, mask_N=None) -> jax.Array:
  """Linear CKA (Kornblith et al. 2019) between two representations.

  CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) with the columns of X
  and Y centred over the N examples. In [0, 1]; 1 for identical
  representations; invariant to orthogonal transforms and isotropic scaling
  of either side (not to arbitrary invertible linear maps).

  Args:
    x_NxD: N examples, D features.
    y_NxE: the same N examples, E features (E may differ from D).
    mask_N: which rows count (default: all).

  Returns:
    A scalar in at least float32; NaN if either side is constant over the
    selected rows.
  """
  x_shape, y_shape = jnp.shape(x_NxD), jnp.shape(y_NxE)
  if len(x_shape) != 2 or len(y_shape) != 2 or x_shape[0] != y_shape[0]:
    raise ValueError(
        "msr_jax/eval/similarity.py: linear_cka needs x_NxD and y_NxE, 2-D "
        f"with the same number of rows; got {x_shape} and {y_shape}")
  if mask_N is None:
    mask_N = jnp.ones((x_shape[0],), jnp.float32)
  elif jnp.shape(mask_N) != (x_shape[0],):
    raise ValueError(f"msr_jax/eval/similarity.py: mask_N has shape "
                     f"{jnp.shape(mask_N)}, expected ({x_shape[0]},)")
  return _linear_cka(jnp.asarray(x_NxD), jnp.asarray(y_NxE), jnp.asarray(mask_N))


_hidden_states = jax.jit(model_hidden_states, static_argnums=0)


def hidden_states(graphdef, params, tokens_BxT, positions_BxT=None) -> jax.Array:
  """The residual stream after each decoder block: ``hidden_LxBxTxD`` (jitted
  `msr_jax.model.hidden_states`).

  Layer ``l`` is the output of block ``l`` (before the final norm); the
  embedding output is not included.
  """
  return _hidden_states(graphdef, params, tokens_BxT, positions_BxT)


@functools.partial(jax.jit, static_argnums=0)
def _model_logits(graphdef, params, tokens_BxT, positions_BxT):
  return forward(graphdef, params, tokens_BxT, positions_BxT)[0]


def model_kl_to_base(graphdef, base_params, params, tokens_BxT, mask_BxT,
                     positions_BxT=None) -> jax.Array:
  """Runs the base and the current parameters on the same tokens and returns
  :func:`kl_to_base` over ``mask_BxT`` (e.g. a fixed prompt set's answers)."""
  return kl_to_base(_model_logits(graphdef, base_params, tokens_BxT, positions_BxT),
                    _model_logits(graphdef, params, tokens_BxT, positions_BxT),
                    mask_BxT)


def hidden_state_cka(graphdef, base_params, params, tokens_BxT, mask_BxT,
                     positions_BxT=None) -> jax.Array:
  """Per-layer linear CKA between base and current hidden states.

  The N examples are the masked token positions of the batch (for context
  drift: the context tokens), so the representation of each layer is an
  ``N x D`` matrix.

  Returns:
    ``cka_L`` (one value per decoder block).
  """
  if jnp.shape(mask_BxT) != jnp.shape(tokens_BxT):
    raise ValueError(f"msr_jax/eval/similarity.py: mask_BxT has shape "
                     f"{jnp.shape(mask_BxT)}, tokens_BxT {jnp.shape(tokens_BxT)}")
  base_LxBxTxD = hidden_states(graphdef, base_params, tokens_BxT, positions_BxT)
  now_LxBxTxD = hidden_states(graphdef, params, tokens_BxT, positions_BxT)
  num_layers, _, _, d = base_LxBxTxD.shape
  mask_N = jnp.asarray(mask_BxT).reshape(-1)
  return jax.vmap(_linear_cka, in_axes=(0, 0, None))(
      base_LxBxTxD.reshape(num_layers, -1, d),
      now_LxBxTxD.reshape(num_layers, -1, d), mask_N)
