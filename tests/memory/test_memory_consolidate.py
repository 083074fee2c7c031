"""Evicted experiences move from the episodic buffer into the memory graph."""

from __future__ import annotations

import pytest

from msr_jax.data.records import Message, Record
from msr_jax.memory.consolidate import consolidate
from msr_jax.memory.episodic import EpisodicBuffer
from msr_jax.memory.graph import MemoryGraph


def test_evicted_experiences_become_a_connected_chain(tmp_path):
  buf = EpisodicBuffer(capacity=2)
  people = ["alice", "bob", "alice", "carol", "bob"]
  last = None
  with MemoryGraph.open(tmp_path / "memory.sqlite") as graph:
    for step, person in enumerate(people):
      record = Record(id=f"r{step}", messages=(Message("user", f"{person} asks"),))
      evicted = buf.add(record, [person], step=10 * step)
      if evicted is not None:
        last = consolidate(graph, [evicted], after=last,
                           salience=lambda e: 1.0 + e.step / 10)[-1]
    # Five added, two still in the buffer: the oldest three were consolidated, in order.
    nodes = graph.nodes()
    assert [n.record.id for n in nodes] == ["r0", "r1", "r2"]
    assert [(n.created, n.salience) for n in nodes] == [(0.0, 1.0), (10.0, 2.0), (20.0, 3.0)]
    a, b, c = (n.id for n in nodes)
    assert graph.edges() == [(a, b, "temporal", 1.0), (a, c, "shared_entity", 1.0),
                             (b, c, "temporal", 1.0)]
    rest = consolidate(graph, buf.clear(), after=last)
    assert [graph.node(i).record.id for i in rest] == ["r3", "r4"]
    assert (b, rest[1], "shared_entity", 1.0) in graph.edges()  # bob


def test_add_node_after_a_missing_node_adds_nothing(tmp_path):
  with MemoryGraph.open(tmp_path / "memory.sqlite") as graph:
    with pytest.raises(KeyError, match="no node 3"):
      graph.add_node(Record(id="x", messages=()), after=3)
    assert graph.num_nodes() == 0
