"""`msr report RUN_DIR`: one section per experiment, verdicts with Holm correction, plots.

The report reads `experiments.json` (the experiments as declared, with their
pre-registered analysis) and the result store. It never changes a criterion; a
prediction whose data does not support it is reported as such.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from msr_jax import atomic
from msr_jax.runner import analysis, plots
from msr_jax.runner.experiment import expand
from msr_jax.runner.store import ResultStore

def _shown_path(path: str) -> str:
  """An experiment file as a reader of the report finds it: relative to the current
  directory (the repository root, where `msr reproduce` runs) when it lies below it."""
  try:
    return str(pathlib.Path(path).resolve().relative_to(pathlib.Path.cwd().resolve()))
  except ValueError:
    return path


def runs_by_arm(exp: dict, store: ResultStore) -> tuple[dict[str, list[dict]], list[str]]:
  """Finished runs of each arm (by key, so shared runs count for every experiment)."""
  grouped, problems = {}, []
  for spec in expand(exp):
    result = store.get(spec.key)
    if result is None:
      problems.append(f"{spec.arm} seed {spec.seed}: not run")
    elif result.get("status") != "ok":
      last = result.get("error", "").strip().splitlines()[-1:] or ["?"]
      problems.append(f"{spec.arm} seed {spec.seed}: error: {last[0]}")
    else:
      grouped.setdefault(spec.arm, []).append(
          {"spec": spec.to_json(), "output": result["output"]})
  return grouped, problems


def _fmt_metric(runs, metric) -> str:
  try:
    values = [analysis.metric_items(r["output"], metric).mean() for r in runs]
  except (KeyError, ValueError):
    return "-"
  return f"{np.mean(values):.3f}" + (f" ± {np.std(values):.3f}" if len(values) > 1 else "")


def _steps(runs) -> str:
  """Training steps of an arm's runs (all stages): the mean, and the range over seeds."""
  steps = [r["output"].get("steps") for r in runs]
  if any(s is None for s in steps):
    return "-"
  low, high = min(steps), max(steps)
  return f"{np.mean(steps):.0f}" + (f" ({low}-{high})" if low != high else "")


def _learned(runs) -> str:
  """How many runs reached the efficacy gate ("-" where the arm was not gated)."""
  flags = [r["output"].get("learned") for r in runs]
  return "-" if any(f is None for f in flags) else f"{sum(flags)}/{len(flags)}"


def _arm_table(grouped: dict, metrics: list[str]) -> list[str]:
  """Per arm: seeds, steps trained, runs that reached the gate, then each metric (mean ±
  the standard deviation over seeds)."""
  lines = ["| arm | seeds | steps | learned | " + " | ".join(metrics) + " |",
           "|---|---|---|---|" + "---|" * len(metrics)]
  for arm, runs in grouped.items():
    cells = [_fmt_metric(runs, m) for m in metrics]
    lines.append(f"| {arm} | {len(runs)} | {_steps(runs)} | {_learned(runs)} | "
                 + " | ".join(cells) + " |")
  return lines


def _bound(criterion: dict) -> str:
  """The value a criterion's interval is read against: its margin, its minimum, or 0."""
  for key in ("margin", "min"):
    if key in criterion:
      return f"{criterion[key]:g}"
  return "0"


def _width(result) -> str:
  if result.interval is None:
    return "-"
  return f"{result.interval.high - result.interval.low:.4f}"


DREAM_COLUMNS = (("scenarios", "scenarios"), ("acceptance", "accepted (signal)"),
                 ("removed_by_filter", "removed by the filter"),
                 ("removed_in_n2", "removed in held-out N2 cells"), ("kept", "kept"))


