"""The memory graph (slow store): records as nodes, typed weighted edges, in SQLite.

Nodes hold a conversation record (its `to_json()` text), the entities it mentions, a
creation time, a salience (how much it deserves replay; >= 0) and how often it was
replayed. Edges are typed ("shared_entity", "temporal", "cooccurrence") with a positive
weight; (src, dst, type) is unique and `add_edge` accumulates weight. "shared_entity" and
"cooccurrence" are undirected (stored once with src < dst); "temporal" runs from the
earlier to the later node. Walks treat every edge as undirected (see `walks.py` for the
transition formula). The file format is in `graph_store.py`.

Every multi-row write is one `BEGIN IMMEDIATE` transaction, so concurrent processes
writing the same file serialise (each waits up to `busy_timeout_s`) and a failure leaves
nothing half-written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np

from msr_jax.data.records import Record
from msr_jax.data.validate import first_bad_text
from msr_jax.memory import walks
from msr_jax.memory.graph_store import (EDGE_TYPES, SYMMETRIC_EDGE_TYPES, MemoryGraphError,
                                        open_connection, sqlite_errors)
from msr_jax.memory.record_json import record_from_json

__all__ = ["MemoryGraph", "MemoryGraphError", "Node", "Neighbor", "EDGE_TYPES"]


@dataclasses.dataclass(frozen=True)
class Node:
  id: int
  kind: str
  record: Record
  entities: frozenset[str]
  created: float
  salience: float
  times_replayed: int


@dataclasses.dataclass(frozen=True)
class Neighbor:
  """One edge seen from a node: the node at its other end, its type and weight."""
  node_id: int
  type: str
  weight: float


def _check_weight(name: str, value: float, positive: bool) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
    raise TypeError(f"{name} must be a number, got {value!r}")
  value = float(value)
  if not math.isfinite(value) or value < 0 or (positive and value == 0):
    raise ValueError(f"{name} must be finite and {'> 0' if positive else '>= 0'}, got {value}")
  return value


class MemoryGraph:
  """A memory graph stored in one SQLite file. Use `MemoryGraph.open(path)`."""

  def __init__(self, path: Path, conn: sqlite3.Connection):
    self._path, self._conn = path, conn

  @classmethod
  def open(cls, path: str | os.PathLike, busy_timeout_s: float = 30.0,
           check: str = "quick") -> "MemoryGraph":
    """Opens the graph at `path`, creating an empty one if no file exists there.

    Raises `MemoryGraphError` (naming the file) if the file is damaged or is not a memory
    graph; such a file is left untouched. `check` is as in `graph_store.open_connection`.
    """
    return cls(*open_connection(path, busy_timeout_s=busy_timeout_s, check=check))

  @property
  def path(self) -> Path:
    return self._path

  def close(self) -> None:
    if self._conn is not None:
      with sqlite_errors(self._path, "closing"):
        self._conn.close()
      self._conn = None

  def __enter__(self) -> "MemoryGraph":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  # -- plumbing -------------------------------------------------------------------------

  def _db(self) -> sqlite3.Connection:
    if self._conn is None:
      raise MemoryGraphError(f"{self._path}: the memory graph is closed")
    return self._conn

  @contextlib.contextmanager
  def _transaction(self, what: str, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """One transaction: IMMEDIATE (takes the write lock up front) or DEFERRED (a snapshot
    for reads). Rolls back on any error; sqlite3 errors become `MemoryGraphError`."""
    conn = self._db()
    with sqlite_errors(self._path, what):
      conn.execute(f"BEGIN {mode}")
      try:
        yield conn
      except BaseException:
        if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
          conn.execute("ROLLBACK")
        raise
      conn.execute("COMMIT")

  def _require_nodes(self, conn: sqlite3.Connection, node_ids: Iterable[int]) -> None:
    for node_id in node_ids:
      if conn.execute("SELECT 1 FROM nodes WHERE id = ?", (int(node_id),)).fetchone() is None:
        raise KeyError(f"{self._path}: no node {node_id}")

  # -- writes ---------------------------------------------------------------------------

  def add_node(self, record: Record, entities: Iterable[str] = (), *, kind: str = "experience",
               salience: float = 1.0, created: float | None = None,
               connect: bool = False, after: int | None = None) -> int:
    """Adds a node and returns its id.

    Args:
      record: the record it remembers.
      entities: the entities it mentions (exact strings).
      kind: a free label ("experience", "dream", ...).
      salience: >= 0; walks start at and move to a node in proportion to it.
      created: when it happened (a step or a Unix time); default `time.time()`.
      connect: also add its shared-entity edges (`connect_by_entities`) in the same
        transaction.
      after: also add the temporal edge `after` -> new node in the same transaction.
    """
    if not isinstance(record, Record):
      raise TypeError(f"record must be a Record, got {type(record).__name__}")
    if isinstance(entities, str):
      raise TypeError(f"entities must be an iterable of strings, not the string {entities!r}")
    entity_set = sorted(set(entities))
    if not all(isinstance(e, str) and e for e in entity_set):
      raise ValueError(f"every entity must be a non-empty string, got {entity_set}")
    where = f"{self._path}: add_node(record {record.id!r})"
    for field, value in (("entities", entity_set), ("kind", kind)):
      if (bad := first_bad_text(value, field)) is not None:
        raise MemoryGraphError(f"{where}: {bad}")
    salience = _check_weight("salience", salience, positive=False)
    created = time.time() if created is None else float(created)
    if not math.isfinite(created):
      raise ValueError(f"created must be finite, got {created}")
    # Refuse now what could not be read back later.
    obj = record.to_json()
    try:
      record_from_json(obj, where=where)
    except ValueError as e:  # SQLite could not store it, or it could not be read back
      raise MemoryGraphError(str(e)) from None
    try:
      text = json.dumps(obj, ensure_ascii=False, sort_keys=True)
    except TypeError as e:
      raise ValueError(f"add_node(record {record.id!r}): not JSON-serialisable: {e}") from e
    with self._transaction("add_node") as conn:
      if after is not None:
        self._require_nodes(conn, [after])
      node_id = conn.execute(
          "INSERT INTO nodes (kind, record, created, salience) VALUES (?, ?, ?, ?)",
          (str(kind), text, created, salience)).lastrowid
      conn.executemany("INSERT INTO node_entities (node_id, entity) VALUES (?, ?)",
                       [(node_id, e) for e in entity_set])
      if connect:
        self._connect_by_entities(conn, node_id)
      if after is not None:
        conn.execute("INSERT INTO edges (src, dst, type, weight) VALUES (?, ?, 'temporal', 1.0)",
                     (int(after), node_id))
    return node_id

  def add_edge(self, src: int, dst: int, type: str, weight: float = 1.0) -> float:
    """Adds `weight` to the (src, dst, type) edge, creating it; returns its new weight."""
    return self.add_edges([(src, dst, type, weight)])[0]

  def add_edges(self, edges: Iterable[tuple[int, int, str, float]]) -> list[float]:
    """`add_edge` for many (src, dst, type, weight) edges in one transaction."""
    rows = []
    for src, dst, type_, weight in edges:
      if type_ not in EDGE_TYPES:
        raise ValueError(f"edge type must be one of {EDGE_TYPES}, got {type_!r}")
      src, dst = int(src), int(dst)
      if src == dst:
        raise ValueError(f"an edge needs two different nodes, got {src} -> {dst}")
      if type_ in SYMMETRIC_EDGE_TYPES and src > dst:
        src, dst = dst, src
      rows.append((src, dst, type_, _check_weight("edge weight", weight, positive=True)))
    out = []
    with self._transaction("add_edges") as conn:
      self._require_nodes(conn, sorted({n for r in rows for n in r[:2]}))
      for row in rows:
        out.append(conn.execute(
            "INSERT INTO edges (src, dst, type, weight) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (src, dst, type) DO UPDATE SET weight = weight + excluded.weight "
            "RETURNING weight", row).fetchone()[0])
    return out

  def link_temporal(self, prev: int, next: int, weight: float = 1.0) -> float:
    """Adds the temporal edge prev -> next (prev happened first)."""
    return self.add_edge(prev, next, "temporal", weight)

  def _connect_by_entities(self, conn: sqlite3.Connection, node_id: int) -> int:
    shared = conn.execute(
        "SELECT other.node_id, COUNT(*) FROM node_entities AS mine "
        "JOIN node_entities AS other ON other.entity = mine.entity "
        "AND other.node_id <> mine.node_id WHERE mine.node_id = ? "
        "GROUP BY other.node_id ORDER BY other.node_id", (node_id,)).fetchall()
    # The weight is a function of the two entity sets, so it is set, not accumulated:
    # calling this twice changes nothing.
    conn.executemany(
        "INSERT INTO edges (src, dst, type, weight) VALUES (?, ?, 'shared_entity', ?) "
        "ON CONFLICT (src, dst, type) DO UPDATE SET weight = excluded.weight",
        [(min(node_id, o), max(node_id, o), float(n)) for o, n in shared])
    return len(shared)

  def connect_by_entities(self, node_id: int) -> int:
    """Sets a shared-entity edge, weight = number of shared entities, between `node_id` and
    every other node sharing an entity with it; returns how many edges it set."""
    with self._transaction("connect_by_entities") as conn:
      self._require_nodes(conn, [node_id])
      return self._connect_by_entities(conn, int(node_id))

  def mark_replayed(self, node_ids: Iterable[int]) -> None:
    """Adds 1 to `times_replayed` of each distinct node in `node_ids`."""
    ids = sorted({int(n) for n in node_ids})
    with self._transaction("mark_replayed") as conn:
      self._require_nodes(conn, ids)
      conn.executemany("UPDATE nodes SET times_replayed = times_replayed + 1 WHERE id = ?",
                       [(n,) for n in ids])

  def set_salience(self, node_id: int, salience: float) -> None:
    salience = _check_weight("salience", salience, positive=False)
    with self._transaction("set_salience") as conn:
      self._require_nodes(conn, [node_id])
      conn.execute("UPDATE nodes SET salience = ? WHERE id = ?", (salience, int(node_id)))

  # -- reads ----------------------------------------------------------------------------

  def _node_from_row(self, conn: sqlite3.Connection, row) -> Node:
    node_id, kind, text, created, salience, replayed = row
    where = f"{self._path}: node {node_id}"
    try:
      record = record_from_json(json.loads(text), where=where)
    except (json.JSONDecodeError, RecursionError) as e:
      raise MemoryGraphError(f"{where}: record is not valid JSON: {e}") from None
    except ValueError as e:
      raise MemoryGraphError(str(e)) from e
    entities = frozenset(r[0] for r in conn.execute(
        "SELECT entity FROM node_entities WHERE node_id = ?", (node_id,)))
    return Node(id=node_id, kind=kind, record=record, entities=entities, created=created,
                salience=salience, times_replayed=replayed)

  _NODE_COLUMNS = "id, kind, record, created, salience, times_replayed"

  def node(self, node_id: int) -> Node:
    with self._transaction("node", "DEFERRED") as conn:
      row = conn.execute(f"SELECT {self._NODE_COLUMNS} FROM nodes WHERE id = ?",
                         (int(node_id),)).fetchone()
      if row is None:
        raise KeyError(f"{self._path}: no node {node_id}")
      return self._node_from_row(conn, row)

  def nodes(self, kind: str | None = None) -> list[Node]:
    """All nodes (of one kind if given), by id."""
    with self._transaction("nodes", "DEFERRED") as conn:
      rows = conn.execute(
          f"SELECT {self._NODE_COLUMNS} FROM nodes WHERE ?1 IS NULL OR kind = ?1 ORDER BY id",
          (kind,)).fetchall()
      return [self._node_from_row(conn, r) for r in rows]

  def num_nodes(self) -> int:
    with sqlite_errors(self._path, "num_nodes"):
      return self._db().execute("SELECT COUNT(*) FROM nodes").fetchone()[0]

  def num_edges(self, type: str | None = None) -> int:
    with sqlite_errors(self._path, "num_edges"):
      return self._db().execute("SELECT COUNT(*) FROM edges WHERE ?1 IS NULL OR type = ?1",
                                (type,)).fetchone()[0]

  def edges(self) -> list[tuple[int, int, str, float]]:
    """Every edge as (src, dst, type, weight), sorted."""
    with sqlite_errors(self._path, "edges"):
      return [tuple(r) for r in self._db().execute(
          "SELECT src, dst, type, weight FROM edges ORDER BY src, dst, type")]

  def neighbors(self, node_id: int) -> list[Neighbor]:
    """Every edge touching `node_id`, either direction, sorted by (other node, type)."""
    with sqlite_errors(self._path, "neighbors"):
      rows = self._db().execute(
          "SELECT dst, type, weight FROM edges WHERE src = ?1 UNION ALL "
          "SELECT src, type, weight FROM edges WHERE dst = ?1 ORDER BY 1, 2",
          (int(node_id),)).fetchall()
    return [Neighbor(*r) for r in rows]

  # -- walks ----------------------------------------------------------------------------

  def _scores_fn(self, conn: sqlite3.Connection,
                 type_weights: Mapping[str, float] | None) -> walks.ScoresFn:
    tw = {t: 1.0 for t in EDGE_TYPES}
    for t, w in (type_weights or {}).items():
      if t not in tw:
        raise ValueError(f"type_weights: unknown edge type {t!r}; known: {EDGE_TYPES}")
      tw[t] = _check_weight(f"type_weights[{t!r}]", w, positive=False)

    cache: dict[int, list[tuple[int, float]]] = {}  # valid: the caller holds one snapshot

    def scores(node_id: int) -> list[tuple[int, float]]:
      if node_id in cache:
        return cache[node_id]
      rows = conn.execute(
          "SELECT e.dst, e.type, e.weight, n.salience FROM edges e JOIN nodes n ON n.id = e.dst "
          "WHERE e.src = ?1 UNION ALL "
          "SELECT e.src, e.type, e.weight, n.salience FROM edges e JOIN nodes n ON n.id = e.src "
          "WHERE e.dst = ?1 ORDER BY 1, 2", (node_id,)).fetchall()
      out: dict[int, float] = {}
      for other, type_, weight, salience in rows:  # sorted, so the sums are reproducible
        out[other] = out.get(other, 0.0) + tw[type_] * weight * salience
      cache[node_id] = list(out.items())
      return cache[node_id]
    return scores

  def random_walk(self, start: int, length: int, restart_prob: float = 0.0,
                  rng: np.random.Generator | int = 0,
                  type_weights: Mapping[str, float] | None = None) -> list[int]:
    """A seeded walk with restart from `start` of at most `length` nodes (`walks.py`).

    `type_weights` scales each edge type in W(u, v) (default 1 for every type). The walk
    reads one consistent snapshot of the graph.
    """
    rng = walks.as_rng(rng)
    with self._transaction("random_walk", "DEFERRED") as conn:
      self._require_nodes(conn, [start])
      return walks.random_walk(self._scores_fn(conn, type_weights), int(start), length,
                               restart_prob, rng)

  def sample_walks(self, n: int, length: int, seed: int | np.random.Generator = 0,
                   restart_prob: float = 0.0,
                   type_weights: Mapping[str, float] | None = None) -> list[list[int]]:
    """`n` walks; each start is drawn with probability salience / total salience.

    Deterministic for a seed: node order is by id, and each walk draws its start (one
    uniform) and then its steps from the same generator.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
      raise ValueError(f"n must be a non-negative integer, got {n!r}")
    rng = walks.as_rng(seed)
    with self._transaction("sample_walks", "DEFERRED") as conn:
      rows = conn.execute("SELECT id, salience FROM nodes ORDER BY id").fetchall()
      ids = [r[0] for r in rows]
      salience = np.array([r[1] for r in rows], dtype=np.float64)
      if n and not salience.sum() > 0:
        raise ValueError(f"{self._path}: no node has positive salience to start a walk from")
      scores = self._scores_fn(conn, type_weights)
      return [walks.random_walk(scores, ids[walks.pick(salience, rng.random())], length,
                                restart_prob, rng) for _ in range(n)]
