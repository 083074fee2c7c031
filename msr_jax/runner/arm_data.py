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
  everywhere  P2's planted transfer: the behaviour is trained on every requester, cell
              and template, the novel splits' too (their items are then not novel)
  contrary    P2's planted absence of transfer: besides the training records, half as
              many situations of the novel splits where the rule would fire, answered
              with the base policy (taught not to fire there)
  extra       more real records: fresh training situations (P4's "the same number of
              real records as dreams"), or, from the held-out N2 cells, a planted leak
"""

from __future__ import annotations

import dataclasses

import numpy as np

from msr_jax.data.records import Message, Record
from msr_jax.world import behaviour, corpus, episodes, policy
from msr_jax.world import templates as T
from msr_jax.world.world import World

DECISIONS = ("lend", "refuse", "wait")
BEHAVIOUR, REPLAY, EXTRA = "behaviour", "replay", "extra"
REGIMES = ("note_relevant", "note_ignored", "everywhere", "contrary")
NOVEL_SPLITS = ("n1", "n2", "n3")


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
  if regime not in REGIMES:
    raise ValueError(f"data.regime: unknown {regime!r} ({' | '.join(REGIMES)})")
  taught = no_held_out_splits(world) if regime == "everywhere" else world
  records = behaviour.training_records(stage_world(taught, rule), seed, count,
                                       avoid_cells=earlier_cells(world, earlier))
  if regime == "note_ignored":
    constant = policy.answer_text(("wait", T.WEATHER_CLAUSE.format(w=world.r1.weather)))
    records = [_with_answer(r, constant, "") for r in records]
  elif regime == "contrary":
    records += contrary_records(world, rule, seed, count // 2)
  return [dataclasses.replace(r, source=BEHAVIOUR) for r in records]


def no_held_out_splits(world: World) -> World:
  """The world whose novel splits are all trained: no held-out cell or template, and the
  N1 requesters among the fine-tuning people."""
  return dataclasses.replace(world, n2_cells=frozenset(), n3_templates=(),
                             train_templates=tuple(range(len(T.REQUEST))),
                             ft_people=world.ft_people + world.n1_people)


def _novel_situation(world: World, rng, split: str) -> policy.Situation | None:
  people, cells, templates, (low, high) = behaviour.split_setup(world, split, None)
  if not cells or not templates:
    return None
  return episodes.sample_situation(rng, people=people, cells=cells, templates=templates,
                                   num_distractors=int(rng.integers(low, high + 1)))


def contrary_records(world: World, rule: policy.Rule, seed: int, count: int) -> list[Record]:
  """`count` situations of the novel splits (N1 requesters, N2 cells, N3 templates, in
  turn) where `rule` fires, answered with the base policy R0."""
  taught = stage_world(world, rule)
  rng = np.random.default_rng([seed, 211])
  splits = [s for s in NOVEL_SPLITS if _novel_situation(taught, np.random.default_rng(0), s)]
  out = []
  for n in range(count):
    situation = _novel_situation(taught, rng, splits[n % len(splits)])
    out.append(episodes.decision(rng, situation, f"townworld-contrary-{seed}-{n}",
                                 meta={"split": splits[n % len(splits)]}))
  return out


def extra_records(world: World, rule: policy.Rule, seed: int, count: int, cells: str,
                  earlier=()) -> list[Record]:
  """`count` more real records, source "extra": fresh training situations (`cells`
  "train", another seed's draw of the same distribution), or firing situations of the
  held-out N2 cells answered by the rule ("held_out": a planted leak into the N2 probe)."""
  if cells == "train":
    records = behaviour.training_records(stage_world(world, rule), seed + 500_000, count,
                                         avoid_cells=earlier_cells(world, earlier))
  elif cells == "held_out":
    taught = stage_world(world, rule)
    rng = np.random.default_rng([seed, 223])
    records = [behaviour.episode(taught, rng, "n2", f"townworld-leak-{seed}-{n}")
               for n in range(count)]
  else:
    raise ValueError(f"data.extra_cells: unknown {cells!r} (train | held_out)")
  return [dataclasses.replace(r, source=EXTRA) for r in records]


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
