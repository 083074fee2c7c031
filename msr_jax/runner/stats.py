"""Statistics for verdicts: paired bootstrap over items x seeds, tests, Holm correction.

Scores are arrays `S x I` (seeds x items), one per arm, on the *same* items and seeds, so
comparisons are paired. The bootstrap resamples seeds, then items within the resampled
set (a two-level bootstrap, as METRICS.md prescribes), and recomputes the statistic on
each resample with the same indices for every arm.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Interval:
  estimate: float
  low: float
  high: float
  level: float = 0.95

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def _resample_indices(rng: np.random.Generator, num_seeds: int, num_items: int):
  """Seeds first, then items (the two-level bootstrap)."""
  seeds = rng.integers(0, num_seeds, num_seeds)
  items = rng.integers(0, num_items, num_items)
  return seeds, items


def paired_bootstrap(statistic, arrays: list[np.ndarray], num_resamples: int = 2000,
                     seed: int = 0, level: float = 0.95) -> Interval:
  """CI of `statistic(*arrays)` where each array is seeds x items.

  All arrays share the seed resampling. Arrays with the same number of items share the
  item resampling too (they are the same items scored in different arms or stages);
  arrays over different item sets (say, training situations and novel ones) get
  independent item resamples.
  """
  arrays = [np.asarray(a, np.float64) for a in arrays]
  if any(a.ndim != 2 for a in arrays) or len({a.shape[0] for a in arrays}) != 1:
    raise ValueError("paired_bootstrap needs seeds x items arrays with the same seeds, got "
                     f"{[a.shape for a in arrays]}")
  num_seeds = arrays[0].shape[0]
  item_counts = sorted({a.shape[1] for a in arrays})
  rng = np.random.default_rng(seed)
  samples = np.empty(num_resamples)
  for r in range(num_resamples):
    s = rng.integers(0, num_seeds, num_seeds)
    items = {n: rng.integers(0, n, n) for n in item_counts}
    samples[r] = statistic(*[a[np.ix_(s, items[a.shape[1]])] for a in arrays])
  alpha = (1 - level) / 2
  # Interpolating next to an infinite sample gives NaN; without interpolation the bound is
  # a resampled value (the default, linear, whenever every sample is finite).
  method = "linear" if np.isfinite(samples).all() else "inverted_cdf"
  low, high = np.quantile(samples, [alpha, 1 - alpha], method=method)
  return Interval(float(statistic(*arrays)), float(low), float(high), level)


def mean_ci(scores_SxI, **kwargs) -> Interval:
  return paired_bootstrap(lambda a: a.mean(), [scores_SxI], **kwargs)


def difference_ci(a_SxI, b_SxI, **kwargs) -> Interval:
  """CI of mean(a) - mean(b), paired over seeds and items."""
  if np.shape(a_SxI) != np.shape(b_SxI):
    raise ValueError(f"difference_ci needs paired arrays, got {np.shape(a_SxI)} and "
                     f"{np.shape(b_SxI)}")
  return paired_bootstrap(lambda a, b: a.mean() - b.mean(), [a_SxI, b_SxI], **kwargs)


def bootstrap_p_value(a_SxI, b_SxI, margin: float = 0.0, direction: str = "greater",
                      num_resamples: int = 2000, seed: int = 0) -> float:
  """One-sided bootstrap p-value for mean(a) - mean(b) > margin ("greater") or < margin
  ("less"): the fraction of resampled differences on the wrong side of the margin
  (with the +1 correction so p is never exactly 0)."""
  a_SxI, b_SxI = np.asarray(a_SxI, np.float64), np.asarray(b_SxI, np.float64)
  rng = np.random.default_rng(seed)
  num_seeds, num_items = a_SxI.shape
  wrong = 0
  for _ in range(num_resamples):
    s, i = _resample_indices(rng, num_seeds, num_items)
    d = a_SxI[np.ix_(s, i)].mean() - b_SxI[np.ix_(s, i)].mean()
    wrong += d <= margin if direction == "greater" else d >= margin
  return (wrong + 1) / (num_resamples + 1)


def non_inferior(harm: Interval, margin: float) -> bool:
  """Non-inferiority: the upper bound of the harm's CI is below the declared margin."""
  return harm.high < margin


def superior(difference: Interval, direction: str = "greater") -> bool:
  """Superiority: the CI of the difference excludes 0 in the claimed direction."""
  return difference.low > 0 if direction == "greater" else difference.high < 0


def holm(p_values: dict[str, float], alpha: float = 0.05) -> dict[str, bool]:
  """Holm-Bonferroni step-down: which hypotheses are rejected at family-wise level alpha."""
  order = sorted(p_values, key=lambda k: p_values[k])
  m = len(order)
  rejected: dict[str, bool] = {k: False for k in order}
  for rank, key in enumerate(order):
    if p_values[key] <= alpha / (m - rank):
      rejected[key] = True
    else:
      break
  return rejected


def holm_adjusted(p_values: dict[str, float]) -> dict[str, float]:
  """Holm-adjusted p-values (monotone, capped at 1)."""
  order = sorted(p_values, key=lambda k: p_values[k])
  m = len(order)
  adjusted, running = {}, 0.0
  for rank, key in enumerate(order):
    running = max(running, min(1.0, (m - rank) * p_values[key]))
    adjusted[key] = running
  return adjusted
