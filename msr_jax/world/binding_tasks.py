"""Synthetic tasks that isolate the in-context copy note recall needs.

The base model's plateau (docs/townworld.md) is the score of a reader that binds no value
to its subject. These tasks ask whether the model and optimizer form the circuit beneath
that binding at all, from the simplest copy up to Townworld's own notes:

- `offset`: a random string and, right after it, the same string again. The source of
  every copied token is a fixed distance back, so a purely positional head solves it.
- `induction`: a random string, random filler of random length, the string again. The
  source is found only by content (the earlier occurrence of the current token), the
  induction-head copy that binding is built from.
- `pairs`: a note of one attribute as bare "name value" pairs, then questions by name:
  the value is one token after its key (a one-hop binding).
- `note`: Townworld's notes of one attribute (`episodes.note(..., same_attribute=True)`),
  where the value is two to four tokens after its subject.

The first two are token rows (loss on the second copy); the last two are conversation
records, packed like pre-training. `scripts/binding_formation.py` trains on one of them.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from msr_jax.data.records import Message, Record
from msr_jax.world import episodes
from msr_jax.world import templates as T
from msr_jax.world import tokenizer
from msr_jax.world.world import World

TASKS = ("offset", "induction", "pairs", "note")
OFFSET_LENGTH = 20  # the fixed string length (and copy distance) of `offset`


def copy_rows(rng: np.random.Generator, batch_size: int, seq_len: int, low: int, high: int,
              bos_id: int, fixed_offset: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(tokens_BxL, mask_BxL, segments_BxL) of one copy batch, tokens drawn from [low, high).

  `mask_BxL[:, t]` is 1 where `tokens[:, t + 1]` is a copied token whose source is in the
  row (the second copy's tokens after its first, which nothing before predicts), as
  `corpus.pack` marks targets. Rows are `<bos>`, the string, filler, the string, then
  padding (id 0, segment 0).
  """
  tokens_BxL = np.zeros((batch_size, seq_len), np.int32)
  mask_BxL = np.zeros((batch_size, seq_len), np.float32)
  for b in range(batch_size):
    if fixed_offset:
      n, gap = OFFSET_LENGTH, 0
    else:
      n = int(rng.integers(6, 30))
      gap = int(rng.integers(0, seq_len - 2 * n))
    if 1 + 2 * n + gap > seq_len:
      raise ValueError(f"seq_len={seq_len} is too short for a string of {n} copied twice")
    string = rng.integers(low, high, n)
    row = np.concatenate([[bos_id], string, rng.integers(low, high, gap), string])
    tokens_BxL[b, :len(row)] = row
    second = 1 + n + gap  # index of the second copy's first token
    mask_BxL[b, second:second + n - 1] = 1
  return tokens_BxL, mask_BxL, (tokens_BxL != 0).astype(np.int32)


def copy_stream(rng: np.random.Generator, tok, batch_size: int, seq_len: int,
                fixed_offset: bool) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Endless `copy_rows` batches over every non-special token of the Townworld tokenizer
  `tok` (the vocabulary's size is the model's)."""
  low = max(tok.token_to_id(t) for t in tokenizer.SPECIAL_TOKENS) + 1
  while True:
    yield copy_rows(rng, batch_size, seq_len, low, tok.get_vocab_size(),
                    tok.token_to_id(tokenizer.BOS), fixed_offset)


def pair_note(world: World, rng: np.random.Generator, num_facts: int, uid: str,
              num_questions: int = 1) -> Record:
  """A one-attribute note as bare pairs, "note : Kofi green . Vedin red . question : Kofi ?",
  with the same facts, order and questions as `episodes.note(..., same_attribute=True)`."""
  source = episodes.note(world, rng, num_facts, uid, num_questions, same_attribute=True)
  pairs = source.meta["facts"]
  body = " ".join(f"{name} {value} ." for name, _, value in pairs)
  messages, first = [], True
  for message in source.messages:
    if message.role == "assistant":
      messages.append(message)
      continue
    name = source.meta["asked"][len(messages) // 2]
    question = f"{T.QUESTION_HEADER} {name} ?"
    messages.append(Message("user", f"{T.NOTE_HEADER} {body} {question}" if first
                            else question))
    first = False
  return Record(id=uid, messages=tuple(messages), source=source.source,
                meta={**source.meta, "kind": "pair_note"})


def record(world: World, rng: np.random.Generator, task: str, num_facts: int, uid: str,
           num_questions: int = 1) -> Record:
  """One `pairs` or `note` record."""
  if task == "pairs":
    return pair_note(world, rng, num_facts, uid, num_questions)
  if task == "note":
    return episodes.note(world, rng, num_facts, uid, num_questions, same_attribute=True)
  raise ValueError(f"task {task!r} has no records; expected 'pairs' or 'note'")


def records(world: World, seed: int, task: str, facts: tuple[int, int],
            num_questions: int) -> Iterator[Record]:
  """An endless seeded stream of `pairs` or `note` records of `facts` (inclusive) facts."""
  rng = np.random.default_rng([seed, 11])
  n = 0
  while True:
    k = int(rng.integers(facts[0], facts[1] + 1))
    yield record(world, rng, task, k, f"binding-{task}-{seed}-{n}", num_questions)
    n += 1
