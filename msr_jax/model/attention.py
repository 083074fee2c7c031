"""Grouped-query attention over a KV cache (or over the new tokens alone).

Queries are grouped by the KV head they share (N = K * G) so keys and values are never
repeated in memory. Softmax runs in float32 whatever the compute dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from msr_jax.model import rope
from msr_jax.model.cache import write_stacked
from msr_jax.model.config import ModelConfig
from msr_jax.model.layers import RMSNorm, linear

_MASKED = -1e30


def attend(q_BxTxNxH: jnp.ndarray, k_BxKxSxH: jnp.ndarray, v_BxKxSxH: jnp.ndarray,
           mask_BxTxS: jnp.ndarray, more=()) -> jnp.ndarray:
  """Grouped-query attention of q over one block of keys/values, or several.

  `more`: further (k_BxKxSxH, v_BxKxSxH, mask_BxTxS) blocks under one softmax with the
  first. Blocks are never concatenated, so a block that is a constant (a frozen cache)
  gets no cotangent of its size in the backward pass.
  """
  b, t, n, h = q_BxTxNxH.shape
  k = k_BxKxSxH.shape[1]
  # Both products run head-major (B x K x G x T x ...), with one transpose of the queries in
  # and one of the output back. Letting the einsums read and write B x T x K x G x H
  # instead took 2.3x as long on one CPU core (SmolLM2's 9 x 128 x 128 scores: 0.86 ms
  # against 0.38; `python benchmarks/forward_parts.py`). Scaling the queries (B x T x N x H)
  # costs less than scaling the scores (B x N x T x S).
  q_BxKxGxTxH = (q_BxTxNxH * (1.0 / jnp.sqrt(h)).astype(q_BxTxNxH.dtype)).reshape(
      b, t, k, n // k, h).transpose(0, 2, 3, 1, 4)
  blocks = [(k_BxKxSxH, v_BxKxSxH, mask_BxTxS), *more]
  scores = [jnp.where(mask[:, None, None],
                      jnp.einsum("bkgth,bksh->bkgts", q_BxKxGxTxH, keys,
                                 preferred_element_type=jnp.float32), _MASKED)
            for keys, _, mask in blocks]
  probs = jax.nn.softmax(jnp.concatenate(scores, axis=-1), axis=-1)
  out_BxKxGxTxH, start = 0, 0
  for keys, values, _ in blocks:
    size = keys.shape[2]
    out_BxKxGxTxH = out_BxKxGxTxH + jnp.einsum(
        "bkgts,bksh->bkgth", probs[..., start:start + size].astype(values.dtype), values)
    start += size
  return out_BxKxGxTxH.transpose(0, 3, 1, 2, 4).reshape(b, t, n, h)


def _causal(b: int, t: int, segment_ids_BxT=None) -> jnp.ndarray:
  """B x T x T: token i attends to tokens 0..i of the same T new tokens (of its own
  segment, where `segment_ids_BxT` marks packed documents)."""
  mask_BxTxT = jnp.broadcast_to(jnp.tril(jnp.ones((t, t), bool)), (b, t, t))
  if segment_ids_BxT is None:
    return mask_BxTxT
  segment_ids_BxT = jnp.asarray(segment_ids_BxT)
  return mask_BxTxT & (segment_ids_BxT[:, :, None] == segment_ids_BxT[:, None, :])


class Attention(nnx.Module):

  def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
    self.config = config
    d, h = config.hidden_size, config.head_dim
    n, k = config.num_heads, config.num_kv_heads
    # Queries and keys keep the batched dot: flattened, XLA fuses RoPE's rotation into
    # them differently and the rounding changes, so every checkpoint trained before would
    # no longer rebuild bit for bit (v, o and the MLP give identical bits, and most of the
    # time saved: `benchmarks/flat_linear.py`).
    self.q_proj = linear(d, n * h, config, rngs, use_bias=config.qkv_bias, flat=False)
    self.k_proj = linear(d, k * h, config, rngs, use_bias=config.qkv_bias, flat=False)
    self.v_proj = linear(d, k * h, config, rngs, use_bias=config.qkv_bias)
    self.o_proj = linear(n * h, d, config, rngs)
    if config.qk_norm:  # Qwen3: RMSNorm over each head's features, before RoPE.
      self.q_norm = RMSNorm(h, config.rms_norm_eps, config.param_dtype)
      self.k_norm = RMSNorm(h, config.rms_norm_eps, config.param_dtype)

  def __call__(self, x_BxTxD, rope_tables, layer: int = 0, cache_k_LxBxKxSxH=None,
               cache_v_LxBxKxSxH=None, lengths_B=None, attend_slots: int | None = None,
               write_cache: bool = True, segment_ids_BxT=None):
    """Returns (output_BxTxD, keys, values): with a cache, the whole stacked cache with
    this layer's new entries written (row b at slot lengths_B[b]); without one, this
    layer's keys and values of the T new tokens (B x K x T x H). `rope_tables`: the new
    tokens' (cos_BxTxH, sin_BxTxH) from `rope.tables`.

    `attend_slots` (static): attend over the cache's first slots only; the caller
    guarantees that every row's lengths_B[b] + T fits (cheaper decode while rows are short).
    `write_cache=False`: the new tokens attend over the cache's valid slots and each other
    without being written (the cache comes back unchanged): the decision pass of
    context-frozen training, whose gradient then never has the cache's size.
    `segment_ids_BxT` (no cache only): packed documents; a token attends within its own.
    """
    c = self.config
    b, t, _ = x_BxTxD.shape
    q_BxTxNxH = self.q_proj(x_BxTxD).reshape(b, t, c.num_heads, c.head_dim)
    k_BxTxKxH = self.k_proj(x_BxTxD).reshape(b, t, c.num_kv_heads, c.head_dim)
    v_BxTxKxH = self.v_proj(x_BxTxD).reshape(b, t, c.num_kv_heads, c.head_dim)
    if c.qk_norm:
      q_BxTxNxH, k_BxTxKxH = self.q_norm(q_BxTxNxH), self.k_norm(k_BxTxKxH)
    q_BxTxNxH = rope.rotate(q_BxTxNxH, *rope_tables)
    k_BxTxKxH = rope.rotate(k_BxTxKxH, *rope_tables)
    if cache_k_LxBxKxSxH is None:
      keys_BxKxSxH = k_BxTxKxH.transpose(0, 2, 1, 3)
      values_BxKxSxH = v_BxTxKxH.transpose(0, 2, 1, 3)
      mask_BxTxS = _causal(b, t, segment_ids_BxT)
    elif segment_ids_BxT is not None:
      raise ValueError("segment_ids_BxT (packed documents) is for a forward without a cache")
    elif not write_cache:
      keys_BxKxSxH = cache_k_LxBxKxSxH[layer, :, :, :attend_slots]
      values_BxKxSxH = cache_v_LxBxKxSxH[layer, :, :, :attend_slots]
      cached_BxTxS = jnp.broadcast_to(
          jnp.arange(keys_BxKxSxH.shape[2])[None, None, :] < lengths_B[:, None, None],
          (b, t, keys_BxKxSxH.shape[2]))
      new_block = (k_BxTxKxH.transpose(0, 2, 1, 3), v_BxTxKxH.transpose(0, 2, 1, 3),
                   _causal(b, t))
      out_BxTxNxH = attend(q_BxTxNxH, keys_BxKxSxH.astype(q_BxTxNxH.dtype),
                           values_BxKxSxH.astype(q_BxTxNxH.dtype), cached_BxTxS,
                           more=[new_block])
      return (self.o_proj(out_BxTxNxH.reshape(b, t, c.num_heads * c.head_dim)),
              cache_k_LxBxKxSxH, cache_v_LxBxKxSxH)
    else:
      cache_k_LxBxKxSxH = write_stacked(cache_k_LxBxKxSxH, layer, k_BxTxKxH, lengths_B)
      cache_v_LxBxKxSxH = write_stacked(cache_v_LxBxKxSxH, layer, v_BxTxKxH, lengths_B)
      keys_BxKxSxH = cache_k_LxBxKxSxH[layer, :, :, :attend_slots]
      values_BxKxSxH = cache_v_LxBxKxSxH[layer, :, :, :attend_slots]
      query_slots_BxT = lengths_B[:, None] + jnp.arange(t)[None, :]
      key_slots_S = jnp.arange(keys_BxKxSxH.shape[2])
      mask_BxTxS = key_slots_S[None, None, :] <= query_slots_BxT[:, :, None]
    out_BxTxNxH = attend(q_BxTxNxH, keys_BxKxSxH.astype(q_BxTxNxH.dtype),
                         values_BxKxSxH.astype(q_BxTxNxH.dtype), mask_BxTxS)
    output_BxTxD = self.o_proj(out_BxTxNxH.reshape(b, t, c.num_heads * c.head_dim))
    if cache_k_LxBxKxSxH is not None:  # the whole stacked cache, this layer's entries in
      return output_BxTxD, cache_k_LxBxKxSxH, cache_v_LxBxKxSxH
    return output_BxTxD, keys_BxKxSxH, values_BxKxSxH
