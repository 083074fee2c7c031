"""How the self judge's threshold filters Townworld dreams: the share kept and the share
the oracle calls right, by threshold (docs/results/pilot.md, section 6).

    python scripts/dream_filter_pilot.py [--seed 0] [--scale decide]

Dreams of the base model (unfiltered, with every judge's score kept) for seed's rotation
of the held-out splits; run from the repository root.
"""

from __future__ import annotations

import argparse
import dataclasses

import ml_collections
import numpy as np

from msr_jax.runner import arm_data, arm_dreams, arm_probes
from msr_jax.runner.arms import arm_grid


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--scale", default="decide")
  args = parser.parse_args()
  cfg = ml_collections.ConfigDict(arm_grid("configs/townworld_arms.py", args.scale).base(
      **{"dream.mode": "unfiltered"}))
  base = arm_probes.load_base(cfg.base_checkpoint)
  base = dataclasses.replace(base, world=base.world.rotated(args.seed))
  rule = arm_data.stage_rules(base.world, 1)[0]
  records, _ = arm_dreams.dream_records(cfg, base, base.params, rule, 1, args.seed)
  score = np.array([r.meta["judges"]["self"] for r in records])
  right = np.array([r.messages[-1].content == r.meta["oracle_answer"] for r in records])
  print(f"{len(records)} dreams, the oracle calls {right.mean():.3f} right")
  for threshold in (0.5, 0.7, 0.8, 0.9, 0.95):
    keep = score >= threshold
    print(f"self >= {threshold}: kept {keep.mean():.3f}, right among kept "
          f"{right[keep].mean() if keep.any() else float('nan'):.3f}")
  print("wrong:", [(r.messages[-1].content, r.meta["oracle_answer"], round(s, 3))
                   for r, s, ok in zip(records, score, right) if not ok][:8])


if __name__ == "__main__":
  main()
