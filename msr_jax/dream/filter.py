"""Filtered behavioural cloning: accepted dreams become training records.

A dream record is the scenario's messages followed by the answer, with the fast store
removed (context distillation: the model is trained to give, without the rule note, the
answer it gave with it), `source="dream"`, and metadata naming its scenario, parents and
judge scores. Modes (the arms of prediction P4 besides real-only):

  filtered     answers whose score is >= `threshold`, or, with `top_fraction`, the best
               `ceil(top_fraction * n)` of those (ties broken by scenario order)
  unfiltered   every answer, judged or not
  oracle       every scenario, answered by the oracle policy instead of the model
  none         no dream records (the real-only arm)
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from msr_jax.data.records import Message, Record
from msr_jax.dream.collide import Scenario

MODES = ("filtered", "unfiltered", "oracle", "none")
SOURCE = "dream"


def strip_fast_store(messages: Sequence[Message], fast_store: Sequence[Message]) -> tuple:
  """`messages` without the fast store's messages (each removed once, wherever it is)."""
  remaining = list(fast_store)
  out = []
  for message in messages:
    if message in remaining:
      remaining.remove(message)
    else:
      out.append(message)
  return tuple(out)


def dream_record(scenario: Scenario, answer: str, *, fast_store: Sequence[Message] = (),
                 meta: dict | None = None) -> Record:
  """The training record of one dream: the generation context (fast store + scenario
  messages) with every fast-store message removed, then the answer."""
  if not answer:
    raise ValueError(f"scenario {scenario.id!r}: an empty answer cannot be trained on")
  # The context the answer was generated in, then without the fast store.
  context = tuple(fast_store) + tuple(scenario.messages)
  kept = strip_fast_store(context, fast_store)
  messages = kept + (Message("assistant", answer),)
  info = {"scenario": scenario.id, "parents": list(scenario.parents),
          "stripped_messages": len(context) - len(kept)}
  info.update(meta or {})  # the caller's: judges' scores, the domain's coverage cell, ...
  return Record(id=f"dream-{scenario.id}", messages=messages, source=SOURCE, meta=info)


def select(scores: Sequence[float], threshold: float | None = None,
           top_fraction: float | None = None) -> np.ndarray:
  """Boolean mask of the accepted answers (see module doc for the rule)."""
  scores_N = np.asarray(scores, np.float64)
  keep_N = np.ones(scores_N.shape, bool) if threshold is None else scores_N >= threshold
  if top_fraction is not None:
    if not 0 < top_fraction <= 1:
      raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
    k = math.ceil(top_fraction * len(scores_N))
    order = np.argsort(-scores_N, kind="stable")  # Stable: ties go to the earlier one.
    top_N = np.zeros(scores_N.shape, bool)
    top_N[order[:k]] = True
    keep_N &= top_N
  return keep_N


def dream_records(mode: str, scenarios: Sequence[Scenario], answers: Sequence[str], *,
                  scores: Sequence[float] | None = None, threshold: float | None = None,
                  top_fraction: float | None = None,
                  oracle: Callable[[Scenario], str] | None = None,
                  fast_store: Sequence[Message] = (),
                  meta: Sequence[dict] | None = None) -> list[Record]:
  """Dream records of one cycle under `mode` (see module doc).

  `answers` are the model's answers (ignored by "oracle"); `scores` the training-signal
  judge's scores (required by "filtered"); `oracle(scenario)` the oracle's answer; `meta`
  one dict per scenario added to its record's metadata. Empty answers are never kept.
  """
  if mode not in MODES:
    raise ValueError(f"dream mode: unknown {mode!r}, expected one of {MODES}")
  if mode == "none":
    return []
  meta = list(meta) if meta is not None else [{} for _ in scenarios]
  if mode == "oracle":
    if oracle is None:
      raise ValueError("dream mode 'oracle' needs an oracle(scenario) -> answer function")
    return [dream_record(s, oracle(s), fast_store=fast_store, meta={**m, "mode": mode})
            for s, m in zip(scenarios, meta)]
  if len(answers) != len(scenarios):
    raise ValueError(f"{len(scenarios)} scenarios but {len(answers)} answers")
  if mode == "filtered":
    if scores is None:
      raise ValueError("dream mode 'filtered' needs the judge's scores")
    keep = select(scores, threshold, top_fraction)
  else:
    keep = np.ones(len(scenarios), bool)
  return [dream_record(s, a, fast_store=fast_store, meta={**m, "mode": mode})
          for s, a, m, k in zip(scenarios, answers, meta, keep) if k and a]
