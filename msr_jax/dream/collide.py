"""Collisions: a walk of 2-3 memories becomes one new scenario that recombines them.

The loop's part of it is generic: `collide_walks` takes each walk's first distinct nodes
that hold memories the domain collides and asks the domain for the scenario
(`DreamDomain.collide`; Townworld's deals the parts of a decision, person, context and
cell, to the memories: `msr_jax.world.dream_domain`). `deal_parts` is the dealing, for
any domain whose scenarios are made of parts.

Real models. `blend_prompt` asks the model itself to write a new situation that blends
the memories; the dream loop answers that situation like any other scenario.

Novelty: a scenario is novel when its situation key (the domain's) is absent from the
real training records.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Sequence

import numpy as np

from msr_jax.data.records import Message, Record
from msr_jax.dream.domain import DreamDomain
from msr_jax.memory.record_json import record_text

@dataclasses.dataclass(frozen=True)
class Scenario:
  """A dreamt situation to answer.

  Attributes:
    id: unique within a run.
    messages: what the model answers, without the fast store (which generation adds).
    situation: the domain's structured form of it (Townworld: a `policy.Situation`), or
      None for a free-text scenario.
    parents: memory-graph node ids of the memories it came from, in walk order.
    donors: part name -> index into `parents` of the memory that gave it.
  """
  id: str
  messages: tuple[Message, ...]
  situation: Any = None
  parents: tuple[int, ...] = ()
  donors: dict = dataclasses.field(default_factory=dict, compare=False)


def deal_parts(num_memories: int, parts: Sequence[str], rng: np.random.Generator) -> dict:
  """part -> memory index; every memory gets >= 1 part (needs num_memories <= len(parts))."""
  if not 1 <= num_memories <= len(parts):
    raise ValueError(f"cannot deal {len(parts)} parts {tuple(parts)} to {num_memories} "
                     "memories so that each gives one")
  owners = rng.permutation(np.arange(len(parts)) % num_memories)
  return {part: int(owner) for part, owner in zip(parts, owners)}


@dataclasses.dataclass
class CollisionStats:
  walks: int = 0
  short_walks: int = 0   # fewer than 2 distinct decision memories: no collision
  dropped: int = 0       # collisions the domain refused (None from `collide`)
  scenarios: int = 0


def collide_walks(graph, walks: Iterable[Sequence[int]], rng: np.random.Generator,
                  prefix: str, domain: DreamDomain, max_memories: int = 3,
                  split_cell: bool = False) -> tuple[list[Scenario], CollisionStats]:
  """A scenario per walk over a `MemoryGraph`: its first `max_memories` distinct nodes
  that hold memories the domain collides (nodes holding anything else are passed over)."""
  stats, scenarios = CollisionStats(), []
  for walk in walks:
    stats.walks += 1
    chosen = []
    for node_id in dict.fromkeys(walk):
      record = graph.node(node_id).record
      if domain.memory_entities(record) is not None:
        chosen.append((node_id, record))
      if len(chosen) == max_memories:
        break
    if len(chosen) < 2:
      stats.short_walks += 1
      continue
    ids, records = zip(*chosen)
    scenario = domain.collide(records, rng, f"{prefix}-{len(scenarios)}", ids, split_cell)
    if scenario is None:  # the domain dropped it (a real model's echo or duplicate)
      stats.dropped += 1
      continue
    scenarios.append(scenario)
  stats.scenarios = len(scenarios)
  return scenarios, stats


def real_keys(records: Iterable[Record], domain: DreamDomain) -> frozenset:
  """The domain's situation keys of the real records (records without one are ignored)."""
  return frozenset(key for key in map(domain.record_key, records) if key is not None)


def is_novel(scenario: Scenario, keys: frozenset, domain: DreamDomain) -> bool:
  key = domain.scenario_key(scenario)
  if key is None:
    raise ValueError(f"scenario {scenario.id!r}: novelty needs a situation key")
  return key not in keys


BLEND_INSTRUCTIONS = (
    "Below are {count} memories of earlier conversations. Write one new, realistic "
    "request that a user could make, which combines parts of these memories: for example "
    "the person of one, the circumstances of another and the object or setting of a "
    "third. It must not repeat any single memory. Write only the new request, as the user "
    "would say it, with every fact needed to answer it.")


def blend_prompt(memories: Sequence[Record],
                 instructions: str = BLEND_INSTRUCTIONS) -> tuple[Message, ...]:
  """For real models: a prompt asking the model to write a scenario blending `memories`.

  Each memory is rendered as `role: content` lines (`memory.record_text`) under a numbered
  heading; the model's reply becomes a free-text `Scenario`'s user message.
  """
  if not memories:
    raise ValueError("blend_prompt needs at least one memory")
  blocks = [f"Memory {i + 1}:\n{record_text(m)}" for i, m in enumerate(memories)]
  body = instructions.format(count=len(memories)) + "\n\n" + "\n\n".join(blocks)
  return (Message("user", body),)


def free_text_scenario(text: str, uid: str, parents: Sequence[int] = ()) -> Scenario:
  """A scenario whose user message is `text` (what the model wrote from `blend_prompt`)."""
  text = text.strip()
  if not text:
    raise ValueError(f"scenario {uid!r}: empty text")
  return Scenario(id=uid, messages=(Message("user", text),), parents=tuple(parents))
