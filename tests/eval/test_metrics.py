"""Continual-learning metrics pinned on a hand-computed 3-stage example."""

from __future__ import annotations

import numpy as np
import pytest

from msr_jax.eval import metrics

# R[stage][probe]: row 0 base, stages 1..3 train tasks 1..3; column 0 probes base
# knowledge, column i probes task i (the default alignment).
R = np.array([
    [0.9, 0.1, 0.2, 0.0],
    [0.8, 0.7, 0.2, 0.1],
    [0.7, 0.5, 0.9, 0.1],
    [0.2, 0.6, 0.4, 0.8],
])


def test_acc_all_and_task_columns():
  assert metrics.acc(R) == pytest.approx((0.2 + 0.6 + 0.4 + 0.8) / 4)
  assert metrics.acc(R, probes=range(1, 4)) == pytest.approx(1.8 / 3)


def test_bwt_follows_the_paper_not_the_reference_code():
  # 1/(T-1) * [(R[3][1] - R[1][1]) + (R[3][2] - R[2][2])] = (-0.1 - 0.5) / 2.
  assert metrics.bwt(R) == pytest.approx(-0.3)
  # GEM's code would report (T-1)/T of that, -0.2: make sure we do not.
  assert metrics.bwt(R) != pytest.approx(-0.2)


def test_bwt_with_permuted_task_columns():
  perm = [3, 0, 2, 1]  # new column c holds old column perm[c]
  R_perm = R[:, perm]
  # Stage i's task (old column i) now lives at column perm.index(i).
  task_probes = [perm.index(i) for i in (1, 2, 3)]
  assert metrics.bwt(R_perm, task_probes=task_probes) == pytest.approx(-0.3)


def test_bwt_rejects_single_stage_and_wrong_mapping():
  with pytest.raises(ValueError, match="at least 2 update stages"):
    metrics.bwt(R[:2])
  with pytest.raises(ValueError, match="task_probes has 2 entries"):
    metrics.bwt(R, task_probes=[1, 2])
  with pytest.raises(ValueError, match="outside"):
    metrics.bwt(R, task_probes=[1, 2, 7])


def test_forgetting_per_probe_and_average():
  np.testing.assert_allclose(metrics.forgetting_per_probe(R),
                             [0.7, 0.1, 0.5, -0.7], atol=1e-12)
  np.testing.assert_allclose(metrics.forgetting_per_probe(R, stage=2),
                             [0.2, 0.2, -0.7, 0.0], atol=1e-12)
  assert metrics.forgetting(R, probes=range(1, 3)) == pytest.approx(0.3)
  assert metrics.forgetting(R) == pytest.approx(0.15)
  assert metrics.forgetting(R, stage=2, probes=range(1, 2)) == pytest.approx(0.2)
  # Stage 1 compares against the base row only.
  np.testing.assert_allclose(metrics.forgetting_per_probe(R, stage=1),
                             [0.1, -0.6, 0.0, -0.1], atol=1e-12)


def test_forgetting_rejects_base_stage():
  with pytest.raises(ValueError, match="stage=0"):
    metrics.forgetting(R, stage=0)


def test_bad_matrix_errors_name_the_entry():
  bad = R.copy()
  bad[2, 1] = np.nan
  with pytest.raises(ValueError, match=r"scores_SxP\[2, 1\] is not finite"):
    metrics.acc(bad)
  with pytest.raises(ValueError, match="must be 2-D"):
    metrics.acc(R[0])


def test_stability_gap_dip_and_recovery():
  curve = [(0, 0.8), (10, 0.5), (20, 0.3), (30, 0.3), (40, 0.6)]
  gap = metrics.stability_gap(curve)
  assert gap.start == 0.8 and gap.final == 0.6
  assert gap.min_score == 0.3 and gap.min_step == 20  # first time reached
  assert gap.dip == pytest.approx(0.5)
  assert gap.recovery == pytest.approx(0.3)
  assert gap.recovered_fraction == pytest.approx(0.6)


def test_stability_gap_monotone_rise_has_no_dip():
  gap = metrics.stability_gap([(0, 0.2), (5, 0.4), (9, 0.9)])
  assert (gap.dip, gap.recovery, gap.min_step) == (0.0, pytest.approx(0.7), 0)
  assert gap.recovered_fraction == 1.0


def test_stability_gaps_min_acc():
  gaps, min_acc = metrics.stability_gaps({
      "k1": [(0, 0.9), (10, 0.4), (20, 0.8)],
      "c1": [(0, 0.6), (10, 0.7), (20, 0.5)],
  })
  assert gaps["k1"].min_score == 0.4 and gaps["c1"].min_step == 20
  assert min_acc == pytest.approx((0.4 + 0.5) / 2)


def test_stability_gap_rejects_bad_curves():
  with pytest.raises(ValueError, match="entry 2 has step 10 after 10"):
    metrics.stability_gap([(0, 1.0), (10, 0.5), (10, 0.4)])
  with pytest.raises(ValueError, match="empty"):
    metrics.stability_gap([])
  with pytest.raises(ValueError, match="probe 'k2'"):
    metrics.stability_gaps({"k2": [(0, float("nan"))]})
