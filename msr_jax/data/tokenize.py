"""Tokenization of a record with an exact token-level decision mask.

An adapter (`PlainTemplateAdapter` for the testbed, `ChatTemplateAdapter` for real models)
turns the messages into tokens and reports, for each decision turn, the token span to
train on: the turn's content tokens, plus the end-of-turn token when the template emits
one right after the content (so the model also learns where its turn stops).
`tokenize_record` turns those spans into `decision_mask_T`.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, Sequence

import numpy as np

from msr_jax.data.records import Message, Record
from msr_jax.data.validate import check_record_json
from msr_jax.errors import UserError


class TokenizationError(UserError, ValueError):
  """A record that cannot be tokenized with an exact mask; names the record and turn."""


@dataclasses.dataclass(frozen=True)
class TurnSpan:
  """Token span of one decision turn: `tokens[start:end]` is trained on.

  `tokens[start:content_end]` is the content; `end == content_end + 1` when the
  end-of-turn token is included, else `end == content_end`.
  """
  turn: int
  start: int
  content_end: int
  end: int


@dataclasses.dataclass(frozen=True)
class Encoding:
  tokens_T: np.ndarray  # int32
  spans: tuple[TurnSpan, ...]


class TokenizerAdapter(Protocol):
  """Renders messages as tokens and locates the requested turns' spans."""

  def encode(self, messages: Sequence[Message], turns: Sequence[int]) -> Encoding:
    """Spans are returned in the order of `turns` (sorted ascending by the caller)."""
    ...


@dataclasses.dataclass(frozen=True)
class TokenizedRecord:
  id: str
  source: str
  weight: float
  tokens: np.ndarray          # int32[T]
  decision_mask: np.ndarray   # bool[T]: True exactly on the tokens trained on
  spans: tuple[TurnSpan, ...]  # one per decision turn, ascending
  meta: dict = dataclasses.field(default_factory=dict, compare=False)

  @property
  def decision_turns(self) -> tuple[int, ...]:
    return tuple(s.turn for s in self.spans)


def tokenize_record(record: Record, adapter: TokenizerAdapter) -> TokenizedRecord:
  """Tokenizes `record` and marks the tokens of its decision turns.

  The record is validated first (the same checks as reading JSONL), because records built
  in code (Townworld, dreams) never pass through `read_records`.
  """
  problems = check_record_json(record.to_json())
  if problems:
    raise TokenizationError(f"record {record.id!r}: invalid: " + "; ".join(map(str, problems)))
  turns = tuple(sorted(record.decision_indices()))
  try:
    encoding = adapter.encode(record.messages, turns)
  except TokenizationError as e:
    raise TokenizationError(f"record {record.id!r}: {e}") from None
  tokens_T = np.asarray(encoding.tokens_T, dtype=np.int32)
  if tuple(s.turn for s in encoding.spans) != turns:
    raise TokenizationError(f"record {record.id!r}: adapter returned spans for turns "
                            f"{[s.turn for s in encoding.spans]}, asked for {list(turns)}")
  mask_T = np.zeros(tokens_T.shape, dtype=bool)
  previous_end = 0
  for span in encoding.spans:
    if not previous_end <= span.start < span.content_end <= span.end <= len(tokens_T):
      raise TokenizationError(
          f"record {record.id!r}: turn {span.turn}: bad span {span} (previous span ends at "
          f"{previous_end}, {len(tokens_T)} tokens); a decision needs >= 1 content token")
    if span.start == 0:
      # The first decision token is predicted from the token before it; there is none.
      raise TokenizationError(f"record {record.id!r}: turn {span.turn}: decision starts at "
                              "token 0, so nothing precedes it to predict it from")
    mask_T[span.start:span.end] = True
    previous_end = span.end
  return TokenizedRecord(id=record.id, source=record.source, weight=record.weight,
                         tokens=tokens_T, decision_mask=mask_T, spans=encoding.spans,
                         meta=record.meta)
