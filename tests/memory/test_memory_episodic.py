"""The episodic buffer: bounded, oldest evicted first, steps monotone."""

from __future__ import annotations

import numpy as np
import pytest

from msr_jax.data.records import Message, Record
from msr_jax.memory.episodic import EpisodicBuffer


def _record(i: int) -> Record:
  return Record(id=f"r{i}", messages=(Message("user", f"question {i}"),
                                      Message("assistant", f"answer {i}")))


def test_eviction_returns_oldest_in_order():
  buf = EpisodicBuffer(capacity=3)
  evicted = [buf.add(_record(i), entities={f"e{i}"}) for i in range(5)]
  assert evicted[:3] == [None, None, None]
  assert [e.record.id for e in evicted[3:]] == ["r0", "r1"]
  assert [e.record.id for e in buf] == ["r2", "r3", "r4"]
  assert [e.step for e in buf] == [2, 3, 4]
  assert len(buf) == 3 and buf.latest_step == 4


def test_explicit_steps_and_default_continuation():
  buf = EpisodicBuffer(capacity=4)
  buf.add(_record(0), step=10)
  buf.add(_record(1), step=10)  # equal steps are allowed
  buf.add(_record(2))
  assert [e.step for e in buf] == [10, 10, 11]
  with pytest.raises(ValueError, match="older than the latest step 11"):
    buf.add(_record(3), step=5)


def test_entities_are_a_frozenset_and_validated():
  buf = EpisodicBuffer(capacity=2)
  buf.add(_record(0), entities=["alice", "kite", "alice"])
  assert buf.experiences()[0].entities == frozenset({"alice", "kite"})
  with pytest.raises(TypeError, match="not a single string"):
    buf.add(_record(1), entities="alice")
  with pytest.raises(ValueError, match="non-empty string"):
    buf.add(_record(1), entities=["alice", ""])


def test_embedding_is_validated_and_kept():
  buf = EpisodicBuffer(capacity=2)
  buf.add(_record(0), embedding_D=[1.0, 2.0])
  np.testing.assert_array_equal(buf.experiences()[0].embedding_D, [1.0, 2.0])
  with pytest.raises(ValueError, match="finite 1-D"):
    buf.add(_record(1), embedding_D=np.ones((2, 2)))


def test_capacity_must_be_positive_and_clear_returns_contents():
  with pytest.raises(ValueError, match="capacity"):
    EpisodicBuffer(capacity=0)
  buf = EpisodicBuffer(capacity=2)
  buf.add(_record(0))
  buf.add(_record(1))
  assert [e.record.id for e in buf.clear()] == ["r0", "r1"]
  assert len(buf) == 0 and buf.latest_step is None
