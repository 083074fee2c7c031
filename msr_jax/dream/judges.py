"""The training-signal agent: judges that score a dreamt answer to a scenario.

Every judge has one interface, `judge(scenario, response) -> Verdict(score, reasons)` with
`score` in [0, 1] (higher is better) and `reasons` saying why, plus the batched
`judge_batch(scenarios, responses)`. Each is reported separately by the dream loop:

- a domain's own judges (`DreamDomain.judge`: Townworld's format and oracle judges are in
  `msr_jax.world.dream_judges`);
- `SelfConsistencyJudge`: exp(mean log-probability) of the answer's tokens under the
  current model with the fast store in context (the geometric-mean token probability).
- `LLMJudge` (real models): a rubric prompt to any loaded model; the score is the
  probability mass on "yes" tokens over "yes" + "no" at the answer position.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from msr_jax.data.records import Message, Record
from msr_jax.data.tokenize import TokenizerAdapter
from msr_jax.dream.collide import Scenario
from msr_jax.dream.generate import Response, prompt_tokens, with_fast_store
from msr_jax.eval.probes_score import ProbeItem
from msr_jax.eval.probes_score import score_items
from msr_jax.memory.record_json import record_text
from msr_jax.model import forward
from msr_jax.sample.prompts import pad_prompts


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


class OneByOne:
  """`judge_batch` for judges that score each answer on its own."""

  def judge_batch(self, scenarios, responses) -> list[Verdict]:
    same_length(scenarios, responses)
    return [self.judge(s, r) for s, r in zip(scenarios, responses)]


class Batched:
  """`judge` for judges whose work is batched."""

  def judge(self, scenario, response) -> Verdict:
    return self.judge_batch([scenario], [response])[0]


def same_length(scenarios, responses) -> None:
  if len(scenarios) != len(responses):
    raise ValueError(f"{len(scenarios)} scenarios but {len(responses)} responses")


class SelfConsistencyJudge(Batched):
  """exp(mean log-prob) of the answer under the model, fast store in context."""
  name = "self"

  def __init__(self, graphdef, params, adapter: TokenizerAdapter,
               fast_store: Sequence[Message], threshold: float = 0.5, pad_id: int = 0):
    self.graphdef, self.params, self.adapter = graphdef, params, adapter
    self.fast_store, self.threshold, self.pad_id = tuple(fast_store), threshold, pad_id

  def judge_batch(self, scenarios, responses) -> list[Verdict]:
    same_length(scenarios, responses)
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


class LLMJudge(Batched):
  """P(yes) / (P(yes) + P(no)) of a model after a rubric prompt (real models)."""
  name = "llm"

  def __init__(self, graphdef, params, adapter: TokenizerAdapter, yes_ids: Sequence[int],
               no_ids: Sequence[int], rubric: str = RUBRIC, batch_size: int = 8,
               pad_id: int = 0, question: str = "Is the answer correct? Reply yes or no."):
    if not yes_ids or not no_ids or set(yes_ids) & set(no_ids):
      raise ValueError(f"LLMJudge: need disjoint, non-empty yes_ids {yes_ids} and no_ids "
                       f"{no_ids}")
    self.graphdef, self.params, self.adapter = graphdef, params, adapter
    self.yes_ids, self.no_ids = list(yes_ids), list(no_ids)
    self.rubric, self.batch_size, self.pad_id = rubric, batch_size, pad_id
    self.question = question

  def prompt(self, scenario: Scenario, response: Response) -> tuple[Message, ...]:
    conversation = record_text(Record(scenario.id, scenario.messages))
    return (Message("system", self.rubric),
            Message("user", f"Conversation:\n{conversation}\n\nAnswer:\n{response.text}\n\n" +
                            self.question))

  def judge_batch(self, scenarios, responses) -> list[Verdict]:
    same_length(scenarios, responses)
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
