"""`msr report RUN_DIR`: writes RUN_DIR/report.md, verdicts.json and plots/."""

from __future__ import annotations


def register(subparsers) -> None:
  parser = subparsers.add_parser("report", help="write report.md with verdicts and plots")
  parser.add_argument("run_dir")
  parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
  parser.set_defaults(func=run)


def run(args) -> int:
  from msr_jax.runner.report import build_report

  summary = build_report(args.run_dir, args.resamples)
  for name, item in summary.items():
    print(f"{name:<28} {item['prediction']:<9} {item['verdict']}")
  print(f"wrote {args.run_dir}/report.md")
  return 0
