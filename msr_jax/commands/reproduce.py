"""`msr reproduce`: every prediction and ablation at smoke scale from the shipped base
model, then the report. The main job of the README."""

from __future__ import annotations

import glob
import os
import pathlib
import time

REPO = pathlib.Path(__file__).resolve().parents[2]


def register(subparsers) -> None:
  parser = subparsers.add_parser("reproduce", help="run P1-P5 and the ablations, write the report")
  parser.add_argument("--run-dir", default="runs/reproduce")
  parser.add_argument("--scale", default="smoke", choices=("smoke", "full"))
  parser.add_argument("-j", "--jobs", type=int, default=max(1, os.cpu_count() or 1),
                      help="arms in parallel (default: one per CPU core)")
  parser.add_argument("--runs-per-worker", type=int, default=None,
                      help="recycle a worker process after this many runs (0: never; "
                           "default 20)")
  parser.add_argument("--only", nargs="*", default=None,
                      help="experiment file stems to run (default: all of experiments/)")
  parser.set_defaults(func=run)


def experiment_files(only=None) -> list[str]:
  files = sorted(glob.glob(str(REPO / "experiments" / "*.py")))
  if only:
    files = [f for f in files if pathlib.Path(f).stem in set(only)]
  if not files:
    raise FileNotFoundError(f"no experiment files under {REPO / 'experiments'} match {only}")
  return files


def run(args) -> int:
  from msr_jax.runner.report import build_report
  from msr_jax.runner.sweep import RUNS_PER_WORKER, run_sweep

  start = time.time()
  summary = run_sweep(experiment_files(args.only), args.run_dir, args.scale, args.jobs,
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
