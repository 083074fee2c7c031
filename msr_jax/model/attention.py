"""Grouped-query attention over a KV cache (or over the new tokens alone).

Queries are grouped by the KV head they share (N = K * G) so keys and values are never
repeated in memory. Softmax runs in float32 whatever the compute dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from msr_jax.model import rope
from msr_jax.model.cache import write_layer
from msr_jax.model.config import ModelConfig
from msr_jax.model.layers import RMSNorm, linear

_MASKED = -1e30


def attend(q_BxTxNxH: jnp.ndarray, k_BxSxKxH: jnp.ndarray, v_BxSxKxH: jnp.ndarray,
           mask_BxTxS: jnp.ndarray) -> jnp.ndarray:
  b, t, n, h = q_BxTxNxH.shape
  k = k_BxSxKxH.shape[2]
  q_BxTxKxGxH = q_BxTxNxH.reshape(b, t, k, n // k, h)
  scores_BxKxGxTxS = jnp.einsum("btkgh,bskh->bkgts", q_BxTxKxGxH, k_BxSxKxH,
                                preferred_element_type=jnp.float32) / jnp.sqrt(h).astype(jnp.float32)
  scores_BxKxGxTxS = jnp.where(mask_BxTxS[:, None, None], scores_BxKxGxTxS, _MASKED)
  probs = jax.nn.softmax(scores_BxKxGxTxS, axis=-1).astype(v_BxSxKxH.dtype)
  out_BxTxKxGxH = jnp.einsum("bkgts,bskh->btkgh", probs, v_BxSxKxH)
  return out_BxTxKxGxH.reshape(b, t, n, h)


class Attention(nnx.Module):

  def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
    self.config = config
    d, h = config.hidden_size, config.head_dim
    n, k = config.num_heads, config.num_kv_heads
    self.q_proj = linear(d, n * h, config, rngs, use_bias=config.qkv_bias)
    self.k_proj = linear(d, k * h, config, rngs, use_bias=config.qkv_bias)
    self.v_proj = linear(d, k * h, config, rngs, use_bias=config.qkv_bias)
    self.o_proj = linear(n * h, d, config, rngs)
    if config.qk_norm:  # Qwen3: RMSNorm over each head's features, before RoPE.
      self.q_norm = RMSNorm(h, config.rms_norm_eps, config.param_dtype)
      self.k_norm = RMSNorm(h, config.rms_norm_eps, config.param_dtype)

  def __call__(self, x_BxTxD, positions_BxT, cache_k_BxSxKxH=None, cache_v_BxSxKxH=None,
               lengths_B=None):
    """Returns (output_BxTxD, keys, values); keys/values are the updated cache rows
    when a cache is given, else the new tokens' own keys and values."""
    c = self.config
    b, t, _ = x_BxTxD.shape
    q = self.q_proj(x_BxTxD).reshape(b, t, c.num_heads, c.head_dim)
    k = self.k_proj(x_BxTxD).reshape(b, t, c.num_kv_heads, c.head_dim)
    v = self.v_proj(x_BxTxD).reshape(b, t, c.num_kv_heads, c.head_dim)
    if c.qk_norm:
      q, k = self.q_norm(q), self.k_norm(k)
    q = rope.apply_rope(q, positions_BxT, c)
    k = rope.apply_rope(k, positions_BxT, c)
    if cache_k_BxSxKxH is None:
      keys, values = k, v
      causal_TxT = jnp.tril(jnp.ones((t, t), bool))
      mask_BxTxS = jnp.broadcast_to(causal_TxT, (b, t, t))
    else:
      keys = write_layer(cache_k_BxSxKxH, k, lengths_B)
      values = write_layer(cache_v_BxSxKxH, v, lengths_B)
      query_slots_BxT = lengths_B[:, None] + jnp.arange(t)[None, :]
      key_slots_S = jnp.arange(keys.shape[1])
      mask_BxTxS = key_slots_S[None, None, :] <= query_slots_BxT[:, :, None]
    out = attend(q, keys.astype(q.dtype), values.astype(q.dtype), mask_BxTxS)
    return self.o_proj(out.reshape(b, t, c.num_heads * c.head_dim)), keys, values
