"""One Townworld arm x seed, printed in a line: the pilot behind the decide tier's settings.

    python scripts/pilot_arm.py '{"optim.learning_rate": 1e-3, "gate.every": 0}' 0 decide

Arguments: the arm's changes of configs/townworld_arms.py (dotted names, JSON), the seed,
the scale. Prints the wall time, each stage's steps and gate, the KL to the base and the
final accuracy of every probe group, then the curve during training as (step, behaviour
where the rule fires, near misses where it must not, knowledge, context). Run from the
repository root. The runs of docs/results/pilot.md were made with it; it computes no
verdict and is no experiment.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from msr_jax.runner.arms import arm_grid
from msr_jax.runner.townworld_arm import run

SHOWN = ("B_train", "N1", "N2", "N3", "spec", "K1", "K2", "C1_*", "C2", "R0", "rule",
         "r1_note")


def _mean(scores: dict, probe: str, which: str = "final") -> float:
  names = [k for k in scores if k == probe or (probe.endswith("*") and k.startswith(probe[:-1]))]
  return float(np.mean(np.concatenate([scores[k][which] for k in names])))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("changes", nargs="?", default="{}")
  parser.add_argument("seed", nargs="?", type=int, default=0)
  parser.add_argument("scale", nargs="?", default="decide")
  args = parser.parse_args()
  changes = json.loads(args.changes)
  config = arm_grid("configs/townworld_arms.py", args.scale).base(**changes)
  start = time.time()
  out = run(config, args.seed)
  scores = out["scores"]
  line = {"changes": changes, "seed": args.seed, "wall": round(time.time() - start, 1),
          "train": [{k: t.get(k) for k in ("step", "gate_reached", "gate_step", "gate_efficacy")}
                    for t in out["train"]],
          "kl": round(out["kl_to_base"], 3),
          **{p: round(_mean(scores, p), 3) for p in SHOWN}}
  print(json.dumps(line))
  print([(d["step"], round(d["behaviour"], 2), round(d.get("specificity", -1), 2),
          round(d["knowledge"], 2), round(d["context"], 2)) for d in out["during"]])


if __name__ == "__main__":
  main()
