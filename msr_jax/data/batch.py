"""Batches for the trainer, for both training modes, with identical loss terms.

For an example with context c (length Lc >= 1), decision d (length Ld >= 1), per-token
loss mask m and record weight w. The first decision token is predicted from the logits at
the LAST context token, so that token must run with gradient in context-frozen training:

Context-frozen arrays (prefill c[:-1] into the KV cache under stop_gradient, then run the
decision input with gradient):
  context_tokens_BxC     c[:-1], right-padded with pad_id          (prefill; C bucketed)
  context_lengths_B      Lc - 1: valid prefill tokens (cache slots >= this are padding
                         and must be masked out of attention)
  decision_tokens_BxD    [c[-1]] + d[:-1], right-padded             (D bucketed)
  decision_positions_BxD (Lc - 1) + arange(D): the decision input's absolute positions
  decision_targets_BxD   d, right-padded with pad_id
  decision_mask_BxD      m * w on the first Ld slots, 0 elsewhere (float32)
Full-backprop arrays (one sequence c + d[:-1], causal attention, right padding is harmless):
  tokens_BxT             c + d[:-1], right-padded; T = C + D
  positions_BxT          arange(T)
  targets_BxT            d at slots Lc-1 ... Lc+Ld-2, pad_id elsewhere
  loss_mask_BxT          m * w at those slots, 0 elsewhere
So the full-mode (position, target, weight) triples with weight > 0 are exactly the
context-frozen ones: decision slot j is absolute position Lc-1+j predicting d[j] with
weight m[j]*w in both modes, and the two losses are comparable term by term.
`batch_size` pads the batch with all-zero-weight rows.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import numpy as np

from msr_jax.data.segmentation import Example


def bucket_length(n: int, buckets: Sequence[int]) -> int:
  """The smallest bucket >= n (buckets ascending); an error if n exceeds the largest."""
  for bucket in buckets:
    if bucket >= n:
      return int(bucket)
  raise ValueError(f"length {n} exceeds the largest bucket {buckets[-1]}")


def pow2_buckets(minimum: int, maximum: int) -> tuple[int, ...]:
  """Powers of two from the first one >= minimum, up to and including maximum."""
  if not 1 <= minimum <= maximum:
    raise ValueError(f"need 1 <= minimum <= maximum, got {minimum}, {maximum}")
  bucket, out = 1 << (minimum - 1).bit_length(), []
  while bucket < maximum:
    out.append(bucket)
    bucket *= 2
  return tuple(out) + (maximum,)


def make_batch(examples: Sequence[Example], context_buckets: Sequence[int],
               decision_buckets: Sequence[int], pad_id: int,
               batch_size: int | None = None) -> dict[str, np.ndarray]:
  """Pads `examples` into the arrays described in the module docstring."""
  if not examples:
    raise ValueError("make_batch needs at least one example")
  B = len(examples) if batch_size is None else batch_size
  if B < len(examples):
    raise ValueError(f"{len(examples)} examples do not fit batch_size {batch_size}")
  for ex in examples:
    if len(ex.context_tokens) < 1 or len(ex.decision_tokens) < 1:
      raise ValueError(f"example {ex.record_id!r} turn {ex.turn}: needs >= 1 context and "
                       ">= 1 decision token")
  C = bucket_length(max(len(ex.context_tokens) - 1 for ex in examples), context_buckets)
  D = bucket_length(max(len(ex.decision_tokens) for ex in examples), decision_buckets)
  T = C + D
  out = {
      "context_tokens_BxC": np.full((B, C), pad_id, np.int32),
      "context_lengths_B": np.zeros((B,), np.int32),
      "decision_tokens_BxD": np.full((B, D), pad_id, np.int32),
      "decision_positions_BxD": np.tile(np.arange(D, dtype=np.int32), (B, 1)),
      "decision_targets_BxD": np.full((B, D), pad_id, np.int32),
      "decision_mask_BxD": np.zeros((B, D), np.float32),
      "tokens_BxT": np.full((B, T), pad_id, np.int32),
      "positions_BxT": np.tile(np.arange(T, dtype=np.int32), (B, 1)),
      "targets_BxT": np.full((B, T), pad_id, np.int32),
      "loss_mask_BxT": np.zeros((B, T), np.float32),
  }
  for b, ex in enumerate(examples):
    context, decision = ex.context_tokens, ex.decision_tokens
    prefill, ld = len(context) - 1, len(decision)
    weights_D = ex.loss_mask.astype(np.float32) * np.float32(ex.weight)
    out["context_tokens_BxC"][b, :prefill] = context[:-1]
    out["context_lengths_B"][b] = prefill
    out["decision_tokens_BxD"][b, 0] = context[-1]
    out["decision_tokens_BxD"][b, 1:ld] = decision[:-1]
    out["decision_positions_BxD"][b] += prefill
    out["decision_targets_BxD"][b, :ld] = decision
    out["decision_mask_BxD"][b, :ld] = weights_D
    out["tokens_BxT"][b, :prefill + ld] = np.concatenate([context, decision[:-1]])
    out["targets_BxT"][b, prefill:prefill + ld] = decision
    out["loss_mask_BxT"][b, prefill:prefill + ld] = weights_D
  return out


def iterate_batches(examples: Iterable[Example], batch_size: int,
                    context_buckets: Sequence[int], decision_buckets: Sequence[int],
                    pad_id: int) -> Iterator[dict[str, np.ndarray]]:
  """Consecutive batches of `batch_size` from a (possibly endless) stream; the last,
  partial batch is padded with zero-weight rows so every batch has the same B."""
  chunk = []
  for example in examples:
    chunk.append(example)
    if len(chunk) == batch_size:
      yield make_batch(chunk, context_buckets, decision_buckets, pad_id)
      chunk = []
  if chunk:
    yield make_batch(chunk, context_buckets, decision_buckets, pad_id, batch_size=batch_size)
