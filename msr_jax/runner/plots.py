"""PNG plots for the report. Each takes the runs of one experiment grouped by arm.

Plot specs are data in the experiment's `analysis["plots"]`:
  {"kind": "pareto", "learned": METRIC, "forgetting": METRIC}
  {"kind": "metric_vs_config", "metric": METRIC, "x": "optim.learning_rate", "group": "data.mixture", "logx": true}
  {"kind": "bars", "metrics": [METRIC, ...]}
  {"kind": "curve", "probes": ["N4_3", "N4_5", ...], "x": [3, 5, ...], "xlabel": "distractors"}
  {"kind": "stability", "probe": "K"}           (output["during"] curves)
  {"kind": "scatter_output", "x": "sharpness.lambda_max", "metric": METRIC}
Any spec may add "arms": [...] (draw only these) or "exclude": [...] (leave these out).
METRIC is a name understood by `analysis.metric_items`. Points are means over seeds with
95% t intervals over the seed means as error bars; axes are labelled in words
(`describe`, or a spec's "xlabel" / "ylabel"); arms are told apart in a legend, never by
labels written over the points.
"""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from msr_jax.runner import analysis, stats  # noqa: E402
from msr_jax.runner.config import get_dotted  # noqa: E402


def _seed_means(runs, metric) -> np.ndarray:
  return np.asarray([analysis.metric_items(r["output"], metric).mean() for r in runs])


def _arm_mean(runs, metric):
  return float(np.mean(_seed_means(runs, metric)))


def _mean_and_half(runs, metric) -> tuple[float, float]:
  """The mean over seeds and the half-width of its 95% t interval (0 with one seed)."""
  values = _seed_means(runs, metric)
  interval = stats.crossed_t(values[:, None]).interval(0.95)
  return interval.estimate, interval.high - interval.estimate


PROBE_GROUPS = {"K1+K2+C1_*+C2": "knowledge and context", "N1+N2+N3": "novel situations",
                "B_train+B_train_s*": "the trained behaviours"}


def describe(metric: str) -> str:
  """A metric key in words: "forgetting:K1+K2" -> "forgetting of K1, K2 (base - final)"."""
  kind, _, what = metric.partition(":")
  probes = PROBE_GROUPS.get(what, what.replace("+", ", "))
  if kind == "score":
    return f"accuracy on {probes}"
  if kind == "gain":
    return f"gain on {probes} (final - base)"
  if kind == "forgetting":
    return f"forgetting of {probes} (base - final)"
  if kind == "transfer_ratio":
    novel, _, train = what.partition("/")
    return f"transfer ratio ({novel.replace('+', ', ')} gain / {train} gain)"
  if kind == "value":
    return what.replace("_", " ").replace(".", ": ")
  return metric


def _legend(ax, count: int) -> None:
  ax.legend(fontsize=7 if count <= 8 else 6, ncol=1 if count <= 10 else 2,
            loc="best", framealpha=0.8)


def _finish(fig, ax, title, path):
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


MARKERS = "osD^v<>pPX*h"


def pareto(runs_by_arm, spec, title, path):
  """Learning against forgetting, one point per arm, and the front of the arms no other
  dominates (learns at least as much and forgets at most as much)."""
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  points = {}
  for k, (arm, runs) in enumerate(runs_by_arm.items()):
    x, dx = _mean_and_half(runs, spec["learned"])
    y, dy = _mean_and_half(runs, spec["forgetting"])
    points[arm] = (x, y)
    ax.errorbar(x, y, xerr=dx, yerr=dy, fmt=MARKERS[k % len(MARKERS)], capsize=3,
                markersize=6, label=arm)
  dominated = analysis.pareto_front(points)
  front = sorted((points[a] for a in points if not dominated[a]), key=lambda p: p[0])
  if len(front) > 1:
    ax.plot([p[0] for p in front], [p[1] for p in front], "k--", lw=1, alpha=0.6,
            label="Pareto front")
  ax.set_xlabel(spec.get("xlabel", describe(spec["learned"])))
  ax.set_ylabel(spec.get("ylabel", describe(spec["forgetting"])))
  _legend(ax, len(points) + 1)
  _finish(fig, ax, title, path)


def metric_vs_config(runs_by_arm, spec, title, path):
  groups: dict = {}
  for arm, runs in runs_by_arm.items():
    config = runs[0]["spec"]["config"]
    key = get_dotted(config, spec["group"]) if spec.get("group") else ""
    groups.setdefault(key, []).append((get_dotted(config, spec["x"]),
                                       *_mean_and_half(runs, spec["metric"])))
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for key, points in sorted(groups.items(), key=lambda kv: str(kv[0])):
    points.sort()
    ax.errorbar([p[0] for p in points], [p[1] for p in points],
                yerr=[p[2] for p in points], marker="o", capsize=3,
                label=str(key) or "all")
  if spec.get("logx"):
    ax.set_xscale("log")
  ax.set_xlabel(spec.get("xlabel", spec["x"].replace("optim.", "").replace("_", " ")))
  ax.set_ylabel(spec.get("ylabel", describe(spec["metric"])))
  _legend(ax, len(groups))
  _finish(fig, ax, title, path)


