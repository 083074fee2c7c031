"""The memory graph API and its random walks."""

from __future__ import annotations

import numpy as np
import pytest

from msr_jax.data.records import Message, Record
from msr_jax.memory import walks
from msr_jax.memory.graph import MemoryGraph, MemoryGraphError, Neighbor


def _record(i) -> Record:
  return Record(id=f"r{i}", messages=(Message("user", f"question {i}"),
                                      Message("assistant", f"answer {i}")), source="agent_log")


@pytest.fixture
def graph(tmp_path):
  with MemoryGraph.open(tmp_path / "memory.sqlite") as g:
    yield g


def test_node_round_trip_and_counters(graph):
  a = graph.add_node(_record(0), ["alice", "kite"], kind="dream", salience=2.5, created=7)
  node = graph.node(a)
  assert node.record == _record(0) and node.entities == frozenset({"alice", "kite"})
  assert (node.kind, node.created, node.salience, node.times_replayed) == ("dream", 7.0, 2.5, 0)
  b = graph.add_node(_record(1))
  graph.mark_replayed([a, a, b])  # each distinct node once per call
  graph.mark_replayed([a])
  assert [n.times_replayed for n in graph.nodes()] == [2, 1]
  assert [n.id for n in graph.nodes(kind="dream")] == [a]
  graph.set_salience(b, 0.0)
  assert graph.node(b).salience == 0.0
  with pytest.raises(KeyError, match="no node 99"):
    graph.node(99)


def test_records_that_could_not_be_read_back_are_refused(graph):
  with pytest.raises(ValueError, match="messages\\[0\\].role"):
    graph.add_node(Record(id="bad", messages=(Message("robot", "beep"),)))
  with pytest.raises(ValueError, match="not JSON-serialisable"):
    graph.add_node(Record(id="bad", messages=(), meta={"when": object()}))
  assert graph.num_nodes() == 0


def test_edges_accumulate_and_symmetric_types_are_canonical(graph):
  a, b = graph.add_node(_record(0)), graph.add_node(_record(1))
  assert graph.add_edge(b, a, "cooccurrence", 0.5) == 0.5
  assert graph.add_edge(a, b, "cooccurrence", 2.0) == 2.5
  assert graph.link_temporal(b, a) == 1.0  # temporal keeps its direction
  assert graph.edges() == [(a, b, "cooccurrence", 2.5), (b, a, "temporal", 1.0)]
  assert graph.neighbors(a) == [Neighbor(b, "cooccurrence", 2.5), Neighbor(b, "temporal", 1.0)]
  assert graph.num_edges() == 2 and graph.num_edges("temporal") == 1


def test_bad_edges_are_rejected_and_nothing_is_half_written(graph):
  a, b = graph.add_node(_record(0)), graph.add_node(_record(1))
  with pytest.raises(ValueError, match="edge type"):
    graph.add_edge(a, b, "friendship")
  with pytest.raises(ValueError, match="two different nodes"):
    graph.add_edge(a, a, "temporal")
  with pytest.raises(ValueError, match="> 0"):
    graph.add_edge(a, b, "temporal", 0.0)
  with pytest.raises(KeyError, match="no node 42"):
    graph.add_edges([(a, b, "temporal", 1.0), (a, 42, "temporal", 1.0)])
  assert graph.num_edges() == 0
  with pytest.raises(KeyError, match="no node 42"):
    graph.mark_replayed([a, 42])
  assert graph.node(a).times_replayed == 0


def test_connect_by_entities_weights_by_shared_count_and_is_idempotent(graph):
  a = graph.add_node(_record(0), ["alice", "kite", "park"])
  b = graph.add_node(_record(1), ["alice", "kite"])
  c = graph.add_node(_record(2), ["park"])
  d = graph.add_node(_record(3), ["bob"])
  assert graph.connect_by_entities(a) == 2
  assert graph.connect_by_entities(a) == 2
  assert graph.edges() == [(a, b, "shared_entity", 2.0), (a, c, "shared_entity", 1.0)]
  e = graph.add_node(_record(4), ["bob", "park"], connect=True)
  assert graph.neighbors(e) == [Neighbor(a, "shared_entity", 1.0),
                                Neighbor(c, "shared_entity", 1.0),
                                Neighbor(d, "shared_entity", 1.0)]


