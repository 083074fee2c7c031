"""The conversation record: the one unit of training data in msr-jax.

One record per JSONL line:
  {"id": str, "messages": [{"role": "system"|"user"|"assistant", "content": str}, ...],
   "decisions": [int, ...] (optional: indices into `messages` of the assistant turns to
   train on; default all assistant turns), "source": str (agent_log, conversation, dream,
   townworld, ...), "weight": float (optional, default 1.0)}
Townworld episodes, agent logs and dreams all become records, so one pipeline trains on all.
"""

from __future__ import annotations

import dataclasses

ROLES = ("system", "user", "assistant")


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
