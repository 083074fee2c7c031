from __future__ import annotations

import numpy as np
import pytest

from msr_jax.data.batch import bucket_length, iterate_batches, make_batch, pow2_buckets
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
  assert batch["context_tokens_BxC"].tolist() == [[1, 2, 0, 0]]
  assert batch["context_lengths_B"].tolist() == [2]
  assert batch["decision_tokens_BxD"].tolist() == [[3, 4]]
  assert batch["decision_positions_BxD"].tolist() == [[2, 3]]
  assert batch["decision_targets_BxD"].tolist() == [[4, 5]]
  assert batch["decision_mask_BxD"].tolist() == [[0.5, 0.5]]
  assert batch["tokens_BxT"].tolist() == [[1, 2, 3, 4, 0, 0]]
  assert batch["positions_BxT"].tolist() == [[0, 1, 2, 3, 4, 5]]
  assert batch["targets_BxT"].tolist() == [[0, 0, 4, 5, 0, 0]]
  assert batch["loss_mask_BxT"].tolist() == [[0, 0, 0.5, 0.5, 0, 0]]


def test_shapes_dtypes_and_padding_rows():
  examples = _examples()
  batch = make_batch(examples, **BUCKETS, pad_id=PAD, batch_size=10)
  C = bucket_length(max(len(e.context_tokens) - 1 for e in examples), BUCKETS["context_buckets"])
  D = bucket_length(max(len(e.decision_tokens) for e in examples), BUCKETS["decision_buckets"])
  for name, array in batch.items():
    suffix = name.rsplit("_", 1)[1]
    assert array.shape == {"B": (10,), "BxC": (10, C), "BxD": (10, D), "BxT": (10, C + D)}[suffix]
    assert array.dtype == (np.float32 if "mask" in name else np.int32), name
  assert not batch["decision_mask_BxD"][len(examples):].any()
  assert not batch["loss_mask_BxT"][len(examples):].any()
  with pytest.raises(ValueError, match="do not fit"):
    make_batch(examples, **BUCKETS, pad_id=PAD, batch_size=2)


def _weighted_pairs_frozen(batch):
  """{(row, absolute position, target): weight} of the context-frozen loss terms."""
  b, j = np.nonzero(batch["decision_mask_BxD"])
  positions, targets = batch["decision_positions_BxD"], batch["decision_targets_BxD"]
  weights = batch["decision_mask_BxD"]
  return {(int(r), int(positions[r, s]), int(targets[r, s])): float(weights[r, s])
          for r, s in zip(b, j)}


def _weighted_pairs_full(batch):
  b, t = np.nonzero(batch["loss_mask_BxT"])
  return {(int(r), int(batch["positions_BxT"][r, s]), int(batch["targets_BxT"][r, s])):
          float(batch["loss_mask_BxT"][r, s]) for r, s in zip(b, t)}


@pytest.mark.parametrize("seed", range(5))
def test_full_mode_selects_the_same_position_target_weight_triples(seed):
  examples = _examples(seed)
  batch = make_batch(examples, **BUCKETS, pad_id=PAD)
  frozen, full = _weighted_pairs_frozen(batch), _weighted_pairs_full(batch)
  assert frozen == full
  expected = sum(int((e.loss_mask > 0).sum()) for e in examples)
  assert len(frozen) == expected
  # The weights carry the record weight times the token mask.
  for b, e in enumerate(examples):
    ld = len(e.decision_tokens)
    np.testing.assert_allclose(batch["decision_mask_BxD"][b, :ld], e.loss_mask * e.weight,
                               rtol=1e-6)


def _causal_scores(tokens, positions, table_VxH, out_HxV):
  """A causal stand-in for a language model: logits at i see tokens[:i+1] and positions."""
  hidden = np.cumsum(table_VxH[tokens] * (1.0 + 0.1 * positions[:, None]), axis=0)
  logits = np.tanh(hidden) @ out_HxV
  return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


@pytest.mark.parametrize("seed", range(3))
def test_both_modes_give_the_same_loss_with_a_causal_model(seed):
  rng = np.random.default_rng(seed)
  table, out = rng.normal(size=(50, 8)), rng.normal(size=(8, 50))
  batch = make_batch(_examples(seed), **BUCKETS, pad_id=PAD)
  full_loss = frozen_loss = 0.0
  for b in range(batch["tokens_BxT"].shape[0]):
    logp = _causal_scores(batch["tokens_BxT"][b], batch["positions_BxT"][b], table, out)
    picked = logp[np.arange(logp.shape[0]), batch["targets_BxT"][b]]
    full_loss -= (picked * batch["loss_mask_BxT"][b]).sum()
    # Context-frozen: prefill tokens at 0..len-1, then the decision input at its positions.
    n = batch["context_lengths_B"][b]
    tokens = np.concatenate([batch["context_tokens_BxC"][b, :n], batch["decision_tokens_BxD"][b]])
    positions = np.concatenate([np.arange(n), batch["decision_positions_BxD"][b]])
    logp = _causal_scores(tokens, positions, table, out)[n:]
    frozen_loss -= (logp[np.arange(logp.shape[0]), batch["decision_targets_BxD"][b]]
                    * batch["decision_mask_BxD"][b]).sum()
  assert full_loss > 0
  np.testing.assert_allclose(frozen_loss, full_loss, rtol=1e-12)


def test_iterate_batches_pads_the_last_batch():
  examples = _examples(n=6)  # 7 examples
  batches = list(iterate_batches(iter(examples), 3, **BUCKETS, pad_id=PAD))
  assert [b["context_lengths_B"].shape[0] for b in batches] == [3, 3, 3]
  assert batches[-1]["decision_mask_BxD"][1:].sum() == 0
  assert batches[-1]["decision_mask_BxD"][0].sum() > 0


def test_examples_too_long_or_empty_are_errors():
  with pytest.raises(ValueError, match="exceeds the largest bucket 8"):
    make_batch([_example([1], list(range(1, 10)))], **BUCKETS, pad_id=PAD)
  with pytest.raises(ValueError, match="needs >= 1 context"):
    make_batch([_example([], [1])], **BUCKETS, pad_id=PAD)
  with pytest.raises(ValueError, match="at least one"):
    make_batch([], **BUCKETS, pad_id=PAD)
