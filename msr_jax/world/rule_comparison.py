"""Does a model compare a told rule's weather with the note's?

Told-rule episodes with the rule's item matching and R0 lending, where either the rule
fires or only the weather differs from the rule's: a model that compares the two weathers
gives the rule's decision on all of the first and none of the second; one that checks the
item alone gives the same share twice (docs/townworld.md, "Told rules never compare the
weather"). `scripts/diagnose_decisions.py` and `scripts/rule_comparison_formation.py`
score these episodes.
"""

from __future__ import annotations

import numpy as np

from msr_jax.data.records import Record
from msr_jax.world import corpus, episodes, policy
from msr_jax.world.world import World


def rules_of(world: World, any_item: bool) -> list[policy.Rule]:
  """The pre-training rules for any item, or those naming one item."""
  return [r for r in world.pretrain_rules
          if (r.spec is None) == any_item and r.spec not in ("outdoor", "indoor")]


def episodes_for(world: World, rng: np.random.Generator, count: int, any_item: bool,
                 fires: bool, distractors: tuple[int, int] = (0, 6)
                 ) -> list[tuple[Record, policy.Rule]]:
  """`count` (told-rule decision episode, its rule) pairs: the item matching the rule, R0
  lending, and the weather the rule's (`fires`) or not; `distractors` is the [low, high)
  range of distractor clauses."""
  rules = rules_of(world, any_item)
  out = []
  for _ in range(count):
    rule = rules[int(rng.integers(len(rules)))]
    situation = None
    while situation is None or policy.r0_answer(situation)[0] != "lend":
      situation = corpus.rule_situation(world, rng, rule, fires,
                                        int(rng.integers(*distractors)), weather_miss=1.0)
    out.append((episodes.decision(rng, situation, "rule-comparison", told_rule=rule), rule))
  return out
