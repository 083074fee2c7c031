"""Optimizer state in float32 for lower-precision parameters.

`with_state_dtype(tx, jnp.float32)` runs `tx` on float32 copies of the gradient and the
parameters, so every moment it keeps (Adam's mu and nu, APOLLO's compressed moments, Lion's
momentum) is float32 even when the parameters are bfloat16; the update is cast back to each
parameter's dtype. With float32 parameters it changes nothing (the casts are identities).

Why: a bf16 second moment holds about three significant digits, so `sqrt(nu)` and the
bias-corrected ratio lose the small gradients that late, low-learning-rate fine-tuning is
made of. The parameters themselves stay in their dtype; for updates below bf16's resolution
(lr 1e-5 on weights of order 1) keep `param_dtype = "float32"` and compute in bf16
(`dtype = "bfloat16"`) instead.

The state has the wrapped optimizer's structure, so `optax.inject_hyperparams`' fields and
`msr_jax.optim.learning_rate` work on it unchanged.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


def _is_low_float(x) -> bool:
  return (hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)
          and jnp.finfo(x.dtype).bits < 32)


def _cast(tree, dtype):
  """Floating leaves narrower than 32 bits to `dtype`; everything else as is."""
  if tree is None:
    return None
  return jax.tree.map(lambda x: x.astype(dtype) if _is_low_float(x) else x, tree)


def with_state_dtype(tx: optax.GradientTransformation, dtype: Any = jnp.float32
                     ) -> optax.GradientTransformationExtraArgs:
  """`tx` computing and keeping its state in `dtype` for every lower-precision leaf."""
  dtype = jnp.dtype(dtype)
  tx = optax.with_extra_args_support(tx)

  def init(params):
    return tx.init(_cast(params, dtype))

  def update(updates, state, params=None, **extra_args):
    new_updates, state = tx.update(_cast(updates, dtype), state, _cast(params, dtype),
                                   **extra_args)
    new_updates = jax.tree.map(lambda u, g: u.astype(g.dtype), new_updates, updates)
    return new_updates, state

  return optax.GradientTransformationExtraArgs(init, update)
