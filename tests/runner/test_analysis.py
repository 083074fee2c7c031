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


def test_transfer_ratio_interval_is_finite_below_when_a_resample_has_no_training_gain():
  """One training item of ten learned, on one seed of three: many resamples draw no
  training gain, where the ratio is undefined. The interval must not be NaN; those
  resamples count as no transfer, so the lower bound is -inf and the claim fails."""
  def run(seed):
    train_final = [1.0] + [0.0] * 9 if seed == 0 else [0.0] * 10
    return _run(seed, {"N": {"base": [0.0] * 10, "final": [1.0] + [0.0] * 9},
                       "T": {"base": [0.0] * 10, "final": train_final}})
  runs = {"a": [run(s) for s in range(3)]}
  crit = {"kind": "threshold", "metric": "transfer_ratio:N/T", "arm": "a", "min": 0.8,
          "ci_low_min": 0.5}
  r = analysis.evaluate_criterion(crit, runs, num_resamples=300)
  assert r.interval.estimate == pytest.approx(3.0)
  assert r.interval.low == -np.inf and np.isfinite(r.interval.high)
  assert r.outcome != analysis.SUPPORTED and "nan" not in r.detail


def test_verdict_and_holm():
  S, N, I = analysis.SUPPORTED, analysis.NOT_SUPPORTED, analysis.INCONCLUSIVE
  mk = lambda o: analysis.CriterionResult("x", "k", "", None, o, 0.5)
  assert analysis.verdict([mk(S), mk(S)]) == S
  assert analysis.verdict([mk(S), mk(I)]) == I
  assert analysis.verdict([mk(I), mk(N)]) == N
  # One alpha throughout: Holm runs at the one-sided 0.025 that the 95% bounds decide.
  assert analysis.ALPHA == 0.025 and analysis.LEVEL == pytest.approx(0.95)
  verdicts, adjusted = analysis.apply_holm({"P1": S, "P2": S}, {"P1": 0.005, "P2": 0.02})
  assert adjusted == {"P1": 0.01, "P2": 0.02} and verdicts == {"P1": S, "P2": S}
  verdicts, _ = analysis.apply_holm({"P1": S, "P2": S}, {"P1": 0.02, "P2": 0.03})
  assert verdicts == {"P1": I, "P2": I}


def test_pareto():
  front = analysis.pareto_front({"lo": (0.2, 0.0), "mid": (0.9, 0.01), "bad": (0.5, 0.05)})
  assert front == {"lo": [], "mid": [], "bad": ["mid"]}


def _valued(values):
  return [{"spec": {"seed": s}, "output": {"composite": v, "scores": {}}} for s, v in enumerate(values)]


def test_worst_case_superiority_and_value_metric():
  runs = {"all@lr": _valued([0.8, 0.7, 0.9]), "all@bad": _valued([0.6, 0.65, 0.7]),
          "one@lr": _valued([0.9, 0.9, 0.9]), "one@bad": _valued([0.2, 0.3, 0.25])}
  m = analysis.worst_case_matrix(runs, "all", "value:composite")
  np.testing.assert_allclose(m[:, 0], [0.6, 0.65, 0.7])
  crit = {"kind": "worst_case_superiority", "arm": "all", "baselines": ["one"],
          "metric": "value:composite"}
  r = analysis.evaluate_criterion(crit, runs, num_resamples=200)
  assert r.outcome == analysis.SUPPORTED and r.interval.estimate == pytest.approx(0.4)


