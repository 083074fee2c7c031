"""Pre-registered criteria -> verdicts.

An experiment's `analysis` declares its criteria before any run (as data); this module
only evaluates them. Metrics are read from each run's output:

  output["scores"][probe] = {"base": [item scores], "final": [item scores]}

with the same items in the same order for every arm and seed (all arms start from the
same base checkpoint and are scored on the same probe items), and optionally
`output["clusters"][probe]`, each item's cluster. A metric becomes a seeds x items array
per arm; means and paired differences get the crossed seeds x clusters t interval
(`stats.crossed_t`), the transfer ratio a seeds-then-clusters bootstrap, worst cases an
intersection-union test. Where a probe's items depend on the seed (`output["seed_items"]`:
each seed held out its own cells and templates), clusters are nested in seeds: means get
the t interval over seed means (`stats.nested_t`) and the transfer ratio the delta-method
t over seeds (`stats.ratio_t`); interval and p always come from the same numbers, at one alpha
(`ALPHA`: one-sided 0.025, the 95% interval's bounds).

Metrics (`metric` in a criterion):
  "score:P1+P2"    final item scores of probes P1, P2 (items concatenated)
  "gain:P"         final - base, per item
  "forgetting:P"   base - final, per item (the harm; positive = forgotten)
  "logp:P", "logp_forgetting:P"  the same on the answer's mean log-probability per token
                   (`scores[probe]["base_logp"|"final_logp"]`): moves before exact match
                   flips, the sensitive secondary measure
  "transfer_ratio:NOVEL/TRAIN"  (mean gain on NOVEL) / (mean gain on TRAIN), a ratio
  "value:a.b"      a scalar of the output (one item per seed), e.g. "value:composite"
Probe lists may use a trailing "*" as a wildcard ("forgetting:K1+C1_*").
Criterion kinds:
  non_inferiority  harm metric of `arm` (or, with `baseline`, baseline minus arm): supported
                   if the CI's upper bound < margin; not supported if its lower bound >=
                   margin; else inconclusive.
  superiority      metric of `arm` minus `baseline` in `direction`: the CI excludes 0.
  threshold        estimate >= min and CI lower bound > ci_low_min.
Controls: a criterion with `control: "positive"` (a planted effect the instrument must
detect, e.g. an arm built to forget) or `"null"` (arms that differ only in seed or an inert
switch, where nothing may fire) and `expect: <outcome>` is not part of the verdict; if any
control's outcome is not its `expect`, the prediction reads "instrument failed".
Every criterion gets a one-sided p-value; `primary: true` marks the one that
enters the Holm correction across predictions; `secondary: true` marks one that is
reported beside the verdict and is no part of it (a sensitive measure, a further
comparison). `matched: true` marks a criterion that
compares forgetting at matched learning: every run of its arms must have been gated
(`gate` in the arm config) and have reached the gate (`output["learned"]`); otherwise it
reads "inconclusive: not learned within N steps" (or "no efficacy gate"), never a verdict.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from msr_jax.runner import stats
from msr_jax.runner.config import get_dotted

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
INSTRUMENT_FAILED = "instrument failed"
CONTROLS = ("positive", "null")


@dataclasses.dataclass
class CriterionResult:
  name: str
  kind: str
  description: str
  interval: stats.Interval | None
  outcome: str
  p_value: float
  primary: bool = False
  detail: str = ""
  control: str = ""   # "positive" (a planted effect) | "null" (an inert difference) | ""
  expect: str = ""    # a control's designed outcome
  secondary: bool = False  # reported beside the verdict, no part of it

  @property
  def as_designed(self) -> bool:
    return not self.control or self.outcome == self.expect


def _expand_probes(probes: str, scores: dict) -> list[str]:
  names = []
  for probe in probes.split("+"):
    if probe.endswith("*"):
      matched = sorted(k for k in scores if k.startswith(probe[:-1]))
      if not matched:
        raise KeyError(f"no probe matches {probe!r} (has {sorted(scores)})")
      names += matched
    elif probe not in scores:
      raise KeyError(f"probe {probe!r} not in the run's scores (has {sorted(scores)})")
    else:
      names.append(probe)
  return names


def _probe_items(output: dict, probes: str, which: str) -> np.ndarray:
  scores = output.get("scores", {})
  return np.concatenate([np.asarray(scores[p][which], np.float64)
                         for p in _expand_probes(probes, scores)])


def _value(output: dict, dotted: str) -> np.ndarray:
  value = get_dotted(output, dotted, f"output: {dotted!r}")
  if value is None:  # e.g. a one-stage run's backward transfer: nothing to read
    raise KeyError(f"output: {dotted!r} is None in this run")
  return np.asarray([float(value)])


def metric_items(output: dict, metric: str) -> np.ndarray:
  kind, _, probes = metric.partition(":")
  if kind == "logp":
    return _probe_items(output, probes, "final_logp")
  if kind == "logp_forgetting":
    return _probe_items(output, probes, "base_logp") - _probe_items(output, probes, "final_logp")
  if kind == "score":
    return _probe_items(output, probes, "final")
  if kind == "gain":
    return _probe_items(output, probes, "final") - _probe_items(output, probes, "base")
  if kind == "forgetting":
    return _probe_items(output, probes, "base") - _probe_items(output, probes, "final")
  if kind == "value":
    return _value(output, probes)
  raise ValueError(f"unknown metric {metric!r}")


def _seed_sorted(runs_by_arm: dict[str, list[dict]], arm: str) -> list[dict]:
  runs = sorted(runs_by_arm.get(arm, []), key=lambda r: r["spec"]["seed"])
  if not runs:
    raise KeyError(f"no finished runs for arm {arm!r}")
  return runs


def arm_matrix(runs_by_arm: dict[str, list[dict]], arm: str, metric: str) -> np.ndarray:
  """seeds x items array of `metric` for `arm` (seeds sorted)."""
  return np.stack([metric_items(r["output"], metric) for r in _seed_sorted(runs_by_arm, arm)])


def _ratio_arrays(runs_by_arm, arm, metric):
  """[novel final, novel base, train final, train base], each seeds x items."""
  novel, train = metric.partition(":")[2].split("/")
  runs = _seed_sorted(runs_by_arm, arm)
  return [np.stack([_probe_items(r["output"], probes, which) for r in runs])
          for probes in (novel, train) for which in ("final", "base")]


def _ratio(na, nb, ta, tb):
  """Gain on the novel items over gain on the training items. With no training gain (or a
  loss: two losses would make a positive ratio) the ratio is undefined; it counts as -inf
  (no transfer shown), so a bootstrap resample that drew no gain pulls the lower bound
  down instead of making the interval NaN."""
  denominator = ta.mean() - tb.mean()
  return (na.mean() - nb.mean()) / denominator if denominator > 1e-12 else -np.inf


# One alpha throughout: a one-sided test at ALPHA is decided by the matching bound of the
# two-sided (1 - 2 ALPHA) = 95% interval, and the Holm correction runs at the same ALPHA.
ALPHA = 0.025
LEVEL = 1 - 2 * ALPHA


def _seed_dependent(runs_by_arm, arm: str, metric: str) -> bool:
  """Whether some probe of `metric` has other items in every seed (`seed_items`)."""
  kind, _, probes = metric.partition(":")
  if kind == "value":
    return False
  output = _seed_sorted(runs_by_arm, arm)[0]["output"]
  varying = set(output.get("seed_items", ()))
  names = []
  for part in probes.split("/"):
    names += _expand_probes(part, output.get("scores", {}))
  return bool(varying & set(names))


def _mean_estimate(x_SxI, runs_by_arm, arm: str, metric: str) -> stats.TEstimate:
  """The t estimate of a mean (or of paired differences) of `metric`'s seeds x items
  array: nested in seeds where the items depend on the seed, else seeds x clusters crossed."""
  if _seed_dependent(runs_by_arm, arm, metric):
    return stats.nested_t(x_SxI)
  return stats.crossed_t(x_SxI, _clusters(runs_by_arm, arm, metric))


def _clusters(runs_by_arm, arm: str, metric: str):
  """Item cluster labels of a probe metric (`output["clusters"][probe]`, one per item,
  e.g. a grid cell or a template), prefixed by the probe; None where the run has none
  for some probe (every item is then its own cluster)."""
  kind, _, probes = metric.partition(":")
  if kind == "value":
    return None
  output = _seed_sorted(runs_by_arm, arm)[0]["output"]
  given = output.get("clusters", {})
  labels = []
  for probe in _expand_probes(probes, output.get("scores", {})):
    if probe not in given:
      return None
    labels += [f"{probe}/{c}" for c in given[probe]]
  return labels


def _samples(statistic, arrays, num_resamples, seed, clusters=None):
  """Bootstrap replicates: seeds, then items. Arrays over the same items (the same count
  and cluster labels) share their draws; arrays over other items (the transfer ratio's
  novel and training items) get independent ones. Where `clusters[k]` labels array k's
  items, its clusters are drawn first and then items within each drawn cluster."""
  rng = np.random.default_rng(seed)
  num_seeds = arrays[0].shape[0]
  clusters = list(clusters) if clusters is not None else [None] * len(arrays)
  keys = [(a.shape[1], None if c is None else tuple(c)) for a, c in zip(arrays, clusters)]
  members = {}
  for key in set(keys):
    if key[1] is not None:
      ids = np.unique(np.asarray(key[1]), return_inverse=True)[1]
      members[key] = [np.flatnonzero(ids == c) for c in range(int(ids.max()) + 1)]

  def draw(key):
    if key not in members:
      return rng.integers(0, key[0], key[0])
    groups = members[key]
    chosen = rng.integers(0, len(groups), len(groups))
    return np.concatenate([groups[c][rng.integers(0, len(groups[c]), len(groups[c]))]
                           for c in chosen])

  out = np.empty(num_resamples)
  order = sorted(set(keys), key=repr)
  for r in range(num_resamples):
    s = rng.integers(0, num_seeds, num_seeds)
    items = {key: draw(key) for key in order}
    out[r] = statistic(*[a[np.ix_(s, items[k])] for a, k in zip(arrays, keys)])
  return out


def _resamples(statistic, arrays, num_resamples, seed, clusters=None) -> stats.Resamples:
  return stats.Resamples(float(statistic(*arrays)),
                         _samples(statistic, arrays, num_resamples, seed, clusters))


def statistic_for(runs_by_arm, arm: str, metric: str, num_resamples: int, seed: int):
  """The estimate of a single arm's metric: a crossed seeds x clusters t estimate for a
  mean, bootstrap replicates for the transfer ratio. Either gives `.interval(level)` and
  `.p_value(margin, direction)` from the same numbers."""
  if metric.startswith("transfer_ratio:"):
    novel, train = metric.partition(":")[2].split("/")
    if _seed_dependent(runs_by_arm, arm, metric):
      nf, nb, tf, tb = _ratio_arrays(runs_by_arm, arm, metric)
      return stats.ratio_t((nf - nb).mean(axis=1), (tf - tb).mean(axis=1))
    labels = [_clusters(runs_by_arm, arm, f"score:{p}") for p in (novel, novel, train, train)]
    return _resamples(_ratio, _ratio_arrays(runs_by_arm, arm, metric), num_resamples, seed,
                      labels)
  return _mean_estimate(arm_matrix(runs_by_arm, arm, metric), runs_by_arm, arm, metric)


def evaluate_criterion(criterion: dict, runs_by_arm: dict, num_resamples: int = 2000,
                       seed: int = 0) -> CriterionResult:
  kind, metric, arm = criterion["kind"], criterion["metric"], criterion["arm"]
  name = criterion.get("name", f"{kind}:{metric}:{arm}")
  primary = bool(criterion.get("primary", False))
  description = criterion.get("description", "")
  control, expect = criterion.get("control", ""), criterion.get("expect", "")
  if control and (control not in CONTROLS or expect not in
                  (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE) or primary):
    raise ValueError(f"criterion {name!r}: a control needs control in {CONTROLS}, expect "
                     f"one of {(SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)} and no primary; "
                     f"got control={control!r}, expect={expect!r}, primary={primary}")
  result = _evaluate(criterion, runs_by_arm, num_resamples, seed, kind, metric, arm, name,
                     primary, description)
  return dataclasses.replace(result, control=control, expect=expect,
                             secondary=bool(criterion.get("secondary", False)))


def _evaluate(criterion, runs_by_arm, num_resamples, seed, kind, metric, arm, name, primary,
              description) -> CriterionResult:
  try:
    named = [arm, criterion.get("baseline")] if kind != "worst_case_superiority" else []
    check_paired(runs_by_arm, [a for a in named if a is not None])
    if criterion.get("matched"):
      unlearned = not_learned(runs_by_arm, [a for a in named if a is not None])
      if unlearned:
        return CriterionResult(name, kind, description, None, INCONCLUSIVE, 1.0, primary,
                               unlearned)
    if kind == "non_inferiority":
      margin = float(criterion["margin"])
      if "baseline" in criterion:  # harm = how much worse the arm is than the baseline
        harm = (arm_matrix(runs_by_arm, criterion["baseline"], metric)
                - arm_matrix(runs_by_arm, arm, metric))
        estimate = _mean_estimate(harm, runs_by_arm, arm, metric)
      else:
        estimate = statistic_for(runs_by_arm, arm, metric, num_resamples, seed)
      interval = estimate.interval(LEVEL)
      outcome = (SUPPORTED if interval.high < margin else
                 NOT_SUPPORTED if interval.low >= margin else INCONCLUSIVE)
      p = estimate.p_value(margin, "less")
      detail = f"harm {interval.estimate:+.4f} [{interval.low:+.4f}, {interval.high:+.4f}] vs margin {margin}"
    elif kind == "superiority":
      baseline, direction = criterion["baseline"], criterion.get("direction", "greater")
      difference = (arm_matrix(runs_by_arm, arm, metric)
                    - arm_matrix(runs_by_arm, baseline, metric))
      estimate = _mean_estimate(difference, runs_by_arm, arm, metric)
      interval = estimate.interval(LEVEL)
      outcome = (SUPPORTED if stats.superior(interval, direction) else
                 NOT_SUPPORTED if stats.superior(interval, "less" if direction == "greater" else "greater")
                 else INCONCLUSIVE)
      p = estimate.p_value(0.0, direction)
      detail = (f"{arm} - {baseline} = {interval.estimate:+.4f} "
                f"[{interval.low:+.4f}, {interval.high:+.4f}], claimed {direction}")
    elif kind == "threshold":
      minimum = float(criterion["min"])
      ci_low_min = float(criterion.get("ci_low_min", -np.inf))
      estimate = statistic_for(runs_by_arm, arm, metric, num_resamples, seed)
      interval = estimate.interval(LEVEL)
      ok = interval.estimate >= minimum and interval.low > ci_low_min
      bad = interval.high < minimum or not np.isfinite(interval.estimate)
      outcome = SUPPORTED if ok else NOT_SUPPORTED if bad else INCONCLUSIVE
      p = estimate.p_value(minimum, "greater")
      detail = (f"{interval.estimate:.4f} [{interval.low:.4f}, {interval.high:.4f}] "
                f"vs min {minimum}" + (f", CI low > {ci_low_min}" if np.isfinite(ci_low_min) else ""))
    elif kind == "worst_case_superiority":
      interval, p, detail = _worst_case(criterion, runs_by_arm, num_resamples, seed)
      outcome = (SUPPORTED if interval.low > 0 else NOT_SUPPORTED if interval.high < 0
                 else INCONCLUSIVE)
    else:
      raise ValueError(f"unknown criterion kind {kind!r}")
  except KeyError as e:
    return CriterionResult(name, kind, description, None, INCONCLUSIVE, 1.0, primary,
                           f"missing data: {e}")
  return CriterionResult(name, kind, description, interval, outcome, float(p), primary, detail)


def not_learned(runs_by_arm: dict, arms) -> str:
  """Why the arms' runs are not at matched learning ("" when every run reached its gate)."""
  missing, failed = [], []
  for arm in arms:
    for run in _seed_sorted(runs_by_arm, arm):
      output, seed = run["output"], run["spec"]["seed"]
      if "learned" not in output:
        missing.append(f"{arm} seed {seed}")
      elif not output["learned"]:
        steps = max((int(t.get("step", 0)) for t in output.get("train", [])), default=0)
        failed.append(f"{arm} seed {seed} ({steps} steps)")
  if missing:
    return f"no efficacy gate: {', '.join(missing)} ran without one"
  if failed:
    return f"not learned within the step cap: {', '.join(failed)}"
  return ""


