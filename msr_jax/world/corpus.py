"""The pre-training corpus: an endless, seeded mixture of Townworld records, packed.

Records are rendered with the plain template and packed several per row (a record never
straddles two rows); the loss mask is each record's decision mask: all of a biography or
item-fact document, only the answers of questions, notes and decisions. During a short
warm-up the mixture leans on notes (associative recall), the skill that appears abruptly
and gates everything read from context.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

from msr_jax.data.records import Record
from msr_jax.data.tokenize import tokenize_record
from msr_jax.world import episodes
from msr_jax.world import lexicon
from msr_jax.world import policy
from msr_jax.world.world import World

# (A kind added later goes last with weight 0 by default, so older streams stay the same.)
KINDS = ("bio", "qa", "note", "counterfactual", "items", "decision", "rule", "situation",
         "rule_situation")


@dataclasses.dataclass(frozen=True)
class Mixture:
  """Relative weights of record kinds, and the ranges of their sizes."""
  bio: float = 0.30
  qa: float = 0.20
  note: float = 0.14
  counterfactual: float = 0.07
  items: float = 0.02
  decision: float = 0.14
  rule: float = 0.13
  # Decision notes with questions about their own clauses (`episodes.situation_questions`).
  situation: float = 0.0
  # Told-rule notes with "what is the weather ?" first: the note's weather, not the rule's
  # (`episodes.situation_questions`' `told_rule`), half of them on notes where the rule fires.
  rule_situation: float = 0.0
  note_facts: tuple[int, int] = (2, 6)  # inclusive range of facts per note
  note_questions: int = 1  # at most this many questions per note (one per fact)
  # The share of notes whose facts all state one attribute of different visitors
  # (`episodes.note`'s `same_attribute`): recall by the clause's subject, not the value's kind.
  note_same_attribute: float = 0.0
  max_distractors: int = 5
  # At most this many requests per decision and told-rule episode: follow-ups ask about
  # other people and items the note states (`episodes.decision`'s `follow_ups`).
  decision_requests: int = 1
  # The share of decision, told-rule and situation episodes with contrast distractors (at
  # least one, each of the other decision class than the requester's or the item's own
  # clause: `episodes.sample_situation`'s `contrast`), where only binding decides.
  decision_contrast: float = 0.0
  p_rule_fires: float = 0.5
  # The share of told-rule near misses (and rule-situation notes that are near misses) whose
  # weather differs from the rule's while the item matches it; the rest keep the weather and
  # miss on the item. None: every near-miss cell equally likely (rules naming one item then
  # miss on the weather in 5 of 16 cells), the streams of the documented runs.
  rule_weather_miss: float | None = None
  # The share of told-rule (and rule-situation) episodes whose rule is one for any item
  # ("if the weather is W , D ."), where only comparing the note's weather with the rule's
  # decides whether it fires. None: every pre-training rule equally likely (1 in 15 is for
  # any item), the streams of the documented runs.
  rule_any_item: float | None = None

  def probabilities(self) -> np.ndarray:
    weights = np.array([getattr(self, k) for k in KINDS], dtype=np.float64)
    if (weights < 0).any() or weights.sum() <= 0:
      raise ValueError(f"mixture weights must be >= 0 with a positive sum, got {weights}")
    return weights / weights.sum()


def rule_situation(world: World, rng: np.random.Generator, rule: policy.Rule, fires: bool,
                   num_distractors: int, contrast: bool = False,
                   weather_miss: float | None = None) -> policy.Situation:
  """A situation where `rule` fires, or a near miss (same weather or matching item).

  With `weather_miss`, a near miss differs from the rule in its weather (the item matching)
  with this probability and in its item otherwise, where the rule allows both.
  """
  cells = [(i, w) for i in lexicon.ITEMS for w in lexicon.WEATHERS
           if (w == rule.weather and rule.matches_item(i)) == fires
           and (fires or w == rule.weather or rule.matches_item(i))]
  if not fires and weather_miss is not None:
    by_weather = [(i, w) for i, w in cells if w != rule.weather]
    by_item = [(i, w) for i, w in cells if w == rule.weather]
    if by_weather and by_item:  # (A rule for any item misses only on the weather.)
      cells = by_weather if rng.random() < weather_miss else by_item
  return episodes.sample_situation(rng, people=world.people, cells=cells,
                                   templates=tuple(range(len(episodes.T.REQUEST))),
                                   num_distractors=num_distractors, contrast=contrast)


def sample_record(world: World, rng: np.random.Generator, kind: str, uid: str,
                  mixture: Mixture) -> Record:
  """One pre-training record of `kind`."""
  if kind == "bio":
    return episodes.bio(world, rng, world.people[int(rng.integers(len(world.people)))], uid)
  if kind == "qa":
    person = world.qa_train[int(rng.integers(len(world.qa_train)))]
    return episodes.qa(world, person, str(rng.choice(lexicon.ATTRIBUTES)), uid)
  if kind == "note":
    low, high = mixture.note_facts
    k = int(rng.integers(low, high + 1))
    # (No extra draws at the defaults: streams stay reproducible.)
    same = bool(mixture.note_same_attribute > 0 and rng.random() < mixture.note_same_attribute)
    questions = (int(rng.integers(1, min(k, mixture.note_questions) + 1))
                 if mixture.note_questions > 1 else 1)
    return episodes.note(world, rng, k, uid, questions, same_attribute=same)
  if kind == "counterfactual":
    person = world.qa_train[int(rng.integers(len(world.qa_train)))]
    return episodes.counterfactual_note(world, rng, person, uid,
                                        num_other=int(rng.integers(0, 3)))
  if kind == "items":
    return episodes.item_facts(rng, uid)
  # (No extra draw without contrast or with one request: streams stay reproducible.)
  contrast = bool(mixture.decision_contrast > 0 and rng.random() < mixture.decision_contrast)
  k = int(rng.integers(int(contrast), mixture.max_distractors + 1))
  follow_ups = (int(rng.integers(mixture.decision_requests))
                if mixture.decision_requests > 1 else 0)
  if kind in ("decision", "situation"):
    # Every person and grid cell: pre-training's R0 episodes cover the held-out cells too.
    # Situation questions have no request, so one template (its draw is the stream the
    # documented runs used).
    templates = (0,) if kind == "situation" else tuple(range(len(episodes.T.REQUEST)))
    situation = episodes.sample_situation(
        rng, people=world.people, cells=world.cells(held_out=False)
        + world.cells(held_out=True), templates=templates, num_distractors=k,
        contrast=contrast)
    if kind == "situation":
      return episodes.situation_questions(rng, situation, uid, num_questions=1 + follow_ups)
    return episodes.decision(rng, situation, uid, follow_ups=follow_ups)
  if kind in ("rule", "rule_situation"):
    rules = world.pretrain_rules
    if mixture.rule_any_item is not None:
      any_item = rng.random() < mixture.rule_any_item
      rules = tuple(r for r in rules if (r.spec is None) == any_item)
    rule = rules[int(rng.integers(len(rules)))]
    fires = bool(rng.random() < mixture.p_rule_fires)
    situation = rule_situation(world, rng, rule, fires, k, contrast, mixture.rule_weather_miss)
    if kind == "rule_situation":
      return episodes.situation_questions(rng, situation, uid, num_questions=1 + follow_ups,
                                          told_rule=rule)
    return episodes.decision(rng, situation, uid, told_rule=rule, follow_ups=follow_ups)
  raise ValueError(f"unknown record kind {kind!r}; expected one of {KINDS}")


def records(world: World, seed: int, mixture: Mixture) -> Iterator[Record]:
  """An endless stream of pre-training records, a pure function of (world, seed)."""
  rng = np.random.default_rng([seed, 7])
  p = mixture.probabilities()
  n = 0
  while True:
    kind = KINDS[int(rng.choice(len(KINDS), p=p))]
    yield sample_record(world, rng, kind, f"townworld-pre-{seed}-{n}", mixture)
    n += 1


def pack(stream: Iterator[Record], adapter, batch_size: int, seq_len: int,
         pad_id: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Packs tokenized records into (tokens_BxL int32, loss_mask_BxL float32,
  segments_BxL int32) batches.

  The mask marks the positions whose *next* token is trained on (shifted by one), so a
  step computes the loss of logits[:, t] against tokens[:, t + 1] where mask[:, t] is 1.
  `segments_BxL` numbers the records of a row 1, 2, ... (0 for the padding after them):
  with it, a step can keep attention within each record (`forward`'s `segment_ids_BxT`).
  """
  pending = None
  while True:
    tokens_BxL = np.full((batch_size, seq_len), pad_id, dtype=np.int32)
    mask_BxL = np.zeros((batch_size, seq_len), dtype=np.float32)
    segments_BxL = np.zeros((batch_size, seq_len), dtype=np.int32)
    for b in range(batch_size):
      t, segment = 0, 1
      while True:
        if pending is None:
          pending = tokenize_record(next(stream), adapter)
        n = len(pending.tokens)
        if n > seq_len:
          raise ValueError(f"record {pending.id!r} has {n} tokens, more than seq_len={seq_len}")
        if t + n > seq_len:
          break
        tokens_BxL[b, t:t + n] = pending.tokens
        mask_BxL[b, t:t + n - 1] = pending.decision_mask[1:]
        segments_BxL[b, t:t + n] = segment
        t, segment = t + n, segment + 1
        pending = None
    yield tokens_BxL, mask_BxL, segments_BxL
