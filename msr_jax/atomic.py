"""Atomic file writes: a temp file beside the target, flushed to disk, renamed into place.

A reader, or a run killed in the middle of a write, sees the old file or the new one,
never a part of either; a failed write removes its temp file and leaves the old file as
it was. Every result, checkpoint, log rewrite, record and JSON file of msr-jax is written here.
The new file gets the old file's permissions, or those of a file made with `open()` under
the process's umask (a temp file is 0600 by design, which must not leak into results).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Iterable, Iterator


def _umask() -> int:
  """The process's umask, read without changing it (os.umask would, and threads run)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except (OSError, ValueError):
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def _mode_for(path: str) -> int:
  try:
    return os.stat(path).st_mode & 0o7777
  except FileNotFoundError:
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
  """Yields a temp path beside `path` to write to; on success it replaces `path`.

  For writers that want a file name (a library's `save(filename)`); the temp file lives
  in the same folder, so the final rename never crosses file systems.
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
  os.close(fd)
  try:
    yield tmp
    os.chmod(tmp, _mode_for(path))
    with open(tmp, "rb") as f:  # On disk before the rename: a crash cannot leave a hole.
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_bytes(path: str | os.PathLike, chunks: Iterable[bytes | memoryview]) -> None:
  """Writes byte chunks (memoryviews too: large arrays are not copied) atomically."""
  with atomic_path(path) as tmp, open(tmp, "wb") as f:
    for chunk in chunks:
      f.write(chunk)


def write_text(path: str | os.PathLike, text: str) -> None:
  """Writes UTF-8 text atomically."""
  write_bytes(path, [text.encode("utf-8")])


def _jsonable(value):
  """numpy scalars and arrays as their Python values; anything else by its repr."""
  import numpy as np
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  return repr(value)


def write_json(path: str | os.PathLike, obj) -> None:
  """Writes `obj` as JSON (sorted keys, indented, numpy values as Python ones) atomically:
  the one JSON writer of msr-jax (results, cards, configs, stats, HF config.json)."""
  write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=_jsonable) + "\n")