def worst_case_matrix(runs_by_arm: dict, prefix: str, metric: str) -> np.ndarray:
  """seeds x 1: per seed, the minimum of a scalar metric over the arms named
  `prefix@<stress cell>` (robustness = the worst case over the stress grid)."""
  cells = sorted(a for a in runs_by_arm if a.split("@")[0] == prefix)
  if not cells:
    raise KeyError(f"no arms named {prefix}@<stress>")
  check_paired(runs_by_arm, cells)
  per_cell = [arm_matrix(runs_by_arm, a, metric).mean(axis=1) for a in cells]
  return np.stack(per_cell).min(axis=0)[:, None]


def check_paired(runs_by_arm: dict, arms) -> None:
  """Raises KeyError (reported as missing data) unless every arm finished the same seeds:
  the bootstrap pairs arms seed by seed, so a failed run leaves nothing to pair with."""
  seeds = {a: [r["spec"]["seed"] for r in _seed_sorted(runs_by_arm, a)] for a in arms}
  if len({tuple(s) for s in seeds.values()}) > 1:
    raise KeyError(f"arms finished different seeds (a run failed?): {seeds}")


def _worst_case(criterion, runs_by_arm, num_resamples, seed):
  """The arm's worst case against each baseline's, per seed: an intersection-union test.
  "Better than every baseline" holds when each paired comparison rejects on its own, so
  its p-value is the largest of theirs, and the interval shown is that weakest comparison's
  (taking the maximum of the noisy baselines instead would bias the test against the arm)."""
  metric = criterion["metric"]
  cells = [a for a in runs_by_arm
           if a.split("@")[0] in [criterion["arm"], *criterion["baselines"]]]
  check_paired(runs_by_arm, cells)
  arm = worst_case_matrix(runs_by_arm, criterion["arm"], metric)
  pairs = {b: stats.crossed_t(arm - worst_case_matrix(runs_by_arm, b, metric))
           for b in criterion["baselines"]}
  p_values = {b: t.p_value(0.0, "greater") for b, t in pairs.items()}
  weakest = max(p_values, key=lambda b: (p_values[b], b))
  interval = pairs[weakest].interval(LEVEL)
  # Supported when the weakest comparison's lower bound is above 0 (then every one's is:
  # each bound is its own p < ALPHA); not supported when some baseline beats the arm.
  if any(t.interval(LEVEL).high < 0 for t in pairs.values()):
    worst = min(pairs, key=lambda b: pairs[b].interval(LEVEL).high)
    interval = pairs[worst].interval(LEVEL)
    weakest = worst
  p = stats.intersection_union(p_values)
  detail = (f"worst case of {criterion['arm']} minus worst case of {weakest} (the weakest of "
            f"{len(pairs)} comparisons) = {interval.estimate:+.4f} "
            f"[{interval.low:+.4f}, {interval.high:+.4f}]; intersection-union p = {p:.4f}")
  return interval, float(p), detail


