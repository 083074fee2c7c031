"""Townworld situations read back from decision records (memories, scenarios, judges).

A Townworld decision record's note is the situation's clauses, shuffled, and its request
one of `templates.REQUEST`:

  user: "note : C1 . C2 . ... . request : REQUEST"

`parse_situation` recovers the `policy.Situation` from that text (the record's `meta`
does not carry the condition, the relation or the distractors). It is the exact inverse
of `episodes.decision` up to the clause order, which the situation does not keep either.
"""

from __future__ import annotations

import re

from msr_jax.data.records import Record
from msr_jax.world import lexicon, policy
from msr_jax.world import templates as T

_WEATHER, _CONDITION, _RELATION = (policy.WEATHER_PATTERN, policy.CONDITION_PATTERN,
                                   policy.RELATION_PATTERN)


def _request_pattern(template: str) -> re.Pattern:
  pattern = re.escape(template).replace(r"\{n\}", r"(?P<n>\S+)").replace(r"\{i\}",
                                                                        r"(?P<i>\S+)")
  return re.compile("^" + pattern + "$")


_REQUESTS = tuple(_request_pattern(t) for t in T.REQUEST)


class NotADecisionError(ValueError):
  """A record that is not a Townworld decision episode; the message names the record."""


def _fail(record: Record, why: str) -> NotADecisionError:
  return NotADecisionError(f"record {record.id!r}: not a Townworld decision episode: {why}")


def user_message(record: Record) -> str:
  users = [m.content for m in record.messages if m.role == "user"]
  if len(users) != 1:
    raise _fail(record, f"expected one user message, found {len(users)}")
  return users[0]


def split_note(content: str) -> tuple[tuple[str, ...], str] | None:
  """(note clauses, request sentence) of a decision note, or None if it is not one."""
  head = T.NOTE_HEADER + " "
  separator = " . " + T.REQUEST_HEADER + " "
  if not content.startswith(head) or separator not in content:
    return None
  body, _, request = content[len(head):].partition(separator)
  return tuple(body.split(" . ")), request


def parse_situation(record: Record) -> policy.Situation:
  """The situation a decision record's note describes; `NotADecisionError` otherwise."""
  split = split_note(user_message(record))
  if split is None:
    raise _fail(record, "the user message is not 'note : ... . request : ...'")
  clauses, request = split
  for template, pattern in enumerate(_REQUESTS):
    match = pattern.match(request)
    if match:
      requester, item = match["n"], match["i"]
      break
  else:
    raise _fail(record, f"request {request!r} matches no request template")
  if item not in lexicon.ITEMS:
    raise _fail(record, f"unknown item {item!r}")
  weather = condition = relation = None
  distractors = []
  for clause in clauses:
    w, c, r = _WEATHER.match(clause), _CONDITION.match(clause), _RELATION.match(clause)
    if w and w[1] in lexicon.WEATHERS and weather is None:
      weather = w[1]
    elif c and c[1] == item and c[2] in lexicon.CONDITIONS and condition is None:
      condition = c[2]
    elif r and r[1] == requester and r[2] in lexicon.RELATIONS and relation is None:
      relation = r[2]
    elif (c and c[1] in lexicon.ITEMS) or r:
      distractors.append(clause)
    else:
      raise _fail(record, f"note clause {clause!r} is not a situation clause")
  missing = [n for n, v in (("weather", weather), ("condition", condition),
                            ("relation", relation)) if v is None]
  if missing:
    raise _fail(record, f"the note states no {', '.join(missing)} clause")
  return policy.Situation(weather, item, condition, requester, relation, template,
                          tuple(distractors))


def try_parse(record: Record) -> policy.Situation | None:
  try:
    return parse_situation(record)
  except NotADecisionError:
    return None


def situation_key(s: policy.Situation) -> tuple[str, str, str, str, str]:
  """What makes a scenario new: (person, item, weather, condition, relation)."""
  return (s.requester, s.item, s.weather, s.condition, s.relation)


def entities(s: policy.Situation) -> frozenset[str]:
  """Memory-graph entities of a decision: the requester and the item.

  The weather is left out on purpose: six values shared by every node would make the
  graph nearly complete (see docs/memory.md), and the walk would stop following people
  and items.
  """
  return frozenset({s.requester, s.item})
