"""Answering scenarios with the fast store in context, and the adaptive temperature.

Each scenario is answered by the model with the fast store's messages (in Townworld, the
rule note of the behaviour being consolidated, as a system message) placed before it. The
prompt is exactly the context a training example of that conversation would have: the
messages plus a placeholder assistant turn are tokenized by the data adapter and cut at
the start of the assistant's content (`data.segmentation`'s definition of a context), so
dreams are generated in the same format they are later trained in. Scenarios go through
`msr_jax.sample.generate` in fixed-size batches (the last one padded with repeats), so
one run compiles one decode program per prompt bucket.

`AdaptiveTemperature` (update rule, with f the judge's failure rate of the last batch):

    T <- clip(T * exp(gain * (target_failure - f)), minimum, maximum)

Many failures (f > target) lower the temperature: the model explores less and answers
what it is sure of. Few failures raise it: the dreams probe harder, less likely answers.
The update is multiplicative, so it acts alike at T = 0.1 and T = 1, and a fixed point is
f = target_failure (or a bound).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import jax
import numpy as np

from msr_jax.data.records import Message
from msr_jax.data.tokenize import TokenizerAdapter
from msr_jax.dream.collide import Scenario, blend_prompt, free_text_scenario
from msr_jax import sample

PLACEHOLDER = "lend"  # Any text of >= 1 token; only the tokens before it are kept.


class AdaptiveTemperature:
  """A bounded multiplicative controller of the sampling temperature (see module doc)."""

  def __init__(self, initial: float = 0.7, minimum: float = 0.1, maximum: float = 1.5,
               target_failure: float = 0.3, gain: float = 1.0):
    if not 0 < minimum <= maximum:
      raise ValueError(f"AdaptiveTemperature: need 0 < minimum <= maximum, got "
                       f"{minimum}, {maximum}")
    if not minimum <= initial <= maximum:
      raise ValueError(f"AdaptiveTemperature: initial {initial} outside [{minimum}, "
                       f"{maximum}]")
    if not 0 <= target_failure <= 1:
      raise ValueError(f"AdaptiveTemperature: target_failure must be in [0, 1], got "
                       f"{target_failure}")
    if gain < 0:
      raise ValueError(f"AdaptiveTemperature: gain must be >= 0, got {gain}")
    self.temperature = float(initial)
    self.minimum, self.maximum = float(minimum), float(maximum)
    self.target_failure, self.gain = float(target_failure), float(gain)

  def update(self, failure_rate: float) -> float:
    """Applies the rule for one observed failure rate in [0, 1]; returns the new T."""
    if not 0 <= failure_rate <= 1:
      raise ValueError(f"failure_rate must be in [0, 1], got {failure_rate}")
    t = self.temperature * math.exp(self.gain * (self.target_failure - failure_rate))
    self.temperature = min(self.maximum, max(self.minimum, t))
    return self.temperature


@dataclasses.dataclass(frozen=True)
class Response:
  """The model's answer to one scenario.

  Attributes:
    text: the decoded answer, end-of-turn removed.
    tokens: the generated ids without the end-of-turn token.
    raw_logprobs: log-probabilities under the model's own softmax of every generated
      token (the end-of-turn included), whatever temperature sampled them.
    finished: whether the answer ended with an end-of-turn id within the budget.
    temperature: the sampling temperature used.
  """
  text: str
  tokens: tuple[int, ...]
  raw_logprobs: tuple[float, ...]
  finished: bool
  temperature: float

  @property
  def mean_logprob(self) -> float:
    return float(np.mean(self.raw_logprobs)) if self.raw_logprobs else -math.inf


def prompt_tokens(adapter: TokenizerAdapter, messages: Sequence[Message]) -> np.ndarray:
  """Tokens that precede an assistant answer to `messages` (ending with its role header)."""
  full = tuple(messages) + (Message("assistant", PLACEHOLDER),)
  encoding = adapter.encode(full, [len(full) - 1])
  return np.asarray(encoding.tokens_T[:encoding.spans[0].start], np.int32)


def with_fast_store(scenario: Scenario, fast_store: Sequence[Message]) -> tuple:
  return tuple(fast_store) + tuple(scenario.messages)


def answer_scenarios(graphdef, params, scenarios: Sequence[Scenario], *,
                     adapter: TokenizerAdapter, decode: Callable[[list[int]], str],
                     fast_store: Sequence[Message], temperature: float, key: jax.Array,
                     eos_ids: Sequence[int], max_new_tokens: int = 16, batch_size: int = 32,
                     pad_id: int = 0, top_k: int = 0, top_p: float = 1.0) -> list[Response]:
  """Samples one answer per scenario with `fast_store` in context (see module doc)."""
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  prompts = [prompt_tokens(adapter, with_fast_store(s, fast_store)) for s in scenarios]
  eos = set(int(i) for i in eos_ids)
  out: list[Response] = []
  for start in range(0, len(prompts), batch_size):
    chunk = prompts[start:start + batch_size]
    padded = chunk + [chunk[0]] * (batch_size - len(chunk))  # One shape for every batch.
    result = sample.generate(
        graphdef, params, padded, max_new_tokens, temperature=temperature, top_k=top_k,
        top_p=top_p, eos_ids=tuple(eos), key=jax.random.fold_in(key, start), pad_id=pad_id)
    tokens_BxN, raw_BxN, lengths_B = jax.device_get(
        (result.tokens_BxN, result.raw_logprobs_BxN, result.lengths_B))
    for b in range(len(chunk)):
      n = int(lengths_B[b])
      ids = [int(t) for t in tokens_BxN[b, :n]]
      finished = bool(ids) and ids[-1] in eos
      content = ids[:-1] if finished else ids
      out.append(Response(text=decode(content).strip(), tokens=tuple(content),
                          raw_logprobs=tuple(float(x) for x in raw_BxN[b, :n]),
                          finished=finished, temperature=float(temperature)))
  return out


def blend_scenarios(graphdef, params, memory_groups: Sequence[Sequence], *,
                    adapter: TokenizerAdapter, decode: Callable[[list[int]], str],
                    key: jax.Array, eos_ids: Sequence[int], temperature: float = 0.7,
                    max_new_tokens: int = 128, batch_size: int = 8, pad_id: int = 0,
                    prefix: str = "blend") -> list[Scenario]:
  """For real models: the model writes one scenario per group of memories from
  `collide.blend_prompt`; empty replies give no scenario. Parents are the groups' indices
  into `memory_groups` (callers map them to graph node ids)."""
  prompts = [Scenario(f"{prefix}-prompt-{i}", blend_prompt(group))
             for i, group in enumerate(memory_groups)]
  replies = answer_scenarios(graphdef, params, prompts, adapter=adapter, decode=decode,
                             fast_store=(), temperature=temperature, key=key,
                             eos_ids=eos_ids, max_new_tokens=max_new_tokens,
                             batch_size=batch_size, pad_id=pad_id)
  return [free_text_scenario(r.text, f"{prefix}-{i}", parents=(i,))
          for i, r in enumerate(replies) if r.text.strip()]
