import numpy as np
import pytest

from msr_jax.runner import analysis


def _run(seed, scores):
  return {"spec": {"seed": seed}, "output": {"scores": scores}}


def _arm(base, final, seeds=3, probe="K"):
  return [_run(s, {probe: {"base": list(base), "final": list(final)}}) for s in range(seeds)]


def test_non_inferiority_outcomes():
  base = np.ones(50)
  harm = np.ones(50); harm[:10] = 0  # 20% of items lost on every seed.
  runs = {"a": _arm(base, harm)}
  crit = {"kind": "non_inferiority", "metric": "forgetting:K", "arm": "a", "margin": 0.4}
  r = analysis.evaluate_criterion(crit, runs, num_resamples=300)
  assert r.outcome == analysis.SUPPORTED and r.p_value < 0.05
  crit["margin"] = 0.05
  assert analysis.evaluate_criterion(crit, runs, num_resamples=300).outcome == analysis.NOT_SUPPORTED


def test_superiority_and_missing_arm():
  runs = {"a": _arm(np.zeros(20), np.ones(20)), "b": _arm(np.zeros(20), np.zeros(20))}
  crit = {"kind": "superiority", "metric": "gain:K", "arm": "a", "baseline": "b"}
  assert analysis.evaluate_criterion(crit, runs, num_resamples=200).outcome == analysis.SUPPORTED
  crit["direction"] = "less"
  assert analysis.evaluate_criterion(crit, runs, num_resamples=200).outcome == analysis.NOT_SUPPORTED
  crit["baseline"] = "nope"
  r = analysis.evaluate_criterion(crit, runs, num_resamples=200)
  assert r.outcome == analysis.INCONCLUSIVE and "nope" in r.detail


def test_transfer_ratio_threshold():
  runs = {"a": [_run(s, {"N": {"base": [0.0] * 10, "final": [1.0] * 9 + [0.0]},
                         "T": {"base": [0.0] * 8, "final": [1.0] * 8}}) for s in range(3)]}
  crit = {"kind": "threshold", "metric": "transfer_ratio:N/T", "arm": "a", "min": 0.8,
          "ci_low_min": 0.5}
  r = analysis.evaluate_criterion(crit, runs, num_resamples=300)
  assert r.interval.estimate == pytest.approx(0.9)
  assert r.outcome == analysis.SUPPORTED


def test_verdict_and_holm():
  S, N, I = analysis.SUPPORTED, analysis.NOT_SUPPORTED, analysis.INCONCLUSIVE
  mk = lambda o: analysis.CriterionResult("x", "k", "", None, o, 0.5)
  assert analysis.verdict([mk(S), mk(S)]) == S
  assert analysis.verdict([mk(S), mk(I)]) == I
  assert analysis.verdict([mk(I), mk(N)]) == N
  verdicts, adjusted = analysis.apply_holm({"P1": S, "P2": S}, {"P1": 0.01, "P2": 0.04})
  assert adjusted == {"P1": 0.02, "P2": 0.04} and verdicts == {"P1": S, "P2": S}
  verdicts, _ = analysis.apply_holm({"P1": S, "P2": S}, {"P1": 0.03, "P2": 0.04})
  assert verdicts == {"P1": I, "P2": I}


def test_pareto():
  front = analysis.pareto_front({"lo": (0.2, 0.0), "mid": (0.9, 0.01), "bad": (0.5, 0.05)})
  assert front == {"lo": [], "mid": [], "bad": ["mid"]}
