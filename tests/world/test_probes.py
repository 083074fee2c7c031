"""Tests of the Townworld probe sets and their batched scoring."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from msr_jax.eval import probes_score
from msr_jax.world import probes
from msr_jax.model import Decoder, ModelConfig, forward
from msr_jax.world import tokenizer
from msr_jax.world.world import World

WORLD = World.build(0)
TOK = tokenizer.build()
SIZES = {name: 4 for name in probes.DEFAULT_SIZES}


@pytest.fixture(scope="module")
def items():
  return probes.build(WORLD, 7, tokenizer.adapter(TOK), SIZES)


def _answer(item) -> str:
  return TOK.decode(item.tokens[item.start:item.end].tolist())


def test_items_are_fixed_by_seed(items):
  again = probes.build(WORLD, 7, tokenizer.adapter(TOK), SIZES)
  assert [i.probe for i in items] == [i.probe for i in again]
  assert all(np.array_equal(a.tokens, b.tokens) and (a.start, a.end) == (b.start, b.end)
             for a, b in zip(items, again))
  other = probes.build(WORLD, 8, tokenizer.adapter(TOK), SIZES)
  assert any(not np.array_equal(a.tokens, b.tokens) for a, b in zip(items, other))


def test_answers_are_the_right_facts(items):
  for item in items:
    words = TOK.decode(item.tokens.tolist()).split()
    if item.probe == "K1":  # The first sentence's value is the person's stored fact.
      person = words[0]
      assert _answer(item) in WORLD.facts[person].values()
    elif item.probe == "K2":
      person = next(w for w in words if w in WORLD.facts)
      assert person in WORLD.qa_test and _answer(item) in WORLD.facts[person].values()
    elif item.probe == "C2":
      twin = items[item.twin]
      assert twin.probe == "C2_stored" and _answer(twin) != _answer(item)
      person = next(w for w in words if w in WORLD.facts)
      assert _answer(twin) in WORLD.facts[person].values()
    elif item.probe in ("B_train", "N1", "N2", "N3") or item.probe.startswith("N4_"):
      assert _answer(item) == "wait because the weather is stormy"
    elif item.probe == "spec":
      assert not _answer(item).startswith("wait")
  kinds = {i.probe for i in items}
  assert {"K1", "K2", "K4", "C1_8", "C2", "R0", "rule", "rule_novel", "r1_note", "spec",
          "N4_9"} <= kinds


def _tiny_model():
  config = dataclasses.replace(ModelConfig.preset("townworld_tiny", vocab_size=TOK.get_vocab_size()),
                               hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2,
                               num_kv_heads=2, head_dim=16)
  return nnx.split(Decoder(config, rngs=nnx.Rngs(0)), nnx.Param)


def test_batched_scores_equal_one_item_at_a_time(items):
  graphdef, params = _tiny_model()
  chosen = items[::23]  # a few items of different probes and lengths
  logprob, exact = probes_score.score_items(graphdef, params, chosen, batch_size=4)
  for item, lp, ex in zip(chosen, logprob, exact):
    logits, _ = forward(graphdef, params, item.tokens[None])
    logp = jax.nn.log_softmax(np.asarray(logits[0], np.float64), axis=-1)
    targets = item.tokens[item.start:item.end]
    rows = logp[item.start - 1:item.end - 1]
    np.testing.assert_allclose(lp, rows[np.arange(len(targets)), targets].sum(), rtol=1e-5,
                               atol=1e-4)
    assert ex == bool((rows.argmax(-1) == targets).all())


def test_summary_memorization_ratio_and_cross_entropy():
  t = np.arange(6, dtype=np.int32)
  items = [probes.ProbeItem("C2", t, 3, 4, twin=1), probes.ProbeItem("C2_stored", t, 3, 4),
           probes.ProbeItem("K4", t, 2, 6)]
  logprob = np.log([0.6, 0.2, 0.5])
  summary = probes.summarize(items, logprob, np.array([True, False, False]))
  assert summary["C2"]["acc"] == 1.0
  assert summary["C2"]["memorization_ratio"] == pytest.approx(0.2 / 0.8)
  assert summary["K4"]["ce"] == pytest.approx(-np.log(0.5) / 4)
  assert "C2_stored" not in summary
