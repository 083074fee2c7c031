"""Opening, creating and validating the SQLite file behind `MemoryGraph`.

A memory-graph file is a SQLite database in WAL mode whose `PRAGMA application_id` is
`APPLICATION_ID` and whose `PRAGMA user_version` is `SCHEMA_VERSION`. Opening checks, in
order and without writing anything to an existing file:

1. the path is a regular file of at least 100 bytes starting with the SQLite magic string;
2. the application id, the schema version and the tables and their columns;
3. `PRAGMA quick_check` (or `integrity_check`), which catches truncated and overwritten
   pages.

Any failure raises `MemoryGraphError` naming the file; a damaged file is never modified.
A new file is built completely under a temporary name in the same folder and then
hard-linked into place, which fails if another process created the file first; so a
half-initialised graph is never visible and concurrent creators cannot clobber each other.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Iterator

from msr_jax.errors import UserError

APPLICATION_ID = 0x4D53524D  # "MSRM"
SCHEMA_VERSION = 1
EDGE_TYPES = ("shared_entity", "temporal", "cooccurrence")
# Edge types whose direction carries no meaning: stored once, with src < dst.
SYMMETRIC_EDGE_TYPES = frozenset({"shared_entity", "cooccurrence"})

_SQLITE_MAGIC = b"SQLite format 3\x00"
_SCHEMA = f"""
CREATE TABLE nodes (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  record TEXT NOT NULL,
  created REAL NOT NULL,
  salience REAL NOT NULL CHECK (salience >= 0),
  times_replayed INTEGER NOT NULL DEFAULT 0 CHECK (times_replayed >= 0)
);
CREATE TABLE node_entities (
  node_id INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  entity TEXT NOT NULL,
  PRIMARY KEY (node_id, entity)
) WITHOUT ROWID;
CREATE INDEX node_entities_by_entity ON node_entities (entity, node_id);
CREATE TABLE edges (
  src INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  dst INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  type TEXT NOT NULL CHECK (type IN ({", ".join(repr(t) for t in EDGE_TYPES)})),
  weight REAL NOT NULL CHECK (weight > 0),
  PRIMARY KEY (src, dst, type),
  CHECK (src <> dst)
) WITHOUT ROWID;
CREATE INDEX edges_by_dst ON edges (dst, src);
"""
_COLUMNS = {
    "nodes": ["id", "kind", "record", "created", "salience", "times_replayed"],
    "node_entities": ["node_id", "entity"],
    "edges": ["src", "dst", "type", "weight"],
}


class MemoryGraphError(UserError, ValueError):
  """A memory-graph file is missing, damaged, of another kind, or cannot be written."""


@contextlib.contextmanager
def sqlite_errors(path: Path, what: str) -> Iterator[None]:
  """Turns any sqlite3 error into a `MemoryGraphError` naming the file and the operation."""
  try:
    yield
  except sqlite3.Error as e:
    raise MemoryGraphError(f"{path}: {what} failed: {type(e).__name__}: {e}") from e


def _connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
  # isolation_level=None: no implicit transactions; every write opens BEGIN IMMEDIATE itself.
  conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
  conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
  return conn


def _create(path: Path, busy_timeout_s: float) -> None:
  """Builds an empty graph under a temporary name and links it to `path` if still free."""
  tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.init")
  try:
    conn = _connect(tmp, busy_timeout_s)
    try:
      conn.execute("PRAGMA journal_mode = WAL")
      conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA}"
                         f"PRAGMA application_id = {APPLICATION_ID};"
                         f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
    finally:
      conn.close()  # the last connection checkpoints the WAL into the file
    try:
      os.link(tmp, path)
    except FileExistsError:
      pass  # another process created it first; open theirs
    except OSError:
      _copy_exclusive(tmp, path)  # a filesystem without hard links
  finally:
    for suffix in ("", "-wal", "-shm"):
      with contextlib.suppress(FileNotFoundError):
        os.remove(f"{tmp}{suffix}")


def _copy_exclusive(src: Path, dst: Path) -> None:
  """Copies src to a new file dst, doing nothing if dst already exists. Unlike the hard
  link, another opener may glimpse the partly written file and refuse it as truncated."""
  try:
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
  except FileExistsError:
    return
  with os.fdopen(fd, "wb") as f:
    f.write(src.read_bytes())
    f.flush()
    os.fsync(f.fileno())


def _check_header(path: Path) -> None:
  if not path.is_file():
    raise MemoryGraphError(f"{path}: not a regular file")
  with open(path, "rb") as f:
    header = f.read(100)
  if len(header) < 100:
    raise MemoryGraphError(f"{path}: not a memory graph: only {len(header)} bytes, shorter "
                           "than a SQLite header (empty or truncated file)")
  if not header.startswith(_SQLITE_MAGIC):
    raise MemoryGraphError(f"{path}: not a memory graph: not a SQLite database (bad header "
                           f"{header[:16]!r})")


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
  app_id = conn.execute("PRAGMA application_id").fetchone()[0]
  version = conn.execute("PRAGMA user_version").fetchone()[0]
  if app_id != APPLICATION_ID:
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    raise MemoryGraphError(f"{path}: not a memory graph: SQLite application_id is {app_id}, "
                           f"expected {APPLICATION_ID} (tables: {tables})")
  if version != SCHEMA_VERSION:
    newer = "newer" if version > SCHEMA_VERSION else "older"
    raise MemoryGraphError(f"{path}: memory-graph schema version {version} is {newer} than "
                           f"this code's version {SCHEMA_VERSION}; no migration exists")
  for table, expected in _COLUMNS.items():
    columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    if columns != expected:
      raise MemoryGraphError(f"{path}: damaged memory graph: table {table!r} has columns "
                             f"{columns}, expected {expected}")


def open_connection(path: str | os.PathLike, busy_timeout_s: float = 30.0,
                    check: str = "quick") -> tuple[Path, sqlite3.Connection]:
  """Opens (creating if absent) a validated memory-graph file; see the module docstring.

  Args:
    path: the file. Its folder must exist.
    busy_timeout_s: how long a statement waits for another process's lock.
    check: "quick" (`PRAGMA quick_check`, the default), "full" (`integrity_check`) or
      "none" (skip the page-level check; header and schema are always checked).
  """
  if check not in ("quick", "full", "none"):
    raise ValueError(f"check must be 'quick', 'full' or 'none', got {check!r}")
  path = Path(path).absolute()
  if not path.parent.is_dir():
    raise MemoryGraphError(f"{path}: folder {path.parent} does not exist")
  try:
    if not path.exists():
      with sqlite_errors(path, "creating the memory graph"):
        _create(path, busy_timeout_s)
    _check_header(path)
  except OSError as e:
    raise MemoryGraphError(f"{path}: cannot create or read the memory graph: {e}") from e
  conn = None
  try:
    with sqlite_errors(path, "opening the memory graph"):
      conn = _connect(path, busy_timeout_s)
      _check_schema(conn, path)
      if check != "none":
        pragma = "quick_check" if check == "quick" else "integrity_check"
        problems = [r[0] for r in conn.execute(f"PRAGMA {pragma}(5)")]
        if problems != ["ok"]:
          raise MemoryGraphError(f"{path}: damaged memory graph: {pragma} reports {problems}")
      # Persistent in the file (set at creation); re-asserted in case a tool changed it.
      if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
      conn.execute("PRAGMA foreign_keys = ON")
      # In WAL mode NORMAL cannot corrupt the file; a power cut may lose the last commits.
      conn.execute("PRAGMA synchronous = NORMAL")
  except BaseException:
    if conn is not None:
      conn.close()
    raise
  return path, conn