def test_wildcard_and_baseline_non_inferiority():
  def arm(final):
    return [_run(s, {"C1_2": {"base": [1.0] * 4, "final": final},
                     "C1_3": {"base": [1.0] * 4, "final": final}}) for s in range(3)]
  runs = {"cf": arm([1.0, 1.0, 1.0, 1.0]), "full": arm([1.0, 1.0, 1.0, 0.0])}
  items = analysis.metric_items(runs["full"][0]["output"], "forgetting:C1_*")
  assert items.tolist() == [0, 0, 0, 1, 0, 0, 0, 1]
  # Harm = baseline - arm = -0.25 on 8 items; their t interval (7 df) reaches +0.137.
  crit = {"kind": "non_inferiority", "metric": "score:C1_*", "arm": "cf", "baseline": "full",
          "margin": 0.2}
  r = analysis.evaluate_criterion(crit, runs, num_resamples=200)
  assert r.interval.estimate == pytest.approx(-0.25) and r.outcome == analysis.SUPPORTED
  assert r.interval.high == pytest.approx(0.137, abs=1e-3)
  crit["margin"] = 0.1
  assert analysis.evaluate_criterion(crit, runs).outcome == analysis.INCONCLUSIVE


def test_a_failed_run_makes_paired_criteria_inconclusive_not_a_crash():
  runs = {"all@lr": _valued([0.8, 0.7, 0.9]), "all@bad": _valued([0.6, 0.65]),
          "one@lr": _valued([0.9, 0.9, 0.9]), "one@bad": _valued([0.2, 0.3, 0.25])}
  crit = {"kind": "worst_case_superiority", "arm": "all", "baselines": ["one"],
          "metric": "value:composite"}
  r = analysis.evaluate_criterion(crit, runs, num_resamples=50)
  assert r.outcome == analysis.INCONCLUSIVE and "different seeds" in r.detail
  pair = {"a": _arm([0, 1], [0, 1]), "b": _arm([0, 1], [0, 1], seeds=2)}
  r = analysis.evaluate_criterion({"kind": "superiority", "arm": "a", "baseline": "b",
                                   "metric": "final:K"}, pair, num_resamples=50)
  assert r.outcome == analysis.INCONCLUSIVE and "missing data" in r.detail


def test_a_matched_criterion_needs_every_run_to_reach_its_gate():
  runs = {"a": _arm(np.ones(20), np.ones(20)), "b": _arm(np.ones(20), np.ones(20))}
  crit = {"kind": "superiority", "metric": "score:K", "arm": "a", "baseline": "b",
          "matched": True}
  r = analysis.evaluate_criterion(crit, runs, num_resamples=50)
  assert r.outcome == analysis.INCONCLUSIVE and r.detail.startswith("no efficacy gate")
  for arm in runs.values():
    for run in arm:
      run["output"].update(learned=True, train=[{"step": 30}])
  runs["b"][1]["output"].update(learned=False, train=[{"step": 60}])
  r = analysis.evaluate_criterion(crit, runs, num_resamples=50)
  assert r.outcome == analysis.INCONCLUSIVE
  assert r.detail == "not learned within the step cap: b seed 1 (60 steps)"
  runs["b"][1]["output"]["learned"] = True
  r = analysis.evaluate_criterion(crit, runs, num_resamples=50)
  assert "learned" not in r.detail and r.interval is not None  # evaluated as usual


def test_generalisation_metrics_resample_the_item_clusters():
  """Items of 4 clusters that fail or pass together: with the clusters given, the interval
  of the mean (crossed t) and of the transfer ratio (cluster bootstrap) are wider than when
  each item stands alone, as they must be with 4 independent units instead of 40."""
  cells = np.repeat(np.arange(4), 10)
  passes = np.array([0.9, 0.8, 0.2, 0.1])[cells]  # the cells decide, the same in every seed
  def arm_runs(with_clusters):
    runs = []
    for seed in range(3):
      novel = (passes + 0.3 * (rng.random(40) - 0.5) > 0.5).astype(float)
      output = {"scores": {"N2": {"base": [0.0] * 40, "final": novel.tolist()},
                           "B_train": {"base": [0.0] * 40, "final": [1.0] * 40}}}
      if with_clusters:
        output["clusters"] = {"N2": [f"cell:{c}" for c in cells]}
      runs.append(_run(seed, {}) | {"output": output})
    return runs
  rng = np.random.default_rng(0)
  clustered = {"a": arm_runs(True)}
  rng = np.random.default_rng(0)
  flat = {"a": arm_runs(False)}
  width = lambda r: r.interval.high - r.interval.low
  for metric, kind in (("score:N2", "threshold"), ("transfer_ratio:N2/B_train", "threshold")):
    crit = {"kind": kind, "metric": metric, "arm": "a", "min": 0.5}
    wide = analysis.evaluate_criterion(crit, clustered, num_resamples=400)
    narrow = analysis.evaluate_criterion(crit, flat, num_resamples=400)
    assert wide.interval.estimate == pytest.approx(narrow.interval.estimate)
    assert width(wide) > 1.5 * width(narrow), (metric, width(wide), width(narrow))


