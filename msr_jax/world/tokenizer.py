"""Townworld's word-level tokenizer over the closed vocabulary.

A `tokenizers.Tokenizer` (WordLevel model, Whitespace pre-tokenizer) whose vocabulary is
every word Townworld can write plus special tokens. It is saved in the `tokenizers` JSON
format, so `transformers.PreTrainedTokenizerFast(tokenizer_file=...)` loads it too. The
vocabulary does not depend on the world's seed (the lexicon is constant), so one tokenizer
serves every world. Records are rendered with the testbed's plain template
(`msr_jax.data.plain_template`): `<bos>` then `<role> content <eot>` per message.
"""

from __future__ import annotations

import os
import re

import tokenizers
from tokenizers import models, pre_tokenizers

from msr_jax import atomic
from msr_jax.data.plain_template import PlainTemplateAdapter
from msr_jax.world import lexicon
from msr_jax.world import templates as T

PAD, UNK, BOS, EOS, EOT = "<pad>", "<unk>", "<bos>", "<eos>", "<eot>"
ROLE_MARKERS = {"system": "<system>", "user": "<user>", "assistant": "<assistant>"}
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS, EOT, *ROLE_MARKERS.values())
# Names of the fixed pool the vocabulary covers: up to 300 people plus 64 visitors.
NAME_POOL_SIZE = 364

_PLACEHOLDER = re.compile(r"\{\w+\}")


def vocabulary() -> list[str]:
  """Every token, specials first, then words in a fixed order (ids are positions)."""
  words: list[str] = []
  seen = set(SPECIAL_TOKENS)

  def add(word: str) -> None:
    if word not in seen:
      seen.add(word)
      words.append(word)

  for template in T.ALL_TEMPLATES:
    for word in _PLACEHOLDER.sub(" ", template).split():
      add(word)
  for attribute in lexicon.ATTRIBUTES:
    for value in lexicon.VALUES[attribute]:
      add(value)
  for group in (lexicon.WEATHERS, lexicon.ITEMS, lexicon.CONDITIONS, lexicon.RELATIONS,
                lexicon.DECISIONS, lexicon.names(NAME_POOL_SIZE)):
    for word in group:
      add(word)
  return [*SPECIAL_TOKENS, *words]


def build() -> tokenizers.Tokenizer:
  vocab = {token: i for i, token in enumerate(vocabulary())}
  tokenizer = tokenizers.Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
  tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
  # Registered as special so that markers inside text never split into "<", "user", ">".
  tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
  return tokenizer


def save(tokenizer: tokenizers.Tokenizer, path: str) -> None:
  """Writes the `tokenizers` JSON file atomically."""
  with atomic.atomic_path(path) as tmp:
    tokenizer.save(tmp)


def load(path: str) -> tokenizers.Tokenizer:
  """The tokenizer in `path`; an unreadable file is a `CheckpointError` naming it."""
  from msr_jax.checkpoints.errors import CheckpointError, CheckpointNotFoundError
  if not os.path.exists(path):
    raise CheckpointNotFoundError(f"{path}: missing (a checkpoint folder holds its tokenizer)")
  try:
    return tokenizers.Tokenizer.from_file(path)
  except Exception as e:  # tokenizers raises a bare Exception with the parser's words
    raise CheckpointError(f"{path}: cannot load the tokenizer: {e}") from None


def adapter(tokenizer: tokenizers.Tokenizer) -> PlainTemplateAdapter:
  """The plain-template adapter every Townworld record is rendered with."""
  return PlainTemplateAdapter(tokenizer, role_markers=ROLE_MARKERS, end_of_turn=EOT, bos=BOS)


def training_adapter():
  """(adapter, vocab_size, pad_id) for a training config's `data.tokenizer`
  ("msr_jax.world.tokenizer:training_adapter")."""
  tokenizer = build()
  return adapter(tokenizer), tokenizer.get_vocab_size(), tokenizer.token_to_id(PAD)
