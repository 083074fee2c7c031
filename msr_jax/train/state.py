"""`TrainState`: everything a step reads and writes, as one pytree.

Parameters are a plain nested dict (`nnx.to_pure_dict` of the model's `nnx.Param` state):
`forward` accepts it, optax and orbax handle it, and the sharding rules see the same paths.
`ref_params` are the starting weights, kept for the drift monitor (so resuming a run
measures drift from the same origin). `num_skipped` counts updates skipped because the
loss or the gradient was not finite.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from msr_jax.train import trainable as trainable_lib


class TrainState(NamedTuple):
  step: jnp.ndarray          # int32 scalar: updates attempted
  params: Any
  opt_state: Any
  rng: jnp.ndarray           # PRNG key data (uint32), split once per step
  ref_params: Any
  num_skipped: jnp.ndarray   # int32 scalar
  # What the regularisers read and never change (`train/regularizers.py`: the EWC Fisher,
  # the retention rows), or None.
  aux: Any = None


def pure_params(params) -> dict:
  """A plain nested dict of arrays from an `nnx.State` (or a dict, returned as is)."""
  if isinstance(params, nnx.State):
    return nnx.to_pure_dict(params)
  return params


def init_state(params, tx: optax.GradientTransformation, seed: int = 0,
               trainable: tuple[str, ...] | None = None, aux=None) -> TrainState:
  """A fresh state. The parameters are copied twice (training copy and reference): the
  jitted step donates its state, which must free neither the caller's arrays nor the
  reference weights. The optimizer state covers the `trainable` paths only (None: all;
  `train/trainable.py`)."""
  params = pure_params(params)
  ref = jax.tree_util.tree_map(jnp.array, params)
  params = jax.tree_util.tree_map(jnp.array, params)
  opt_state = tx.init(trainable_lib.take(params, trainable))
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state,
                    rng=jax.random.key_data(jax.random.key(seed)), ref_params=ref,
                    num_skipped=jnp.zeros((), jnp.int32), aux=aux)
