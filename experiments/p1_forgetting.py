"""P1: fine-tuning at lr 1e-4 on diverse data does not cause forgetting.

Arms: lr {1e-5, 1e-4, 1e-3} x data {narrow, diverse}; two sequential behaviour updates
(R1, then a rule never told in pre-training). Forgetting = probe drop against the base
on knowledge (K1, K2) and context understanding (C1 at 2..8 facts, C2).
"""

import pathlib

from msr_jax.runner.arms import arm_grid

ARMS = pathlib.Path(__file__).resolve().parents[1] / "configs" / "townworld_arms.py"

RETAIN = "K1+K2+C1_*+C2"
LEARNED = "B_train+B_train_s*"
FOCUS = "lr0.0001_diverse"


def get_experiment(scale):
  grid = arm_grid(ARMS, scale)
  arms = {f"lr{lr:g}_{data}": {"optim.learning_rate": lr, "data.mixture": data}
          for lr in (1e-5, 1e-4, 1e-3) for data in ("narrow", "diverse")}
  return {
      "name": "p1_forgetting", "prediction": "P1",
      "entry": "msr_jax.runner.townworld_arm:run",
      "base": grid.base(stages=2), "arms": arms, "seeds": list(grid.seeds),
      "analysis": {
          "claim": "At lr 1e-4 with diverse data, forgetting stays within 2 points of the "
                   "base while the behaviour is learned; narrow data forgets more.",
          "report_metrics": [f"forgetting:{RETAIN}", "forgetting:K1+K2", "forgetting:C1_*+C2",
                             f"score:{LEARNED}", "value:kl_to_base", "value:stages.forgetting"],
          "criteria": [
              {"name": "forgetting non-inferior to base (margin 2 points)",
               "kind": "non_inferiority", "metric": f"forgetting:{RETAIN}", "arm": FOCUS,
               "margin": 0.02, "primary": True},
              {"name": "behaviour learned (efficacy >= 0.8)", "kind": "threshold",
               "metric": f"score:{LEARNED}", "arm": FOCUS, "min": 0.8},
              {"name": "narrow forgets more than diverse", "kind": "superiority",
               "metric": f"forgetting:{RETAIN}", "arm": "lr0.0001_narrow",
               "baseline": FOCUS, "direction": "greater"},
          ],
          "plots": [
              {"kind": "pareto", "learned": f"gain:{LEARNED}", "forgetting": f"forgetting:{RETAIN}"},
              {"kind": "metric_vs_config", "metric": f"forgetting:{RETAIN}",
               "x": "optim.learning_rate", "group": "data.mixture", "logx": True},
              {"kind": "stability", "probe": "knowledge"},
              {"kind": "stability", "probe": "context"},
          ],
      },
  }
