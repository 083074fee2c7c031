"""The quality guard: probe every N steps, roll back when the score falls too far.

The guard is host-side bookkeeping; the loop owns the arrays. Its rule:
  - the first probe (step 0, before any update) sets the baseline: best score, and the
    state at that point is the last good one;
  - a probe that beats the best score makes the current state the new last good one;
  - a probe more than `threshold` below the best score triggers a rollback to the last
    good state, then `action`: "halve_lr" (the learning rate is halved for the rest of
    the run, cumulatively over rollbacks) or "stop". The `max_rollbacks`-th rollback also
    stops the run, so a run rolls back at most `max_rollbacks` times (0: the first drop
    stops it, restoring the last good state as it stops, as every stop does);
  - a probe whose score is not finite (a diverged model) counts as an unbounded drop, and
    its event says so ("non_finite"); a first probe that is not finite is an error
    (`GuardError`): with no baseline there is nothing to guard, and every later comparison
    with it would be false;
  - with an `anchor` (a score from outside the run: the base model's, when one job is
    split into several trainer runs, as the dream loop's cycles are), drops are measured
    from max(best score, anchor), so a decline spread over runs, each within the
    threshold, is still caught; a run whose first probe is already more than `threshold`
    below the anchor stops before its first update ("below_anchor").
Every probe produces an event (a dict the loop writes to metrics.jsonl as type "guard")
with the step and the numbers behind the decision. The state is JSON, so it is saved in
every checkpoint and a resumed run decides exactly as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math

from msr_jax.errors import UserError

ACTIONS = ("halve_lr", "stop")


class GuardError(UserError, ValueError):
  """The guard cannot judge the run (its baseline probe is not finite)."""


@dataclasses.dataclass
class GuardState:
  best_score: float | None = None
  best_step: int | None = None
  num_rollbacks: int = 0
  lr_factor: float = 1.0        # cumulative learning-rate factor from rollbacks
  good_lr_factor: float = 1.0   # lr_factor in force when the last good state was taken
  stopped: bool = False


class QualityGuard:

  def __init__(self, every: int, threshold: float, action: str = "halve_lr",
               max_rollbacks: int = 3, anchor: float | None = None):
    if every < 0:
      raise ValueError(f"guard.every must be >= 0 (0 = off), got {every}")
    if not threshold >= 0:
      raise ValueError(f"guard.threshold must be >= 0, got {threshold}")
    if action not in ACTIONS:
      raise ValueError(f"guard.action: unknown {action!r}, expected one of {ACTIONS}")
    self.every, self.threshold, self.action = every, float(threshold), action
    if max_rollbacks < 0:
      raise ValueError(f"guard.max_rollbacks must be >= 0, got {max_rollbacks}")
    self.max_rollbacks = max_rollbacks
    if anchor is not None and not math.isfinite(anchor):
      raise ValueError(f"guard.anchor must be a finite score or None, got {anchor}")
    self.anchor = None if anchor is None else float(anchor)
    self.state = GuardState()

  def due(self, step: int) -> bool:
    return self.every > 0 and step % self.every == 0

  def observe(self, step: int, score: float) -> dict:
    """Decides on a probe score. The returned event's "event" is one of:
    "baseline", "best" (take a new good copy), "ok", "rollback" (restore the good copy;
    "stop" true when the run must end, "lr_factor" the factor to run on), "below_anchor"
    (the first probe is already too far below the anchor: stop, nothing to restore)."""
    s = self.state
    event = {"type": "guard", "step": int(step), "score": float(score),
             "best_score": s.best_score, "best_step": s.best_step,
             "threshold": self.threshold, "anchor": self.anchor}
    if s.best_score is None and not math.isfinite(score):
      raise GuardError(
          f"guard: the probe's score at step {step} (the baseline, before any update) is "
          f"{score}, so there is nothing to guard against; the probe's data or the model "
          "gives non-finite values (check the held-out records' weights and inputs, or the "
          "probe function)")
    if s.best_score is None or (math.isfinite(score) and score > s.best_score):
      first = s.best_score is None
      event["event"] = "baseline" if first else "best"
      s.best_score, s.best_step, s.good_lr_factor = float(score), int(step), s.lr_factor
      if first and self.anchor is not None and self.anchor - score > self.threshold:
        s.stopped = True
        event.update(event="below_anchor", drop=self.anchor - score, stop=True)
      return event
    reference = s.best_score if self.anchor is None else max(s.best_score, self.anchor)
    drop = reference - score if math.isfinite(score) else math.inf
    event["drop"] = drop
    if not math.isfinite(score):
      event["non_finite"] = True
    if drop <= self.threshold:
      event["event"] = "ok"
      return event
    s.num_rollbacks += 1
    stop = self.action == "stop" or s.num_rollbacks >= self.max_rollbacks
    if not stop:
      s.lr_factor *= 0.5
    s.stopped = stop
    event.update(event="rollback", action=self.action, rollback_to_step=s.best_step,
                 num_rollbacks=s.num_rollbacks, lr_factor=s.lr_factor, stop=stop)
    return event

  def get_state(self) -> dict:
    return dataclasses.asdict(self.state)

  def set_state(self, state: dict) -> None:
    self.state = GuardState(**state)
