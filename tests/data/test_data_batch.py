from __future__ import annotations

import numpy as np
import pytest

from msr_jax.data.batch import Batch, bucket_length, iterate_batches, make_batch, pow2_buckets
from msr_jax.data.segmentation import Example

PAD = 0


def _example(context, decision, weight=1.0, mask=None, rid="r"):
  decision = np.asarray(decision, np.int32)
  loss_mask = np.ones(len(decision), np.float32) if mask is None else np.asarray(mask, np.float32)
  return Example(record_id=rid, source="s", turn=1, weight=weight,
                 context_tokens=np.asarray(context, np.int32), decision_tokens=decision,
                 loss_mask=loss_mask)


def _examples(seed=0, n=6):
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    lc, ld = int(rng.integers(1, 20)), int(rng.integers(1, 9))
    mask = (rng.random(ld) < 0.8).astype(np.float32)
    out.append(_example(rng.integers(1, 50, lc), rng.integers(1, 50, ld),
                        weight=float(rng.uniform(0.1, 2.0)), mask=mask, rid=f"r{i}"))
  out.append(_example([7], [8]))  # context of one token: the prefill is empty
  return out


BUCKETS = dict(context_buckets=(4, 8, 16, 32), decision_buckets=(2, 4, 8))


def test_buckets():
  assert [bucket_length(n, (8, 16, 32)) for n in (0, 1, 8, 9, 32)] == [8, 8, 8, 16, 32]
  with pytest.raises(ValueError, match="exceeds the largest bucket 32"):
    bucket_length(33, (8, 16, 32))
  assert pow2_buckets(5, 100) == (8, 16, 32, 64, 100)
  assert pow2_buckets(8, 64) == (8, 16, 32, 64)
  assert pow2_buckets(1, 1) == (1,)


def test_layout_of_one_example():
  batch = make_batch([_example([1, 2, 3], [4, 5], weight=0.5)], (4,), (2,), pad_id=PAD)
  assert isinstance(batch, Batch)
  assert batch.context_BxC.tolist() == [[1, 2, 0, 0]]
  assert batch.context_lengths_B.tolist() == [2]
  assert batch.inputs_BxD.tolist() == [[3, 4]]
  assert batch.targets_BxD.tolist() == [[4, 5]]
  assert batch.weights_BxD.tolist() == [[0.5, 0.5]]


def test_shapes_dtypes_and_padding_rows():
  examples = _examples()
  batch = make_batch(examples, **BUCKETS, pad_id=PAD, batch_size=10)
  C = bucket_length(max(len(e.context_tokens) - 1 for e in examples), BUCKETS["context_buckets"])
  D = bucket_length(max(len(e.decision_tokens) for e in examples), BUCKETS["decision_buckets"])
  assert batch.segment_ids_BxT is None  # (context, decision) rows: no packed documents
  for name, array in batch._asdict().items():
    if name == "segment_ids_BxT":
      continue
    suffix = name.rsplit("_", 1)[1]
    assert array.shape == {"B": (10,), "BxC": (10, C), "BxD": (10, D)}[suffix]
    assert array.dtype == (np.float32 if name == "weights_BxD" else np.int32), name
  assert not batch.weights_BxD[len(examples):].any()
  with pytest.raises(ValueError, match="do not fit"):
    make_batch(examples, **BUCKETS, pad_id=PAD, batch_size=2)


def _weighted_triples_frozen(batch):
  """{(row, absolute position, target): weight} of the batch's loss terms, with the
  decision inputs at context_lengths_B + arange(D) (both modes place them there)."""
  b, j = np.nonzero(batch.weights_BxD)
  positions = batch.context_lengths_B[:, None] + np.arange(batch.inputs_BxD.shape[1])[None]
  return {(int(r), int(positions[r, s]), int(batch.targets_BxD[r, s])):
          float(batch.weights_BxD[r, s]) for r, s in zip(b, j)}


def _full_sequence(example):
  """Full backprop's view, built from the example alone: one sequence c + d[:-1], whose
  position Lc-1+j predicts d[j] with weight m[j] * w."""
  c, d = example.context_tokens, example.decision_tokens
  tokens = np.concatenate([c, d[:-1]])
  targets = np.zeros(len(tokens), np.int64)
  weights = np.zeros(len(tokens), np.float64)
  targets[len(c) - 1:] = d
  weights[len(c) - 1:] = example.loss_mask * np.float32(example.weight)
  return tokens, targets, weights


def _weighted_triples_full(examples):
  out = {}
  for r, example in enumerate(examples):
    _, targets, weights = _full_sequence(example)
    for t in np.nonzero(weights)[0]:
      out[(r, int(t), int(targets[t]))] = float(np.float32(weights[t]))
  return out


@pytest.mark.parametrize("seed", range(5))
def test_the_batch_holds_the_full_sequences_position_target_weight_triples(seed):
  examples = _examples(seed)
  batch = make_batch(examples, **BUCKETS, pad_id=PAD)
  frozen, full = _weighted_triples_frozen(batch), _weighted_triples_full(examples)
  assert frozen == full
  assert len(frozen) == sum(int((e.loss_mask > 0).sum()) for e in examples)


def _causal_scores(tokens, positions, table_VxH, out_HxV):
  """A causal stand-in for a language model: logits at i see tokens[:i+1] and positions."""
  hidden = np.cumsum(table_VxH[tokens] * (1.0 + 0.1 * positions[:, None]), axis=0)
  logits = np.tanh(hidden) @ out_HxV
  return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


@pytest.mark.parametrize("seed", range(3))
def test_both_modes_give_the_same_loss_with_a_causal_model(seed):
  rng = np.random.default_rng(seed)
  table, out = rng.normal(size=(50, 8)), rng.normal(size=(8, 50))
  examples = _examples(seed)
  batch = make_batch(examples, **BUCKETS, pad_id=PAD)
  full_loss = frozen_loss = 0.0
  for b, example in enumerate(examples):
    tokens, targets, weights = _full_sequence(example)
    logp = _causal_scores(tokens, np.arange(len(tokens)), table, out)
    full_loss -= (logp[np.arange(len(tokens)), targets] * weights).sum()
    # Context-frozen: prefill tokens at 0..len-1, then the decision inputs after them.
    n = batch.context_lengths_B[b]
    tokens = np.concatenate([batch.context_BxC[b, :n], batch.inputs_BxD[b]])
    positions = np.arange(len(tokens))
    logp = _causal_scores(tokens, positions, table, out)[n:]
    frozen_loss -= (logp[np.arange(logp.shape[0]), batch.targets_BxD[b]]
                    * batch.weights_BxD[b]).sum()
  assert full_loss > 0
  np.testing.assert_allclose(frozen_loss, full_loss, rtol=1e-12)


def test_iterate_batches_pads_the_last_batch():
  examples = _examples(n=6)  # 7 examples
  batches = list(iterate_batches(iter(examples), 3, **BUCKETS, pad_id=PAD))
  assert [b.context_lengths_B.shape[0] for b in batches] == [3, 3, 3]
  assert batches[-1].weights_BxD[1:].sum() == 0
  assert batches[-1].weights_BxD[0].sum() > 0


def test_examples_too_long_or_empty_are_errors():
  with pytest.raises(ValueError, match="exceeds the largest bucket 8"):
    make_batch([_example([1], list(range(1, 10)))], **BUCKETS, pad_id=PAD)
  with pytest.raises(ValueError, match="needs >= 1 context"):
    make_batch([_example([], [1])], **BUCKETS, pad_id=PAD)
  with pytest.raises(ValueError, match="at least one"):
    make_batch([], **BUCKETS, pad_id=PAD)
