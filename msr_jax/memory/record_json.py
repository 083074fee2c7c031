"""Parse a `Record` back from the dict that `Record.to_json()` produces.

The memory graph stores each node's record as JSON text, so reading a node needs the
inverse of `Record.to_json()`. Every malformed field raises `ValueError` naming where the
record came from (`where`, e.g. "memory.sqlite node 12") and the field.
"""

from __future__ import annotations

import math
from typing import Any

from msr_jax.data.records import ROLES, Message, Record

_KEYS = frozenset({"id", "messages", "source", "decisions", "weight", "meta"})


def record_from_json(obj: Any, where: str = "record") -> Record:
  """Builds a `Record` from its `to_json()` dict, validating every field."""
  if not isinstance(obj, dict):
    raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
  unknown = sorted(set(obj) - _KEYS)
  if unknown:
    raise ValueError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(_KEYS)}")
  for key in ("id", "messages"):
    if key not in obj:
      raise ValueError(f"{where}: missing field {key!r}")
  if not isinstance(obj["id"], str):
    raise ValueError(f"{where}: field 'id' must be a string, got {obj['id']!r}")
  messages = obj["messages"]
  if not isinstance(messages, list):
    raise ValueError(f"{where}: field 'messages' must be a list")
  parsed = []
  for i, m in enumerate(messages):
    if not isinstance(m, dict) or set(m) != {"role", "content"}:
      raise ValueError(f"{where}: messages[{i}] must be an object with exactly 'role' and "
                       f"'content', got {m!r}")
    if m["role"] not in ROLES:
      raise ValueError(f"{where}: messages[{i}].role must be one of {ROLES}, got {m['role']!r}")
    if not isinstance(m["content"], str):
      raise ValueError(f"{where}: messages[{i}].content must be a string")
    parsed.append(Message(role=m["role"], content=m["content"]))
  source = obj.get("source", "conversation")
  if not isinstance(source, str):
    raise ValueError(f"{where}: field 'source' must be a string, got {source!r}")
  decisions = obj.get("decisions")
  if decisions is not None:
    if not isinstance(decisions, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in decisions):
      raise ValueError(f"{where}: field 'decisions' must be a list of integers")
    for d in decisions:
      if not 0 <= d < len(parsed) or parsed[d].role != "assistant":
        raise ValueError(f"{where}: decisions entry {d} is not the index of an assistant message")
    decisions = tuple(decisions)
  weight = obj.get("weight", 1.0)
  if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
    raise ValueError(f"{where}: field 'weight' must be a finite number, got {weight!r}")
  meta = obj.get("meta", {})
  if not isinstance(meta, dict):
    raise ValueError(f"{where}: field 'meta' must be an object")
  return Record(id=obj["id"], messages=tuple(parsed), source=source, decisions=decisions,
                weight=float(weight), meta=meta)


def record_text(record: Record) -> str:
  """The record as plain text, one "role: content" line per message (used for embeddings)."""
  return "\n".join(f"{m.role}: {m.content}" for m in record.messages)
