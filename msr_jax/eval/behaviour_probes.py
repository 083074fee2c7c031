"""Behaviour probes for real models: held-out prompts answered greedily, judged by a check
the config names.

`behaviour_score(graphdef, params, tokenizer, prompts, judge)` renders each prompt as a user
turn with the tokenizer's chat template (and the generation prompt), generates greedily up
to `max_new_tokens`, and scores the answers with `judge(prompts, answers) -> scores in
[0, 1]`; an answer is accepted at a score >= 0.5. Judges by name (`judge_from_spec`, as
`msr eval --judge` takes them):

  regex:PATTERN     the programmatic check: 1 where `re.search(PATTERN, answer)` matches
                    (so `^` anchors the start); a bare PATTERN means the same
  llm:CHECKPOINT    an LLM judge: anything `msr_jax.load` reads (it may be another, larger
                    model than the one trained), asked whether the answer meets `rubric`;
                    its score is P(yes) / (P(yes) + P(no)) (`msr_jax.dream.judges.LLMJudge`)
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import jax
import numpy as np

from msr_jax.errors import UserError
from msr_jax.sample.generation import generate

BehaviourJudge = Callable[[Sequence[str], Sequence[str]], list]
ACCEPT = 0.5


class JudgeError(UserError, ValueError):
  """A judge that cannot be built as named (a bad regex, an LLM judge without a rubric)."""


def regex_judge(pattern: str) -> BehaviourJudge:
  """Scores 1.0 where `pattern` matches the answer (`re.search`), else 0.0."""
  try:
    compiled = re.compile(pattern)
  except re.error as e:
    raise JudgeError(f"judge regex {pattern!r}: {e}") from None
  return lambda prompts, answers: [float(compiled.search(a) is not None) for a in answers]


def llm_judge(checkpoint: str, rubric: str) -> BehaviourJudge:
  """P(yes | yes or no) of the model at `checkpoint`, asked whether an answer to a prompt
  meets `rubric` (a sentence such as "opens with 'Forecast:' and gives a forecast")."""
  from msr_jax.checkpoints import loader
  from msr_jax.data.chat_template import ChatTemplateAdapter
  from msr_jax.data.records import Message
  from msr_jax.dream.collide import Scenario
  from msr_jax.dream.generate import Response
  from msr_jax.dream.judges import LLMJudge, yes_no_ids
  from msr_jax.train.state import pure_params
  if not rubric:
    raise JudgeError(f"llm judge {checkpoint!r}: needs a rubric (what an accepted answer does)")
  loaded = loader.load(checkpoint)
  if loaded.tokenizer is None or not getattr(loaded.tokenizer, "chat_template", None):
    raise UserError(f"llm judge {checkpoint!r}: has no tokenizer with a chat template")
  yes, no = yes_no_ids(loaded.tokenizer)
  judge = LLMJudge(
      loaded.graphdef, pure_params(loaded.params), ChatTemplateAdapter(loaded.tokenizer),
      yes, no, pad_id=loaded.tokenizer.pad_token_id or 0,
      rubric=("You are grading an assistant's answer to a user. Reply with one word: yes if "
              f"the answer {rubric}, otherwise no."),
      question="Does the answer meet the rule? Reply yes or no.")

  def score(prompts, answers):
    scenarios = [Scenario(f"p{i}", (Message("user", p),)) for i, p in enumerate(prompts)]
    responses = [Response(a, (), (), True, 0.0) for a in answers]
    return [v.score for v in judge.judge_batch(scenarios, responses)]
  return score


def judge_from_spec(spec: str, rubric: str = "") -> BehaviourJudge:
  """The judge that `spec` names (see the module docstring)."""
  kind, sep, rest = spec.partition(":")
  if sep and kind == "llm":
    return llm_judge(rest, rubric)
  return regex_judge(rest if sep and kind == "regex" else spec)


def end_of_turn_ids(tokenizer) -> tuple[int, ...]:
  """A turn ends at the EOS or at any special token (the chat template's end of turn)."""
  return tuple(sorted({i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
                      | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None
                         else set())))


def behaviour_score(graphdef, params, tokenizer, prompts: Sequence[str],
                    judge: BehaviourJudge, max_new_tokens: int = 24,
                    system: str | None = None, batch_size: int = 8) -> dict:
  """{"acc", "mean_score", "n", "answers", "scores"}: the share of prompts whose greedy
  answer `judge` accepts (score >= 0.5), and the mean score."""
  rendered = []
  for prompt in prompts:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}]
    rendered.append(list(tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False)))
  eos = end_of_turn_ids(tokenizer)
  pad = tokenizer.pad_token_id or 0
  answers = []
  for start in range(0, len(rendered), batch_size):
    chunk = rendered[start:start + batch_size]
    out = generate(graphdef, params, chunk + [chunk[0]] * (batch_size - len(chunk)),
                   max_new_tokens, eos_ids=eos, pad_id=pad)
    tokens_BxN, lengths_B = jax.device_get((out.tokens_BxN, out.lengths_B))
    for row in range(len(chunk)):
      answers.append(tokenizer.decode(np.asarray(tokens_BxN[row, :lengths_B[row]]),
                                      skip_special_tokens=True).strip())
  scores = [float(x) for x in judge(list(prompts), answers)]
  if len(scores) != len(answers):
    raise ValueError(f"the judge gave {len(scores)} scores for {len(answers)} answers")
  return {"acc": float(np.mean([x >= ACCEPT for x in scores])) if scores else 0.0,
          "mean_score": float(np.mean(scores)) if scores else 0.0, "n": len(answers),
          "answers": answers, "scores": scores}
