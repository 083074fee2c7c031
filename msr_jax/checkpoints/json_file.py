"""The one reader of the JSON files in checkpoint folders (configs, cards, settings, stats).

Every failure is a `CheckpointError` naming the file (and the line, for malformed JSON); a
missing file is a `CheckpointNotFoundError` (also a FileNotFoundError) that says what the
file would have held. Writing goes through `msr_jax.atomic.write_json`.
"""

from __future__ import annotations

import json

from msr_jax.checkpoints.errors import CheckpointError, CheckpointNotFoundError


def read_json(path: str, missing: str = "missing") -> dict:
  """The JSON object in `path`."""
  try:
    with open(path, encoding="utf-8") as f:
      obj = json.load(f)
  except FileNotFoundError:
    raise CheckpointNotFoundError(f"{path}: {missing}") from None
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{path}: line {e.lineno}: malformed JSON: {e.msg}") from None
  except (OSError, UnicodeDecodeError, RecursionError) as e:
    raise CheckpointError(f"{path}: cannot read: {e!r}") from None
  if not isinstance(obj, dict):
    raise CheckpointError(f"{path}: expected a JSON object, got {type(obj).__name__}")
  return obj
