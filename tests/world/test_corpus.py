"""Tests of the pre-training mixture and packing."""

from __future__ import annotations

import itertools

import numpy as np

from msr_jax.data.tokenize import tokenize_record
from msr_jax.world import corpus, tokenizer
from msr_jax.world.world import World

WORLD = World.build(0)


def test_stream_is_deterministic_and_covers_every_kind():
  take = lambda: list(itertools.islice(corpus.records(WORLD, 5, corpus.Mixture()), 400))
  first = take()
  assert first == take()
  kinds = {r.meta["kind"] for r in first}
  assert kinds == {"bio", "qa", "note", "counterfactual", "items", "decision"}
  rules = [r for r in first if r.meta.get("rule")]
  assert rules and all(r.messages[0].role == "system" for r in rules)
  assert {r.meta["rule"] for r in rules} <= {rule.text() for rule in WORLD.pretrain_rules}
  qa_people = {r.meta["person"] for r in first if r.meta["kind"] == "qa"}
  assert qa_people <= set(WORLD.qa_train)


def test_pack_masks_exactly_the_next_token_of_decisions():
  tok = tokenizer.build()
  adapter = tokenizer.adapter(tok)
  stream = corpus.records(WORLD, 0, corpus.Mixture())
  tokens_BxL, mask_BxL, segments_BxL = next(
      corpus.pack(stream, adapter, 4, 128, tok.token_to_id("<pad>")))
  assert tokens_BxL.shape == mask_BxL.shape == segments_BxL.shape == (4, 128)
  eot, bos = tok.token_to_id("<eot>"), tok.token_to_id("<bos>")
  # Every row starts a record; every trained target ends in <eot> before the next <bos>.
  assert (tokens_BxL[:, 0] == bos).all()
  targets = tokens_BxL[:, 1:][mask_BxL[:, :-1] > 0]
  assert (targets == eot).sum() > 0 and (targets != tok.token_to_id("<pad>")).all()
  assert (np.diff(np.concatenate([[0], (tokens_BxL == bos).sum(1)])) != 0).any()
  # Segments number the records of a row 1, 2, ... from each <bos>; padding is 0.
  is_bos_BxL = tokens_BxL == bos
  np.testing.assert_array_equal(
      np.where(tokens_BxL == tok.token_to_id("<pad>"), 0, np.cumsum(is_bos_BxL, axis=1)),
      segments_BxL)


def test_follow_up_requests_fit_the_pretraining_rows():
  # Three requests per episode (the shipped recipe's most) at the most distractors must
  # fit a 128-token row, or packing would raise.
  tok = tokenizer.build()
  adapter = tokenizer.adapter(tok)
  mixture = corpus.Mixture(bio=0, qa=0, note=0, counterfactual=0, items=0, decision=1,
                           rule=1, decision_requests=3)
  records = list(itertools.islice(corpus.records(WORLD, 2, mixture), 600))
  turns = [len(r.decision_indices()) for r in records]
  assert max(turns) == 3 and min(turns) == 1
  assert max(len(tokenize_record(r, adapter).tokens) for r in records) <= 128