def test_all_against_every_single_defence_is_an_intersection_union_test():
  """Known answers on per-seed worst cases: an arm better than both baselines in every seed
  is supported with p = the larger pairwise p; one baseline as good as the arm makes it
  inconclusive (the other comparison alone cannot carry the claim); a baseline better than
  the arm makes it not supported."""
  arm = {"all@x": _valued([0.80, 0.82, 0.78, 0.81, 0.79])}
  def with_baselines(a, b):
    return arm | {"a@x": _valued(a), "b@x": _valued(b)}
  crit = {"kind": "worst_case_superiority", "arm": "all", "baselines": ["a", "b"],
          "metric": "value:composite"}
  clear = analysis.evaluate_criterion(crit, with_baselines(
      [0.50, 0.52, 0.49, 0.51, 0.50], [0.60, 0.61, 0.58, 0.62, 0.60]))
  assert clear.outcome == analysis.SUPPORTED
  pairwise = [analysis.evaluate_criterion({**crit, "baselines": [b]}, with_baselines(
      [0.50, 0.52, 0.49, 0.51, 0.50], [0.60, 0.61, 0.58, 0.62, 0.60])).p_value for b in "ab"]
  assert clear.p_value == pytest.approx(max(pairwise)) and "of b" in clear.detail
  tie = analysis.evaluate_criterion(crit, with_baselines(
      [0.50, 0.52, 0.49, 0.51, 0.50], [0.81, 0.78, 0.80, 0.79, 0.82]))
  assert tie.outcome == analysis.INCONCLUSIVE and tie.p_value > 0.025
  worse = analysis.evaluate_criterion(crit, with_baselines(
      [0.50, 0.52, 0.49, 0.51, 0.50], [0.95, 0.96, 0.94, 0.95, 0.97]))
  assert worse.outcome == analysis.NOT_SUPPORTED


def test_controls_with_known_answers_gate_the_verdict():
  """A positive control (an arm built to forget must be flagged) and a null control (two
  arms that differ only in seed must not differ): as designed, the verdict is the criteria's;
  a control that comes out otherwise makes it "instrument failed"."""
  base = np.ones(40)
  lost = np.ones(40); lost[:20] = 0
  runs = {"gentle": _arm(base, base), "forgets": _arm(base, lost),
          "gentle_again": _arm(base, base)}
  claim = {"kind": "non_inferiority", "metric": "forgetting:K", "arm": "gentle", "margin": 0.1}
  positive = {"name": "a forgetting arm is flagged", "kind": "non_inferiority",
              "metric": "forgetting:K", "arm": "forgets", "margin": 0.1,
              "control": "positive", "expect": analysis.NOT_SUPPORTED}
  null = {"name": "seeds alone differ by nothing", "kind": "superiority",
          "metric": "forgetting:K", "arm": "gentle_again", "baseline": "gentle",
          "control": "null", "expect": analysis.INCONCLUSIVE}
  results = [analysis.evaluate_criterion(c, runs) for c in (claim, positive, null)]
  assert [r.as_designed for r in results] == [True, True, True]
  assert analysis.verdict(results) == analysis.SUPPORTED
  # A positive control the instrument cannot see: the planted effect is too small.
  runs["forgets"] = _arm(base, base)
  results = [analysis.evaluate_criterion(c, runs) for c in (claim, positive, null)]
  assert not results[1].as_designed and analysis.verdict(results) == analysis.INSTRUMENT_FAILED
  with pytest.raises(ValueError, match="a control needs"):
    analysis.evaluate_criterion({**positive, "expect": "maybe"}, runs)
