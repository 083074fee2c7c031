"""The conversation record: the one unit of training data in msr-jax.

One record per JSONL line:
  {"id": str, "messages": [{"role": "system"|"user"|"assistant", "content": str}, ...],
   "decisions": [int, ...] (optional: indices into `messages` of the assistant turns to
   train on; default all assistant turns), "source": str (agent_log, conversation, dream,
   townworld, ...), "weight": float (optional, default 1.0), "meta": {...} (optional)}
Townworld episodes, agent logs and dreams all become records, so one pipeline trains on all.
`validate.py` checks a JSON object field by field; `jsonl.py` reads and writes files.
"""

from __future__ import annotations

import dataclasses

ROLES = ("system", "user", "assistant")
# Every top-level field a JSONL record may carry; anything else is an error, so a typo
# ("decision", "wieght") is never silently ignored.
FIELDS = ("id", "messages", "source", "decisions", "weight", "meta")
MESSAGE_FIELDS = ("role", "content")
# The largest record weight. Weights are relative (they scale a record's loss terms), and
# one beyond this would become inf in float32 and take the loss, the probes and the guard
# with it; 1e6 already lets one record outweigh a million others.
MAX_WEIGHT = 1e6


@dataclasses.dataclass(frozen=True)
class Message:
  role: str
  content: str


@dataclasses.dataclass(frozen=True)
class Record:
  id: str
  messages: tuple[Message, ...]
  source: str = "conversation"
  decisions: tuple[int, ...] | None = None
  weight: float = 1.0
  # Free-form metadata (for example Townworld's split and cell); never trained on.
  meta: dict = dataclasses.field(default_factory=dict, compare=False)

  def decision_indices(self) -> tuple[int, ...]:
    """Indices of the assistant messages to train on."""
    if self.decisions is not None:
      return self.decisions
    return tuple(i for i, m in enumerate(self.messages) if m.role == "assistant")

  def to_json(self) -> dict:
    out = {"id": self.id, "messages": [dataclasses.asdict(m) for m in self.messages],
           "source": self.source}
    if self.decisions is not None:
      out["decisions"] = list(self.decisions)
    if self.weight != 1.0:
      out["weight"] = self.weight
    if self.meta:
      out["meta"] = self.meta
    return out

  @classmethod
  def from_json(cls, obj: dict) -> Record:
    """Builds a record from a JSON object that `validate.check_record_json` accepted.

    Decisions are stored sorted (their order in the file carries no meaning).
    """
    decisions = obj.get("decisions")
    return cls(
        id=obj["id"],
        messages=tuple(Message(m["role"], m["content"]) for m in obj["messages"]),
        source=obj["source"],
        decisions=None if decisions is None else tuple(sorted(decisions)),
        weight=float(obj.get("weight", 1.0)),
        meta=dict(obj.get("meta", {})),
    )
