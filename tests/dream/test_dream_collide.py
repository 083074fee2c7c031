"""Collisions recombine parts of each memory, are seeded, and report novelty."""

from __future__ import annotations

import os

import numpy as np
import pytest

from msr_jax.data.records import Message, Record
from msr_jax.dream import collide
from msr_jax.world import dream_domain, situations
from msr_jax.memory import MemoryGraph
from msr_jax.world import episodes, policy


def test_parse_situation_inverts_the_world_rendering(world):
  rng = np.random.default_rng(0)
  cells = world.cells(held_out=False)
  for n in range(50):
    s = episodes.sample_situation(rng, people=world.people, cells=cells,
                                  templates=tuple(range(6)), num_distractors=n % 5)
    record = episodes.decision(rng, s, f"r{n}", told_rule=world.r1)
    parsed = situations.parse_situation(record)
    assert parsed == policy.Situation(s.weather, s.item, s.condition, s.requester,
                                      s.relation, s.template,
                                      tuple(d for d in _note(record) if d in s.distractors))
    assert sorted(parsed.distractors) == sorted(s.distractors)


def _note(record):
  return situations.split_note(situations.user_message(record))[0]


def test_parse_rejects_other_records():
  qa = Record("q", (Message("user", "where does Bob live ?"), Message("assistant", "oslo")))
  with pytest.raises(situations.NotADecisionError, match="'q'"):
    situations.parse_situation(qa)
  bad = Record("b", (Message("user", "note : the weather is sunny . request : Bo asks to "
                                     "borrow the kite ."),))
  with pytest.raises(situations.NotADecisionError, match="condition, relation"):
    situations.parse_situation(bad)
  assert situations.try_parse(qa) is None


def test_three_memories_each_give_one_part(real_records):
  memories = real_records[:3]
  sits = [situations.parse_situation(m) for m in memories]
  for seed in range(20):
    sc = dream_domain.collide(memories, np.random.default_rng(seed), "s", parents=(7, 8, 9))
    assert sorted(sc.donors.values()) == [0, 1, 2]
    s, d = sc.situation, sc.donors
    assert s.requester == sits[d["person"]].requester
    assert s.template == sits[d["person"]].template
    assert (s.condition, s.relation) == (sits[d["context"]].condition,
                                         sits[d["context"]].relation)
    assert s.cell == sits[d["cell"]].cell
    assert set(s.distractors) <= set(sits[d["context"]].distractors)
    for clause in s.distractors:  # Nothing contradicts the new situation.
      assert not clause.startswith(f"the {s.item} is ") and clause.split()[0] != s.requester
    assert sc.parents == (7, 8, 9)
    # The rendered note is the new situation, read back exactly.
    assert situations.parse_situation(Record("x", sc.messages)).cell == s.cell
    assert [m.role for m in sc.messages] == ["user"]


def test_two_memories_both_contribute_and_split_cell(real_records):
  for seed in range(20):
    sc = dream_domain.collide(real_records[3:5], np.random.default_rng(seed), "s")
    assert set(sc.donors.values()) == {0, 1}
    sc = dream_domain.collide(real_records[:3], np.random.default_rng(seed), "s", split_cell=True)
    assert set(sc.donors) == set(dream_domain.SPLIT_CELL_PARTS)
    assert set(sc.donors.values()) == {0, 1, 2}


def test_collisions_are_seeded(real_records):
  a = dream_domain.collide(real_records[:3], np.random.default_rng(5), "s")
  b = dream_domain.collide(real_records[:3], np.random.default_rng(5), "s")
  assert a == b and a.donors == b.donors
  outs = {dream_domain.collide(real_records[:3], np.random.default_rng(s), "s").messages
          for s in range(10)}
  assert len(outs) > 1


def test_collide_walks_over_a_memory_graph(tmp_path, real_records, world):
  with MemoryGraph.open(os.path.join(tmp_path, "m.sqlite")) as graph:
    last = None
    for i, record in enumerate(real_records[:30]):
      last = graph.add_node(record, situations.entities(situations.parse_situation(record)),
                            created=i, connect=True, after=last)
    walks = graph.sample_walks(12, 3, seed=0)
    a, stats = collide.collide_walks(graph, walks, np.random.default_rng(1), "c",
                                      dream_domain.TownworldDomain(world))
    b, _ = collide.collide_walks(graph, walks, np.random.default_rng(1), "c",
                                      dream_domain.TownworldDomain(world))
  assert a == b and stats.walks == 12 and stats.scenarios + stats.short_walks == 12
  assert stats.scenarios > 0
  for sc in a:
    assert 2 <= len(sc.parents) <= 3 and len(set(sc.parents)) == len(sc.parents)


def test_novelty_against_real_examples(real_records, world):
  DOMAIN = dream_domain.TownworldDomain(world)
  keys = collide.real_keys(real_records, DOMAIN)
  assert len(keys) > 0
  copy = collide.Scenario("c", real_records[0].messages[:1],
                          situations.parse_situation(real_records[0]))
  assert not collide.is_novel(copy, keys, DOMAIN)
  novel = [collide.is_novel(dream_domain.collide(real_records[i:i + 3],
                                            np.random.default_rng(i), "s"), keys,
                              DOMAIN)
           for i in range(0, 45, 3)]
  assert any(novel)


def test_blend_prompt_names_every_memory(real_records):
  (message,) = collide.blend_prompt(real_records[:3])
  assert message.role == "user" and "3 memories" in message.content
  for record in real_records[:3]:
    assert record.messages[0].content in message.content
  sc = collide.free_text_scenario("  Ana wants the van  ", "f", parents=(1, 2))
  assert sc.messages == (Message("user", "Ana wants the van"),) and sc.situation is None
