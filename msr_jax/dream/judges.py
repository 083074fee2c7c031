"""The training-signal agent: judges that score a dreamt answer to a scenario.

Every judge has one interface, `judge(scenario, response) -> Verdict(score, reasons)` with
`score` in [0, 1] (higher is better) and `reasons` saying why, plus the batched
`judge_batch(scenarios, responses)`. Each is reported separately by the dream loop:

- `FormatJudge` (Townworld): the answer parses as `DECISION because EVIDENCE`, the
  decision is one the world knows, the evidence is a clause copied verbatim from the note,
  is about the requested item or the requester (not a distractor), and is consistent with
  the world's base facts (lending needs a requester who is not a stranger and an item that
  is not broken; refusing cites a broken item, a stranger or the weather; waiting cites the
  weather). It does NOT know the rule being taught: "wait because the weather is stormy"
  passes for a sunny kettle as well as for a stormy kite.
- `SelfConsistencyJudge`: exp(mean log-probability) of the answer's tokens under the
  current model with the fast store in context (the geometric-mean token probability).
- `OracleJudge`: 1 when the answer is the policy's answer under the rule (an upper bound;
  it knows what the dreams are supposed to teach).
- `LLMJudge` (real models): a rubric prompt to any loaded model; the score is the
  probability mass on "yes" tokens over "yes" + "no" at the answer position.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from msr_jax.data.records import Message, Record
from msr_jax.data.tokenize import TokenizerAdapter
from msr_jax.dream import townworld
from msr_jax.dream.collide import Scenario
from msr_jax.dream.generate import Response, prompt_tokens, with_fast_store
from msr_jax.eval.probes import ProbeItem
from msr_jax.eval.probes_score import score_items
from msr_jax.memory.record_json import record_text
from msr_jax.model import forward
from msr_jax.sample.prompts import pad_prompts
from msr_jax.world import lexicon, policy


class Verdict(NamedTuple):
  score: float
  reasons: tuple[str, ...]


class Judge(Protocol):
  name: str

  def judge(self, scenario: Scenario, response: Response) -> Verdict:
    ...

  def judge_batch(self, scenarios: Sequence[Scenario],
                  responses: Sequence[Response]) -> list[Verdict]:
    ...


class _OneByOne:
  """`judge_batch` for judges that score each answer on its own."""

  def judge_batch(self, scenarios, responses) -> list[Verdict]:
    _same_length(scenarios, responses)
    return [self.judge(s, r) for s, r in zip(scenarios, responses)]


class _Batched:
  """`judge` for judges whose work is batched."""

  def judge(self, scenario, response) -> Verdict:
    return self.judge_batch([scenario], [response])[0]


def _same_length(scenarios, responses) -> None:
  if len(scenarios) != len(responses):
    raise ValueError(f"{len(scenarios)} scenarios but {len(responses)} responses")


def _situation(scenario: Scenario) -> policy.Situation:
  if scenario.situation is not None:
    return scenario.situation
  return townworld.parse_situation(Record(scenario.id, scenario.messages))


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


class FormatJudge(_OneByOne):
  """Consistency-and-format judge for Townworld (see module doc); rule-agnostic."""
  name = "format"

  def judge(self, scenario: Scenario, response: Response) -> Verdict:
    situation = _situation(scenario)
    split = townworld.split_note(townworld.user_message(Record(scenario.id,
                                                                scenario.messages)))
    problems = format_problems(situation, split[0], response.text)
    return Verdict(0.0 if problems else 1.0, tuple(problems) or ("ok",))


class OracleJudge(_OneByOne):
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


class SelfConsistencyJudge(_Batched):
  """exp(mean log-prob) of the answer under the model, fast store in context."""
  name = "self"

  def __init__(self, graphdef, params, adapter: TokenizerAdapter,
               fast_store: Sequence[Message], threshold: float = 0.5, pad_id: int = 0):
    self.graphdef, self.params, self.adapter = graphdef, params, adapter
    self.fast_store, self.threshold, self.pad_id = tuple(fast_store), threshold, pad_id

  def judge_batch(self, scenarios, responses) -> list[Verdict]:
    _same_length(scenarios, responses)
    items, where = [], []
    for i, (scenario, response) in enumerate(zip(scenarios, responses)):
      if not response.text:
        continue
      messages = with_fast_store(scenario, self.fast_store) + (
          Message("assistant", response.text),)
      encoding = self.adapter.encode(messages, [len(messages) - 1])
      span = encoding.spans[0]
      items.append(ProbeItem("self", np.asarray(encoding.tokens_T, np.int32), span.start,
                             span.content_end))
      where.append(i)
    verdicts = [Verdict(0.0, ("self: empty answer",))] * len(scenarios)
    if items:
      logprob, _ = score_items(self.graphdef, self.params, items, pad_id=self.pad_id)
      for i, item, lp in zip(where, items, logprob):
        p = float(np.exp(lp / (item.end - item.start)))
        ok = p >= self.threshold
        verdicts[i] = Verdict(p, ("ok",) if ok else
                              (f"self: token probability {p:.3f} < {self.threshold}",))
    return verdicts


RUBRIC = (
    "You are grading an assistant's answer. Read the conversation and the answer, then "
    "reply with one word: yes if the answer follows from the conversation, is consistent "
    "with every fact stated in it and is well formed, otherwise no.")


@functools.partial(jax.jit, static_argnums=0)
def _last_logits(graphdef, params, tokens_BxP, lengths_B):
  logits_BxPxV, _ = forward(graphdef, params, tokens_BxP)
  return jnp.take_along_axis(logits_BxPxV, (lengths_B - 1)[:, None, None], axis=1)[:, 0]


class LLMJudge(_Batched):
  """P(yes) / (P(yes) + P(no)) of a model after a rubric prompt (real models)."""
  name = "llm"

  def __init__(self, graphdef, params, adapter: TokenizerAdapter, yes_ids: Sequence[int],
               no_ids: Sequence[int], rubric: str = RUBRIC, batch_size: int = 8,
               pad_id: int = 0):
    if not yes_ids or not no_ids or set(yes_ids) & set(no_ids):
      raise ValueError(f"LLMJudge: need disjoint, non-empty yes_ids {yes_ids} and no_ids "
                       f"{no_ids}")
    self.graphdef, self.params, self.adapter = graphdef, params, adapter
    self.yes_ids, self.no_ids = list(yes_ids), list(no_ids)
    self.rubric, self.batch_size, self.pad_id = rubric, batch_size, pad_id

  def prompt(self, scenario: Scenario, response: Response) -> tuple[Message, ...]:
    conversation = record_text(Record(scenario.id, scenario.messages))
    return (Message("system", self.rubric),
            Message("user", f"Conversation:\n{conversation}\n\nAnswer:\n{response.text}\n\n"
                            "Is the answer correct? Reply yes or no."))

  def judge_batch(self, scenarios, responses) -> list[Verdict]:
    _same_length(scenarios, responses)
    prompts = [prompt_tokens(self.adapter, self.prompt(s, r))
               for s, r in zip(scenarios, responses)]
    vocab = int(self.params["embed"]["embedding"].shape[0])
    scores = []
    for start in range(0, len(prompts), self.batch_size):
      chunk = prompts[start:start + self.batch_size]
      chunk = chunk + [chunk[0]] * (self.batch_size - len(chunk))
      padded = pad_prompts(chunk, vocab, pad_id=self.pad_id)
      logits_BxV = np.asarray(jax.device_get(_last_logits(
          self.graphdef, self.params, padded.tokens_BxP, padded.lengths_B)), np.float64)
      logp_BxV = logits_BxV - np.logaddexp.reduce(logits_BxV, axis=-1, keepdims=True)
      yes_B = np.logaddexp.reduce(logp_BxV[:, self.yes_ids], axis=-1)
      no_B = np.logaddexp.reduce(logp_BxV[:, self.no_ids], axis=-1)
      scores += list(1.0 / (1.0 + np.exp(no_B - yes_B)))
    return [Verdict(float(p), (f"llm: P(yes | yes or no) = {p:.3f}",))
            for p in scores[:len(prompts)]]


def yes_no_ids(tokenizer) -> tuple[list[int], list[int]]:
  """Single-token spellings of yes / no in a Hugging Face tokenizer's vocabulary."""
  def ids(words):
    out = []
    for word in words:
      encoded = tokenizer.encode(word, add_special_tokens=False)
      if len(encoded) == 1 and encoded[0] not in out:
        out.append(int(encoded[0]))
    return out
  yes, no = ids(["yes", " yes", "Yes", " Yes"]), ids(["no", " no", "No", " No"])
  if not yes or not no:
    raise ValueError("the tokenizer has no single-token 'yes' / 'no'; pass yes_ids/no_ids")
  return yes, no
