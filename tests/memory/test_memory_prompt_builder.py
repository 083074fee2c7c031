"""The prompt builder: budget, ranking, each relevance term, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from msr_jax.data.records import Message, Record
from msr_jax.memory.episodic import EpisodicBuffer, Experience
from msr_jax.memory.prompt_builder import (RelevanceWeights, build_memory_context,
                                           relevance_scores)


def _words(text: str) -> int:
  return len(text.split())


def _chars_over_4(text: str) -> int:
  # Not additive over concatenation: the budget must be checked on the whole text.
  return math.ceil(len(text) / 4)


def _exp(name: str, entities=(), step: int = 0, words: int = 3, embedding_D=None):
  content = " ".join([name] * words)
  record = Record(id=name, messages=(Message("user", content),))
  return Experience(record=record, entities=frozenset(entities), step=step,
                    embedding_D=None if embedding_D is None else np.asarray(embedding_D, float))


def _random_buffer(seed: int, n: int = 30) -> list[Experience]:
  rng = np.random.default_rng(seed)
  pool = [f"e{k}" for k in range(8)]
  buf = EpisodicBuffer(capacity=n)
  for i in range(n):
    ents = rng.choice(pool, size=rng.integers(0, 4), replace=False).tolist()
    words = " ".join(f"w{i}" for _ in range(int(rng.integers(1, 12))))
    buf.add(Record(id=f"r{i}", messages=(Message("user", words), Message("assistant", "ok"))),
            entities=ents, step=i)
  return list(buf)


@pytest.mark.parametrize("count_tokens", [_words, _chars_over_4])
def test_budget_is_never_exceeded(count_tokens):
  experiences = _random_buffer(seed=0)
  for budget in range(0, 200, 3):
    ctx = build_memory_context(experiences, count_tokens=count_tokens, budget=budget,
                               query_entities={"e1", "e2"})
    assert ctx.num_tokens == count_tokens(ctx.text) if ctx.experiences else ctx.text == ""
    assert ctx.num_tokens <= budget


def test_most_relevant_first_and_all_fit_in_score_order():
  experiences = _random_buffer(seed=1)
  query = {"e0", "e3"}
  scores_N = relevance_scores(experiences, query)
  ctx = build_memory_context(experiences, count_tokens=_words, budget=10_000,
                             query_entities=query)
  assert len(ctx.experiences) == len(experiences)
  assert list(ctx.scores) == sorted(ctx.scores, reverse=True)
  assert ctx.experiences[0] is experiences[int(np.argmax(scores_N))]
  # The rendered block lists them in the same order.
  positions = [ctx.text.index(f"user: {e.record.messages[0].content}\n")
               for e in ctx.experiences]
  assert positions == sorted(positions)
  assert ctx.text.startswith("memory:\n")


def test_greedy_skips_what_does_not_fit_and_takes_a_smaller_one():
  big = _exp("big", entities={"a"}, step=0, words=50)
  small = _exp("small", entities=(), step=0, words=2)
  ctx = build_memory_context([big, small], count_tokens=_words, budget=10,
                             query_entities={"a"})
  assert [e.record.id for e in ctx.experiences] == ["small"]
  assert ctx.text == "memory:\nuser: small small"


def test_budget_smaller_than_header_gives_nothing():
  ctx = build_memory_context([_exp("a")], count_tokens=_words, budget=1)
  assert ctx.experiences == () and ctx.text == "" and ctx.as_messages() == ()
  ctx = build_memory_context([_exp("a")], count_tokens=_words, budget=100)
  assert ctx.as_messages() == (Message("system", "memory:\nuser: a a a"),)


def test_entity_weight_ranks_shared_entities_first():
  old_shared = _exp("old", entities={"alice", "kite"}, step=0)
  new_unrelated = _exp("new", entities={"bob"}, step=10)
  both = [old_shared, new_unrelated]
  def ids(weights):
    ctx = build_memory_context(both, count_tokens=_words, budget=100,
                               query_entities={"alice", "kite"}, weights=weights)
    return [e.record.id for e in ctx.experiences]
  assert ids(RelevanceWeights(entity=0.0, recency=1.0)) == ["new", "old"]
  assert ids(RelevanceWeights(entity=1.0, recency=0.0)) == ["old", "new"]
  # Recency of "old" is 0.5 ** (10 / 16) = 0.648; entity similarity is 1 vs 0.
  assert ids(RelevanceWeights(entity=0.2, recency=1.0)) == ["new", "old"]
  assert ids(RelevanceWeights(entity=0.5, recency=1.0)) == ["old", "new"]


def test_jaccard_and_count_measures_differ_as_defined():
  broad = _exp("broad", entities={"a", "b", "c", "d", "e", "f"})  # count 2, Jaccard 2/6
  narrow = _exp("narrow", entities={"a"})  # count 1, Jaccard 1/2
  query = {"a", "b"}
  for measure, expected in (("jaccard", [2 / 6, 1 / 2]), ("count", [2.0, 1.0])):
    w = RelevanceWeights(entity=1.0, recency=0.0, entity_measure=measure)
    np.testing.assert_allclose(relevance_scores([broad, narrow], query, weights=w), expected)


def test_recency_decays_by_half_life():
  exps = [_exp("a", step=0), _exp("b", step=8), _exp("c", step=16)]
  w = RelevanceWeights(entity=0.0, recency=2.0, half_life=8.0)
  np.testing.assert_allclose(relevance_scores(exps, weights=w), [0.5, 1.0, 2.0])
  np.testing.assert_allclose(relevance_scores(exps, weights=w, now=24), [0.25, 0.5, 1.0])


def _toy_embed(texts):
  # A fixed embedding: texts about "kite" point one way, everything else the other way.
  return np.array([[1.0, 0.0] if "kite" in t else [0.0, 1.0] for t in texts])


def test_embedding_similarity_changes_the_order_when_enabled():
  kite = Experience(Record("k", (Message("user", "the kite flew"),)), frozenset(), step=0)
  other = Experience(Record("o", (Message("user", "rain again"),)), frozenset(), step=5)
  def ids(weights, embed):
    ctx = build_memory_context([kite, other], count_tokens=_words, budget=100,
                               weights=weights, query_text="where is my kite", embed=embed)
    return [e.record.id for e in ctx.experiences]
  def must_not_be_called(texts):
    raise AssertionError("embed called although the embedding weight is 0")
  assert ids(RelevanceWeights(embedding=0.0), must_not_be_called) == ["o", "k"]
  assert ids(RelevanceWeights(embedding=1.0), _toy_embed) == ["k", "o"]


def test_precomputed_embeddings_are_used_and_shapes_checked():
  calls = []
  def embed(texts):
    calls.append(list(texts))
    return np.ones((len(texts), 2))
  a = _exp("a", embedding_D=[1.0, 0.0])
  b = _exp("b")
  w = RelevanceWeights(entity=0.0, recency=0.0, embedding=1.0)
  scores = relevance_scores([a, b], weights=w, query_text="q", embed=embed)
  assert calls == [["q", "user: b b b"]]
  np.testing.assert_allclose(scores, [1 / math.sqrt(2), 1.0])
  scores = relevance_scores([a], weights=w, query_embedding_D=np.array([0.0, 3.0]))
  np.testing.assert_allclose(scores, [0.0])
  with pytest.raises(ValueError, match="expected \\(3, D\\)"):
    relevance_scores([_exp("x"), _exp("y")], weights=w, query_text="q",
                     embed=lambda t: np.ones((1, 2)))
  with pytest.raises(ValueError, match="no embed function"):
    relevance_scores([_exp("x")], weights=w, query_text="q")


def test_ties_break_by_newer_step_then_later_position():
  exps = [_exp("a", step=1), _exp("b", step=2), _exp("c", step=2)]
  w = RelevanceWeights(entity=0.0, recency=0.0)  # every score is 0
  ctx = build_memory_context(exps, count_tokens=_words, budget=100, weights=w)
  assert [e.record.id for e in ctx.experiences] == ["c", "b", "a"]
  again = build_memory_context(exps, count_tokens=_words, budget=100, weights=w)
  assert again == ctx


def test_max_records_and_bad_arguments():
  exps = _random_buffer(seed=2, n=10)
  ctx = build_memory_context(exps, count_tokens=_words, budget=1000, max_records=3)
  assert len(ctx.experiences) == 3
  with pytest.raises(ValueError, match="budget"):
    build_memory_context(exps, count_tokens=_words, budget=-1)
  with pytest.raises(ValueError, match="half_life"):
    RelevanceWeights(half_life=0.0)
  with pytest.raises(ValueError, match="entity_measure"):
    RelevanceWeights(entity_measure="cosine")
  with pytest.raises(TypeError, match="single string"):
    relevance_scores(exps, "e1")
