"""metrics.jsonl: one JSON object per line, one line per event, appended as the run goes.

Every line has "type" ("train", "guard", "checkpoint", ...) and "step". Lines hold what
the computation determines and, in "train" lines, the wall-clock fields `TIMING` (the
step's seconds and tokens per second), so a resumed run's file equals an uninterrupted
run's line for line in every field but those (`computed` drops them).
On resume, lines past the restored step are dropped (the steps will be run again), by an
atomic rewrite. A torn last line (the trace of a crash or a full disk in the middle of an
append) is dropped too, with a warning; a damaged line anywhere else is an error naming
the file and the line, and the file is left as it is.
"""

from __future__ import annotations

import json
import logging
import math
import os

from msr_jax import atomic
from msr_jax.errors import (RESUME_ADVICE, DiskFullError, UserError, describe_disk_full,
                            disk_full_cause)

log = logging.getLogger(__name__)


# Wall-clock fields of "train" lines: measured, not computed, so they differ run to run.
TIMING = ("step_s", "tokens_per_s")


def computed(record: dict) -> dict:
  """A record without its wall-clock fields: what two runs of one config agree on."""
  return {k: v for k, v in record.items() if k not in TIMING}


class MetricsLogError(UserError, ValueError):
  """A damaged metrics.jsonl; the message reads `file:line: reason`."""


def _clean(value):
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # "nan" / "inf": JSON has no literal for them.
  return value


class MetricsLog:

  def __init__(self, path: str | os.PathLike):
    self.path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
    # Unbuffered: a failed append leaves a torn line on disk (which the next resume drops)
    # and nothing held in memory that a later write or the close could add after it.
    self._file = open(self.path, "ab", buffering=0)

  def write(self, record: dict) -> None:
    record = {k: _clean(v) for k, v in record.items()}
    data = memoryview((json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
    try:
      while data:
        data = data[self._file.write(data):]  # a raw write may take only a part
    except OSError as e:
      if disk_full_cause(e) is not None:
        raise DiskFullError(describe_disk_full(e, f"{self.path}: appending a line",
                                              RESUME_ADVICE)) from e
      raise

  def close(self) -> None:
    self._file.close()


def _parse(path: str, lines: list[str]) -> list[tuple[dict, str]]:
  """(record, line) of each line; a torn last line is dropped with a warning."""
  records = []
  for number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as e:
      if number == len(lines) and not line.endswith("\n"):
        log.warning("%s:%d: dropped a torn last line (%d bytes; a crash or a full disk "
                    "while it was appended)", path, number, len(line))
        continue
      reason = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply"
      raise MetricsLogError(f"{path}:{number}: not a JSON line ({reason}); the log is damaged "
                            "in the middle, not torn at the end") from None
    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
      raise MetricsLogError(f"{path}:{number}: field 'step': missing or not an integer")
    records.append((record, line))
  return records


def _lines(path: str) -> list[str]:
  with open(path, encoding="utf-8", errors="replace", newline="\n") as f:
    return f.readlines()


def truncate_after(path: str | os.PathLike, step: int) -> None:
  """Keeps the lines whose step is <= `step` (atomically); a missing file is fine."""
  path = os.fspath(path)
  if not os.path.exists(path):
    return
  kept = [line.rstrip("\n") + "\n" for record, line in _parse(path, _lines(path))
          if record["step"] <= step]  # a line torn just before its newline is whole
  atomic.write_text(path, "".join(kept))


def read(path: str | os.PathLike) -> list[dict]:
  """Every record of a metrics.jsonl (a torn last line is left out, with a warning)."""
  path = os.fspath(path)
  return [record for record, _ in _parse(path, _lines(path))]