def verdict(results: list[CriterionResult]) -> str:
  """Supported only if every criterion is; not supported if any clearly fails; "instrument
  failed" if a control did not come out as designed (controls are not criteria)."""
  if any(not r.as_designed for r in results):
    return INSTRUMENT_FAILED
  outcomes = [r.outcome for r in results if not r.control and not r.secondary]
  if outcomes and all(o == SUPPORTED for o in outcomes):
    return SUPPORTED
  if NOT_SUPPORTED in outcomes:
    return NOT_SUPPORTED
  return INCONCLUSIVE


def apply_holm(verdicts: dict[str, str], primary_p: dict[str, float],
               alpha: float = ALPHA) -> tuple[dict[str, str], dict[str, float]]:
  """Downgrades a 'supported' prediction whose primary test does not survive Holm."""
  adjusted = stats.holm_adjusted(primary_p) if primary_p else {}
  out = dict(verdicts)
  for name, p in adjusted.items():
    if out.get(name) == SUPPORTED and p > alpha:
      out[name] = INCONCLUSIVE
  return out, adjusted


def pareto_front(points: dict[str, tuple[float, float]]) -> dict[str, list[str]]:
  """For (learned, forgetting) per arm: which arms dominate each one (learn at least as
  much and forget at most as much, strictly better in one). An arm that forgets less
  only because it learns less is dominated by nobody but dominates nobody either."""
  dominated_by = {}
  for name, (learned, forgot) in points.items():
    dominated_by[name] = [
        other for other, (l2, f2) in points.items() if other != name and
        l2 >= learned and f2 <= forgot and (l2 > learned or f2 < forgot)]
  return dominated_by
