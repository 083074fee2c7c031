"""Tests of the binding-free readers (the ceilings a model without binding reaches)."""

from __future__ import annotations

import numpy as np

from msr_jax.data.records import Message, Record
from msr_jax.world import binding_free
from msr_jax.world import episodes, policy
from msr_jax.world.world import World

WORLD = World.build(0)


def _note(text: str, answer: str) -> Record:
  return Record("n", (Message("user", text), Message("assistant", answer)))


def test_type_only_recall_counts_the_values_of_the_asked_attribute():
  record = _note("note : Kezen owns a cat . Fezi lives in lima . Fezi owns a dog . "
                 "Lumo owns a owl . question : what pet does Fezi have ?", "dog")
  assert binding_free.type_only_recall(record) == 1 / 3
  alone = _note("note : Kezen owns a cat . Fezi lives in lima . question : where does Fezi "
                "live ?", "lima")
  assert binding_free.type_only_recall(alone) == 1.0
  # On generated notes it lies between chance over the note's facts and 1.
  rng = np.random.default_rng(0)
  for k in range(2, 9):
    value = binding_free.type_only_recall(episodes.note(WORLD, rng, k, "g"))
    assert 1 / k <= value <= 1


def test_keyless_reader_ignores_whose_clause_it_is():
  situation = policy.Situation("rainy", "kite", "fine", "Bako", "friend", 0,
                               ("the lamp is broken", "Vozu is a stranger"))
  swapped = situation.with_request("Vozu", "lamp", 0)  # Same note, another request.
  rng = np.random.default_rng(1)
  a, b = (episodes.decision(rng, s, "d") for s in (situation, swapped))
  assert binding_free.keyless_key(a) == binding_free.keyless_key(b) == (
      ("broken", "fine"), ("friend", "stranger"))
  assert a.meta["answer"].split()[0] != b.meta["answer"].split()[0]  # lend, refuse


def test_keyless_decisions_are_exact_without_distractors_and_not_with_them():
  table = binding_free.keyless_decisions(WORLD, seed=0, count=3000)
  rng = np.random.default_rng([5, 9])
  hits = {0: [], 4: []}
  for n in range(600):
    k = 0 if n % 2 else 4
    situation = episodes.sample_situation(rng, people=WORLD.people, cells=WORLD.cells(held_out=False),
                                          templates=(0,), num_distractors=k)
    record = episodes.decision(rng, situation, "d")
    decided = table.get(binding_free.keyless_key(record))
    hits[k].append(decided == record.meta["answer"].split()[0])
  assert np.mean(hits[0]) == 1.0
  assert 0.5 < np.mean(hits[4]) < 0.9


def test_keyless_key_reads_the_note_after_a_told_rule():
  situation = policy.Situation("rainy", "kite", "fine", "Bako", "friend", 0,
                               ("the lamp is broken",))
  rng = np.random.default_rng(2)
  told = episodes.decision(rng, situation, "r", told_rule=WORLD.pretrain_rules[0])
  assert told.messages[0].role == "system"
  assert binding_free.keyless_key(told) == (("broken", "fine"), ("friend",))
