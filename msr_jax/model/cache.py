"""The KV cache: fixed capacity, one length per sequence, so ragged batches decode together.

Sequence b's tokens occupy slots [0, lengths_B[b]) of its row. A forward call with T new
tokens writes them at slots lengths_B[b] + t and advances the length by the number of
*valid* new tokens (right padding of a ragged prefill is written but not counted, and the
next call overwrites it). Positions for RoPE are passed separately, so slots and positions
need not agree (a decision can continue at any position after its context).

The caller guarantees lengths_B + T <= capacity: under `jit` an overflow cannot raise, and
`lax.dynamic_update_slice` would clamp the write. `check_capacity` is the host-side guard.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from msr_jax.model.config import ModelConfig


class KVCache(NamedTuple):
  k_LxBxSxKxH: jnp.ndarray
  v_LxBxSxKxH: jnp.ndarray
  lengths_B: jnp.ndarray  # int32

  @property
  def capacity(self) -> int:
    return self.k_LxBxSxKxH.shape[2]


def init_cache(config: ModelConfig, batch_size: int, capacity: int,
               dtype: str | None = None) -> KVCache:
  shape = (config.num_layers, batch_size, capacity, config.num_kv_heads, config.head_dim)
  dtype = jnp.dtype(dtype or config.dtype)
  return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype),
                 jnp.zeros((batch_size,), jnp.int32))


def check_capacity(cache: KVCache, num_new: int) -> None:
  """Raises if writing `num_new` tokens would overflow any row (host-side, not jittable)."""
  longest = int(np.max(np.asarray(cache.lengths_B))) if cache.lengths_B.size else 0
  if longest + num_new > cache.capacity:
    raise ValueError(f"KV cache overflow: a row holds {longest} tokens, {num_new} more "
                     f"requested, capacity {cache.capacity}")


def write_layer(cache_BxSxKxH: jnp.ndarray, new_BxTxKxH: jnp.ndarray,
                start_B: jnp.ndarray) -> jnp.ndarray:
  """Writes each row's new entries at its own start slot."""
  def write_row(row_SxKxH, new_TxKxH, start):
    return jax.lax.dynamic_update_slice_in_dim(
        row_SxKxH, new_TxKxH.astype(row_SxKxH.dtype), start, axis=0)
  return jax.vmap(write_row)(cache_BxSxKxH, new_BxTxKxH, start_B)
