import numpy as np
import pytest

from msr_jax.runner import stats


def test_mean_ci_brackets_the_mean_and_shrinks_with_data():
  rng = np.random.default_rng(0)
  small = rng.normal(0.5, 0.2, (3, 20))
  large = rng.normal(0.5, 0.2, (3, 400))
  a, b = stats.mean_ci(small, num_resamples=500), stats.mean_ci(large, num_resamples=500)
  assert a.low <= a.estimate <= a.high
  assert (b.high - b.low) < (a.high - a.low)


def test_constant_difference_has_degenerate_interval():
  a = np.full((3, 10), 0.8)
  b = np.full((3, 10), 0.5)
  d = stats.difference_ci(a, b, num_resamples=200)
  assert d.estimate == pytest.approx(0.3) and d.low == pytest.approx(0.3)
  assert d.high == pytest.approx(0.3)
  assert stats.superior(d) and not stats.superior(d, "less")
  assert stats.non_inferior(d, 0.31) and not stats.non_inferior(d, 0.3)


def test_bootstrap_is_paired():
  # b = a + 0.1 exactly: the paired difference has no spread even though a varies a lot.
  a = np.random.default_rng(1).uniform(0, 1, (4, 50))
  d = stats.difference_ci(a + 0.1, a, num_resamples=300)
  assert d.high - d.low < 1e-12


def test_p_value_direction():
  a = np.full((3, 10), 1.0)
  b = np.zeros((3, 10))
  assert stats.bootstrap_p_value(a, b, num_resamples=99) == pytest.approx(1 / 100)
  assert stats.bootstrap_p_value(a, b, direction="less", num_resamples=99) == 1.0


def test_holm_hand_computed():
  p = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5}
  # Sorted: a .01 <= .05/4 yes; c .03 <= .05/3 no -> stop.
  assert stats.holm(p) == {"a": True, "c": False, "b": False, "d": False}
  adj = stats.holm_adjusted(p)
  assert adj["a"] == pytest.approx(0.04)
  assert adj["c"] == pytest.approx(0.09)
  assert adj["b"] == pytest.approx(0.09)  # max(0.09, 2 * 0.04 = 0.08): monotone.
  assert adj["d"] == pytest.approx(0.5)


def test_shape_errors():
  with pytest.raises(ValueError):
    stats.difference_ci(np.zeros((2, 3)), np.zeros((3, 3)))


def test_ratio_over_different_item_sets():
  # Transfer-ratio shape: novel items (5) and training items (8) resampled independently.
  novel_after, novel_before = np.full((3, 5), 0.9), np.full((3, 5), 0.1)
  train_after, train_before = np.full((3, 8), 1.0), np.full((3, 8), 0.0)
  ratio = stats.paired_bootstrap(
      lambda na, nb, ta, tb: (na.mean() - nb.mean()) / (ta.mean() - tb.mean()),
      [novel_after, novel_before, train_after, train_before], num_resamples=100)
  assert ratio.estimate == pytest.approx(0.8) and ratio.low == pytest.approx(0.8)
