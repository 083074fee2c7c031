"""Field-by-field validation of one JSON record (see `records.py` for the format).

`check_record_json` never raises on bad data: it returns every problem it finds as a
`Problem(field, reason)`, with `field` a path such as `messages[2].role` or
`decisions[0]`, so the reader (`jsonl.py`) can name file, line and field.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from msr_jax.data.records import FIELDS, MAX_WEIGHT, MESSAGE_FIELDS, ROLES


@dataclasses.dataclass(frozen=True)
class Problem:
  field: str
  reason: str

  def __str__(self) -> str:
    return f"{self.field}: {self.reason}"


# Records and results are a few levels deep; a JSON line nested deeper is refused before
# anything walks it (Python 3.13's parser takes thousands of levels that a recursive walk
# of them could not).
MAX_NESTING = 64


def nesting_depth(value: Any, limit: int = MAX_NESTING) -> int:
  """How deeply lists and objects nest in `value` (iteratively; stops past `limit`)."""
  deepest, todo = 0, [(value, 0)]
  while todo:
    node, depth = todo.pop()
    if isinstance(node, (list, dict)):
      depth += 1
      deepest = max(deepest, depth)
      if deepest > limit:
        return deepest
      todo += [(child, depth) for child in (node.values() if isinstance(node, dict) else node)]
  return deepest


def first_bad_text(value: Any, field: str) -> Problem | None:
  """A string (or object key) in `value` that is not valid Unicode text: a lone surrogate
  such as "\\ud800", which JSON can spell but UTF-8 cannot encode, so a file, a tokenizer
  or SQLite would fail on it later. Returns the first one as a Problem naming its field."""
  if isinstance(value, str):
    try:
      value.encode("utf-8")
    except UnicodeEncodeError as e:
      return Problem(field, f"not valid Unicode text: a lone surrogate "
                            f"U+{ord(value[e.start]):04X} at character {e.start}")
    return None
  if isinstance(value, list):
    for i, item in enumerate(value):
      if (problem := first_bad_text(item, f"{field}[{i}]")) is not None:
        return problem
  if isinstance(value, dict):
    for key, item in value.items():
      if (problem := first_bad_text(key, field or "<record>")) is not None:
        return Problem(problem.field, f"a key is {problem.reason}")
      if (problem := first_bad_text(item, f"{field}.{key}" if field else str(key))) is not None:
        return problem
  return None


def check_weight(weight: Any) -> str | None:
  """Why a record weight is not usable, or None."""
  if not isinstance(weight, (int, float)) or isinstance(weight, bool):
    return f"must be a number, got {weight!r}"
  if not math.isfinite(weight) or not 0 <= weight <= MAX_WEIGHT:
    return f"must be finite and in [0, {MAX_WEIGHT:g}], got {weight!r}"
  return None


def _is_int(x: Any) -> bool:
  # bool is a subclass of int in Python; `true` is not an index.
  return isinstance(x, int) and not isinstance(x, bool)


def _check_messages(messages: Any) -> list[Problem]:
  if not isinstance(messages, list):
    return [Problem("messages", f"must be a list, got {type(messages).__name__}")]
  if not messages:
    return [Problem("messages", "must not be empty")]
  problems = []
  for i, message in enumerate(messages):
    name = f"messages[{i}]"
    if not isinstance(message, dict):
      problems.append(Problem(name, f"must be an object, got {type(message).__name__}"))
      continue
    for key in message:
      if key not in MESSAGE_FIELDS:
        problems.append(Problem(f"{name}.{key}",
                                f"unknown field (known: {list(MESSAGE_FIELDS)})"))
    if "role" not in message:
      problems.append(Problem(f"{name}.role", "missing"))
    elif message["role"] not in ROLES:
      problems.append(Problem(f"{name}.role",
                              f"unknown role {message['role']!r} (known: {list(ROLES)})"))
    if "content" not in message:
      problems.append(Problem(f"{name}.content", "missing"))
    elif not isinstance(message["content"], str):
      problems.append(Problem(f"{name}.content",
                              f"must be a string, got {type(message['content']).__name__}"))
  return problems


def _roles(messages: list) -> list[str | None]:
  return [m.get("role") if isinstance(m, dict) else None for m in messages]


def _check_decisions(decisions: Any, messages: list) -> list[Problem]:
  if not isinstance(decisions, list):
    return [Problem("decisions",
                    f"must be a list of message indices, got {type(decisions).__name__}")]
  roles = _roles(messages)
  problems, seen = [], set()
  for k, index in enumerate(decisions):
    name = f"decisions[{k}]"
    if not _is_int(index):
      problems.append(Problem(name, f"must be an integer index, got {index!r}"))
    elif not 0 <= index < len(messages):
      problems.append(Problem(name, f"index {index} out of range for {len(messages)} messages"))
    elif roles[index] != "assistant":
      problems.append(Problem(
          name, f"index {index} points at a {roles[index]!r} turn, not an assistant turn"))
    elif index in seen:
      problems.append(Problem(name, f"index {index} listed twice"))
    else:
      seen.add(index)
  return problems


def _check_decision_contents(obj: dict) -> list[Problem]:
  """Every turn trained on must exist and have something to learn."""
  messages = obj["messages"]
  if "decisions" in obj:
    turns = obj["decisions"]
  else:
    turns = [i for i, role in enumerate(_roles(messages)) if role == "assistant"]
  if not turns:
    return [Problem("decisions", "no turn to train on (no assistant message, or an empty list)")]
  return [Problem(f"messages[{i}].content", "a decision turn must not be empty")
          for i in turns
          if isinstance(messages[i].get("content"), str) and not messages[i]["content"].strip()]


def check_record_json(obj: Any) -> list[Problem]:
  """All problems of one decoded JSON value as a record; an empty list means valid."""
  if not isinstance(obj, dict):
    return [Problem("<record>", f"must be a JSON object, got {type(obj).__name__}")]
  if nesting_depth(obj) > MAX_NESTING:
    return [Problem("<json>", f"nested too deeply (more than {MAX_NESTING} levels)")]
  problems = [Problem(key, f"unknown field (known: {list(FIELDS)})")
              for key in obj if key not in FIELDS]
  if "id" not in obj:
    problems.append(Problem("id", "missing"))
  elif not isinstance(obj["id"], str) or not obj["id"]:
    problems.append(Problem("id", f"must be a non-empty string, got {obj['id']!r}"))
  if "source" not in obj:
    problems.append(Problem("source", "missing"))
  elif not isinstance(obj["source"], str) or not obj["source"]:
    problems.append(Problem("source", f"must be a non-empty string, got {obj['source']!r}"))
  if "weight" in obj and (reason := check_weight(obj["weight"])) is not None:
    problems.append(Problem("weight", reason))
  if (bad_text := first_bad_text(obj, "")) is not None:
    problems.append(bad_text)
  if "meta" in obj and not isinstance(obj["meta"], dict):
    problems.append(Problem("meta", f"must be an object, got {type(obj['meta']).__name__}"))
  if "messages" not in obj:
    problems.append(Problem("messages", "missing"))
    return problems
  message_problems = _check_messages(obj["messages"])
  problems += message_problems
  if not isinstance(obj["messages"], list):
    return problems
  decision_problems = []
  if "decisions" in obj:
    decision_problems = _check_decisions(obj["decisions"], obj["messages"])
  problems += decision_problems
  if not message_problems and not decision_problems:
    problems += _check_decision_contents(obj)
  return problems
