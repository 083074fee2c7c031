"""Real models' chat templates (transformers' `apply_chat_template`), with exact masks.

How a decision turn's span is found:
1. Render the conversation `F` as the model sees it (`add_generation_prompt=False`).
2. Render it again with every decision turn's content replaced by a unique sentinel. This
   splits the text into the template's own pieces: `P0 S0 P1 S1 ... Pn`.
3. `F` must read `P0 X0 P1 X1 ... Pn`, where each `Xk` is the content of decision turn k
   as the template printed it: verbatim, or with its surrounding whitespace or newlines
   stripped (Llama 3 trims, Qwen3 strips leading newlines). This pins each content's
   character span in `F` exactly; a template that rewrites content any other way (for
   example Qwen3 moving `<think>...</think>` out of the content) is an error, not a guess.
4. Tokenize `F` (no extra special tokens: templates print their own) with offsets. The
   content tokens are the tokens whose character range overlaps the content's span; a
   token that straddles the boundary with the template's text is included (it cannot be
   split, and it carries content).
5. The end-of-turn token is included when the token right after the content starts
   exactly where the content ends and is an end-of-turn token: by default
   (`end_of_turn="auto"`) any special added token (`<|im_end|>`, `<|eot_id|>`,
   `<end_of_turn>`, `</s>`); a string names the one token that counts; None never adds it.
   Newlines the template prints after that token are not trained on.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from msr_jax.data.records import Message
from msr_jax.data.tokenize import Encoding, TokenizationError, TurnSpan


def _candidates(content: str) -> list[str]:
  """Renderings of `content` a template may print, most faithful first."""
  out = []
  for text in (content, content.strip(), content.lstrip("\n"), content.rstrip("\n"),
               content.strip("\n"), content.lstrip(), content.rstrip()):
    if text not in out:
      out.append(text)
  return out


def _sentinel(k: int, nonce: int) -> str:
  # Private-use code points and digits: no template trims, escapes or re-cases them.
  return f"\ue000{nonce}.{k}\ue001"


class ChatTemplateAdapter:
  """`TokenizerAdapter` over a transformers tokenizer that has a `chat_template`."""

  def __init__(self, tokenizer, end_of_turn: str | None = "auto", chat_template: str | None = None):
    self.tokenizer = tokenizer
    self.chat_template = chat_template
    if chat_template is None and not getattr(tokenizer, "chat_template", None):
      raise ValueError("the tokenizer has no chat_template; pass chat_template=...")
    if end_of_turn == "auto":
      self.end_of_turn_ids = frozenset(
          i for i, t in tokenizer.added_tokens_decoder.items() if t.special)
    elif end_of_turn is None:
      self.end_of_turn_ids = frozenset()
    else:
      token_id = tokenizer.convert_tokens_to_ids(end_of_turn)
      if token_id is None or token_id == tokenizer.unk_token_id:
        raise ValueError(f"end_of_turn: {end_of_turn!r} is not a token of the tokenizer")
      self.end_of_turn_ids = frozenset([token_id])

  def render(self, messages: Sequence[Message]) -> str:
    try:
      return self.tokenizer.apply_chat_template(
          [{"role": m.role, "content": m.content} for m in messages],
          chat_template=self.chat_template, tokenize=False, add_generation_prompt=False)
    except Exception as e:  # Jinja raise_exception() and template bugs; keep the cause.
      raise TokenizationError(f"chat template failed: {e}") from e

  def _char_spans(self, messages: Sequence[Message], turns: Sequence[int],
                  full: str) -> list[tuple[int, int]]:
    nonce = 0
    while any(f"\ue000{nonce}." in m.content for m in messages):
      nonce += 1
    marked = list(messages)
    for k, turn in enumerate(turns):
      marked[turn] = Message(messages[turn].role, _sentinel(k, nonce))
    text = self.render(marked)
    pieces = [text]
    for k in range(len(turns)):
      head, found, tail = pieces[-1].partition(_sentinel(k, nonce))
      if not found:
        raise TokenizationError(f"turn {turns[k]}: the chat template does not print the content")
      pieces[-1:] = [head, tail]
    if not full.startswith(pieces[0]):
      raise TokenizationError("the chat template renders differently when a content changes")
    spans, pos = [], len(pieces[0])
    for k, turn in enumerate(turns):
      after = pieces[k + 1]
      last = k == len(turns) - 1
      for cand in _candidates(messages[turn].content):
        end = pos + len(cand)
        rest_matches = full[end:] == after if last else full.startswith(after, end)
        if full.startswith(cand, pos) and rest_matches:
          break
      else:
        raise TokenizationError(
            f"turn {turn}: the chat template rewrites this content (beyond stripping "
            "whitespace), so its tokens cannot be located exactly")
      spans.append((pos, end))
      pos = end + len(after)
    return spans

  def encode(self, messages: Sequence[Message], turns: Sequence[int]) -> Encoding:
    full = self.render(messages)
    char_spans = self._char_spans(messages, turns, full)
    enc = self.tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
    starts_N = np.asarray([o[0] for o in offsets], dtype=np.int64)
    ends_N = np.asarray([o[1] for o in offsets], dtype=np.int64)
    spans = []
    for turn, (lo, hi) in zip(turns, char_spans):
      overlapping = np.flatnonzero((starts_N < hi) & (ends_N > lo))
      if len(overlapping) == 0:
        raise TokenizationError(f"turn {turn}: the content maps to no tokens")
      start, content_end = int(overlapping[0]), int(overlapping[-1]) + 1
      end = content_end
      if (content_end < len(ids) and ids[content_end] in self.end_of_turn_ids
          and starts_N[content_end] == hi):
        end += 1
      spans.append(TurnSpan(turn, start, content_end, end))
    return Encoding(np.asarray(ids, dtype=np.int32), tuple(spans))
