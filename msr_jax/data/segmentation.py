"""Segmentation of a tokenized record into one (context, decision) example per decision.

For decision turn k with token span [start, end):
  context_tokens  = tokens[:start]   (everything before the decision: the template's
                                      header for the turn, earlier turns, earlier decisions)
  decision_tokens = tokens[start:end] (content, plus end-of-turn when the template has it)
  loss_mask       = decision_mask[start:end] as float (all ones for the adapters here)
A context longer than `max_context_tokens` is cut from the left (optionally keeping its
first `keep_first` tokens, for example a BOS that the model relies on); every cut is
counted in `SegmentStats` and logged, never silent.

A decision longer than the largest decision bucket cannot be batched. `limit_decisions`
finds such decisions when the data is loaded, never at the step that draws them, and does
what `data.long_decisions` says: "raise" (an error naming the record), "skip" (leave the
example out, counted and listed) or "cut" (keep its first tokens, counted).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Iterable

import numpy as np

from msr_jax.data.tokenize import TokenizedRecord
from msr_jax.errors import UserError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Example:
  record_id: str
  source: str
  turn: int                    # index of the decision message in the record
  weight: float                # the record's weight; multiplies the loss mask in batches
  context_tokens: np.ndarray   # int32[C], C >= 1
  decision_tokens: np.ndarray  # int32[D], D >= 1
  loss_mask: np.ndarray        # float32[D]
  context_tokens_dropped: int = 0  # how many tokens the left cut removed


@dataclasses.dataclass
class SegmentStats:
  records: int = 0
  examples: int = 0
  examples_cut: int = 0
  tokens_dropped: int = 0
  decisions_cut: int = 0           # long decisions cut to the largest bucket
  decision_tokens_dropped: int = 0
  decisions_skipped: int = 0       # long decisions left out

  def merge(self, other: SegmentStats) -> SegmentStats:
    for field in dataclasses.fields(self):
      setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
    return self


def segment(tokenized: TokenizedRecord, max_context_tokens: int,
            stats: SegmentStats | None = None, keep_first: int = 0) -> list[Example]:
  """One example per decision turn of `tokenized`; accumulates cuts into `stats`."""
  if max_context_tokens < 1:
    raise ValueError(f"max_context_tokens must be >= 1 (the first decision token is "
                     f"predicted from the last context token), got {max_context_tokens}")
  if not 0 <= keep_first < max_context_tokens:
    raise ValueError(f"keep_first must be in [0, max_context_tokens), got {keep_first}")
  stats = SegmentStats() if stats is None else stats
  stats.records += 1
  examples = []
  for span in tokenized.spans:
    context = tokenized.tokens[:span.start]
    dropped = max(0, len(context) - max_context_tokens)
    if dropped:
      context = np.concatenate([context[:keep_first], context[keep_first + dropped:]])
      stats.examples_cut += 1
      stats.tokens_dropped += dropped
      log.debug("record %r turn %d: context cut from %d to %d tokens", tokenized.id,
                span.turn, span.start, len(context))
    examples.append(Example(
        record_id=tokenized.id, source=tokenized.source, turn=span.turn,
        weight=tokenized.weight, context_tokens=np.asarray(context, dtype=np.int32),
        decision_tokens=tokenized.tokens[span.start:span.end].astype(np.int32),
        loss_mask=tokenized.decision_mask[span.start:span.end].astype(np.float32),
        context_tokens_dropped=dropped))
  stats.examples += len(examples)
  return examples


def segment_all(tokenized: Iterable[TokenizedRecord], max_context_tokens: int,
                keep_first: int = 0) -> tuple[list[Example], SegmentStats]:
  """Segments many records; logs one summary line when any context was cut."""
  stats, examples = SegmentStats(), []
  for record in tokenized:
    examples += segment(record, max_context_tokens, stats, keep_first)
  if stats.examples_cut:
    log.info("cut %d of %d contexts to %d tokens, dropping %d tokens", stats.examples_cut,
             stats.examples, max_context_tokens, stats.tokens_dropped)
  return examples, stats


LONG_DECISIONS = ("raise", "skip", "cut")


class DecisionTooLongError(UserError, ValueError):
  """A decision longer than the largest decision bucket, with "raise" as the policy."""


def limit_decisions(examples: list[Example], max_tokens: int, policy: str,
                    stats: SegmentStats, where: str) -> tuple[list[Example], list[str]]:
  """Applies the long-decision policy to one record's examples.

  Returns the examples kept and, for "skip", one reason per example left out. `where`
  (for example "data.jsonl:12") starts the error message and the reasons.
  """
  if policy not in LONG_DECISIONS:
    raise ValueError(f"data.long_decisions: unknown {policy!r}, expected one of "
                     f"{LONG_DECISIONS}")
  kept, reasons = [], []
  for example in examples:
    n = len(example.decision_tokens)
    if n <= max_tokens:
      kept.append(example)
      continue
    what = (f"{where}: record {example.record_id!r}, messages[{example.turn}]: a decision of "
            f"{n} tokens is longer than the largest decision bucket ({max_tokens})")
    if policy == "raise":
      raise DecisionTooLongError(f"{what}; add a larger bucket to data.decision_buckets, or "
                                 "set data.long_decisions to 'cut' or 'skip'")
    if policy == "skip":
      stats.decisions_skipped += 1
      reasons.append(f"{what} (skipped)")
      continue
    stats.decisions_cut += 1
    stats.decision_tokens_dropped += n - max_tokens
    kept.append(dataclasses.replace(example, decision_tokens=example.decision_tokens[:max_tokens],
                                    loss_mask=example.loss_mask[:max_tokens]))
  return kept, reasons