def test_transition_probabilities_follow_weight_times_salience(graph):
  a = graph.add_node(_record(0))
  b = graph.add_node(_record(1), salience=1.0)
  c = graph.add_node(_record(2), salience=2.0)
  z = graph.add_node(_record(3), salience=0.0)
  graph.add_edges([(a, b, "shared_entity", 2.0), (b, a, "cooccurrence", 1.0),
                   (a, c, "temporal", 1.0), (z, a, "temporal", 5.0)])
  # s(b) = (2 + 1) * 1 = 3, s(c) = 1 * 2 = 2, s(z) = 5 * 0 = 0.
  rng = np.random.default_rng(0)
  seconds = [graph.random_walk(a, 2, rng=rng)[1] for _ in range(4000)]
  assert z not in seconds
  assert abs(seconds.count(b) / 4000 - 0.6) < 0.03
  rng = np.random.default_rng(0)
  seconds = [graph.random_walk(a, 2, rng=rng, type_weights={"cooccurrence": 0.0})[1]
             for _ in range(4000)]
  assert abs(seconds.count(b) / 4000 - 0.5) < 0.03  # s(b) = 2 = s(c)


def test_pure_transition_probabilities_and_pick():
  ids, probs = walks.transition_probabilities([(1, 3.0), (2, 1.0), (5, 0.0)], prev=None)
  assert ids.tolist() == [1, 2] and probs.tolist() == [0.75, 0.25]
  ids, probs = walks.transition_probabilities([(1, 3.0), (2, 1.0)], prev=1)
  assert ids.tolist() == [2] and probs.tolist() == [1.0]
  ids, _ = walks.transition_probabilities([(1, 3.0)], prev=1)  # unavoidable revisit
  assert ids.tolist() == [1]
  weights = np.array([0.0, 1.0, 0.0, 3.0])
  assert [walks.pick(weights, u) for u in (0.0, 0.249, 0.25, 0.999)] == [1, 1, 3, 3]


def _path_graph(graph, n):
  ids = [graph.add_node(_record(i)) for i in range(n)]
  graph.add_edges([(x, y, "temporal", 1.0) for x, y in zip(ids, ids[1:])])
  return ids


def test_no_immediate_revisits_where_possible(graph):
  ids = _path_graph(graph, 6)
  graph.add_edge(ids[-1], ids[0], "cooccurrence")  # a 6-cycle
  walk = graph.random_walk(ids[0], 30, rng=3)
  assert all(walk[i] != walk[i + 2] for i in range(len(walk) - 2))
  assert all(walk[i] != walk[i + 1] for i in range(len(walk) - 1))


def test_revisits_when_unavoidable_and_isolated_start(tmp_path):
  with MemoryGraph.open(tmp_path / "g.sqlite") as g:
    a, b = _path_graph(g, 2)
    assert g.random_walk(a, 5, rng=0) == [a, b, a, b, a]
    lonely = g.add_node(_record(9))
    assert g.random_walk(lonely, 5, rng=0) == [lonely]


def test_restart_returns_to_the_start(graph):
  ids = _path_graph(graph, 40)
  assert graph.random_walk(ids[0], 40, restart_prob=0.0, rng=1) == ids
  walk = graph.random_walk(ids[0], 400, restart_prob=0.5, rng=1)
  # Without restarts the walk could only come back to the start from ids[1] after
  # reaching the end; with them it jumps back from deep nodes.
  jumps = [walk[i - 1] for i in range(1, len(walk)) if walk[i] == ids[0]]
  assert any(j not in (ids[0], ids[1]) for j in jumps)
  assert 0.2 < walk.count(ids[0]) / len(walk) < 0.5


def test_walks_are_seeded(graph):
  ids = [graph.add_node(_record(i), [f"e{i % 4}", f"f{i % 3}"], connect=True)
         for i in range(20)]
  assert graph.random_walk(ids[0], 10, 0.1, rng=5) == graph.random_walk(ids[0], 10, 0.1, rng=5)
  assert graph.sample_walks(5, 6, seed=7) == graph.sample_walks(5, 6, seed=7)
  assert graph.sample_walks(5, 6, seed=7) != graph.sample_walks(5, 6, seed=8)
  with pytest.raises(ValueError, match="restart_prob"):
    graph.random_walk(ids[0], 3, restart_prob=1.0)
  with pytest.raises(ValueError, match="length"):
    graph.random_walk(ids[0], 0)


def test_sample_walks_start_by_salience(graph):
  high = graph.add_node(_record(0), salience=3.0)
  low = graph.add_node(_record(1), salience=1.0)
  never = graph.add_node(_record(2), salience=0.0)
  starts = [w[0] for w in graph.sample_walks(4000, 1, seed=0)]
  assert never not in starts
  assert abs(starts.count(high) / 4000 - 0.75) < 0.03
  assert starts.count(low) + starts.count(high) == 4000
  graph.set_salience(high, 0.0)
  graph.set_salience(low, 0.0)
  with pytest.raises(ValueError, match="positive salience"):
    graph.sample_walks(1, 3)


def test_closed_graph_raises(tmp_path):
  g = MemoryGraph.open(tmp_path / "g.sqlite")
  g.close()
  g.close()  # closing twice is harmless
  with pytest.raises(MemoryGraphError, match="closed"):
    g.num_nodes()
