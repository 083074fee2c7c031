"""The memory-graph file: survives close and reopen; damaged or foreign files give a clear
`MemoryGraphError` naming the file and are left byte-for-byte untouched."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from msr_jax.data.records import Message, Record
from msr_jax.memory.graph import MemoryGraph, MemoryGraphError
from msr_jax.memory.graph_store import APPLICATION_ID, SCHEMA_VERSION


def _build(path, n=60):
  with MemoryGraph.open(path) as g:
    prev = None
    for i in range(n):
      record = Record(id=f"r{i}", messages=(Message("user", f"episode {i} " + "x" * 200),))
      node = g.add_node(record, [f"p{i % 7}", f"item{i % 5}"], salience=1.0 + i % 3,
                        created=i, connect=True)
      if prev is not None:
        g.link_temporal(prev, node)
      prev = node
    return g.nodes(), g.edges(), g.sample_walks(8, 6, seed=11, restart_prob=0.2)


def test_survives_close_and_reopen(tmp_path):
  path = tmp_path / "memory.sqlite"
  nodes, edges, walks = _build(path)
  assert not (tmp_path / "memory.sqlite-wal").exists()  # checkpointed on close
  with MemoryGraph.open(path, check="full") as g:
    assert g.nodes() == nodes
    assert [n.entities for n in g.nodes()] == [n.entities for n in nodes]
    assert g.edges() == edges
    assert g.sample_walks(8, 6, seed=11, restart_prob=0.2) == walks
    g.add_node(Record(id="new", messages=()))
  with MemoryGraph.open(path) as g:
    assert g.num_nodes() == len(nodes) + 1
  assert sorted(p.name for p in tmp_path.iterdir()) == ["memory.sqlite"]  # no temp files


def _assert_refused(path, pattern):
  before = path.read_bytes()
  with pytest.raises(MemoryGraphError, match=pattern) as info:
    MemoryGraph.open(path)
  assert str(path) in str(info.value)
  assert path.read_bytes() == before, "a damaged file must never be modified"
  assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_random_bytes_are_refused(tmp_path):
  path = tmp_path / "noise.sqlite"
  path.write_bytes(np.random.default_rng(0).bytes(8192))
  _assert_refused(path, "not a SQLite database")


def test_text_file_is_refused(tmp_path):
  path = tmp_path / "notes.sqlite"
  path.write_text("id,name\n1,alice\n" * 20)
  _assert_refused(path, "not a SQLite database")


@pytest.mark.parametrize("keep", [0, 50])
def test_empty_or_tiny_file_is_refused(tmp_path, keep):
  good = tmp_path / "good.sqlite"
  _build(good, n=2)
  path = tmp_path / "sub" / "memory.sqlite"
  path.parent.mkdir()
  path.write_bytes(good.read_bytes()[:keep])
  _assert_refused(path, f"only {keep} bytes")


@pytest.mark.parametrize("fraction", [0.9, 0.5, 0.1])
def test_truncated_file_is_refused(tmp_path, fraction):
  good = tmp_path / "good.sqlite"
  _build(good)
  data = good.read_bytes()
  assert len(data) > 10 * 4096
  path = tmp_path / "sub" / "memory.sqlite"
  path.parent.mkdir()
  path.write_bytes(data[:int(len(data) * fraction)])
  _assert_refused(path, "malformed|damaged")


def test_overwritten_page_is_refused(tmp_path):
  path = tmp_path / "memory.sqlite"
  _build(path)
  data = bytearray(path.read_bytes())
  data[3 * 4096:4 * 4096] = np.random.default_rng(1).bytes(4096)  # page 4 is garbage
  path.write_bytes(bytes(data))
  _assert_refused(path, "malformed|damaged")


def _foreign_db(path, app_id=0, version=0, ddl="CREATE TABLE people (name TEXT)"):
  conn = sqlite3.connect(path)
  conn.executescript(f"{ddl}; PRAGMA application_id = {app_id}; PRAGMA user_version = {version};")
  conn.commit()
  conn.close()


def test_other_sqlite_database_is_refused(tmp_path):
  path = tmp_path / "other.sqlite"
  _foreign_db(path)
  _assert_refused(path, "application_id is 0.*'people'")


def test_newer_schema_version_is_refused(tmp_path):
  path = tmp_path / "future.sqlite"
  _foreign_db(path, APPLICATION_ID, SCHEMA_VERSION + 1)
  _assert_refused(path, f"version {SCHEMA_VERSION + 1} is newer")


def test_wrong_tables_are_refused(tmp_path):
  path = tmp_path / "odd.sqlite"
  _foreign_db(path, APPLICATION_ID, SCHEMA_VERSION, ddl="CREATE TABLE nodes (id INTEGER)")
  _assert_refused(path, "table 'nodes' has columns \\['id'\\]")


def test_corrupt_record_json_names_the_node(tmp_path):
  path = tmp_path / "memory.sqlite"
  _build(path, n=3)
  conn = sqlite3.connect(path)
  conn.execute("UPDATE nodes SET record = '{\"id\": 5, \"messages\": [], \"source\": \"x\"}' WHERE id = 2")
  conn.commit()
  conn.close()
  with MemoryGraph.open(path) as g:
    with pytest.raises(MemoryGraphError, match="memory.sqlite: node 2: .*'id' must be a str"):
      g.nodes()
    assert g.node(1).record.id == "r0"


def test_missing_folder_and_directory_path(tmp_path):
  with pytest.raises(MemoryGraphError, match="does not exist"):
    MemoryGraph.open(tmp_path / "nope" / "memory.sqlite")
  with pytest.raises(MemoryGraphError, match="not a regular file"):
    MemoryGraph.open(tmp_path)
