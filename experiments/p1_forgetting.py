"""P1: fine-tuning at lr 1e-4 on diverse data does not cause forgetting.

Arms: lr {1e-4, 1e-3} x data {narrow, diverse} (and 1e-5 at the full tier: it does not
learn within the decide tier's cap, and runs to it); two sequential behaviour updates
(R1, then a rule never told in pre-training, without contrary labels on R1's cells;
diverse data replays pre-training-style records and the earlier update's own records).
Every stage trains until its behaviour reaches the efficacy gate on a validation split
(`gate` in configs/townworld_arms.py), so arms are compared at matched learning; an arm
that does not learn within the cap makes the criteria that need it inconclusive.
Forgetting = probe drop against the base on knowledge (K1, K2) and context understanding
(C1 at 2..8 facts, C2); the answer's log-probability is the sensitive secondary measure;
R1's retention after the second update is the backward transfer (stages.bwt).
Controls: a planted forgetter (configs/townworld_arms.py CONTROLS) must be flagged; a copy
of the lr 1e-3 narrow arm that differs only in its training seed must not be found to
forget more than it.
"""

import pathlib

from msr_jax.runner.arms import arm_grid

ARMS = pathlib.Path(__file__).resolve().parents[1] / "configs" / "townworld_arms.py"

RETAIN = "K1+K2+C1_*+C2"
LEARNED = "B_train+B_train_s*"
FOCUS = "lr0.0001_diverse"
NULL = "lr0.001_narrow"
CONTROLS = ["reseeded", "planted_forgetting"]


def get_experiment(scale):
  grid = arm_grid(ARMS, scale)
  rates = (1e-5, 1e-4, 1e-3) if scale == "full" else (1e-4, 1e-3)
  arms = {f"lr{lr:g}_{data}": {"optim.learning_rate": lr, "data.mixture": data}
          for lr in rates for data in ("narrow", "diverse")}
  # The null: the cheapest arm (it learns in the fewest steps) and a copy of it that
  # differs only in its training seed; it forgets most, so its noise is the largest.
  arms["reseeded"] = {**arms[NULL], **grid.controls["reseeded"]}
  arms["planted_forgetting"] = {**grid.controls["planted_forgetting"], "stages": 1}
  return {
      "name": "p1_forgetting", "prediction": "P1",
      "entry": "msr_jax.runner.townworld_arm:run",
      "base": grid.base(stages=2), "arms": arms, "seeds": list(grid.seeds),
      "analysis": {
          "claim": "At lr 1e-4 with diverse data, once both behaviour updates are learned, "
                   "knowledge and context stay within 2 points of the base.",
          "report_metrics": [f"forgetting:{RETAIN}", f"logp_forgetting:{RETAIN}",
                             f"score:{LEARNED}", "value:stages.bwt", "value:kl_to_base"],
          "criteria": [
              {"name": "forgetting non-inferior to base (margin 2 points)",
               "kind": "non_inferiority", "metric": f"forgetting:{RETAIN}", "arm": FOCUS,
               "margin": 0.02, "primary": True, "matched": True},
              {"name": "narrow forgets more than diverse (lr 1e-4)", "kind": "superiority",
               "metric": f"forgetting:{RETAIN}", "arm": "lr0.0001_narrow",
               "baseline": FOCUS, "direction": "greater", "matched": True,
               "secondary": True},
              {"name": "narrow loses more answer log-probability than diverse (lr 1e-4)",
               "kind": "superiority", "metric": f"logp_forgetting:{RETAIN}",
               "arm": "lr0.0001_narrow", "baseline": FOCUS, "direction": "greater",
               "matched": True, "secondary": True},
              {"name": "R1 kept through the second update (BWT >= -0.1)", "kind": "threshold",
               "metric": "value:stages.bwt", "arm": FOCUS, "min": -0.1, "matched": True,
               "secondary": True},
              {"name": "planted forgetting is flagged (margin 2 points)",
               "kind": "non_inferiority", "metric": f"forgetting:{RETAIN}",
               "arm": "planted_forgetting", "margin": 0.02, "control": "positive",
               "expect": "not supported"},
              {"name": "a reseeded copy of lr 1e-3 narrow does not forget more",
               "kind": "superiority", "metric": f"forgetting:{RETAIN}", "arm": "reseeded",
               "baseline": NULL, "direction": "greater", "control": "null",
               "expect": "inconclusive"},
          ],
          "plots": [
              {"kind": "pareto", "learned": f"gain:{LEARNED}",
               "forgetting": f"forgetting:{RETAIN}", "exclude": CONTROLS},
              {"kind": "metric_vs_config", "metric": f"forgetting:{RETAIN}",
               "x": "optim.learning_rate", "group": "data.mixture", "logx": True,
               "xlabel": "learning rate", "exclude": CONTROLS},
              {"kind": "metric_vs_config", "metric": f"logp_forgetting:{RETAIN}",
               "x": "optim.learning_rate", "group": "data.mixture", "logx": True,
               "xlabel": "learning rate", "exclude": CONTROLS},
              {"kind": "stability", "probe": "knowledge"},
              {"kind": "stability", "probe": "context"},
          ],
      },
  }
