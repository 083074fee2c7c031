"""Several processes writing one memory-graph file at once lose nothing and corrupt nothing."""

from __future__ import annotations

import itertools
import multiprocessing
import sqlite3

from msr_jax.data.records import Message, Record
from msr_jax.memory.graph import MemoryGraph

WORKERS = 4
NODES_PER_WORKER = 40


def _entities(worker: int, i: int) -> list[str]:
  return [f"person{(7 * worker + i) % 10}", f"item{i % 4}"]


def _writer(path: str, worker: int, hub_a: int, hub_b: int, barrier) -> None:
  with MemoryGraph.open(path) as g:
    barrier.wait()  # start writing together, so the writers really contend
    prev = None
    for i in range(NODES_PER_WORKER):
      record = Record(id=f"w{worker}-{i}", messages=(Message("user", f"worker {worker} {i}"),))
      node = g.add_node(record, _entities(worker, i), created=i, connect=True)
      if prev is not None:
        g.link_temporal(prev, node)
      # Every worker bumps the same edge: a lost update would show in its final weight.
      g.add_edge(hub_a, hub_b, "cooccurrence", 1.0)
      prev = node


def test_concurrent_writers_lose_nothing(tmp_path):
  path = tmp_path / "memory.sqlite"
  with MemoryGraph.open(path) as g:
    hub_a = g.add_node(Record(id="hub-a", messages=()))
    hub_b = g.add_node(Record(id="hub-b", messages=()))
  ctx = multiprocessing.get_context("spawn")
  barrier = ctx.Barrier(WORKERS)
  procs = [ctx.Process(target=_writer, args=(str(path), w, hub_a, hub_b, barrier))
           for w in range(WORKERS)]
  for p in procs:
    p.start()
  for p in procs:
    p.join(timeout=60)
  assert [p.exitcode for p in procs] == [0] * WORKERS

  conn = sqlite3.connect(path)
  assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
  assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
  conn.close()
  with MemoryGraph.open(path, check="full") as g:
    total = WORKERS * NODES_PER_WORKER
    assert g.num_nodes() == 2 + total
    assert g.num_edges("temporal") == WORKERS * (NODES_PER_WORKER - 1)
    assert g.edges()[0] == (hub_a, hub_b, "cooccurrence", float(total))
    nodes = [n for n in g.nodes() if n.id not in (hub_a, hub_b)]
    assert sorted(n.record.id for n in nodes) == sorted(
        f"w{w}-{i}" for w in range(WORKERS) for i in range(NODES_PER_WORKER))
    # Whichever of two nodes came second connected them, so every sharing pair has
    # exactly one edge, weighted by the number of shared entities.
    expected = {}
    for x, y in itertools.combinations(nodes, 2):
      shared = len(x.entities & y.entities)
      if shared:
        expected[(min(x.id, y.id), max(x.id, y.id))] = float(shared)
    got = {(s, d): w for s, d, t, w in g.edges() if t == "shared_entity"}
    assert got == expected
    # Temporal edges chain each worker's nodes in its own order.
    by_id = {n.id: n.record.id for n in nodes}
    for s, d, t, _ in g.edges():
      if t == "temporal":
        ws, i = by_id[s].split("-")
        assert by_id[d] == f"{ws}-{int(i) + 1}"


def _creator(path: str, worker: int, barrier) -> None:
  barrier.wait()  # all open the not-yet-existing file at once
  with MemoryGraph.open(path) as g:
    for i in range(5):
      g.add_node(Record(id=f"c{worker}-{i}", messages=()))


def test_concurrent_creation_of_a_new_file(tmp_path):
  path = tmp_path / "memory.sqlite"
  ctx = multiprocessing.get_context("spawn")
  barrier = ctx.Barrier(WORKERS)
  procs = [ctx.Process(target=_creator, args=(str(path), w, barrier)) for w in range(WORKERS)]
  for p in procs:
    p.start()
  for p in procs:
    p.join(timeout=60)
  assert [p.exitcode for p in procs] == [0] * WORKERS
  with MemoryGraph.open(path, check="full") as g:
    assert g.num_nodes() == 5 * WORKERS
  assert [p.name for p in tmp_path.iterdir()] == ["memory.sqlite"]  # no leftover temp files
