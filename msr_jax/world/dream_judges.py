"""Townworld's judges of a dreamt answer (`dream.judges.Judge`s of its dream domain).

- `FormatJudge`: the answer parses as `DECISION because EVIDENCE`, the decision is one the
  world knows, the evidence is a clause copied verbatim from the note, is about the
  requested item or the requester (not a distractor), and is consistent with the world's
  base facts (lending needs a requester who is not a stranger and an item that is not
  broken; refusing cites a broken item, a stranger or the weather; waiting cites the
  weather). It does NOT know the rule being taught: "wait because the weather is stormy"
  passes for a sunny kettle as well as for a stormy kite.
- `OracleJudge`: 1 when the answer is the policy's answer under the rule (an upper bound;
  it knows what the dreams are supposed to teach).
"""

from __future__ import annotations

import re
from typing import Sequence

from msr_jax.data.records import Record
from msr_jax.dream.collide import Scenario
from msr_jax.dream.generate import Response
from msr_jax.dream.judges import OneByOne, Verdict
from msr_jax.world import lexicon, policy, situations


def _situation(scenario: Scenario) -> policy.Situation:
  if scenario.situation is not None:
    return scenario.situation
  return situations.parse_situation(Record(scenario.id, scenario.messages))


_ANSWER = re.compile(r"^(\S+) because (.+)$")
_WEATHER, _CONDITION, _RELATION = (policy.WEATHER_PATTERN, policy.CONDITION_PATTERN,
                                   policy.RELATION_PATTERN)


def format_problems(situation: policy.Situation, clauses: Sequence[str],
                    answer: str) -> list[str]:
  """Why `answer` is malformed or inconsistent with the note (empty: it is fine)."""
  match = _ANSWER.match(answer)
  if match is None:
    return [f"format: {answer!r} is not 'DECISION because EVIDENCE'"]
  decision, evidence = match[1], match[2]
  problems = []
  if decision not in lexicon.DECISIONS:
    problems.append(f"decision: {decision!r} is not one of {lexicon.DECISIONS}")
  if evidence not in clauses:
    return problems + [f"evidence: {evidence!r} is not a clause of the note"]
  s = situation
  weather = _WEATHER.match(evidence)
  # "the weather is W" has the shape of a condition clause too; it is only the weather.
  condition = None if weather else _CONDITION.match(evidence)
  relation = _RELATION.match(evidence)
  if condition and condition[1] != s.item:
    return problems + [f"evidence: about the {condition[1]}, not the requested {s.item}"]
  if relation and relation[1] != s.requester:
    return problems + [f"evidence: about {relation[1]}, not the requester {s.requester}"]
  if decision == "lend":
    if not relation or relation[2] == "stranger":
      problems.append("consistency: lending needs the requester's relation as evidence, "
                      "and not a stranger")
    if s.condition == "broken":
      problems.append(f"consistency: the note says the {s.item} is broken, yet it is lent")
  elif decision == "refuse":
    if (condition and condition[2] != "broken") or (relation and relation[2] != "stranger"):
      problems.append(f"consistency: {evidence!r} is no reason to refuse")
  elif decision == "wait" and not weather:
    problems.append(f"consistency: waiting cites the weather, not {evidence!r}")
  return problems


class FormatJudge(OneByOne):
  """Consistency-and-format judge for Townworld (see module doc); rule-agnostic."""
  name = "format"

  def judge(self, scenario: Scenario, response: Response) -> Verdict:
    situation = _situation(scenario)
    split = situations.split_note(situations.user_message(Record(scenario.id,
                                                                scenario.messages)))
    problems = format_problems(situation, split[0], response.text)
    return Verdict(0.0 if problems else 1.0, tuple(problems) or ("ok",))


class OracleJudge(OneByOne):
  """1 when the answer is `policy.answer(situation, rule)` (knows the target rule)."""
  name = "oracle"

  def __init__(self, rule: policy.Rule):
    self.rule = rule

  def expected(self, scenario: Scenario) -> str:
    return policy.answer_text(policy.answer(_situation(scenario), self.rule))

  def judge(self, scenario: Scenario, response: Response) -> Verdict:
    expected = self.expected(scenario)
    if response.text == expected:
      return Verdict(1.0, ("ok",))
    return Verdict(0.0, (f"oracle: expected {expected!r}",))
