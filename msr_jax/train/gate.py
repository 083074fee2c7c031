"""The efficacy gate: train until the target behaviour is learned, checked every N steps.

Forgetting compares between arms only at matched learning: an arm that learned less has
less to forget with. The gate measures the trained behaviour's efficacy on a held-out
validation split (`gate_fn(params) -> efficacy in [0, 1]`, or for a chat model's run the
behaviour probe that `config.gate.prompts` and `config.gate.judge` name) at step 0 and every
`config.gate.every` steps, and stops the run at the first check that reaches
`config.gate.target`; `config.train.steps` is the cap. A run that reaches the cap without
the target ends with `gate_reached = False`: what it forgot is not comparable, and the
criteria that need matched learning read "inconclusive: not learned within N steps".

Every check is a "gate" line in metrics.jsonl (the learning curve); the state is JSON, saved
in every checkpoint, so a resumed run decides as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass
class GateState:
  reached: bool = False
  step: int | None = None           # the step of the check that reached the target
  efficacy: float | None = None     # the last check's
  checks: int = 0


class EfficacyGate:

  def __init__(self, every: int, target: float):
    if every < 0:
      raise ValueError(f"gate.every must be >= 0 (0 = off), got {every}")
    if every and not 0 < target <= 1:
      raise ValueError(f"gate.target must be in (0, 1], got {target}")
    self.every, self.target = int(every), float(target)
    self.state = GateState()

  def due(self, step: int) -> bool:
    return self.every > 0 and step % self.every == 0

  def observe(self, step: int, efficacy: float) -> dict:
    """Records a check; the event's "reached" says whether the run stops here."""
    if not math.isfinite(efficacy):
      raise ValueError(f"gate: the efficacy at step {step} is {efficacy}")
    s = self.state
    s.efficacy, s.checks = float(efficacy), s.checks + 1
    if efficacy >= self.target and not s.reached:
      s.reached, s.step = True, int(step)
    return {"type": "gate", "step": int(step), "efficacy": float(efficacy),
            "target": self.target, "reached": s.reached}

  def summary(self) -> dict:
    return {"gate_reached": self.state.reached, "gate_step": self.state.step,
            "gate_efficacy": self.state.efficacy}

  def get_state(self) -> dict:
    return dataclasses.asdict(self.state)

  def set_state(self, state: dict) -> None:
    self.state = GateState(**state)


def behaviour_gate_fn(graphdef, tokenizer, prompts_path: str, judge: str, rubric: str = ""):
  """params -> the share of the held-out prompts whose greedy answer the judge accepts."""
  from msr_jax.eval import behaviour_probes, real_probes
  prompts = [row["prompt"] for row in real_probes.read_set(prompts_path, ("prompt",))]
  judge_fn = behaviour_probes.judge_from_spec(judge, rubric)
  return lambda params: behaviour_probes.behaviour_score(
      graphdef, params, tokenizer, prompts, judge_fn)["acc"]


def gate_from_config(config, graphdef, checkpoint_tokenizer, gate_fn=None):
  """(EfficacyGate, gate_fn) of config.gate: the caller's gate_fn, or for a chat model's
  run the behaviour probe config.gate names (off: every 0)."""
  from msr_jax.errors import ConfigError
  g = config.get("gate", None)
  if g is None or int(g.every) == 0:
    return EfficacyGate(0, 1.0), None
  try:
    gate = EfficacyGate(int(g.every), float(g.target))
  except ValueError as e:
    raise ConfigError(f"config.{e}") from None
  if gate_fn is None:
    if not (g.prompts and g.judge) or checkpoint_tokenizer is None:
      raise ConfigError("config.gate.every > 0 needs config.gate.prompts and config.gate.judge "
                        "(a run from a chat model's checkpoint) or a gate_fn from the caller")
    try:
      gate_fn = behaviour_gate_fn(graphdef, checkpoint_tokenizer, g.prompts, g.judge,
                                  g.get("rubric", ""))
    except ValueError as e:  # a bad regex, a missing rubric
      raise ConfigError(f"config.gate.judge={g.judge!r}: {e}") from None
  return gate, gate_fn
