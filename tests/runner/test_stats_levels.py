"""The verdicts' statistics on synthetic data with known answers: intervals cover at their
level with few seeds and clustered items, a planted difference is found at the stated
power, a null fires at most at alpha, and the intersection-union test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from msr_jax.runner import stats


def _crossed(rng, seeds, clusters, per_cluster, mu=0.0, sd_seed=1.0, sd_cluster=1.0,
             sd_noise=1.0):
  """x[s, i] = mu + seed effect + cluster effect + noise (seeds and items crossed)."""
  labels = np.repeat(np.arange(clusters), per_cluster)
  x = (mu + sd_seed * rng.normal(size=(seeds, 1))
       + sd_cluster * rng.normal(size=clusters)[labels][None, :]
       + sd_noise * rng.normal(size=(seeds, clusters * per_cluster)))
  return x, labels


@pytest.mark.parametrize("seeds,clusters", [(3, 6), (5, 8), (10, 6)])
def test_the_crossed_t_interval_covers_at_its_level(seeds, clusters):
  rng = np.random.default_rng(seeds * 100 + clusters)
  covered = []
  for _ in range(2000):
    x, labels = _crossed(rng, seeds, clusters, 4, mu=0.3)
    interval = stats.crossed_t(x, labels).interval(0.95)
    covered.append(interval.low <= 0.3 <= interval.high)
  # Conservative by construction (each variance term holds some residual), never short.
  assert 0.94 <= np.mean(covered) <= 0.995, np.mean(covered)


def test_ignoring_the_clusters_or_the_small_seed_count_undercovers():
  """The controls of the test above: the same data, a normal quantile instead of t, or the
  items treated as independent, cover visibly less than 95%."""
  rng = np.random.default_rng(1)
  normal, no_clusters = [], []
  for _ in range(2000):
    x, labels = _crossed(rng, 3, 6, 4, mu=0.0)
    t = stats.crossed_t(x, labels)
    normal.append(abs(t.estimate) <= 1.96 * t.se)
    flat = stats.crossed_t(x)  # every item its own cluster
    interval = flat.interval(0.95)
    no_clusters.append(interval.low <= 0.0 <= interval.high)
  assert np.mean(normal) < 0.93 and np.mean(no_clusters) < 0.93


def test_a_planted_difference_is_found_at_the_stated_power_and_a_null_at_alpha():
  """Paired differences (arm - baseline) with a planted effect of 3 standard errors:
  a one-sided test at alpha 0.05 has power about 1 - Phi(1.645 - 3) = 0.91 in the large-df
  limit, less at finite df; the null fires at most alpha."""
  rng = np.random.default_rng(2)
  seeds, clusters, per = 5, 8, 4
  se = np.sqrt(0.5 ** 2 / seeds + 0.5 ** 2 / clusters + 0.5 ** 2 / (seeds * clusters * per))
  hits, false = [], []
  for _ in range(1500):
    planted, labels = _crossed(rng, seeds, clusters, per, mu=3 * se, sd_seed=0.5,
                               sd_cluster=0.5, sd_noise=0.5)
    null, _ = _crossed(rng, seeds, clusters, per, mu=0.0, sd_seed=0.5, sd_cluster=0.5,
                       sd_noise=0.5)
    hits.append(stats.crossed_t(planted, labels).p_value(0.0, "greater") < 0.05)
    false.append(stats.crossed_t(null, labels).p_value(0.0, "greater") < 0.05)
  assert np.mean(hits) >= 0.60, np.mean(hits)
  assert np.mean(false) <= 0.05 + 0.012, np.mean(false)


def test_the_interval_and_the_p_value_agree():
  rng = np.random.default_rng(3)
  for _ in range(50):
    x, labels = _crossed(rng, 4, 6, 3, mu=rng.normal())
    t = stats.crossed_t(x, labels)
    interval = t.interval(0.90)
    # The 90% two-sided interval's lower bound is above m exactly when p(> m) < 0.05.
    for margin in (interval.low - 1e-9, interval.low + 1e-9):
      assert (t.p_value(margin, "greater") < 0.05) == (interval.low > margin)
  resampled = stats.cluster_bootstrap(lambda a: a.mean(), [x], labels, num_resamples=400)
  interval = resampled.interval(0.90)
  assert (resampled.p_value(interval.low - 1e-9) <= 0.06)


def test_one_seed_per_value_is_a_plain_t_interval():
  values = np.array([[0.2], [0.5], [0.4]])
  t = stats.crossed_t(values)
  half = scipy_stats.t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
  interval = t.interval()
  assert interval.low == pytest.approx(values.mean() - half) and t.df == pytest.approx(2)


def test_the_cluster_bootstrap_is_wider_than_the_item_bootstrap_on_clustered_data():
  rng = np.random.default_rng(4)
  x, labels = _crossed(rng, 6, 10, 8, sd_seed=0.1, sd_cluster=1.0, sd_noise=0.1)
  clustered = stats.cluster_bootstrap(lambda a: a.mean(), [x], labels, num_resamples=500)
  items = stats.cluster_bootstrap(lambda a: a.mean(), [x], None, num_resamples=500)
  width = lambda r: r.interval().high - r.interval().low
  # Theory: sqrt(80 items / 10 clusters) = 2.8 times as wide.
  assert width(clustered) > 2 * width(items)


def test_the_intersection_union_test_takes_the_weakest_comparison():
  assert stats.intersection_union({"a": 0.01, "b": 0.04, "c": 0.002}) == 0.04
  with pytest.raises(ValueError):
    stats.intersection_union({})


def test_one_seed_and_one_cluster_say_nothing():
  t = stats.crossed_t(np.array([[0.3, 0.3, 0.3]]), clusters=["a", "a", "a"])
  interval = t.interval()
  assert interval.low == -np.inf and interval.high == np.inf
  assert t.p_value(0.0, "greater") == pytest.approx(0.5)


def _nested(rng, seeds, clusters_per_seed, per_cluster, mu=0.0, sd=1.0):
  """Each seed draws its own clusters (held-out cells rotated across seeds): x[s, i] =
  mu + seed effect + its own cluster's effect + noise."""
  labels = np.repeat(np.arange(clusters_per_seed), per_cluster)
  cluster = sd * rng.normal(size=(seeds, clusters_per_seed))[:, labels]
  return (mu + sd * rng.normal(size=(seeds, 1)) + cluster
          + sd * rng.normal(size=(seeds, clusters_per_seed * per_cluster)))


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_the_nested_t_interval_covers_at_its_level(seeds):
  """With clusters nested in seeds (2 held-out cells a seed: an item column holds other
  cells in every seed, so it is no cluster), the t interval over seed means covers at 95%."""
  rng = np.random.default_rng(seeds)
  nested = []
  for _ in range(2000):
    x = _nested(rng, seeds, 2, 6, mu=0.2)
    i = stats.nested_t(x).interval(0.95)
    nested.append(i.low <= 0.2 <= i.high)
  assert 0.935 <= np.mean(nested) <= 0.965, np.mean(nested)


def test_the_ratio_t_interval_covers_a_known_transfer_ratio():
  """Seed means of a novel gain that is 0.8 of the training gain (plus noise): the
  delta-method t interval of the ratio of means covers 0.8 at about 95% with 5 seeds,
  and a ratio with no training gain is unbounded and never significant."""
  rng = np.random.default_rng(7)
  covered = []
  for _ in range(3000):
    train = 0.8 + 0.05 * rng.normal(size=5)
    novel = 0.8 * train + 0.08 * rng.normal(size=5)
    i = stats.ratio_t(novel, train).interval(0.95)
    covered.append(i.low <= 0.8 <= i.high)
  assert 0.93 <= np.mean(covered) <= 0.97, np.mean(covered)
  undefined = stats.ratio_t(np.ones(5), np.zeros(5))
  assert undefined.interval(0.95).low == -np.inf
  assert undefined.p_value(0.5, "greater") == 1.0
