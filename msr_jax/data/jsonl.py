"""Reading and writing conversation records as JSONL, one record per line.

A run chooses what a malformed record does: `on_error="raise"` stops at the first one with
a `RecordError` naming `file:line: field: reason`; `on_error="skip"` skips it and lists it
in the returned `ReadReport` (line, field and reason of every problem). Data is never
dropped silently: every non-blank line is either a record or an entry in the report.
Writing validates every record first and replaces the file atomically.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
from typing import Iterable

from msr_jax import atomic
from msr_jax.data.records import Record
from msr_jax.data.validate import Problem, check_record_json
from msr_jax.errors import UserError

log = logging.getLogger(__name__)


class RecordError(UserError, ValueError):
  """A malformed record; the message reads `file:line: field: reason`."""

  def __init__(self, path: str, line: int, problems: list[Problem]):
    self.path, self.line, self.problems = path, line, list(problems)
    first = problems[0]
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    super().__init__(f"{path}:{line}: {first.field}: {first.reason}{more}")


@dataclasses.dataclass(frozen=True)
class SkippedLine:
  line: int
  problems: tuple[Problem, ...]

  @property
  def reason(self) -> str:
    return "; ".join(str(p) for p in self.problems)


@dataclasses.dataclass
class ReadReport:
  path: str
  lines: int = 0          # lines in the file, blank ones included
  blank_lines: int = 0
  records: int = 0        # records accepted
  skipped: list[SkippedLine] = dataclasses.field(default_factory=list)
  # Line of each accepted record, in order, so later stages can still name the line.
  record_lines: list[int] = dataclasses.field(default_factory=list)

  @property
  def num_skipped(self) -> int:
    return len(self.skipped)

  def summary(self) -> str:
    lines = [f"{self.path}: {self.records} records, {self.num_skipped} skipped, "
             f"{self.blank_lines} blank of {self.lines} lines"]
    lines += [f"  {self.path}:{s.line}: {s.reason}" for s in self.skipped]
    return "\n".join(lines)


def _parse_line(raw: bytes) -> tuple[object | None, list[Problem]]:
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    return None, [Problem("<line>", f"not valid UTF-8 ({e.reason} at byte {e.start})")]
  try:
    return json.loads(text), []
  except json.JSONDecodeError as e:
    return None, [Problem("<json>", f"bad JSON: {e.msg} at column {e.colno}")]
  except RecursionError:  # Python's parser recurses once per level of nesting.
    return None, [Problem("<json>", "nested too deeply to parse (a record is at most a few "
                                    "levels deep)")]


def read_records(path: str | os.PathLike,
                 on_error: str = "raise") -> tuple[list[Record], ReadReport]:
  """Reads a JSONL file of records; returns the records and a report.

  Args:
    path: the JSONL file.
    on_error: "raise" stops at the first malformed line with a `RecordError`;
      "skip" leaves it out and lists it (with every problem found) in the report.
  """
  if on_error not in ("raise", "skip"):
    raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
  path = str(path)
  report = ReadReport(path)
  records: list[Record] = []
  first_line_of_id: dict[str, int] = {}
  with open(path, "rb") as f:
    data = f.read()
  # Split on b"\n" only: JSON strings may hold U+2028 and friends, which
  # str.splitlines would treat as line breaks and so misnumber every later line.
  lines = data.split(b"\n")
  if data.endswith(b"\n") or not data:
    lines.pop()  # The empty piece after the final newline is not a line.
  report.lines = len(lines)
  for number, raw in enumerate(lines, start=1):
    if not raw.strip():
      report.blank_lines += 1
      continue
    obj, problems = _parse_line(raw)
    if not problems:
      problems = check_record_json(obj)
    if not problems and obj["id"] in first_line_of_id:
      first = first_line_of_id[obj["id"]]
      problems = [Problem("id", f"duplicate id {obj['id']!r} (first on line {first})")]
    if problems:
      if on_error == "raise":
        raise RecordError(path, number, problems)
      report.skipped.append(SkippedLine(number, tuple(problems)))
      continue
    first_line_of_id[obj["id"]] = number
    records.append(Record.from_json(obj))
    report.record_lines.append(number)
  report.records = len(records)
  if report.skipped:
    log.warning("skipped %d malformed records:\n%s", report.num_skipped, report.summary())
  return records, report


def write_records(path: str | os.PathLike, records: Iterable[Record]) -> int:
  """Writes records as JSONL atomically (temp file in the same folder, then rename).

  Every record is validated first, so a file written here always reads back; a bad record
  raises a `RecordError` naming its position (line it would have had) and field, and the
  file on disk is left untouched. Returns the number of records written.
  """
  path = pathlib.Path(path)
  lines, seen = [], {}
  for number, record in enumerate(records, start=1):
    obj = record.to_json()
    problems = check_record_json(obj)
    if not problems and obj["id"] in seen:
      problems = [Problem("id", f"duplicate id {obj['id']!r} (first on line {seen[obj['id']]})")]
    if problems:
      raise RecordError(str(path), number, problems)
    seen[obj["id"]] = number
    lines.append(json.dumps(obj, ensure_ascii=False, allow_nan=False))
  atomic.write_text(path, "".join(line + "\n" for line in lines))
  return len(lines)
