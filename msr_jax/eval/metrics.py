"""Continual-learning metrics over a score matrix (pure numpy).

The score matrix ``R[i][j]`` (``scores_SxP``) holds the score on probe set ``j``
after update stage ``i``. Row 0 is the base model; rows ``1..T`` follow the ``T``
update stages, so the matrix has ``S = T + 1`` rows. Scores are "higher is
better" (accuracy, exact match, log-probability); pass ``-loss`` for losses.

Index alignment (used by :func:`bwt`). Stage ``i`` (``1 <= i <= T``) trains
task ``i``, and by default probe column ``i`` is task ``i``'s probe set, so
``R[i][i]`` is the score on task ``i`` right after learning it, exactly as in
GEM's 1-indexed notation. Column 0 is then free for a probe of what the base
model already knew (it is not a task, so BWT ignores it). When the columns are
ordered differently, pass ``task_probes`` (the column of stage ``i``'s task).

References:
  Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory for Continual Learning"
    (ACC, BWT).
  Chaudhry et al. 2018, "Riemannian Walk for Incremental Learning:
    Understanding Forgetting and Intransigence" (forgetting f_j(k), F_k).
  De Lange et al. 2022, "Continual evaluation for lifelong learning:
    Identifying the stability gap" (minimum score during training).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses

import numpy as np


def _as_scores(scores_SxP, name: str = "scores_SxP") -> np.ndarray:
  """Validates a score matrix: 2-D, finite, at least the base row."""
  scores_SxP = np.asarray(scores_SxP, dtype=np.float64)
  if scores_SxP.ndim != 2:
    raise ValueError(
        f"msr_jax/eval/metrics.py: {name} must be 2-D [stage][probe], got shape "
        f"{scores_SxP.shape}")
  if scores_SxP.shape[0] < 1 or scores_SxP.shape[1] < 1:
    raise ValueError(
        f"msr_jax/eval/metrics.py: {name} is empty (shape {scores_SxP.shape})")
  if not np.all(np.isfinite(scores_SxP)):
    bad = tuple(int(i) for i in np.argwhere(~np.isfinite(scores_SxP))[0])
    raise ValueError(
        f"msr_jax/eval/metrics.py: {name}{list(bad)} is not finite "
        f"({scores_SxP[bad]})")
  return scores_SxP


def _probe_columns(probes, num_probes: int, name: str) -> np.ndarray:
  cols = np.arange(num_probes) if probes is None else np.asarray(
      list(probes), dtype=np.int64)
  if cols.ndim != 1 or cols.size == 0:
    raise ValueError(f"msr_jax/eval/metrics.py: {name} must be a non-empty "
                     f"list of probe columns, got {probes!r}")
  if np.any(cols < 0) or np.any(cols >= num_probes):
    raise ValueError(f"msr_jax/eval/metrics.py: {name}={cols.tolist()} has a "
                     f"column outside [0, {num_probes})")
  return cols


def acc(scores_SxP, probes: Sequence[int] | None = None) -> float:
  """Average score after the last stage: ACC = mean_j R[T][j] (GEM, 2017).

  Args:
    scores_SxP: ``R[stage][probe]``, row 0 the base model, last row stage T.
    probes: the columns to average over (default: all). GEM averages over the
      T task columns only; pass ``range(1, T + 1)`` for that under the default
      alignment, or leave the default to include the base-knowledge column.

  Returns:
    The mean of the last row over ``probes``.
  """
  scores_SxP = _as_scores(scores_SxP)
  cols = _probe_columns(probes, scores_SxP.shape[1], "probes")
  return float(scores_SxP[-1, cols].mean())


def bwt(scores_SxP, task_probes: Sequence[int] | None = None) -> float:
  """Backward transfer (GEM, Lopez-Paz & Ranzato 2017, eq. 3).

  BWT = 1/(T-1) * sum_{i=1}^{T-1} (R[T][t_i] - R[i][t_i]), where ``t_i`` is the
  probe column of the task trained at stage ``i`` (default ``t_i = i``, giving
  GEM's ``R[T][i] - R[i][i]``). The last task (i = T) is excluded: its term is
  always 0. GEM's reference code instead averages over all T terms including
  that 0, i.e. reports (T-1)/T times this value; we follow the paper.
  Negative BWT means forgetting.

  Args:
    scores_SxP: ``R[stage][probe]`` with ``T + 1`` rows (row 0 the base).
    task_probes: ``T`` column indices; entry ``i - 1`` is the column of stage
      ``i``'s task. Default ``[1, ..., T]``.

  Returns:
    BWT as a float.

  Raises:
    ValueError: if there are fewer than two update stages (T < 2, BWT is 0/0).
  """
  scores_SxP = _as_scores(scores_SxP)
  num_stages = scores_SxP.shape[0] - 1
  if num_stages < 2:
    raise ValueError(
        "msr_jax/eval/metrics.py: BWT needs at least 2 update stages (rows "
        f"base + T with T >= 2), got T={num_stages}")
  if task_probes is None:
    task_probes = range(1, num_stages + 1)
  cols = _probe_columns(task_probes, scores_SxP.shape[1], "task_probes")
  if cols.size != num_stages:
    raise ValueError(
        f"msr_jax/eval/metrics.py: task_probes has {cols.size} entries, but "
        f"scores_SxP has T={num_stages} update stages (one column per stage)")
  stages = np.arange(1, num_stages)  # i = 1 .. T-1
  cols = cols[:-1]
  return float(np.mean(scores_SxP[-1, cols] - scores_SxP[stages, cols]))


def forgetting_per_probe(scores_SxP, stage: int | None = None) -> np.ndarray:
  """Chaudhry et al. 2018 forgetting of every probe at stage ``k``.

  f_j(k) = max_{l < k} R[l][j] - R[k][j]: the drop from the best score probe
  ``j`` ever had before stage ``k`` (the base row 0 included) to its score at
  ``k``. Negative values mean the probe is now better than ever before.

  Args:
    scores_SxP: ``R[stage][probe]``, row 0 the base model.
    stage: ``k`` in ``1..T`` (default ``T``, the last row).

  Returns:
    ``f_P``, one value per probe column.
  """
  scores_SxP = _as_scores(scores_SxP)
  num_stages = scores_SxP.shape[0] - 1
  k = num_stages if stage is None else int(stage)
  if not 1 <= k <= num_stages:
    raise ValueError(f"msr_jax/eval/metrics.py: stage={stage} must be in "
                     f"[1, {num_stages}] (row 0 is the base model)")
  return scores_SxP[:k].max(axis=0) - scores_SxP[k]


def forgetting(scores_SxP, stage: int | None = None,
               probes: Sequence[int] | None = None) -> float:
  """Average forgetting F_k = mean_j f_j(k) (Chaudhry et al. 2018).

  Args:
    scores_SxP: ``R[stage][probe]``, row 0 the base model.
    stage: ``k`` in ``1..T`` (default ``T``).
    probes: the columns ``j`` to average over (default: all). Chaudhry et al.
      average over the tasks learned before ``k``; under the default alignment
      that is ``range(1, k)`` (``range(0, k)`` to include the base probe).

  Returns:
    F_k as a float.
  """
  f_P = forgetting_per_probe(scores_SxP, stage)
  cols = _probe_columns(probes, f_P.shape[0], "probes")
  return float(f_P[cols].mean())


@dataclasses.dataclass(frozen=True)
class StabilityGap:
  """The dip of one probe's score over a training run (De Lange et al. 2022).

  Attributes:
    start: score at the first evaluation (before or at the first step).
    min_score: the minimum score over the whole curve (De Lange's min-ACC term).
    min_step: the step at which ``min_score`` was first reached.
    final: score at the last evaluation.
    dip: ``start - min_score`` (>= 0): how far the score fell.
    recovery: ``final - min_score`` (>= 0): how much of the dip came back.
  """
  start: float
  min_score: float
  min_step: int
  final: float
  dip: float
  recovery: float

  @property
  def recovered_fraction(self) -> float:
    """``recovery / dip`` (1.0 when there was no dip)."""
    return 1.0 if self.dip == 0.0 else self.recovery / self.dip


def stability_gap(curve: Sequence[tuple[int, float]]) -> StabilityGap:
  """Minimum score of one probe during training (De Lange et al. 2022).

  Evaluating only at stage ends hides dips that recover; this takes the whole
  evaluation curve of one probe set.

  Args:
    curve: ``(step, score)`` pairs with strictly increasing steps; the first
      pair is the reference (usually the evaluation before training).

  Returns:
    A :class:`StabilityGap`.
  """
  if len(curve) == 0:
    raise ValueError("msr_jax/eval/metrics.py: stability_gap got an empty curve")
  try:
    steps_N = np.asarray([int(step) for step, _ in curve], dtype=np.int64)
    scores_N = np.asarray([float(score) for _, score in curve])
  except (TypeError, ValueError) as e:
    raise ValueError("msr_jax/eval/metrics.py: curve must be a sequence of "
                     f"(step, score) pairs: {e}") from e
  if np.any(np.diff(steps_N) <= 0):
    i = int(np.argmax(np.diff(steps_N) <= 0)) + 1
    raise ValueError(f"msr_jax/eval/metrics.py: curve steps must increase; "
                     f"entry {i} has step {steps_N[i]} after {steps_N[i - 1]}")
  if not np.all(np.isfinite(scores_N)):
    i = int(np.argmax(~np.isfinite(scores_N)))
    raise ValueError(f"msr_jax/eval/metrics.py: curve entry {i} (step "
                     f"{steps_N[i]}) has a non-finite score {scores_N[i]}")
  i_min = int(np.argmin(scores_N))  # first occurrence of the minimum
  start, low, final = float(scores_N[0]), float(scores_N[i_min]), float(
      scores_N[-1])
  return StabilityGap(start=start, min_score=low, min_step=int(steps_N[i_min]),
                      final=final, dip=start - low, recovery=final - low)


def stability_gaps(
    curves: Mapping[str, Sequence[tuple[int, float]]]
) -> tuple[dict[str, StabilityGap], float]:
  """:func:`stability_gap` for several probes, plus their average minimum.

  Args:
    curves: probe name -> ``(step, score)`` curve.

  Returns:
    ``(gaps, min_acc)``: the per-probe gaps and the mean of their
    ``min_score`` (De Lange et al.'s min-ACC over the given probes).
  """
  if not curves:
    raise ValueError("msr_jax/eval/metrics.py: stability_gaps got no curves")
  gaps = {}
  for name, curve in curves.items():
    try:
      gaps[name] = stability_gap(curve)
    except ValueError as e:
      raise ValueError(f"{e} (probe {name!r})") from e
  return gaps, float(np.mean([g.min_score for g in gaps.values()]))
