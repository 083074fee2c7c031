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


# --- Intervals that hold their level with few seeds and clustered items -------------------
#
# Seeds (training randomness) and probe items are crossed: every arm and seed is scored on
# the same items, and items come in clusters (a grid cell, a template) that are not
# independent. The mean over S seeds x I items varies with both: its variance is about
#   var(seed means) / S  +  var(cluster means) / C
# (each term also holds some of the residual noise, so the sum errs on the wide side). With
# S = 3 a percentile bootstrap over seeds covers about 74% for a nominal 95%; a t interval
# with Welch-Satterthwaite degrees of freedom holds the level (`scripts/stats_coverage.py`
# measures both; `tests/runner/test_stats_levels.py` checks it).


@dataclasses.dataclass(frozen=True)
class TEstimate:
  """An estimate, its standard error and degrees of freedom: the interval and the one-sided
  p-value both come from the same t statistic, so they never disagree."""
  estimate: float
  se: float
  df: float

  def interval(self, level: float = 0.95) -> Interval:
    from scipy import stats as scipy_stats
    if self.se == 0:
      return Interval(self.estimate, self.estimate, self.estimate, level)
    if not np.isfinite(self.se):
      return Interval(self.estimate, -float("inf"), float("inf"), level)
    half = float(scipy_stats.t.ppf(0.5 + level / 2, self.df)) * self.se
    return Interval(self.estimate, self.estimate - half, self.estimate + half, level)

  def p_value(self, margin: float = 0.0, direction: str = "greater") -> float:
    """One-sided p for "estimate > margin" ("greater") or "estimate < margin" ("less")."""
    from scipy import stats as scipy_stats
    if direction not in ("greater", "less"):
      raise ValueError(f"direction: expected 'greater' or 'less', got {direction!r}")
    gap = self.estimate - margin if direction == "greater" else margin - self.estimate
    if not np.isfinite(self.se):  # nothing says how much it varies: never significant
      return 1.0 if gap < 0 else 0.5
    if self.se == 0:
      return 0.0 if gap > 0 else 1.0
    return float(scipy_stats.t.sf(gap / self.se, self.df))


def _cluster_ids(clusters, num_items: int) -> np.ndarray:
  if clusters is None:
    return np.arange(num_items)
  ids = np.asarray(clusters)
  if ids.shape != (num_items,):
    raise ValueError(f"clusters: one label per item ({num_items}), got shape {ids.shape}")
  return np.unique(ids, return_inverse=True)[1]


def crossed_t(x_SxI, clusters=None) -> TEstimate:
  """The mean of seeds x items scores (or of paired differences), with the standard error
  of seeds and item clusters crossed (see above) and Welch-Satterthwaite df. `clusters`:
  one label per item (None: every item its own cluster)."""
  x = np.asarray(x_SxI, np.float64)
  if x.ndim != 2 or x.size == 0:
    raise ValueError(f"crossed_t needs a non-empty seeds x items array, got {x.shape}")
  num_seeds, num_items = x.shape
  ids = _cluster_ids(clusters, num_items)
  num_clusters = int(ids.max()) + 1
  estimate = float(x.mean())
  parts = []  # (variance of the mean, df) per crossed factor
  if num_seeds > 1:
    parts.append((x.mean(axis=1).var(ddof=1) / num_seeds, num_seeds - 1))
  if num_clusters > 1:
    # The item-weighted mean of cluster means under cluster sampling (a ratio estimator).
    sizes = np.bincount(ids, minlength=num_clusters).astype(np.float64)
    means = np.bincount(ids, weights=x.mean(axis=0), minlength=num_clusters) / sizes
    share = sizes / sizes.sum()
    parts.append((num_clusters / (num_clusters - 1) * np.sum(share ** 2 *
                                                              (means - estimate) ** 2),
                  num_clusters - 1))
  if not parts:  # one seed and one cluster: nothing says how much it varies
    return TEstimate(estimate, float("inf"), float("inf"))
  variance = sum(v for v, _ in parts)
  if variance <= 0:
    return TEstimate(estimate, 0.0, float("inf"))
  df = variance ** 2 / sum(v ** 2 / d for v, d in parts if v > 0)
  return TEstimate(estimate, float(np.sqrt(variance)), float(df))


