"""P2: a behaviour change generalises to novel situations (and only to them).

One arm (lr 1e-4, diverse data, context-frozen; the same run as P3's and P4's reference
arms). Transfer ratio = gain on N1-N3 over gain on the training situations.
"""

import pathlib

from msr_jax.runner.arms import arm_grid

ARMS = pathlib.Path(__file__).resolve().parents[1] / "configs" / "townworld_arms.py"


def get_experiment(scale):
  grid = arm_grid(ARMS, scale)
  return {
      "name": "p2_generalisation", "prediction": "P2",
      "entry": "msr_jax.runner.townworld_arm:run",
      "base": grid.base(), "arms": {"standard": {}}, "seeds": list(grid.seeds),
      "analysis": {
          "claim": "The learned rule transfers to unseen people, grid cells and templates "
                   "(transfer ratio >= 0.8, lower CI > 0.5) without firing where it must not "
                   "(specificity >= 95%).",
          "report_metrics": ["score:B_train", "score:N1", "score:N2", "score:N3", "score:spec",
                             "score:N4_*"],
          "criteria": [
              {"name": "transfer ratio N1-N3", "kind": "threshold",
               "metric": "transfer_ratio:N1+N2+N3/B_train", "arm": "standard", "min": 0.8,
               "ci_low_min": 0.5, "primary": True},
              {"name": "specificity", "kind": "threshold", "metric": "score:spec",
               "arm": "standard", "min": 0.95},
          ],
          "plots": [
              {"kind": "curve", "probes": ["N4_3", "N4_5", "N4_7", "N4_9"], "x": [3, 5, 7, 9],
               "xlabel": "distractor facts in the note"},
              {"kind": "bars", "metrics": ["gain:B_train", "gain:N1", "gain:N2", "gain:N3",
                                           "score:spec"]},
          ],
      },
  }
