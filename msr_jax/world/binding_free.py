"""What a reader that does not bind values to their clauses can score on Townworld.

Note recall, R0 decisions and told rules all need a value read from the clause about the
asked person or the requested item. A reader that sees which values a note holds, but not
whose they are, still scores well above chance:

- `type_only_recall`: note recall by a reader that answers with a random value of the
  asked attribute among the note's (it knows the attribute, not the subject).
- `keyless_decisions`: the best R0 decision from the multiset of the note's condition and
  relation values alone (it does not know which item or person is requested), estimated
  as the majority decision per multiset over a sample of episodes.

A model that scores at these figures reads no binding at all; `scripts/diagnose_decisions.py`
prints them beside the model's.
"""

from __future__ import annotations

import collections

import numpy as np

from msr_jax.data.records import Record
from msr_jax.world import corpus, policy
from msr_jax.world import templates as T
from msr_jax.world.world import World


def _first_user(record: Record) -> str:
  return next(m.content for m in record.messages if m.role == "user")  # After any rule.


def _note_clauses(record: Record, header: str) -> list[str]:
  body = _first_user(record).split(f" . {header} ")[0]
  return body.removeprefix(T.NOTE_HEADER + " ").split(" . ")


def type_only_recall(record: Record) -> float:
  """Expected exact match on a note's first question of a reader that picks uniformly
  among the note's values of the asked attribute (note facts use one template per
  attribute, so clauses of one attribute share every word but the subject and value)."""
  clauses = [c.removesuffix(" .").split() for c in _note_clauses(record, T.QUESTION_HEADER)]
  question = _first_user(record).split(f" {T.QUESTION_HEADER} ")[1].split()
  answer = next(m.content for m in record.messages if m.role == "assistant")
  asked = [c for c in clauses if c[-1] == answer and c[0] in question]
  if len(asked) != 1:
    raise ValueError(f"record {record.id!r}: no single clause states the answer {answer!r}")
  return 1.0 / sum(c[1:-1] == asked[0][1:-1] for c in clauses)


def keyless_key(record: Record) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """(sorted condition values, sorted relation values) of a decision note: what a reader
  sees that knows the values but not which item or person each is about."""
  values = {"condition": [], "relation": []}
  for clause in _note_clauses(record, T.REQUEST_HEADER):
    kind, _, value = policy.read_clause(clause) or (None, None, None)
    if kind in values:
      values[kind].append(value)
  return tuple(sorted(values["condition"])), tuple(sorted(values["relation"]))


def keyless_decisions(world: World, seed: int, count: int = 20_000,
                      mixture: corpus.Mixture | None = None) -> dict:
  """The majority R0 decision per `keyless_key`, over `count` pre-training decision
  episodes drawn with `seed`: the best a binding-free reader can decide."""
  rng, mixture = np.random.default_rng([seed, 9]), mixture or corpus.Mixture()
  votes = collections.defaultdict(collections.Counter)
  for n in range(count):
    record = corpus.sample_record(world, rng, "decision", f"keyless-{n}", mixture)
    votes[keyless_key(record)][record.meta["answer"].split()[0]] += 1
  return {key: counter.most_common(1)[0][0] for key, counter in votes.items()}
