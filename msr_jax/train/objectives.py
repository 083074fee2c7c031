"""The two training objectives over a `Batch`: full backprop and context-frozen.

Both compute the same quantity, the weighted cross-entropy of the decision targets given
the context, with the same positions and the same attention pattern, so their loss values
agree; they differ only in where gradients flow.

- `full`: context and decision are concatenated per row (the decision written right after
  each row's real context, at `context_lengths_B[b]`), one causal forward over C + D
  tokens, and gradients flow through every position. Packed rows (`segment_ids_BxT`,
  pre-training's) attend within each document.
- `context_frozen`: the context is prefilled into a KV cache with `stop_gradient`
  parameters (optionally in chunks, so the prefill's attention scores are chunk x S
  instead of C x S), then the decision tokens run forward on the cache with gradients.
  The gradient reaches every weight through the decision positions only; nothing of the
  context's activations is kept beyond the cache.

Both return (sum of weighted token losses, sum of weights) so accumulation is exact.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from msr_jax.model import init_cache
from msr_jax.model.cache import write_rows
from msr_jax.model.config import ModelConfig
from msr_jax.model.forward import forward, prefill
from msr_jax.train.batch import Batch
from msr_jax.train.losses import weighted_nll_sums

MODES = ("full", "context_frozen")


def decision_positions(batch: Batch) -> jnp.ndarray:
  d = batch.inputs_BxD.shape[1]
  return batch.context_lengths_B[:, None] + jnp.arange(d, dtype=jnp.int32)[None, :]


def full_loss_sums(graphdef, params, batch: Batch):
  """Full backprop over the concatenated sequence, loss on the decision targets."""
  b, c = batch.context_BxC.shape
  d = batch.inputs_BxD.shape[1]
  padded_BxT = jnp.concatenate(
      [batch.context_BxC, jnp.zeros((b, d), batch.context_BxC.dtype)], axis=1)
  # Each row's decision goes right after that row's real context (padding after it is
  # never attended to by a decision token: attention is causal).
  sequence_BxT = write_rows(padded_BxT, batch.inputs_BxD.astype(padded_BxT.dtype),
                            batch.context_lengths_B)
  logits_BxTxV, _ = forward(graphdef, params, sequence_BxT,
                            segment_ids_BxT=batch.segment_ids_BxT)
  index_BxD = decision_positions(batch)
  logits_BxDxV = jnp.take_along_axis(logits_BxTxV, index_BxD[:, :, None], axis=1)
  return weighted_nll_sums(logits_BxDxV, batch.targets_BxD, batch.weights_BxD)


def prefill_context(graphdef, params, batch: Batch, model_config: ModelConfig,
                    chunk: int = 0):
  """KV cache of the context under stop_gradient, capacity C + D (C rounded up to a
  multiple of `chunk`).

  With `chunk` > 0 the context is written `chunk` tokens at a time in a scan, so the
  prefill's attention scores are chunk x S instead of C x S (at C = 8192 that is the
  difference between ~7 GiB and ~1 GiB of temporaries for a 512-wide model). A row whose
  context ended in an earlier chunk gets padding written past its length, which is not
  counted (num_valid 0), never attended to by its real tokens, and overwritten by the
  next write, so the cache's valid slots equal the one-shot prefill's.
  """
  frozen = jax.lax.stop_gradient(params)
  b, c = batch.context_BxC.shape
  d = batch.inputs_BxD.shape[1]
  lengths_B = batch.context_lengths_B.astype(jnp.int32)
  if chunk <= 0 or chunk >= c:
    _, cache = prefill(graphdef, frozen, batch.context_BxC, c + d, num_valid_B=lengths_B)
    return jax.lax.stop_gradient(cache)
  num_chunks = -(-c // chunk)
  context_BxP = jnp.pad(batch.context_BxC, ((0, 0), (0, num_chunks * chunk - c)))
  cache = init_cache(model_config, b, num_chunks * chunk + d)
  chunks_NxBxK = context_BxP.reshape(b, num_chunks, chunk).transpose(1, 0, 2)
  starts_N = jnp.arange(num_chunks, dtype=jnp.int32) * chunk

  def body(cache, xs):
    tokens_BxK, start = xs
    valid_B = jnp.clip(lengths_B - start, 0, chunk)
    _, cache = forward(graphdef, frozen, tokens_BxK, cache=cache, num_valid_B=valid_B)
    return cache, None

  cache, _ = jax.lax.scan(body, cache, (chunks_NxBxK, starts_N))
  return jax.lax.stop_gradient(cache)


def decision_loss_sums(graphdef, params, cache, batch: Batch):
  """Decision forward on a prefilled cache, with gradients w.r.t. `params` only."""
  # The decision reads the frozen cache without being written into it, so the backward
  # pass never builds a cotangent the size of the (stacked, all-layer) cache.
  logits_BxDxV, _ = forward(graphdef, params, batch.inputs_BxD, decision_positions(batch),
                            cache=cache, write_cache=False)
  return weighted_nll_sums(logits_BxDxV, batch.targets_BxD, batch.weights_BxD)


def context_frozen_loss_sums(graphdef, params, batch: Batch, model_config: ModelConfig,
                             chunk: int = 0):
  cache = prefill_context(graphdef, params, batch, model_config, chunk)
  return decision_loss_sums(graphdef, params, cache, batch)


def loss_sums(mode: str, graphdef, params, batch: Batch, model_config: ModelConfig,
              chunk: int = 0):
  if batch.segment_ids_BxT is not None and mode != "full":
    raise ValueError(f"train mode {mode!r}: packed rows (Batch.segment_ids_BxT) train with "
                     "full backprop only")
  if mode == "full":
    return full_loss_sums(graphdef, params, batch)
  if mode == "context_frozen":
    return context_frozen_loss_sums(graphdef, params, batch, model_config, chunk)
  raise ValueError(f"train mode: unknown {mode!r}, expected one of {MODES}")
