"""`msr reproduce`: every prediction, its controls and the ablations at the decide tier from
the shipped base model, then the report. The main job of the README."""

from __future__ import annotations

import glob
import os
import pathlib
import time


def register(subparsers) -> None:
  parser = subparsers.add_parser("reproduce", help="run P1-P5 and the ablations, write the report")
  parser.add_argument("--run-dir", default="runs/reproduce")
  parser.add_argument("--scale", default="decide", choices=("smoke", "decide", "full"),
                      help="decide (default: every prediction with its controls, <= 30 min "
                           "on a 2-core CPU), full (the longer tier), smoke (a pipeline "
                           "check: no verdicts)")
  parser.add_argument("-j", "--jobs", type=int, default=max(1, os.cpu_count() or 1),
                      help="arms in parallel (default: one per CPU core)")
  parser.add_argument("--runs-per-worker", type=int, default=None,
                      help="recycle a worker process after this many runs (0: never; "
                           "default 20)")
  parser.add_argument("--experiments", default="experiments",
                      help="folder of experiment files (default: experiments/ of the "
                           "current directory, the repository root)")
  parser.add_argument("--only", nargs="*", default=None,
                      help="experiment file stems to run (default: all of the folder)")
  parser.set_defaults(func=run)


def experiment_files(folder: str = "experiments", only=None, scale: str | None = None
                     ) -> list[str]:
  """The experiment files of `folder`: those `only` names, else all but those whose
  `scales` leave out `scale` (the decide tier leaves the ablations and the baselines to
  the full tier; `--only baselines` runs them at any tier)."""
  from msr_jax.errors import UserError
  from msr_jax.runner.experiment import load_experiment, runs_at
  files = sorted(glob.glob(os.path.join(glob.escape(folder), "*.py")))
  if only:
    files = [f for f in files if pathlib.Path(f).stem in set(only)]
  elif scale is not None:
    files = [f for f in files if runs_at(load_experiment(f, scale), scale)]
  if not files:
    raise UserError(f"{os.path.abspath(folder)}: no experiment files"
                    + (f" match {only}" if only else "") + " (run msr reproduce from the "
                    "repository root, or pass --experiments)")
  return files


def run(args) -> int:
  from msr_jax.runner.report import build_report
  from msr_jax.runner.sweep import RUNS_PER_WORKER, run_sweep

  start = time.time()
  summary = run_sweep(experiment_files(args.experiments, args.only, args.scale), args.run_dir,
                      args.scale, args.jobs,
                      runs_per_worker=RUNS_PER_WORKER if args.runs_per_worker is None
                      else args.runs_per_worker)
  summary_report = build_report(args.run_dir)
  wall = time.time() - start
  print(f"\n{summary['total']} runs ({summary['skipped']} reused, {summary['failed']} failed) "
        f"in {wall / 60:.1f} min")
  print(f"{'experiment':<24} {'prediction':<10} verdict")
  for name, item in summary_report.items():
    print(f"{name:<24} {item['prediction']:<10} {item['verdict']}")
  print(f"report: {os.path.join(args.run_dir, 'report.md')}")
  return 1 if summary["failed"] else 0
