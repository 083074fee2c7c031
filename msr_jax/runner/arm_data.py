"""Training data of a Townworld arm: behaviour updates, replay, stress injections.

Every function is a pure function of (world, seed, config), so every arm of an experiment
trains on the same records up to the switch it varies.

  behaviour   the rule of a stage, taught without its rule note (stage 1 is R1)
  replay      pre-training-style records (biographies, QA, notes, counterfactual notes,
              R0 decisions, told rules): the "diverse" data of P1 and the data defence
  corruption  "bad batches": a fraction of behaviour records whose answer is replaced by
              a wrong decision (the stress of P5)
  note_ignored  the P3 regime in which the decision never depends on the note: every
              answer is R1's firing answer, whatever the note says, so full backprop has
              a reason to stop reading notes
"""

from __future__ import annotations

import dataclasses

import numpy as np

from msr_jax.data.records import Message, Record
from msr_jax.world import behaviour, corpus, policy
from msr_jax.world import templates as T
from msr_jax.world.world import World

DECISIONS = ("lend", "refuse", "wait")
BEHAVIOUR, REPLAY = "behaviour", "replay"


def stage_rules(world: World, num_stages: int) -> list[policy.Rule]:
  """R1, then rules never told in pre-training whose weather differs from every earlier
  stage's (so a later rule never overrides an earlier one's cells)."""
  rules = [world.r1]
  for rule in world.heldout_rules:
    if len(rules) == num_stages:
      break
    if all(rule.weather != r.weather for r in rules):
      rules.append(rule)
  if len(rules) < num_stages:
    raise ValueError(f"only {len(rules)} compatible stage rules in this world, "
                     f"{num_stages} asked for")
  return rules


def stage_world(world: World, rule: policy.Rule) -> World:
  """The world with `rule` as the behaviour to teach (its splits are the world's)."""
  return dataclasses.replace(world, r1=rule)


def _with_answer(record: Record, answer: str, uid_suffix: str) -> Record:
  messages = record.messages[:-1] + (Message("assistant", answer),)
  return dataclasses.replace(record, id=record.id + uid_suffix, messages=messages,
                             meta={**record.meta, "answer": answer})


def earlier_cells(world: World, rules) -> frozenset:
  """The firing cells of the updates before this one."""
  return frozenset(c for r in rules for c in stage_world(world, r).r1_cells())


def behaviour_records(world: World, rule: policy.Rule, seed: int, count: int,
                      regime: str = "note_relevant", earlier=()) -> list[Record]:
  """A stage's records of `rule`; with `earlier` rules (the updates before it), none of its
  non-firing situations falls in their firing cells, so a later update never labels an
  earlier behaviour's cells with the base policy (sequential updates without contrary
  labels; the earlier behaviour's retention is then measured as backward transfer)."""
  records = behaviour.training_records(stage_world(world, rule), seed, count,
                                       avoid_cells=earlier_cells(world, earlier))
  if regime == "note_relevant":
    return [dataclasses.replace(r, source=BEHAVIOUR) for r in records]
  if regime == "note_ignored":
    constant = policy.answer_text(("wait", T.WEATHER_CLAUSE.format(w=world.r1.weather)))
    return [dataclasses.replace(_with_answer(r, constant, ""), source=BEHAVIOUR)
            for r in records]
  raise ValueError(f"data.regime: unknown {regime!r} (note_relevant | note_ignored)")


def corrupt(records: list[Record], fraction: float, seed: int) -> list[Record]:
  """Replaces the answer of a `fraction` of records by a wrong decision (same evidence)."""
  if fraction <= 0:
    return records
  rng = np.random.default_rng([seed, 31])
  out = []
  for record in records:
    if rng.random() < fraction:
      right, _, evidence = record.messages[-1].content.partition(" because ")
      wrong = [d for d in DECISIONS if d != right]
      answer = T.ANSWER.format(d=wrong[int(rng.integers(len(wrong)))], e=evidence)
      record = _with_answer(record, answer, "-corrupt")
    out.append(record)
  return out


def replay_records(world: World, seed: int, count: int) -> list[Record]:
  """Pre-training-style records (the default `corpus.Mixture`), relabelled as replay."""
  stream = corpus.records(world, 10_000 + seed, corpus.Mixture())
  return [dataclasses.replace(next(stream), source=REPLAY) for _ in range(count)]
