"""From JSONL files to (context, decision) examples grouped by source, in one call.

read (`jsonl.read_records`) -> tokenize (`tokenize_record`) -> segment (`segment`).
`on_error` applies to every stage: "raise" stops at the first bad record with an error
naming file and line; "skip" leaves the record out and lists it in `PrepareReport.skipped`
with file, line and reason. A record id may appear only once across all files. A decision
longer than `max_decision_tokens` (the largest decision bucket) is handled at load time as
`long_decisions` says ("raise", "skip" or "cut"; "" = as `on_error`), see
`segmentation.limit_decisions`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Sequence

from msr_jax.data.jsonl import ReadReport, RecordError, read_records
from msr_jax.data.segmentation import Example, SegmentStats, limit_decisions, segment
from msr_jax.data.tokenize import TokenizationError, TokenizerAdapter, tokenize_record
from msr_jax.data.validate import Problem

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Skipped:
  path: str
  line: int
  reason: str

  def __str__(self) -> str:
    return f"{self.path}:{self.line}: {self.reason}"


@dataclasses.dataclass
class PrepareReport:
  reads: list[ReadReport] = dataclasses.field(default_factory=list)
  skipped: list[Skipped] = dataclasses.field(default_factory=list)  # every stage
  segments: SegmentStats = dataclasses.field(default_factory=SegmentStats)

  def summary(self) -> str:
    records = sum(r.records for r in self.reads)
    s = self.segments
    lines = [f"{len(self.reads)} files, {records} records read, {len(self.skipped)} skipped; "
             f"{s.examples} examples from {s.records} records, {s.examples_cut} contexts cut "
             f"({s.tokens_dropped} tokens dropped), {s.decisions_cut} long decisions cut "
             f"({s.decision_tokens_dropped} tokens dropped), {s.decisions_skipped} skipped"]
    return "\n".join(lines + [f"  {x}" for x in self.skipped])


def load_examples(paths: Sequence[str | os.PathLike], adapter: TokenizerAdapter,
                  max_context_tokens: int, on_error: str = "raise",
                  keep_first: int = 0, max_decision_tokens: int | None = None,
                  long_decisions: str = "") -> tuple[dict[str, list[Example]], PrepareReport]:
  """Examples of every record in `paths`, grouped by the records' `source` field."""
  policy = long_decisions or on_error
  report = PrepareReport()
  by_source: dict[str, list[Example]] = {}
  first_seen: dict[str, str] = {}
  for path in paths:
    records, read = read_records(path, on_error=on_error)
    report.reads.append(read)
    skipped = [Skipped(read.path, s.line, s.reason) for s in read.skipped]
    for record, line in zip(records, read.record_lines):
      tokenized, error = None, None
      if record.id in first_seen:
        error = RecordError(read.path, line, [Problem(
            "id", f"duplicate id {record.id!r} (first at {first_seen[record.id]})")])
      else:
        first_seen[record.id] = f"{read.path}:{line}"
        try:
          tokenized = tokenize_record(record, adapter)
        except TokenizationError as e:
          error = TokenizationError(f"{read.path}:{line}: {e}")
      if error is not None:
        if on_error == "raise":
          raise error
        # Both messages start with "path:line: "; the report keeps path and line apart.
        reason = str(error)[len(f"{read.path}:{line}: "):]
        skipped.append(Skipped(read.path, line, reason))
        continue
      examples = segment(tokenized, max_context_tokens, report.segments, keep_first)
      if max_decision_tokens is not None:
        examples, reasons = limit_decisions(examples, max_decision_tokens, policy,
                                            report.segments, f"{read.path}:{line}")
        skipped += [Skipped(read.path, line, r[len(f"{read.path}:{line}: "):]) for r in reasons]
      by_source.setdefault(record.source, []).extend(examples)
    report.skipped += sorted(skipped, key=lambda x: x.line)
  if report.skipped or report.segments.examples_cut or report.segments.decisions_cut:
    log.warning("%s", report.summary())
  return by_source, report
