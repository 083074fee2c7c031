"""Filtered behavioural cloning: the rule note is stripped, the source is "dream"."""

from __future__ import annotations

import numpy as np
import pytest

from msr_jax.data.records import Message
from msr_jax.data.tokenize import tokenize_record
from msr_jax.dream import filter as dream_filter
from msr_jax.world import dream_domain, policy, tokenizer


@pytest.fixture
def scenarios(real_records):
  rng = np.random.default_rng(0)
  return [dream_domain.collide(real_records[i:i + 3], rng, f"s{i}", parents=(i, i + 1, i + 2))
          for i in range(6)]


def test_dream_record_strips_the_rule_note(world, tok, scenarios):
  fast = dream_domain.render_rule_note(world.r1)
  record = dream_filter.dream_record(scenarios[0], "wait because the weather is stormy",
                                     fast_store=fast, meta={"score": 1.0})
  assert record.source == "dream"
  assert all(m.role != "system" for m in record.messages)
  assert all(world.r1.text() not in m.content for m in record.messages)
  assert record.messages == scenarios[0].messages + (
      Message("assistant", "wait because the weather is stormy"),)
  assert record.meta["stripped_messages"] == 1 and record.meta["score"] == 1.0
  assert record.meta["parents"] == [0, 1, 2]
  # It trains on the answer only, through the data pipeline like any record.
  tokenized = tokenize_record(record, tokenizer.adapter(tok))
  assert tokenized.decision_turns == (1,)


def test_strip_fast_store_removes_it_anywhere_once():
  a, b, c = Message("system", "a"), Message("user", "b"), Message("system", "c")
  assert dream_filter.strip_fast_store((a, b, c, a), (a, c)) == (b, a)


def test_select_threshold_and_top_fraction():
  scores = [0.9, 0.2, 0.9, 0.6, 0.1]
  assert dream_filter.select(scores, 0.5).tolist() == [True, False, True, True, False]
  assert dream_filter.select(scores, None, 0.4).tolist() == [True, False, True, False, False]
  assert dream_filter.select(scores, 0.5, 0.2).tolist() == [True, False, False, False, False]
  with pytest.raises(ValueError, match="top_fraction"):
    dream_filter.select(scores, None, 0.0)


def test_modes(world, scenarios):
  fast = dream_domain.render_rule_note(world.r1)
  answers = ["wait because the weather is stormy", "", "x", "y", "z", "w"]
  scores = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]
  filtered = dream_filter.dream_records("filtered", scenarios, answers, scores=scores,
                                        threshold=0.5, fast_store=fast)
  assert [r.messages[-1].content for r in filtered] == [answers[0], "y"]  # Empty dropped.
  unfiltered = dream_filter.dream_records("unfiltered", scenarios, answers, fast_store=fast)
  assert len(unfiltered) == 5 and all(r.meta["mode"] == "unfiltered" for r in unfiltered)
  oracle = lambda s: policy.answer_text(policy.answer(s.situation, world.r1))
  oracles = dream_filter.dream_records("oracle", scenarios, [], oracle=oracle, fast_store=fast)
  assert [r.messages[-1].content for r in oracles] == [oracle(s) for s in scenarios]
  assert all(r.source == "dream" and r.messages[0].role == "user" for r in oracles)
  assert dream_filter.dream_records("none", scenarios, answers) == []
  with pytest.raises(ValueError, match="needs the judge"):
    dream_filter.dream_records("filtered", scenarios, answers)
  with pytest.raises(ValueError, match="unknown"):
    dream_filter.dream_records("best", scenarios, answers)
