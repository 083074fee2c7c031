"""The batch between data and train: one (context, decision) pair per row, bucketed.

For an example with context c (length Lc >= 1), decision d (length Ld >= 1), per-token
loss mask m and record weight w. The first decision token is predicted from the logits at
the LAST context token, so that token runs with the decision (with gradient, in
context-frozen training):
  context_BxC        c[:-1], right-padded with pad_id (the prefill; C bucketed)
  context_lengths_B  Lc - 1: valid prefill tokens (cache slots >= this are padding and
                     are masked out of attention)
  inputs_BxD         [c[-1]] + d[:-1], right-padded (D bucketed); their absolute positions
                     are context_lengths_B + arange(D)
  targets_BxD        d, right-padded with pad_id
  weights_BxD        m * w on the first Ld slots, 0 elsewhere (float32)
Both training modes read this one type. Context-frozen prefills the context into the KV
cache and runs the inputs on it; full backprop writes each row's inputs right after its
real context (c + d[:-1], one causal sequence) and reads the logits at the same absolute
positions, so decision slot j is position Lc-1+j predicting d[j] with weight m[j]*w in
both modes and the two losses agree term by term (`tests/data/test_data_batch.py` checks
the triples against sequences built from the examples; `train/objectives.py` builds the
full sequence on the device). `batch_size` pads the batch with all-zero-weight rows; with
gradient accumulation every array gets a leading micro-batch axis
(`train.batch.stack_micro_batches`).

Packed rows (pre-training: several documents per row, loss on every trained token) are
the same type with an empty context (C = 0, `context_lengths_B` 0) and, to keep attention
within each document, `segment_ids_BxT`: one id per contiguous document over the full
sequence's C + D positions (0 for padding), read by full backprop only.
"""

from __future__ import annotations

from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from msr_jax.data.segmentation import Example


class Batch(NamedTuple):
  context_BxC: np.ndarray        # int32, right-padded context tokens
  context_lengths_B: np.ndarray  # int32, real context tokens per row (<= C)
  inputs_BxD: np.ndarray         # int32, decision-forward input tokens
  targets_BxD: np.ndarray        # int32, next-token targets of those inputs
  weights_BxD: np.ndarray        # float32, loss weight per target (0 = not trained on)
  segment_ids_BxT: np.ndarray | None = None  # int32 document ids over C + D, or None

  @property
  def num_tokens(self):
    """Tokens the step runs forward over (context + decision), for throughput."""
    return int(np.sum(np.asarray(self.context_lengths_B))) + int(np.prod(self.inputs_BxD.shape))


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
               batch_size: int | None = None) -> Batch:
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
  context_BxC = np.full((B, C), pad_id, np.int32)
  context_lengths_B = np.zeros((B,), np.int32)
  inputs_BxD = np.full((B, D), pad_id, np.int32)
  targets_BxD = np.full((B, D), pad_id, np.int32)
  weights_BxD = np.zeros((B, D), np.float32)
  for b, ex in enumerate(examples):
    context, decision = ex.context_tokens, ex.decision_tokens
    prefill, ld = len(context) - 1, len(decision)
    context_BxC[b, :prefill] = context[:-1]
    context_lengths_B[b] = prefill
    inputs_BxD[b, 0] = context[-1]
    inputs_BxD[b, 1:ld] = decision[:-1]
    targets_BxD[b, :ld] = decision
    weights_BxD[b, :ld] = ex.loss_mask.astype(np.float32) * np.float32(ex.weight)
  return Batch(context_BxC, context_lengths_B, inputs_BxD, targets_BxD, weights_BxD)


def packed_batch(tokens_BxL: np.ndarray, mask_BxL: np.ndarray,
                 segments_BxL: np.ndarray | None = None) -> Batch:
  """Packed rows (several documents per row, pre-training's) as a `Batch` for full
  backprop: an empty context, the row as the decision inputs, the next tokens as targets.

  `mask_BxL[:, t]` is 1 where `tokens_BxL[:, t + 1]` is trained on (the last column has no
  target and is never trained). With `segments_BxL` (document ids, 0 for padding),
  attention stays within each document and positions restart at its first token.
  """
  b, length = np.shape(tokens_BxL)
  tokens_BxL = np.asarray(tokens_BxL, np.int32)
  targets_BxL = np.concatenate([tokens_BxL[:, 1:], np.zeros((b, 1), np.int32)], axis=1)
  weights_BxL = np.asarray(mask_BxL, np.float32).copy()
  weights_BxL[:, -1] = 0.0
  segments = None if segments_BxL is None else np.asarray(segments_BxL, np.int32)
  return Batch(np.zeros((b, 0), np.int32), np.zeros((b,), np.int32), tokens_BxL,
               targets_BxL, weights_BxL, segments)


def iterate_batches(examples: Iterable[Example], batch_size: int,
                    context_buckets: Sequence[int], decision_buckets: Sequence[int],
                    pad_id: int) -> Iterator[Batch]:
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