def nested_t(x_SxI) -> TEstimate:
  """The mean of seeds x items scores where each seed drew its own items (clusters nested
  in seeds: a seed's held-out cells and templates): the seed means carry every source of
  variation, so the t interval is over them, with S - 1 degrees of freedom."""
  x = np.asarray(x_SxI, np.float64)
  return crossed_t(x, np.zeros(x.shape[1], np.int64))


def ratio_t(numerator_S, denominator_S) -> TEstimate:
  """mean(numerator) / mean(denominator) over seeds (the transfer ratio: novel gain over
  training gain, one pair of seed means per seed), with the delta-method standard error
  of a ratio estimator, z_s = (n_s - R d_s) / mean(d), and S - 1 degrees of freedom. An
  undefined ratio (no mean gain in the denominator, or a loss: two losses would make a
  positive ratio) is -inf with an unbounded interval."""
  n = np.asarray(numerator_S, np.float64)
  d = np.asarray(denominator_S, np.float64)
  if n.shape != d.shape or n.ndim != 1 or n.size == 0:
    raise ValueError(f"ratio_t needs two vectors of seed means, got {n.shape}, {d.shape}")
  if d.mean() <= 1e-12:
    return TEstimate(-float("inf"), float("inf"), float("inf"))
  ratio = float(n.mean() / d.mean())
  if n.size < 2:
    return TEstimate(ratio, float("inf"), float("inf"))
  z = (n - ratio * d) / d.mean()
  return TEstimate(ratio, float(z.std(ddof=1) / np.sqrt(n.size)), float(n.size - 1))


@dataclasses.dataclass(frozen=True)
class Resamples:
  """A statistic and its bootstrap replicates: the interval and the p-value both read
  these same replicates."""
  estimate: float
  samples: np.ndarray

  def interval(self, level: float = 0.95) -> Interval:
    alpha = (1 - level) / 2
    finite = np.isfinite(self.samples).all()
    low, high = np.quantile(self.samples, [alpha, 1 - alpha],
                            method="linear" if finite else "inverted_cdf")
    return Interval(self.estimate, float(low), float(high), level)

  def p_value(self, margin: float = 0.0, direction: str = "greater") -> float:
    """The share of replicates on the wrong side of the margin (+1 correction)."""
    if direction not in ("greater", "less"):
      raise ValueError(f"direction: expected 'greater' or 'less', got {direction!r}")
    wrong = (self.samples <= margin) if direction == "greater" else (self.samples >= margin)
    return float((wrong.sum() + 1) / (len(self.samples) + 1))


def cluster_bootstrap(statistic, arrays: list[np.ndarray], clusters=None,
                      num_resamples: int = 2000, seed: int = 0) -> Resamples:
  """`statistic(*arrays)` (each seeds x items, the same items) resampled as the data were
  drawn: seeds, then clusters of items, then items within each drawn cluster. For
  statistics without a t form (ratios such as the transfer ratio)."""
  arrays = [np.asarray(a, np.float64) for a in arrays]
  if any(a.ndim != 2 or a.shape != arrays[0].shape for a in arrays):
    raise ValueError("cluster_bootstrap needs seeds x items arrays of one shape, got "
                     f"{[a.shape for a in arrays]}")
  num_seeds, num_items = arrays[0].shape
  ids = _cluster_ids(clusters, num_items)
  members = [np.flatnonzero(ids == c) for c in range(int(ids.max()) + 1)]
  rng = np.random.default_rng(seed)
  samples = np.empty(num_resamples)
  for r in range(num_resamples):
    s = rng.integers(0, num_seeds, num_seeds)
    drawn = rng.integers(0, len(members), len(members))
    items = np.concatenate([m[rng.integers(0, len(m), len(m))] for m in
                            (members[c] for c in drawn)])
    samples[r] = statistic(*[a[np.ix_(s, items)] for a in arrays])
  return Resamples(float(statistic(*arrays)), samples)


def intersection_union(p_values: dict[str, float]) -> float:
  """The p-value of "the claim holds against every comparator" (an intersection-union
  test: it rejects at alpha when every single comparison does, with no correction)."""
  if not p_values:
    raise ValueError("intersection_union: no comparisons")
  return max(p_values.values())
