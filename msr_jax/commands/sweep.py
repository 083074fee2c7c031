"""`msr sweep EXPERIMENT.py... [--scale smoke|decide|full] [-j N] [--index I | --count]
[--run-dir DIR]`."""

from __future__ import annotations


from msr_jax.runner.experiment import SCALES


def register(subparsers) -> None:
  parser = subparsers.add_parser("sweep", help="run an experiment's arms x seeds (resumable)")
  parser.add_argument("experiments", nargs="+", help="experiment files (experiments/*.py)")
  parser.add_argument("--scale", default="decide", choices=SCALES,
                      help="decide (default; msr reproduce's tier), full, or smoke (a "
                           "pipeline check, no verdicts)")
  parser.add_argument("--smoke", action="store_const", const="smoke", dest="scale",
                      help="the same as --scale smoke")
  parser.add_argument("-j", "--jobs", type=int, default=1, help="runs in parallel")
  parser.add_argument("--index", type=int, default=None,
                      help="run only this run (0-based), e.g. a cluster job-array index")
  parser.add_argument("--run-dir", default="runs/sweep")
  parser.add_argument("--count", action="store_true",
                      help="print how many runs the experiments expand to (the job-array "
                           "size, scripts/slurm_sweep.sh) and run nothing")
  parser.add_argument("--runs-per-worker", type=int, default=None,
                      help="recycle a worker process after this many runs (0: never; "
                           "default 20)")
  parser.set_defaults(func=run)


def run(args) -> int:
  from msr_jax.runner.sweep import RUNS_PER_WORKER, count_runs, run_sweep

  if args.count:
    print(count_runs(args.experiments, args.scale))
    return 0
  runs_per_worker = RUNS_PER_WORKER if args.runs_per_worker is None else args.runs_per_worker
  summary = run_sweep(args.experiments, args.run_dir, args.scale, args.jobs, args.index, runs_per_worker=runs_per_worker)
  print(f"{summary['total']} runs: {summary['ran']} ran, {summary['skipped']} already done, "
        f"{summary['failed']} failed (results in {args.run_dir}/results)")
  return 1 if summary["failed"] else 0
