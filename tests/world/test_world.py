"""Tests of the world's construction and its fixed splits."""

from __future__ import annotations

import pytest

from msr_jax.world import lexicon
from msr_jax.world.world import R1, World


def test_build_is_a_pure_function_of_the_seed():
  assert World.build(3) == World.build(3)
  assert World.build(3).facts != World.build(4).facts


def test_people_are_unique_single_words_and_disjoint_from_visitors():
  world = World.build(0)
  assert 200 <= len(world.people) <= 300
  assert len(set(world.people)) == len(world.people)
  assert not set(world.people) & set(world.visitors)
  assert all(" " not in name for name in world.people + world.visitors)
  for person in world.people:
    assert set(world.facts[person]) == set(lexicon.ATTRIBUTES)


def test_person_splits_partition_the_people():
  world = World.build(0)
  everyone = set(world.people)
  assert set(world.qa_train) | set(world.qa_test) == everyone
  assert not set(world.qa_train) & set(world.qa_test)
  roles = [set(world.ft_people), set(world.n1_people), set(world.retain_people)]
  assert set().union(*roles) == everyone
  assert sum(len(r) for r in roles) == len(everyone)


def test_behaviour_splits_hold_out_r1_cells_templates_and_rules():
  world = World.build(0)
  held_r1 = [c for c in world.r1_cells() if c in world.n2_cells]
  assert len(held_r1) == 2 and len(world.r1_cells()) == 6
  assert not set(world.train_templates) & set(world.n3_templates)
  assert R1 not in world.pretrain_rules and R1 not in world.heldout_rules
  assert not set(world.pretrain_rules) & set(world.heldout_rules)


def test_too_few_people_is_an_error():
  with pytest.raises(ValueError, match="num_people"):
    World.build(0, num_people=50)
