"""The decoder-only transformer (Llama / Qwen2 / Qwen3 families) as a Flax NNX module."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from flax import nnx

from msr_jax.model import rope
from msr_jax.model.attention import Attention
from msr_jax.model.cache import KVCache
from msr_jax.model.config import ModelConfig
from msr_jax.model.layers import INIT, MLP, RMSNorm, linear


class DecoderOutput(NamedTuple):
  logits_BxTxV: jnp.ndarray           # float32
  cache: KVCache | None               # the new cache (with one, or with return_cache)
  hidden_LxBxTxD: jnp.ndarray | None  # with return_hidden: the residual stream per block


class Block(nnx.Module):

  def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
    self.input_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, config.param_dtype)
    self.attn = Attention(config, rngs)
    self.post_attn_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, config.param_dtype)
    self.mlp = MLP(config, rngs)

  def __call__(self, x_BxTxD, rope_tables, layer: int = 0, cache_k=None, cache_v=None,
               lengths_B=None, attend_slots: int | None = None, write_cache: bool = True,
               segment_ids_BxT=None):
    attn_out, keys, values = self.attn(self.input_norm(x_BxTxD), rope_tables, layer,
                                       cache_k, cache_v, lengths_B, attend_slots, write_cache,
                                       segment_ids_BxT)
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
               num_valid_B=None, return_hidden: bool = False, return_cache: bool = False,
               attend_slots: int | None = None, write_cache: bool = True,
               logits_at_B=None, segment_ids_BxT=None):
    """Returns a `DecoderOutput`: logits_BxTxV (float32), the new cache (or None) and the
    hidden states (or None).

    With a cache, the new tokens are written into it and attend to everything in it.
    Without one, attention is causal over the T tokens alone, and `return_cache` returns
    a cache of capacity T holding them (a prefill that never attends to empty slots).
    `attend_slots`: with a cache, attend over its first slots only (see `Attention`).
    `write_cache=False`: with a cache, read it without writing the new tokens into it;
    the returned cache is the one given (lengths unchanged).
    `logits_at_B`: one position per row (an index into the T new tokens); the logits come
    back for that position only, as logits_Bx1xV. A prefill that only samples the next
    token skips the LM head over the rest (for SmolLM2's 49k vocabulary that head is a
    fifth of a 128-token prefill's FLOPs).
    `segment_ids_BxT`: without a cache, rows packed with several documents; attention
    stays within each (the caller gives each document's positions from 0).
    Hidden states, when asked for, are the residual stream after each block,
    stacked as hidden_LxBxTxD (before the final norm).
    """
    x_BxTxD = self.embed(tokens_BxT)
    rope_tables = rope.tables(positions_BxT, self.config)  # Once for all layers.
    hidden, new_k, new_v = [], [], []
    k_LxBxKxSxH, v_LxBxKxSxH = (None, None) if cache is None else cache[:2]
    if segment_ids_BxT is not None and return_cache:
      raise ValueError("segment_ids_BxT (packed documents) cannot make a KV cache")
    for i, block in enumerate(self.layers):
      lengths_B = None if cache is None else cache.lengths_B
      x_BxTxD, keys, values = block(x_BxTxD, rope_tables, i, k_LxBxKxSxH, v_LxBxKxSxH,
                                    lengths_B, attend_slots, write_cache, segment_ids_BxT)
      if cache is not None:
        k_LxBxKxSxH, v_LxBxKxSxH = keys, values
      elif return_cache:
        new_k.append(keys)
        new_v.append(values)
      if return_hidden:
        hidden.append(x_BxTxD)
    if logits_at_B is not None:
      x_BxTxD = jnp.take_along_axis(x_BxTxD, jnp.asarray(logits_at_B)[:, None, None], axis=1)
    x_BxTxD = self.final_norm(x_BxTxD)
    if self.config.tie_embeddings:
      logits_BxTxV = self.embed.attend(x_BxTxD)
    else:
      logits_BxTxV = self.lm_head(x_BxTxD)
    new_cache = None
    t = tokens_BxT.shape[1]
    if cache is not None and not write_cache:
      new_cache = cache
    elif cache is not None:
      if num_valid_B is None:
        num_valid_B = jnp.full_like(cache.lengths_B, t)
      new_cache = KVCache(k_LxBxKxSxH, v_LxBxKxSxH,
                          cache.lengths_B + num_valid_B.astype(cache.lengths_B.dtype))
    elif return_cache:
      if num_valid_B is None:
        num_valid_B = jnp.full((tokens_BxT.shape[0],), t, jnp.int32)
      new_cache = KVCache(jnp.stack(new_k).astype(self.config.dtype),
                          jnp.stack(new_v).astype(self.config.dtype),
                          num_valid_B.astype(jnp.int32))
    hidden_LxBxTxD = jnp.stack(hidden) if return_hidden else None
    return DecoderOutput(logits_BxTxV.astype(jnp.float32), new_cache, hidden_LxBxTxD)
