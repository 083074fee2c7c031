"""Judges: format/consistency (rule-agnostic), oracle, self-consistency, LLM-as-judge."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from msr_jax.dream import collide, judges
from msr_jax.world import dream_domain, dream_judges, situations
from msr_jax.dream.generate import Response, prompt_tokens
from msr_jax.model import forward
from msr_jax.world import policy, tokenizer


def _response(text: str) -> Response:
  return Response(text=text, tokens=(), raw_logprobs=(), finished=True, temperature=0.0)


def _scenario(weather="sunny", item="kite", condition="fine", relation="friend",
              distractors=("the lamp is broken", "Zuzi is a stranger")) -> collide.Scenario:
  s = policy.Situation(weather, item, condition, "Bobo", relation, 0, tuple(distractors))
  return collide.Scenario("s", dream_domain.scenario_messages(s, np.random.default_rng(0)), s)


@pytest.mark.parametrize("kwargs, answer", [
    ({}, "lend because Bobo is a friend"),
    ({"condition": "broken"}, "refuse because the kite is broken"),
    ({"relation": "stranger"}, "refuse because Bobo is a stranger"),
    # Not checked against R1: waiting on a sunny kettle passes format and evidence.
    ({"item": "kettle"}, "wait because the weather is sunny"),
    ({"weather": "stormy"}, "wait because the weather is stormy"),
    ({"weather": "stormy"}, "refuse because the weather is stormy"),
])
def test_format_judge_accepts_valid_answers(kwargs, answer):
  verdict = dream_judges.FormatJudge().judge(_scenario(**kwargs), _response(answer))
  assert verdict == judges.Verdict(1.0, ("ok",))


@pytest.mark.parametrize("kwargs, answer, why", [
    ({}, "lend Bobo is a friend", "format"),
    ({}, "", "format"),
    ({}, "borrow because Bobo is a friend", "decision"),
    ({}, "lend because Bobo is a good friend", "not a clause of the note"),
    ({}, "lend because bobo is a friend", "not a clause of the note"),
    ({}, "refuse because the weather is stormy", "not a clause of the note"),
    ({}, "refuse because the lamp is broken", "not the requested kite"),
    ({}, "refuse because Zuzi is a stranger", "not the requester"),
    ({"condition": "broken"}, "lend because Bobo is a friend", "is broken, yet it is lent"),
    ({}, "lend because the weather is sunny", "lending needs"),
    ({}, "refuse because Bobo is a friend", "no reason to refuse"),
    ({}, "wait because Bobo is a friend", "waiting cites the weather"),
])
def test_format_judge_rejects_malformed_and_inconsistent(kwargs, answer, why):
  verdict = dream_judges.FormatJudge().judge(_scenario(**kwargs), _response(answer))
  assert verdict.score == 0.0
  assert any(why in r for r in verdict.reasons), verdict.reasons


def test_format_judge_reads_free_text_townworld_scenarios():
  sc = _scenario()
  bare = collide.Scenario("b", sc.messages)  # No situation attached: parsed from the note.
  assert dream_judges.FormatJudge().judge(bare, _response("lend because Bobo is a friend")).score == 1


def test_oracle_judge_agrees_with_the_policy(world, real_records):
  judge = dream_judges.OracleJudge(world.r1)
  rng = np.random.default_rng(0)
  scenarios = [dream_domain.collide(real_records[i:i + 3], rng, f"s{i}") for i in range(30)]
  expected = [policy.answer_text(policy.answer(s.situation, world.r1)) for s in scenarios]
  r0 = [policy.answer_text(policy.r0_answer(s.situation)) for s in scenarios]
  good = judge.judge_batch(scenarios, [_response(e) for e in expected])
  assert all(v.score == 1.0 for v in good)
  bad = judge.judge_batch(scenarios, [_response(a) for a in r0])
  for v, e, a in zip(bad, expected, r0):
    assert v.score == float(e == a)
  for record in real_records:  # The training data's own answers are the oracle's.
    sc = collide.Scenario(record.id, record.messages[:1], situations.parse_situation(record))
    assert judge.judge(sc, _response(record.messages[-1].content)).score == 1.0


def test_self_consistency_matches_teacher_forced_logprob(tok, tiny_model, world):
  _, graphdef, params = tiny_model
  adapter = tokenizer.adapter(tok)
  fast = dream_domain.render_rule_note(world.r1)
  judge = judges.SelfConsistencyJudge(graphdef, params, adapter, fast, threshold=0.0)
  sc = _scenario()
  answer = "lend because Bobo is a friend"
  (verdict,) = judge.judge_batch([sc], [_response(answer)])
  context = prompt_tokens(adapter, fast + sc.messages)
  ids = tok.encode(answer, add_special_tokens=False).ids
  tokens = np.concatenate([context, ids]).astype(np.int32)[None]
  logits, _ = forward(graphdef, params, tokens)
  logp = jax.nn.log_softmax(np.asarray(logits[0], np.float64), axis=-1)
  expected = np.mean([logp[len(context) - 1 + j, t] for j, t in enumerate(ids)])
  np.testing.assert_allclose(np.log(verdict.score), expected, rtol=1e-4)
  assert 0 < verdict.score < 1
  strict = judges.SelfConsistencyJudge(graphdef, params, adapter, fast, threshold=0.99)
  assert strict.judge(sc, _response(answer)).reasons[0].startswith("self: token prob")
  assert strict.judge(sc, _response("")).score == 0.0


def test_llm_judge_plumbing_on_a_tiny_random_model(tok, tiny_model):
  _, graphdef, params = tiny_model
  adapter = tokenizer.adapter(tok)
  yes, no = [tok.token_to_id("lend")], [tok.token_to_id("refuse"), tok.token_to_id("wait")]
  judge = judges.LLMJudge(graphdef, params, adapter, yes, no, batch_size=4)
  scenarios = [_scenario(), _scenario(condition="broken")] * 3
  answers = [_response("lend because Bobo is a friend")] * 6
  verdicts = judge.judge_batch(scenarios, answers)
  assert len(verdicts) == 6 and all(0 < v.score < 1 for v in verdicts)
  assert verdicts[0].score == pytest.approx(verdicts[2].score, rel=1e-5)
  prompt = prompt_tokens(adapter, judge.prompt(scenarios[0], answers[0]))
  logits, _ = forward(graphdef, params, prompt[None])
  p = np.exp(jax.nn.log_softmax(np.asarray(logits[0, -1], np.float64)))
  expected = p[yes].sum() / (p[yes].sum() + p[no].sum())
  assert verdicts[0].score == pytest.approx(expected, rel=1e-4)
  with pytest.raises(ValueError, match="disjoint"):
    judges.LLMJudge(graphdef, params, adapter, yes, yes)
