"""The KV cache: fixed capacity, one length per sequence, so ragged batches decode together.

Sequence b's tokens occupy slots [0, lengths_B[b]) of its row. A forward call with T new
tokens writes them at slots lengths_B[b] + t and advances the length by the number of
*valid* new tokens (right padding of a ragged prefill is written but not counted, and the
next call overwrites it). Positions for RoPE are passed separately, so slots and positions
need not agree (a decision can continue at any position after its context).

The caller guarantees lengths_B + T <= capacity: under `jit` an overflow cannot raise, and
a write past the capacity is dropped. `check_capacity` is the host-side guard.

The layout is L x B x K x S x H (heads before slots) so that attention reads each
(row, head) as one contiguous S x H block; with slots before heads XLA transposes every
layer's cache at every decode step. Layers write into the stacked arrays in place (one
scatter per layer), never into per-layer slices that would be re-stacked: re-stacking
copies the whole cache at every decode step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from msr_jax.model.config import ModelConfig


class KVCache(NamedTuple):
  k_LxBxKxSxH: jnp.ndarray
  v_LxBxKxSxH: jnp.ndarray
  lengths_B: jnp.ndarray  # int32

  @property
  def capacity(self) -> int:
    return self.k_LxBxKxSxH.shape[3]


def init_cache(config: ModelConfig, batch_size: int, capacity: int,
               dtype: str | None = None) -> KVCache:
  shape = (config.num_layers, batch_size, config.num_kv_heads, capacity, config.head_dim)
  dtype = jnp.dtype(dtype or config.dtype)
  return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype),
                 jnp.zeros((batch_size,), jnp.int32))


def check_capacity(cache: KVCache, num_new: int) -> None:
  """Raises if writing `num_new` tokens would overflow any row (host-side, not jittable)."""
  longest = int(np.max(np.asarray(cache.lengths_B))) if cache.lengths_B.size else 0
  if longest + num_new > cache.capacity:
    raise ValueError(f"KV cache overflow: a row holds {longest} tokens, {num_new} more "
                     f"requested, capacity {cache.capacity}")


def write_rows(buffer_BxSx_: jnp.ndarray, new_BxTx_: jnp.ndarray,
               start_B: jnp.ndarray) -> jnp.ndarray:
  """Writes row b's T new entries at slots start_B[b] + t of a B x S x ... buffer."""
  def write_row(row_Sx_, new_Tx_, start):
    return jax.lax.dynamic_update_slice_in_dim(row_Sx_, new_Tx_.astype(row_Sx_.dtype), start,
                                               axis=0)
  return jax.vmap(write_row)(buffer_BxSx_, new_BxTx_, start_B)


def write_stacked(cache_LxBxKxSxH: jnp.ndarray, layer: int, new_BxTxKxH: jnp.ndarray,
                  start_B: jnp.ndarray) -> jnp.ndarray:
  """Writes each row's new entries of layer `layer` at its own start slot, in place."""
  b, t = new_BxTxKxH.shape[:2]
  rows_Bx1 = jnp.arange(b)[:, None]
  slots_BxT = start_B[:, None] + jnp.arange(t, dtype=start_B.dtype)[None, :]
  # Advanced indices split by the head slice index a B x T x K x H block (NumPy rules).
  return cache_LxBxKxSxH.at[layer, rows_Bx1, :, slots_BxT].set(
      new_BxTxKxH.astype(cache_LxBxKxSxH.dtype), mode="drop")
