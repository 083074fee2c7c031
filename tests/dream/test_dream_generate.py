"""Answering scenarios with the rule note in context; the adaptive temperature."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from msr_jax.dream.generate import (AdaptiveTemperature, answer_scenarios, blend_scenarios,
                                    prompt_tokens)
from msr_jax.world import dream_domain, tokenizer


def test_temperature_moves_the_right_way():
  t = AdaptiveTemperature(initial=0.7, minimum=0.1, maximum=1.5, target_failure=0.3, gain=1)
  assert t.update(0.9) < 0.7                       # Many failures: explore less.
  low = t.temperature
  assert t.update(0.0) > low                       # Few failures: probe harder.
  assert t.update(0.3) == pytest.approx(t.temperature)
  before = t.temperature
  assert t.update(0.3) == pytest.approx(before)    # At the target: a fixed point.
  assert t.update(0.5) == pytest.approx(before * math.exp(-0.2))  # The documented rule.


def test_temperature_is_bounded_and_validated():
  t = AdaptiveTemperature(initial=1.0, minimum=0.2, maximum=1.2, gain=5.0)
  for _ in range(20):
    t.update(1.0)
  assert t.temperature == 0.2
  for _ in range(20):
    t.update(0.0)
  assert t.temperature == 1.2
  fixed = AdaptiveTemperature(initial=0.5, gain=0.0)
  assert fixed.update(1.0) == 0.5
  with pytest.raises(ValueError, match="failure_rate"):
    t.update(1.5)
  with pytest.raises(ValueError, match="minimum"):
    AdaptiveTemperature(minimum=0.0)
  with pytest.raises(ValueError, match="initial"):
    AdaptiveTemperature(initial=3.0, maximum=1.5)


def test_prompt_is_the_training_context(world, tok, real_records):
  adapter = tokenizer.adapter(tok)
  fast = dream_domain.render_rule_note(world.r1)
  record = real_records[0]
  prompt = prompt_tokens(adapter, fast + record.messages[:1])
  assert prompt[-1] == tok.token_to_id("<assistant>")
  assert prompt[1] == tok.token_to_id("<system>")
  text = tok.decode(prompt.tolist(), skip_special_tokens=True)
  assert world.r1.text() in text and record.messages[0].content in text


def test_answers_are_batched_seeded_and_decoded(world, tok, tiny_model, real_records):
  _, graphdef, params = tiny_model
  adapter = tokenizer.adapter(tok)
  rng = np.random.default_rng(0)
  scenarios = [dream_domain.collide(real_records[i:i + 3], rng, f"s{i}") for i in range(5)]
  kwargs = dict(adapter=adapter, decode=lambda ids: tok.decode(ids, skip_special_tokens=True),
                fast_store=dream_domain.render_rule_note(world.r1), eos_ids=[4], max_new_tokens=6,
                pad_id=0)
  a = answer_scenarios(graphdef, params, scenarios, temperature=0.9, key=jax.random.key(1),
                       batch_size=2, **kwargs)
  b = answer_scenarios(graphdef, params, scenarios, temperature=0.9, key=jax.random.key(1),
                       batch_size=2, **kwargs)
  assert a == b and len(a) == 5
  for r in a:
    assert r.temperature == 0.9 and len(r.raw_logprobs) == len(r.tokens) + r.finished
    assert r.text == tok.decode(list(r.tokens), skip_special_tokens=True).strip()
    assert all(lp <= 0 for lp in r.raw_logprobs)
  # Greedy answers do not depend on which scenarios share a batch (nor on padding rows);
  # the same batch size keeps this to the one compiled program.
  forward = answer_scenarios(graphdef, params, scenarios, temperature=0.0,
                             key=jax.random.key(0), batch_size=2, **kwargs)
  backward = answer_scenarios(graphdef, params, scenarios[::-1], temperature=0.0,
                              key=jax.random.key(0), batch_size=2, **kwargs)
  assert [r.tokens for r in forward] == [r.tokens for r in backward[::-1]]


def test_blend_scenarios_plumbing(tok, tiny_model, real_records):
  _, graphdef, params = tiny_model
  groups = [real_records[0:3], real_records[3:5]]
  scenarios = blend_scenarios(
      graphdef, params, groups, adapter=tokenizer.adapter(tok),
      decode=lambda ids: tok.decode(ids, skip_special_tokens=True), key=jax.random.key(0),
      eos_ids=[4], temperature=1.0, max_new_tokens=6, batch_size=2)
  assert 1 <= len(scenarios) <= 2
  for s in scenarios:
    assert s.situation is None and [m.role for m in s.messages] == ["user"]
    assert s.messages[0].content and s.parents[0] in (0, 1)
