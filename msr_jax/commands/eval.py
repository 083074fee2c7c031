"""`msr eval --checkpoint PATH`: score a Townworld checkpoint on every probe.

Prints a table and writes the scores as JSON (atomically) to `--out`
(default PATH/eval.json). `--subset` scores the reduced subset stored in the card.
"""

from __future__ import annotations

import os


def register(subparsers) -> None:
  parser = subparsers.add_parser("eval", help="score a Townworld checkpoint on the probes")
  parser.add_argument("--checkpoint", required=True, help="checkpoint folder")
  parser.add_argument("--out", default=None, help="JSON output (default PATH/eval.json)")
  parser.add_argument("--subset", action="store_true", help="the reduced probe subset only")
  parser.set_defaults(func=run)


def run(args) -> int:
  from msr_jax import atomic
  from msr_jax.world import probes_card

  result = probes_card.evaluate(args.checkpoint, subset=args.subset)
  result["checkpoint"] = os.path.abspath(args.checkpoint)
  result["goals"] = probes_card.goals(result["probes"])
  print(probes_card.format_table(result["probes"]))
  out = args.out or os.path.join(args.checkpoint, "eval.json")
  atomic.write_json(out, result)
  print(f"{result['items']} items in {result['wall_s']:.1f} s -> {out}")
  return 0
