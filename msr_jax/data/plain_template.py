"""The testbed's template, defined on tokens rather than text.

  tokens = [bos] + concat over messages of ([role_marker] + encode(content) + [end_of_turn])

Each role marker, the end-of-turn marker and the optional bos must be single tokens of the
tokenizer's vocabulary (for example `<user>`, `<assistant>`, `<eot>`). Contents are encoded
one message at a time without special tokens, so a content's tokens never merge with a
marker and its span is known exactly, for any `tokenizers.Tokenizer` (word-level or BPE).
A decision span is the content tokens plus the end-of-turn token, which always follows.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import tokenizers

from msr_jax.data.records import ROLES, Message
from msr_jax.data.tokenize import Encoding, TokenizationError, TurnSpan

DEFAULT_ROLE_MARKERS = {"system": "<system>", "user": "<user>", "assistant": "<assistant>"}


class PlainTemplateAdapter:
  """`TokenizerAdapter` over a `tokenizers.Tokenizer` with single-token role markers."""

  def __init__(self, tokenizer: tokenizers.Tokenizer,
               role_markers: Mapping[str, str] | None = None,
               end_of_turn: str = "<eot>", bos: str | None = None):
    self.tokenizer = tokenizer
    markers = dict(DEFAULT_ROLE_MARKERS if role_markers is None else role_markers)
    missing = [r for r in ROLES if r not in markers]
    if missing:
      raise ValueError(f"role_markers: no marker for roles {missing}")
    self.role_ids = {role: self._single_id(f"role_markers[{role!r}]", text)
                     for role, text in markers.items()}
    self.end_of_turn_id = self._single_id("end_of_turn", end_of_turn)
    self.bos_id = None if bos is None else self._single_id("bos", bos)

  def _single_id(self, name: str, text: str) -> int:
    token_id = self.tokenizer.token_to_id(text)
    if token_id is None:
      raise ValueError(f"{name}: {text!r} is not a token of the tokenizer's vocabulary")
    return token_id

  def encode(self, messages: Sequence[Message], turns: Sequence[int]) -> Encoding:
    wanted = set(turns)
    ids = [] if self.bos_id is None else [self.bos_id]
    spans = []
    for i, message in enumerate(messages):
      ids.append(self.role_ids[message.role])
      start = len(ids)
      ids += self.tokenizer.encode(message.content, add_special_tokens=False).ids
      content_end = len(ids)
      ids.append(self.end_of_turn_id)
      if i in wanted:
        if content_end == start:
          raise TokenizationError(f"turn {i}: content encodes to no tokens")
        spans.append(TurnSpan(i, start, content_end, content_end + 1))
    return Encoding(np.asarray(ids, dtype=np.int32), tuple(spans))
