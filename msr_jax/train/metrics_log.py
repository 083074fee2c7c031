"""metrics.jsonl: one JSON object per line, one line per event, appended as the run goes.

Every line has "type" ("train", "guard", "checkpoint", ...) and "step". Lines hold only
what the computation determines (no wall-clock times), so a resumed run's file is
identical, line for line, to an uninterrupted run's; throughput goes to the progress bar.
On resume, lines past the restored step are dropped (the steps will be run again), by an
atomic rewrite.
"""

from __future__ import annotations

import json
import math
import os

from msr_jax import atomic


def _clean(value):
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # "nan" / "inf": JSON has no literal for them.
  return value


class MetricsLog:

  def __init__(self, path: str | os.PathLike):
    self.path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
    self._file = open(self.path, "a", encoding="utf-8")

  def write(self, record: dict) -> None:
    record = {k: _clean(v) for k, v in record.items()}
    self._file.write(json.dumps(record, sort_keys=True) + "\n")
    self._file.flush()

  def close(self) -> None:
    self._file.close()


def truncate_after(path: str | os.PathLike, step: int) -> None:
  """Keeps the lines whose step is <= `step` (atomically); a missing file is fine."""
  path = os.fspath(path)
  if not os.path.exists(path):
    return
  with open(path, encoding="utf-8") as f:
    kept = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
  atomic.write_text(path, "".join(kept))


def read(path: str | os.PathLike) -> list[dict]:
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]