def bars(runs_by_arm, spec, title, path):
  arms = list(runs_by_arm)
  metrics = spec["metrics"]
  width = 0.8 / len(metrics)
  fig, ax = plt.subplots(figsize=(max(5.5, 0.6 * len(arms) * len(metrics)), 4))
  for j, metric in enumerate(metrics):
    values = [_mean_and_half(runs_by_arm[a], metric) for a in arms]
    ax.bar(np.arange(len(arms)) + j * width, [v[0] for v in values], width,
           yerr=[v[1] for v in values], capsize=3, label=describe(metric))
  ax.set_xticks(np.arange(len(arms)) + 0.4 - width / 2, arms, rotation=30, ha="right", fontsize=7)
  ax.set_ylabel(spec.get("ylabel", describe(metrics[0]) if len(metrics) == 1 else "value"))
  _legend(ax, len(metrics))
  _finish(fig, ax, title, path)


def curve(runs_by_arm, spec, title, path):
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for arm, runs in runs_by_arm.items():
    ys = [_mean_and_half(runs, f"score:{p}") for p in spec["probes"]]
    ax.errorbar(spec.get("x", list(range(len(ys)))), [y[0] for y in ys],
                yerr=[y[1] for y in ys], marker="o", capsize=3, label=arm)
  ax.set_xlabel(spec.get("xlabel", ""))
  ax.set_ylabel(spec.get("ylabel", "accuracy"))
  _legend(ax, len(runs_by_arm))
  _finish(fig, ax, title, path)


def stability(runs_by_arm, spec, title, path):
  """The probe's curve during training, per arm: each seed's curve drawn thin, and the
  mean over seeds (a thick line) at the steps that at least half the seeds reached (a
  gated run stops when it has learned, so curves end at different steps)."""
  fig, ax = plt.subplots(figsize=(6, 4))
  for arm, runs in runs_by_arm.items():
    curves = [[(d["step"], d[spec["probe"]]) for d in r["output"].get("during", [])]
              for r in runs]
    curves = [c for c in curves if c]
    if not curves:
      continue
    by_step: dict = {}
    for curve in curves:
      for step, value in curve:
        by_step.setdefault(step, []).append(value)
    steps = [s for s in sorted(by_step) if 2 * len(by_step[s]) >= len(curves)]
    line, = ax.plot(steps, [np.mean(by_step[s]) for s in steps], lw=2, label=arm)
    for curve in curves:
      ax.plot(*zip(*curve), lw=0.7, alpha=0.35, color=line.get_color())
  ax.set_ylim(-0.03, 1.03)
  ax.set_xlabel("training step (all stages)")
  ax.set_ylabel(spec.get("ylabel", f"accuracy on {spec['probe']} during training"))
  _legend(ax, len(runs_by_arm))
  _finish(fig, ax, title + " (thin: each seed)", path)


def scatter_output(runs_by_arm, spec, title, path):
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for arm, runs in runs_by_arm.items():
    xs = [get_dotted(r["output"], spec["x"]) for r in runs]
    ys = [analysis.metric_items(r["output"], spec["metric"]).mean() for r in runs]
    ax.scatter(xs, ys, label=arm, s=14)
  ax.set_xlabel(spec.get("xlabel", describe(f"value:{spec['x']}")))
  ax.set_ylabel(spec.get("ylabel", describe(spec["metric"])))
  _legend(ax, len(runs_by_arm))
  _finish(fig, ax, title, path)


PLOTS = {"pareto": pareto, "metric_vs_config": metric_vs_config, "bars": bars,
         "curve": curve, "stability": stability, "scatter_output": scatter_output}


def draw(kind: str, runs_by_arm, spec, title: str, path: pathlib.Path) -> str | None:
  """Draws one plot; returns an error text instead of raising when data is missing. A
  spec's "arms" (only these) or "exclude" (all but these) chooses the arms drawn: controls
  do not belong on a curve of the arms they control."""
  try:
    if "arms" in spec:
      runs_by_arm = {a: runs_by_arm[a] for a in spec["arms"] if a in runs_by_arm}
    runs_by_arm = {a: r for a, r in runs_by_arm.items() if a not in spec.get("exclude", ())}
    PLOTS[kind](runs_by_arm, spec, title, path)
    return None
  except (KeyError, ValueError, TypeError, IndexError) as e:
    plt.close("all")
    return f"{kind}: not drawn ({type(e).__name__}: {e})"
