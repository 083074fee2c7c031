"""The decoder-only transformer (Llama / Qwen2 / Qwen3 families) as a Flax NNX module."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from msr_jax.model.attention import Attention
from msr_jax.model.cache import KVCache
from msr_jax.model.config import ModelConfig
from msr_jax.model.layers import INIT, MLP, RMSNorm, linear


class Block(nnx.Module):

  def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
    self.input_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, config.param_dtype)
    self.attn = Attention(config, rngs)
    self.post_attn_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, config.param_dtype)
    self.mlp = MLP(config, rngs)

  def __call__(self, x_BxTxD, positions_BxT, cache_k=None, cache_v=None, lengths_B=None):
    attn_out, keys, values = self.attn(self.input_norm(x_BxTxD), positions_BxT,
                                       cache_k, cache_v, lengths_B)
    x_BxTxD = x_BxTxD + attn_out
    x_BxTxD = x_BxTxD + self.mlp(self.post_attn_norm(x_BxTxD))
    return x_BxTxD, keys, values


class Decoder(nnx.Module):

  def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
    self.config = config
    self.embed = nnx.Embed(config.vocab_size, config.hidden_size,
                           dtype=jnp.dtype(config.dtype),
                           param_dtype=jnp.dtype(config.param_dtype),
                           embedding_init=INIT, rngs=rngs)
    self.layers = nnx.List([Block(config, rngs) for _ in range(config.num_layers)])
    self.final_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, config.param_dtype)
    if not config.tie_embeddings:
      self.lm_head = linear(config.hidden_size, config.vocab_size, config, rngs)

  def __call__(self, tokens_BxT, positions_BxT, cache: KVCache | None = None,
               num_valid_B=None, return_hidden: bool = False):
    """Returns (logits_BxTxV float32, new cache or None, hidden states or None).

    Hidden states, when asked for, are the residual stream after each block,
    stacked as hidden_LxBxTxD (before the final norm).
    """
    x_BxTxD = self.embed(tokens_BxT)
    hidden, new_k, new_v = [], [], []
    for i, block in enumerate(self.layers):
      if cache is None:
        x_BxTxD, _, _ = block(x_BxTxD, positions_BxT)
      else:
        x_BxTxD, keys, values = block(x_BxTxD, positions_BxT, cache.k_LxBxSxKxH[i],
                                      cache.v_LxBxSxKxH[i], cache.lengths_B)
        new_k.append(keys)
        new_v.append(values)
      if return_hidden:
        hidden.append(x_BxTxD)
    x_BxTxD = self.final_norm(x_BxTxD)
    if self.config.tie_embeddings:
      logits_BxTxV = self.embed.attend(x_BxTxD)
    else:
      logits_BxTxV = self.lm_head(x_BxTxD)
    new_cache = None
    if cache is not None:
      t = tokens_BxT.shape[1]
      if num_valid_B is None:
        num_valid_B = jnp.full_like(cache.lengths_B, t)
      new_cache = KVCache(jnp.stack(new_k), jnp.stack(new_v),
                          cache.lengths_B + num_valid_B.astype(cache.lengths_B.dtype))
    hidden_LxBxTxD = jnp.stack(hidden) if return_hidden else None
    return logits_BxTxV.astype(jnp.float32), new_cache, hidden_LxBxTxD
