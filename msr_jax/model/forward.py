"""The pure functional entry point: parameters in, logits (and cache) out.

`forward` is what every stage calls (training, prefill, decode, probes). It merges the
graph definition with the parameters it is given, so under `jax.jit` the parameters are
arguments, never constants baked into the compiled program.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from msr_jax.model.cache import KVCache


def forward(graphdef, params, tokens_BxT, positions_BxT=None, cache: KVCache | None = None,
            num_valid_B=None, attend_slots: int | None = None, write_cache: bool = True,
            logits_at_B=None, segment_ids_BxT=None):
  """Runs the decoder.

  Args:
    graphdef, params: from `nnx.split(model, nnx.Param)`.
    tokens_BxT: int token ids.
    positions_BxT: RoPE positions, B x T or 1 x T (the same for every row); default
      `arange(T)` (or, with a cache, each row's length plus `arange(T)`).
    cache: None for a plain causal forward; a `KVCache` for prefill or decode.
    num_valid_B: how many of the T tokens of each row are real (the rest are right
      padding); only used to advance the cache lengths. Default: all T.
    attend_slots: with a cache, attend over its first `attend_slots` slots only (static;
      every row's length plus T must fit): decode steps while all rows are short.
    write_cache: False reads the cache without writing the new tokens into it (they
      attend over its valid slots and, causally, each other); the cache comes back as
      given. Context-frozen training's decision pass: its gradient never has cache size.
    logits_at_B: one index into the T tokens per row; logits come back for it alone
      (logits_Bx1xV).
    segment_ids_BxT: rows packed with several documents (no cache), one id per
      contiguous document: attention stays within each, and the default positions restart
      at 0 at each document's first token, so every document is computed as if alone.

  Returns:
    (logits_BxTxV float32, cache or None). The residual stream is `hidden_states`'.
  """
  tokens_BxT = jnp.asarray(tokens_BxT)
  if positions_BxT is None and segment_ids_BxT is not None:
    positions_BxT = segment_positions(segment_ids_BxT)
  if positions_BxT is None:
    t = tokens_BxT.shape[1]
    # numpy, so RoPE's tables are constants of the program (`rope.tables`).
    # One row (1 x T) broadcasts over the batch, so the tables are 1 x T x H.
    positions_BxT = np.arange(t, dtype=np.int32)[None]
    if cache is not None:
      positions_BxT = positions_BxT + cache.lengths_B[:, None]
  model = nnx.merge(graphdef, params)
  out = model(tokens_BxT, positions_BxT, cache, num_valid_B, attend_slots=attend_slots,
              write_cache=write_cache, logits_at_B=logits_at_B, segment_ids_BxT=segment_ids_BxT)
  return out.logits_BxTxV, out.cache


def hidden_states(graphdef, params, tokens_BxT, positions_BxT=None):
  """The residual stream after each decoder block, hidden_LxBxTxD (block l's output,
  before the final norm; the embedding output is not included), of a causal forward."""
  tokens_BxT = jnp.asarray(tokens_BxT)
  if positions_BxT is None:
    positions_BxT = np.arange(tokens_BxT.shape[1], dtype=np.int32)[None]
  model = nnx.merge(graphdef, params)
  return model(tokens_BxT, positions_BxT, return_hidden=True).hidden_LxBxTxD


def segment_positions(segment_ids_BxT):
  """Each token's index within its contiguous segment (0 at every segment's start)."""
  segment_ids_BxT = jnp.asarray(segment_ids_BxT)
  t = segment_ids_BxT.shape[1]
  index_BxT = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), segment_ids_BxT.shape)
  starts_BxT = jnp.concatenate(
      [jnp.ones_like(segment_ids_BxT[:, :1], bool),
       segment_ids_BxT[:, 1:] != segment_ids_BxT[:, :-1]], axis=1)
  start_index_BxT = jax.lax.cummax(jnp.where(starts_BxT, index_BxT, 0), axis=1)
  return index_BxT - start_index_BxT


def prefill(graphdef, params, tokens_BxT, capacity: int, num_valid_B=None,
            positions_BxT=None, logits_at_B=None):
  """A fresh KV cache of `capacity` slots filled with `tokens_BxT`, and their logits.

  Equals `forward` on an empty cache of that capacity, but runs the plain causal forward
  (attention over the T new tokens, not over all `capacity` slots) and pads its keys and
  values into the cache once. `num_valid_B`: how many tokens of each row count (the rest
  are right padding, written but not counted, as in `forward`). `logits_at_B`: as in
  `forward` (logits_Bx1xV for one position per row, e.g. each prompt's last).

  Returns (logits_BxTxV float32, cache).
  """
  tokens_BxT = jnp.asarray(tokens_BxT)
  t = tokens_BxT.shape[1]
  if capacity < t:
    raise ValueError(f"prefill: capacity {capacity} is below the {t} tokens to write")
  if positions_BxT is None:
    positions_BxT = np.arange(t, dtype=np.int32)[None]  # 1 x T: broadcasts over the batch
  model = nnx.merge(graphdef, params)
  out = model(tokens_BxT, positions_BxT, None, num_valid_B, return_cache=True,
              logits_at_B=logits_at_B)
  logits, cache = out.logits_BxTxV, out.cache
  room = ((0, 0), (0, 0), (0, 0), (0, capacity - t), (0, 0))
  return logits, KVCache(jnp.pad(cache.k_LxBxKxSxH, room), jnp.pad(cache.v_LxBxKxSxH, room),
                         cache.lengths_B)