def _dream_table(grouped: dict) -> list[str]:
  """Per dreaming arm, means over seeds and stages: what the dreams were, each judge's
  acceptance (and validity: the share of its accepted answers the oracle calls right),
  and what filtering removed."""
  rows, judges = {}, []
  for arm, runs in grouped.items():
    stages = [d for r in runs for d in r["output"].get("dreams", [])]
    if stages:
      rows[arm] = stages
      for d in stages:
        judges += [j for j in (d.get("judges") or {}) if j not in judges]
  if not rows:
    return []
  mean = lambda values: (f"{np.mean(values):.3f}" if values else "-")
  head = [label for _, label in DREAM_COLUMNS] + [
      f"{j} accepts (validity)" for j in judges]
  lines = ["", "Dreams (means over seeds and stages; validity: the share of a judge's "
           "accepted answers the oracle calls right):", "",
           "| arm | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
  for arm, stages in rows.items():
    cells = [mean([d[k] for d in stages if d.get(k) is not None]) for k, _ in DREAM_COLUMNS]
    for j in judges:
      acc = [d["judges"][j]["acceptance"] for d in stages
             if (d.get("judges") or {}).get(j, {}).get("acceptance") is not None]
      val = [d["judges"][j]["validity"] for d in stages
             if (d.get("judges") or {}).get(j, {}).get("validity") is not None]
      cells.append(f"{mean(acc)} ({mean(val)})")
    lines.append(f"| {arm} | " + " | ".join(cells) + " |")
  return lines


# Smoke scale checks that every arm runs and the analysis reads; its numbers decide nothing.
PIPELINE_CHECK = "no verdict (smoke scale: a pipeline check)"


def _finding(verdict: str, before_holm: str, criteria: list[dict]) -> str:
  """One sentence: the verdict and the criterion that decided it."""
  if verdict == PIPELINE_CHECK:
    return ("**Smoke scale: a pipeline check, no verdict.** Every arm ran and every "
            "criterion was computed; at this budget the numbers decide nothing (run "
            "`msr reproduce` for the decide tier).")
  if not criteria:
    return "**Found:** nothing to decide (no criterion declared)."
  if verdict == analysis.INSTRUMENT_FAILED:
    failed = next(c for c in criteria if c.get("control") and c["outcome"] != c["expect"])
    return (f"**Found: instrument failed.** The {failed['control']} control "
            f"{failed['name']} gave {failed['outcome']}, designed to give {failed['expect']} "
            f"({failed['detail']}): the criteria cannot be read.")
  criteria = [c for c in criteria if not c.get("control") and not c.get("secondary")]
  if not criteria:
    return f"**Found: {verdict}.**"
  if verdict == analysis.SUPPORTED:
    return (f"**Found: supported.** Every criterion holds; "
            f"{criteria[0]['name']}: {criteria[0]['detail']}.")
  if before_holm == analysis.SUPPORTED:  # downgraded by the Holm correction
    return ("**Found: inconclusive.** Every criterion holds, but the primary test does not "
            "survive the Holm correction across the predictions.")
  deciding = next((c for c in criteria if c["outcome"] == verdict), criteria[0])
  return f"**Found: {verdict}.** {deciding['name']}: {deciding['detail']}."


def build_report(run_dir: str | pathlib.Path, num_resamples: int = 2000) -> dict:
  run_dir = pathlib.Path(run_dir)
  index = run_dir / "experiments.json"
  if not index.exists():
    raise FileNotFoundError(f"{index}: no experiments recorded; run `msr sweep` first")
  experiments = json.loads(index.read_text())
  store = ResultStore(run_dir)
  plot_dir = run_dir / "plots"
  plot_dir.mkdir(exist_ok=True)
  sections, verdicts, primary_p, summary = [], {}, {}, {}
  for exp in experiments:
    grouped, problems = runs_by_arm(exp, store)
    spec = exp.get("analysis", {})
    criteria = [analysis.evaluate_criterion(c, grouped, num_resamples)
                for c in spec.get("criteria", [])]
    name = exp["name"]
    smoke = exp.get("scale") == "smoke"
    verdicts[name] = (PIPELINE_CHECK if smoke else analysis.verdict(criteria) if criteria
                      else "no criterion")
    for c in criteria:
      if c.primary and exp["prediction"].startswith("P") and not smoke:
        primary_p[name] = c.p_value
    section = [f"## {name} ({exp['prediction']}, {exp['scale']} scale)", ""]
    if spec.get("claim"):
      section += [f"**Claim.** {spec['claim']}", ""]
    commit = exp.get("commit", "")
    section += [f"Seeds: {exp['seeds']}. Arms: {len(exp['arms'])}. "
                f"File: `{_shown_path(exp.get('file', '?'))}`"
                + (f" at commit {commit}" if commit else " (not in a git checkout)")
                + ".", ""]
    section += _arm_table(grouped, spec.get("report_metrics", []))
    section += _dream_table(grouped)
    declared = spec.get("criteria", [])
    section += ["", "| criterion | kind | result | CI width | margin / bound | p (one-sided) "
                "| outcome |", "|---|---|---|---|---|---|---|"]
    for c, d in zip(criteria, declared):
      if not c.control:
        role = " (primary)" if c.primary else " (secondary)" if c.secondary else ""
        section.append(f"| {c.name}{role} | {c.kind} | "
                       f"{c.detail} | {_width(c)} | {_bound(d)} | {c.p_value:.4f} | "
                       f"{c.outcome} |")
    controls = [(c, d) for c, d in zip(criteria, declared) if c.control]
    if controls:
      section += ["", "Controls (known answers: a planted effect the criteria must detect, "
                  "a null they must not flag):", "",
                  "| control | kind | result | CI width | margin / bound | expected | got "
                  "| as designed |", "|---|---|---|---|---|---|---|---|"]
      section += [f"| {c.name} | {c.control} | {c.detail} | {_width(c)} | {_bound(d)} | "
                  f"{c.expect} | {c.outcome} | {'yes' if c.as_designed else 'NO'} |"
                  for c, d in controls]
    for i, plot in enumerate(spec.get("plots", [])):
      path = plot_dir / f"{name}_{i}_{plot['kind']}.png"
      error = plots.draw(plot["kind"], grouped, plot, f"{name}: {plot['kind']}", path)
      section.append("" if error is None else f"\n_{error}_")
      if error is None:
        section.append(f"![{plot['kind']}](plots/{path.name})")
    if problems:
      section += ["", "Runs missing from this section:"] + [f"- {p}" for p in problems]
    sections.append((name, section))
    summary[name] = {"prediction": exp["prediction"], "criteria": [
        {"name": c.name, "outcome": c.outcome, "p": c.p_value, "detail": c.detail,
         "control": c.control, "expect": c.expect, "secondary": c.secondary}
        for c in criteria]}
  final, adjusted = analysis.apply_holm(verdicts, primary_p)
  lines = ["# msr-jax report", "",
           "Verdicts follow the criteria declared in each experiment file before the runs. "
           "Holm correction is applied across the primary tests of the predictions; a "
           "'supported' prediction whose primary test does not survive it is reported "
           "as inconclusive.", "",
           "| experiment | prediction | verdict | primary p (Holm-adjusted) |", "|---|---|---|---|"]
  for exp in experiments:
    name = exp["name"]
    p = adjusted.get(name)
    lines.append(f"| {name} | {exp['prediction']} | {final[name]} | "
                 f"{'-' if p is None else f'{p:.4f}'} |")
  findings = {}
  for exp in experiments:
    name = exp["name"]
    findings[name] = _finding(final[name], verdicts[name], summary[name]["criteria"])
  for name, section in sections:
    # Each section opens with what was found, in one sentence, after the heading.
    lines += [""] + section[:1] + ["", findings[name]] + section[1:]
  report_path = run_dir / "report.md"
  atomic.write_text(report_path, "\n".join(lines) + "\n")
  for name in summary:
    summary[name]["verdict"] = final[name]
    summary[name]["holm_p"] = adjusted.get(name)
  atomic.write_json(run_dir / "verdicts.json", summary)
  return summary
