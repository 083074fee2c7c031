"""P3: context-frozen training changes responses without degrading context understanding.

Arms: {context_frozen, full backprop} x {note_relevant, note_ignored}. In the
note_ignored regime every training answer is the same whatever the note says, so full
backprop has a reason to stop reading notes; context-frozen training cannot change how the
context is encoded except through the shared weights.
"""

import pathlib

from msr_jax.runner.arms import arm_grid

ARMS = pathlib.Path(__file__).resolve().parents[1] / "configs" / "townworld_arms.py"

CONTEXT = "C1_*+C2"


def get_experiment(scale):
  grid = arm_grid(ARMS, scale)
  arms = {"cf_relevant": {}, "full_relevant": {"train.mode": "full"},
          "cf_ignored": {"data.regime": "note_ignored"},
          "full_ignored": {"train.mode": "full", "data.regime": "note_ignored"}}
  return {
      "name": "p3_context_frozen", "prediction": "P3",
      "entry": "msr_jax.runner.townworld_arm:run",
      "base": grid.base(), "arms": arms, "seeds": list(grid.seeds),
      "analysis": {
          "claim": "At matched behaviour efficacy, context-frozen training keeps context "
                   "understanding within 2 points of the base, and degrades it less than "
                   "full backprop when the decision ignores the note.",
          "report_metrics": ["score:B_train", f"forgetting:{CONTEXT}", "forgetting:K1+K2",
                             "value:context_cka", "value:kl_to_base"],
          "criteria": [
              {"name": "context understanding kept (margin 2 points)", "kind": "non_inferiority",
               "metric": f"forgetting:{CONTEXT}", "arm": "cf_relevant", "margin": 0.02,
               "primary": True},
              {"name": "efficacy matched: not 5 points below full backprop",
               "kind": "non_inferiority", "metric": "score:B_train", "arm": "cf_relevant",
               "baseline": "full_relevant", "margin": 0.05},
              {"name": "note ignored: full backprop forgets context more",
               "kind": "superiority", "metric": f"forgetting:{CONTEXT}", "arm": "full_ignored",
               "baseline": "cf_ignored", "direction": "greater"},
          ],
          "plots": [
              {"kind": "bars", "metrics": ["score:B_train", f"score:{CONTEXT}"]},
              {"kind": "bars", "metrics": ["value:context_cka"]},
              {"kind": "stability", "probe": "context"},
          ],
      },
  }
