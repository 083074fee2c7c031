"""Parse a `Record` back from the dict that `Record.to_json()` produces.

The memory graph stores each node's record as JSON text, so reading a node needs the
inverse of `Record.to_json()`. `msr_jax.data.validate.check_record_json` is not used here:
it also enforces what a *training* record needs (an assistant turn to train on), while a
memory may be any well-formed record (an observation, a note). This checks only that the
fields are well formed, then builds the record with `Record.from_json`. Every malformed
field raises `ValueError` naming where the record came from (`where`, e.g.
"memory.sqlite: node 12") and the field.
"""

from __future__ import annotations

from typing import Any

from msr_jax.data.records import FIELDS, MESSAGE_FIELDS, ROLES, Record
from msr_jax.data.validate import MAX_NESTING, check_weight, first_bad_text, nesting_depth


def record_from_json(obj: Any, where: str = "record") -> Record:
  """Builds a `Record` from its `to_json()` dict, validating every field."""
  if not isinstance(obj, dict):
    raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
  if nesting_depth(obj) > MAX_NESTING:
    raise ValueError(f"{where}: record is nested too deeply (more than {MAX_NESTING} levels)")
  unknown = sorted(set(obj) - set(FIELDS))
  if unknown:
    raise ValueError(f"{where}: unknown field(s) {unknown}; allowed: {list(FIELDS)}")
  for key in ("id", "messages", "source"):
    if key not in obj:
      raise ValueError(f"{where}: missing field {key!r}")
  if not isinstance(obj["id"], str):
    raise ValueError(f"{where}: field 'id' must be a string, got {obj['id']!r}")
  messages = obj["messages"]
  if not isinstance(messages, list):
    raise ValueError(f"{where}: field 'messages' must be a list")
  roles = []
  for i, m in enumerate(messages):
    if not isinstance(m, dict) or set(m) != set(MESSAGE_FIELDS):
      raise ValueError(f"{where}: messages[{i}] must be an object with exactly 'role' and "
                       f"'content', got {m!r}")
    if m["role"] not in ROLES:
      raise ValueError(f"{where}: messages[{i}].role must be one of {ROLES}, got {m['role']!r}")
    if not isinstance(m["content"], str):
      raise ValueError(f"{where}: messages[{i}].content must be a string")
    roles.append(m["role"])
  if not isinstance(obj["source"], str):
    raise ValueError(f"{where}: field 'source' must be a string, got {obj['source']!r}")
  decisions = obj.get("decisions")
  if decisions is not None:
    if not isinstance(decisions, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in decisions):
      raise ValueError(f"{where}: field 'decisions' must be a list of integers")
    for d in decisions:
      if not 0 <= d < len(roles) or roles[d] != "assistant":
        raise ValueError(f"{where}: decisions entry {d} is not the index of an assistant message")
  if (reason := check_weight(obj.get("weight", 1.0))) is not None:
    raise ValueError(f"{where}: field 'weight' {reason}")
  if (bad_text := first_bad_text(obj, "")) is not None:
    raise ValueError(f"{where}: field {bad_text.field}: {bad_text.reason}")
  if not isinstance(obj.get("meta", {}), dict):
    raise ValueError(f"{where}: field 'meta' must be an object")
  return Record.from_json(obj)


def record_text(record: Record) -> str:
  """The record as plain text, one "role: content" line per message (used for embeddings)."""
  return "\n".join(f"{m.role}: {m.content}" for m in record.messages)
