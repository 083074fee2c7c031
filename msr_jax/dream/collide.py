"""Collisions: a walk of 2-3 memories becomes one new scenario that recombines their parts.

Townworld. A decision situation has three parts, each taken whole from one memory:
  person   the requester (and the request's phrasing, `template`)
  context  the item's condition, the requester's relation and the distractor clauses
  cell     the (item, weather) cell
(`split_cell=True` splits the cell into `item` and `weather`, so that cells no memory
held can appear.) Parts are dealt to the memories by a seeded shuffle of
`arange(num_parts) % num_memories`, so every memory gives at least one part and, with
three memories and three parts, each gives exactly one. Distractors that would contradict
the new situation (a clause about its item or its requester) are dropped.

Real models. `blend_prompt` asks the model itself to write a new situation that blends
the memories; the dream loop answers that situation like any other scenario.

Novelty: a scenario is novel when its (person, item, weather, condition, relation) tuple
is absent from the real training examples.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

from msr_jax.data.records import Message, Record
from msr_jax.dream import townworld
from msr_jax.memory.record_json import record_text
from msr_jax.world import episodes, policy

PARTS = ("person", "context", "cell")
SPLIT_CELL_PARTS = ("person", "context", "item", "weather")


@dataclasses.dataclass(frozen=True)
class Scenario:
  """A dreamt situation to answer.

  Attributes:
    id: unique within a run.
    messages: what the model answers, without the fast store (which generation adds).
    situation: the Townworld situation, or None for a free-text scenario.
    parents: memory-graph node ids of the memories it came from, in walk order.
    donors: part name -> index into `parents` of the memory that gave it.
  """
  id: str
  messages: tuple[Message, ...]
  situation: policy.Situation | None = None
  parents: tuple[int, ...] = ()
  donors: dict = dataclasses.field(default_factory=dict, compare=False)


def deal_parts(num_memories: int, parts: Sequence[str], rng: np.random.Generator) -> dict:
  """part -> memory index; every memory gets >= 1 part (needs num_memories <= len(parts))."""
  if not 1 <= num_memories <= len(parts):
    raise ValueError(f"cannot deal {len(parts)} parts {tuple(parts)} to {num_memories} "
                     "memories so that each gives one")
  owners = rng.permutation(np.arange(len(parts)) % num_memories)
  return {part: int(owner) for part, owner in zip(parts, owners)}


def _compatible(distractor: str, item: str, requester: str) -> bool:
  """False for a clause about the scenario's own item or requester (a contradiction)."""
  words = distractor.split()
  return not (distractor.startswith(f"the {item} is ") or words[0] == requester)


def recombine(situations: Sequence[policy.Situation], donors: dict) -> policy.Situation:
  """The situation built from `donors` (part -> index into `situations`)."""
  person = situations[donors["person"]]
  context = situations[donors["context"]]
  if "cell" in donors:
    item, weather = situations[donors["cell"]].cell
  else:
    item, weather = situations[donors["item"]].item, situations[donors["weather"]].weather
  distractors = tuple(d for d in context.distractors
                      if _compatible(d, item, person.requester))
  return policy.Situation(weather=weather, item=item, condition=context.condition,
                          requester=person.requester, relation=context.relation,
                          template=person.template, distractors=distractors)


def scenario_messages(situation: policy.Situation, rng: np.random.Generator) -> tuple:
  """The user turn, rendered (clause order shuffled) exactly as the world renders it."""
  record = episodes.decision(rng, situation, "scenario")
  return tuple(m for m in record.messages if m.role == "user")


def collide(memories: Sequence[Record], rng: np.random.Generator, uid: str,
            parents: Sequence[int] = (), split_cell: bool = False) -> Scenario:
  """One scenario from 2-3 Townworld decision memories (`NotADecisionError` otherwise)."""
  if not 2 <= len(memories) <= 3:
    raise ValueError(f"a collision takes 2 or 3 memories, got {len(memories)}")
  situations = [townworld.parse_situation(m) for m in memories]
  donors = deal_parts(len(memories), SPLIT_CELL_PARTS if split_cell else PARTS, rng)
  situation = recombine(situations, donors)
  return Scenario(id=uid, messages=scenario_messages(situation, rng), situation=situation,
                  parents=tuple(parents), donors=donors)


@dataclasses.dataclass
class CollisionStats:
  walks: int = 0
  short_walks: int = 0   # fewer than 2 distinct decision memories: no collision
  scenarios: int = 0


def collide_walks(graph, walks: Iterable[Sequence[int]], rng: np.random.Generator,
                  prefix: str, max_memories: int = 3,
                  split_cell: bool = False) -> tuple[list[Scenario], CollisionStats]:
  """A scenario per walk over a `MemoryGraph`: its first `max_memories` distinct nodes
  that hold decision episodes (nodes holding anything else are passed over)."""
  stats, scenarios = CollisionStats(), []
  for walk in walks:
    stats.walks += 1
    chosen = []
    for node_id in dict.fromkeys(walk):
      record = graph.node(node_id).record
      if townworld.try_parse(record) is not None:
        chosen.append((node_id, record))
      if len(chosen) == max_memories:
        break
    if len(chosen) < 2:
      stats.short_walks += 1
      continue
    ids, records = zip(*chosen)
    scenarios.append(collide(records, rng, f"{prefix}-{len(scenarios)}", ids, split_cell))
  stats.scenarios = len(scenarios)
  return scenarios, stats


def real_keys(records: Iterable[Record]) -> frozenset:
  """Situation keys of the real decision records (others are ignored)."""
  out = set()
  for record in records:
    situation = townworld.try_parse(record)
    if situation is not None:
      out.add(townworld.situation_key(situation))
  return frozenset(out)


def is_novel(scenario: Scenario, keys: frozenset) -> bool:
  if scenario.situation is None:
    raise ValueError(f"scenario {scenario.id!r}: novelty needs a Townworld situation")
  return townworld.situation_key(scenario.situation) not in keys


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


def render_rule_note(rule: policy.Rule) -> tuple[Message, ...]:
  """Townworld's fast store for a behaviour: its rule note as the system message, exactly
  as `episodes.decision(..., told_rule=rule)` renders a told rule."""
  return (Message("system", rule.text()),)

