"""Tests of Townworld episodes, policies and behaviour splits."""

from __future__ import annotations

import numpy as np

from msr_jax.world import behaviour, episodes, policy
from msr_jax.world.world import World

WORLD = World.build(0)


def test_bio_states_every_fact_and_varies_between_exposures():
  rng = np.random.default_rng(0)
  person = WORLD.people[5]
  texts = {episodes.bio(WORLD, rng, person, "b").messages[0].content for _ in range(10)}
  assert len(texts) > 1
  for text in texts:
    for value in WORLD.facts[person].values():
      assert f" {value} " in f" {text} "


def test_counterfactual_note_contradicts_the_stored_fact():
  rng = np.random.default_rng(0)
  for _ in range(20):
    record = episodes.counterfactual_note(WORLD, rng, WORLD.people[0], "c", num_other=2)
    meta = record.meta
    assert meta["answer"] != meta["stored"]
    assert WORLD.facts[WORLD.people[0]][meta["attribute"]] == meta["stored"]
    assert record.messages[-1].content == meta["answer"]
    assert f" {meta['answer']} " in record.messages[0].content


def test_r0_policy_and_rule_precedence():
  s = policy.Situation("stormy", "kite", "fine", "Bako", "friend", 0)
  assert policy.r0_answer(s) == ("lend", "Bako is a friend")
  assert policy.answer(s, WORLD.r1) == ("wait", "the weather is stormy")
  broken = policy.Situation("sunny", "kite", "broken", "Bako", "stranger", 0)
  assert policy.answer(broken, WORLD.r1) == ("refuse", "the kite is broken")
  stranger = policy.Situation("sunny", "lamp", "fine", "Bako", "stranger", 0)
  assert policy.r0_answer(stranger) == ("refuse", "Bako is a stranger")


def test_evidence_is_copied_from_the_note():
  rng = np.random.default_rng(1)
  for split in behaviour.SPLITS:
    for _ in range(10):
      record = behaviour.episode(WORLD, rng, split, "e", num_distractors=3)
      evidence = record.messages[-1].content.split(" because ", 1)[1]
      assert evidence in record.messages[-2].content


def test_splits_respect_people_cells_and_templates():
  rng = np.random.default_rng(2)
  r1_cells = set(WORLD.r1_cells())
  for _ in range(30):
    m = behaviour.episode(WORLD, rng, "train", "t").meta
    assert m["requester"] in WORLD.ft_people and tuple(m["cell"]) not in WORLD.n2_cells
    assert m["template"] in WORLD.train_templates and m["rule_fires"]
    assert m["num_distractors"] <= behaviour.TRAIN_MAX_DISTRACTORS
    assert behaviour.episode(WORLD, rng, "n1", "t").meta["requester"] in WORLD.n1_people
    assert tuple(behaviour.episode(WORLD, rng, "n2", "t").meta["cell"]) in WORLD.n2_cells
    assert behaviour.episode(WORLD, rng, "n3", "t").meta["template"] in WORLD.n3_templates
    assert behaviour.episode(WORLD, rng, "n4", "t", num_distractors=7).meta[
        "num_distractors"] == 7
    spec = behaviour.episode(WORLD, rng, "spec", "t").meta
    assert tuple(spec["cell"]) not in r1_cells and spec["answer"] == spec["answer_r0"]


def test_training_records_are_seeded_and_keep_retain_people_out():
  a = behaviour.training_records(WORLD, 0, 200)
  assert a == behaviour.training_records(WORLD, 0, 200)
  fires = [r.meta["rule_fires"] for r in a]
  assert 0.3 < np.mean(fires) < 0.7
  retain = set(WORLD.retain_people)
  for record in a:
    text = " ".join(m.content for m in record.messages)
    assert not retain & set(text.split())
    assert record.meta["requester"] in WORLD.ft_people


def test_multi_question_notes_answer_each_question_from_the_note():
  rng = np.random.default_rng(3)
  for _ in range(20):
    record = episodes.note(WORLD, rng, 5, "q", num_questions=4)
    assert len(record.decision_indices()) == 4
    note = record.messages[0].content
    for message in record.messages[1::2]:
      assert f" {message.content} " in note
