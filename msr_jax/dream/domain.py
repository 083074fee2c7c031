"""The domain interface: everything the dream loop needs to know about a world.

The loop (`consolidate.py`) is generic: it walks the memory graph, asks the domain for a
scenario per walk, answers it with the domain's fast store in context, judges the answers
with the domain's judges (and the generic self-consistency judge), keeps the good ones,
and trains on them with the fast store stripped. A domain supplies:

  real_source        the source name of its real training records (the trainer's mixture)
  memory_entities    a record's memory-graph entities, or None for a record that is no
                     memory to collide (it is passed over by the walks)
  collide            2-3 memories -> one new `Scenario` (its `situation` is the domain's
                     structured form of it, or None), or None to drop the collision (a
                     real model's echo of a memory, a duplicate)
  fast_store         the behaviour's instruction and demonstrations, as messages put
                     before a scenario when answering (and stripped for training)
  judge              a domain judge by name (`judges.Judge`), e.g. a verifier
  reference          the judge whose verdicts define validity, with `expected(scenario)`
                     (the answer oracle mode trains on), or None where none exists
  scenario_key,      what makes a scenario or a real record the same situation (None: it
  record_key         has none); a scenario is novel when no real record shares its key
  coverage_key       the held-out cell a scenario falls in (None: none), and
  held_out_cells     the cells of the held-out split whose coverage the loop reports
  probe_items        the items the loop scores before and after every cycle, and
  score_probes       their summary {group: {probe: accuracy}} with the groups "fast"
                     (behaviour with the fast store), "slow" (without it), "knowledge"
                     and "context" (retention: the guard's score is their mean)

Townworld's implementation is `msr_jax.world.dream_domain.TownworldDomain`; chat models'
is `msr_jax.chat.dream_domain.ChatDomain`.
"""

from __future__ import annotations

from typing import Hashable, Protocol, Sequence

import numpy as np

from msr_jax.data.records import Message, Record


class DreamDomain(Protocol):
  real_source: str
  held_out_cells: frozenset

  def memory_entities(self, record: Record) -> frozenset[str] | None:
    ...

  def collide(self, memories: Sequence[Record], rng: np.random.Generator, uid: str,
              parents: Sequence[int] = (), split_cell: bool = False):
    ...

  def fast_store(self) -> tuple[Message, ...]:
    ...

  def judge(self, name: str):
    ...

  def reference(self):
    ...

  def scenario_key(self, scenario) -> Hashable | None:
    ...

  def record_key(self, record: Record) -> Hashable | None:
    ...

  def coverage_key(self, scenario) -> tuple | None:
    ...

  def probe_items(self, seed: int, adapter, sizes: dict | None = None) -> list:
    ...

  def score_probes(self, graphdef, params, items: list, pad_id: int) -> dict:
    ...
