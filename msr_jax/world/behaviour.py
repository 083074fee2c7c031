"""The behaviour to teach (R1) and its fixed evaluation splits.

Splits (all fixed by the world's seed; see `world.World`):
  train   R1 fine-tuning situations: `ft_people`, cells outside N2, training templates,
          0..`TRAIN_MAX_DISTRACTORS` distractors.
  n1      as train, but requesters from `n1_people` (never in fine-tuning).
  n2      as train, but (item, weather) cells from the held-out N2 cells.
  n3      as train, but request templates held out of fine-tuning.
  n4      as train, with more distractors than trained (one set per count: a curve).
  spec    specificity: near misses where R1 must not fire (storm + indoor item, outdoor
          item in other weather); the right answer is R0's.
Efficacy sets (train, n1..n4) hold only situations where R1 fires. `retain_people` never
appear in any of these.
"""

from __future__ import annotations

import numpy as np

from msr_jax.data.records import Record
from msr_jax.world import episodes
from msr_jax.world import lexicon
from msr_jax.world.world import World

TRAIN_MAX_DISTRACTORS = 2
N4_DISTRACTORS = (3, 5, 7, 9)
SPLITS = ("train", "n1", "n2", "n3", "n4", "spec")


def _firing(world: World, cells):
  fires = set(world.r1_cells())
  return [c for c in cells if c in fires]


def split_setup(world: World, split: str, num_distractors: int | None):
  """(people, cells, templates, distractor count range) of a split's firing situations."""
  train_cells = world.cells(held_out=False)
  people, cells, templates = world.ft_people, _firing(world, train_cells), world.train_templates
  low, high = 0, TRAIN_MAX_DISTRACTORS
  if split == "n1":
    people = world.n1_people
  elif split == "n2":
    cells = _firing(world, world.cells(held_out=True))
  elif split == "n3":
    templates = world.n3_templates
  elif split == "n4":
    if num_distractors is None:
      raise ValueError("split n4 needs num_distractors")
    low = high = num_distractors
  elif split not in ("train", "spec"):
    raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
  return people, cells, templates, (low, high)


def near_miss_cells(world: World) -> tuple[tuple[str, str], ...]:
  """Cells that share the weather or the item category with R1 but where it does not fire."""
  r1 = set(world.r1_cells())
  return tuple((i, w) for i in lexicon.ITEMS for w in lexicon.WEATHERS
               if (i, w) not in r1 and (w == world.r1.weather or world.r1.matches_item(i)))


def episode(world: World, rng: np.random.Generator, split: str, uid: str, *,
            num_distractors: int | None = None, told: bool = False) -> Record:
  """One R1 episode of `split`. `told=True` states R1 as a rule note instead (fast system)."""
  people, cells, templates, (low, high) = split_setup(world, split, num_distractors)
  if split == "spec":
    cells = near_miss_cells(world)
  k = int(rng.integers(low, high + 1))
  situation = episodes.sample_situation(rng, people=people, cells=cells,
                                        templates=templates, num_distractors=k)
  rule_kw = {"told_rule": world.r1} if told else {"default_rule": world.r1}
  return episodes.decision(rng, situation, uid, meta={"split": split}, **rule_kw)


def training_records(world: World, seed: int, count: int, p_fire: float = 0.5,
                     avoid_cells=()) -> list[Record]:
  """R1 fine-tuning data: firing situations and non-firing ones (answered by R0).

  Non-firing situations come from training cells, people and templates too, so that the
  model learns when R1 applies, not only what it says. `avoid_cells`: cells no non-firing
  situation is drawn from (an earlier update's firing cells: R0's answer there would
  un-teach it).
  """
  rng = np.random.default_rng([seed, 101])
  skip = set(world.r1_cells()) | {tuple(c) for c in avoid_cells}
  other_cells = [c for c in world.cells(held_out=False) if c not in skip]
  records = []
  for n in range(count):
    uid = f"townworld-r1-train-{seed}-{n}"
    if rng.random() < p_fire:
      records.append(episode(world, rng, "train", uid))
    else:
      situation = episodes.sample_situation(
          rng, people=world.ft_people, cells=other_cells,
          templates=world.train_templates,
          num_distractors=int(rng.integers(TRAIN_MAX_DISTRACTORS + 1)))
      records.append(episodes.decision(rng, situation, uid, default_rule=world.r1,
                                       meta={"split": "train"}))
  return records


def records_for_training(data_config) -> list[Record]:
  """`training_records` for a training config's `data.kind`
  ("msr_jax.world.behaviour:records_for_training"), from `data.townworld` (world_seed,
  count) and `data.seed`."""
  world = World.build(int(data_config.townworld.world_seed))
  return training_records(world, int(data_config.seed), int(data_config.townworld.count))
