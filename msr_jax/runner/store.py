"""The result store: one JSON file per arm x seed, keyed by a hash of its full config.

A result is written atomically (temp file + os.replace), so a sweep killed at any moment
leaves only whole results, and re-running it skips every arm already finished. Results
that recorded an error are retried on the next run (they are not finished).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib

from msr_jax import atomic
from msr_jax.data.validate import nesting_depth
from msr_jax.errors import UserError


def config_hash(config: dict) -> str:
  """A stable hash of a JSON-able config (keys sorted, floats by repr)."""
  text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=repr)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


class ResultStore:

  def __init__(self, run_dir: str | os.PathLike):
    self.root = pathlib.Path(run_dir) / "results"
    self.root.mkdir(parents=True, exist_ok=True)

  def path(self, key: str) -> pathlib.Path:
    return self.root / f"{key}.json"

  def get(self, key: str) -> dict | None:
    path = self.path(key)
    if not path.exists():
      return None
    return _read_result(path)

  def is_done(self, key: str) -> bool:
    result = self.get(key)
    return result is not None and result.get("status") == "ok"

  def put(self, key: str, result: dict) -> None:
    atomic.write_json(self.path(key), result)

  def all(self) -> list[dict]:
    out = []
    for path in sorted(self.root.glob("*.json")):
      out.append(_read_result(path))
    return out


# An arm's output is a handful of levels deep (scores by probe, stages, curves).
RESULT_NESTING = 32


class ResultStoreError(UserError, ValueError):
  """A damaged result file; the message names it (and the line where JSON says)."""


def _read_result(path: pathlib.Path) -> dict:
  fix = "delete it to re-run the arm"
  try:
    result = json.loads(path.read_bytes().decode("utf-8"))
  except json.JSONDecodeError as e:
    raise ResultStoreError(f"{path}:{e.lineno}: damaged result file ({e.msg}); {fix}") from None
  except (UnicodeDecodeError, RecursionError) as e:
    raise ResultStoreError(f"{path}: damaged result file ({e!r}); {fix}") from None
  if nesting_depth(result, RESULT_NESTING) > RESULT_NESTING:
    raise ResultStoreError(f"{path}: damaged result file (nested more than {RESULT_NESTING} "
                           f"levels deep); {fix}")
  if not isinstance(result, dict) or not isinstance(result.get("status"), str):
    raise ResultStoreError(f"{path}: field 'status': missing (not a result file); {fix}")
  return result
