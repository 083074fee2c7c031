"""PNG plots for the report. Each takes the runs of one experiment grouped by arm.

Plot specs are data in the experiment's `analysis["plots"]`:
  {"kind": "pareto", "learned": METRIC, "forgetting": METRIC}
  {"kind": "metric_vs_config", "metric": METRIC, "x": "optim.learning_rate", "group": "data.mixture", "logx": true}
  {"kind": "bars", "metrics": [METRIC, ...]}
  {"kind": "curve", "probes": ["N4_3", "N4_5", ...], "x": [3, 5, ...], "xlabel": "distractors"}
  {"kind": "stability", "probe": "K"}           (output["during"] curves)
  {"kind": "scatter_output", "x": "sharpness.lambda_max", "metric": METRIC}
METRIC is a name understood by `analysis.metric_items`.
"""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from msr_jax.runner import analysis  # noqa: E402
from msr_jax.runner.config import get_dotted  # noqa: E402


def _arm_mean(runs, metric):
  return float(np.mean([analysis.metric_items(r["output"], metric).mean() for r in runs]))


def _finish(fig, ax, title, path):
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def pareto(runs_by_arm, spec, title, path):
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for arm, runs in runs_by_arm.items():
    x, y = _arm_mean(runs, spec["learned"]), _arm_mean(runs, spec["forgetting"])
    ax.scatter(x, y)
    ax.annotate(arm, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
  ax.set_xlabel(f"learned ({spec['learned']})")
  ax.set_ylabel(f"forgetting ({spec['forgetting']})")
  _finish(fig, ax, title, path)


def metric_vs_config(runs_by_arm, spec, title, path):
  groups: dict = {}
  for arm, runs in runs_by_arm.items():
    config = runs[0]["spec"]["config"]
    key = get_dotted(config, spec["group"]) if spec.get("group") else ""
    groups.setdefault(key, []).append((get_dotted(config, spec["x"]), _arm_mean(runs, spec["metric"])))
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for key, points in sorted(groups.items(), key=lambda kv: str(kv[0])):
    points.sort()
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=str(key) or "all")
  if spec.get("logx"):
    ax.set_xscale("log")
  ax.set_xlabel(spec["x"])
  ax.set_ylabel(spec["metric"])
  ax.legend(fontsize=8)
  _finish(fig, ax, title, path)


def bars(runs_by_arm, spec, title, path):
  arms = list(runs_by_arm)
  metrics = spec["metrics"]
  width = 0.8 / len(metrics)
  fig, ax = plt.subplots(figsize=(max(5.5, 0.6 * len(arms) * len(metrics)), 4))
  for j, metric in enumerate(metrics):
    values = [_arm_mean(runs_by_arm[a], metric) for a in arms]
    ax.bar(np.arange(len(arms)) + j * width, values, width, label=metric)
  ax.set_xticks(np.arange(len(arms)) + 0.4 - width / 2, arms, rotation=30, ha="right", fontsize=7)
  ax.legend(fontsize=7)
  _finish(fig, ax, title, path)


def curve(runs_by_arm, spec, title, path):
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for arm, runs in runs_by_arm.items():
    ys = [_arm_mean(runs, f"score:{p}") for p in spec["probes"]]
    ax.plot(spec.get("x", list(range(len(ys)))), ys, marker="o", label=arm)
  ax.set_xlabel(spec.get("xlabel", ""))
  ax.set_ylabel("accuracy")
  ax.legend(fontsize=7)
  _finish(fig, ax, title, path)


def stability(runs_by_arm, spec, title, path):
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for arm, runs in runs_by_arm.items():
    during = runs[0]["output"].get("during", [])
    if not during:
      continue
    steps = [d["step"] for d in during]
    values = np.mean([[d[spec["probe"]] for d in r["output"]["during"]] for r in runs], axis=0)
    ax.plot(steps, values, label=arm)
  ax.set_xlabel("step")
  ax.set_ylabel(spec["probe"])
  ax.legend(fontsize=7)
  _finish(fig, ax, title, path)


def scatter_output(runs_by_arm, spec, title, path):
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for arm, runs in runs_by_arm.items():
    xs = [get_dotted(r["output"], spec["x"]) for r in runs]
    ys = [analysis.metric_items(r["output"], spec["metric"]).mean() for r in runs]
    ax.scatter(xs, ys, label=arm, s=14)
  ax.set_xlabel(spec["x"])
  ax.set_ylabel(spec["metric"])
  ax.legend(fontsize=6)
  _finish(fig, ax, title, path)


PLOTS = {"pareto": pareto, "metric_vs_config": metric_vs_config, "bars": bars,
         "curve": curve, "stability": stability, "scatter_output": scatter_output}


def draw(kind: str, runs_by_arm, spec, title: str, path: pathlib.Path) -> str | None:
  """Draws one plot; returns an error text instead of raising when data is missing."""
  try:
    PLOTS[kind](runs_by_arm, spec, title, path)
    return None
  except (KeyError, ValueError, TypeError, IndexError) as e:
    plt.close("all")
    return f"{kind}: not drawn ({type(e).__name__}: {e})"
