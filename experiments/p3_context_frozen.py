"""P3: context-frozen training changes responses without degrading context understanding.

Arms, gated to matched learning: {context_frozen, full backprop} x {note_relevant,
note_ignored}. In the note_ignored regime every training answer is the same whatever the
note says, so training has a reason to stop reading notes; context-frozen training can
change how the context is encoded only through the shared weights. Context understanding =
C1 (note recall, 2-8 facts) and C2 (counterfactual notes), by exact match and, more
sensitive, by the answer's log-probability; hidden-state CKA to the base beside them.
Controls: the planted forgetter (full backprop, hot, ungated, note ignored) must be seen
to lose context; a copy of the context-frozen arm that differs only in its training seed
must not differ from it.
"""

import pathlib

from msr_jax.runner.arms import arm_grid

ARMS = pathlib.Path(__file__).resolve().parents[1] / "configs" / "townworld_arms.py"

CONTEXT = "C1_*+C2"


def get_experiment(scale):
  grid = arm_grid(ARMS, scale)
  arms = {"cf_relevant": {}, "full_relevant": {"train.mode": "full"},
          "cf_ignored": {"data.regime": "note_ignored"},
          "full_ignored": {"train.mode": "full", "data.regime": "note_ignored"},
          "planted_forgetting": grid.controls["planted_forgetting"],
          "reseeded": grid.controls["reseeded"]}
  kept = lambda name, arm, **extra: {
      "name": name, "kind": "non_inferiority", "metric": f"forgetting:{CONTEXT}", "arm": arm,
      "margin": 0.02, **extra}
  more = lambda name, metric, arm, baseline, **extra: {
      "name": name, "kind": "superiority", "metric": metric, "arm": arm,
      "baseline": baseline, "direction": "greater", **extra}
  return {
      "name": "p3_context_frozen", "prediction": "P3",
      "entry": "msr_jax.runner.townworld_arm:run",
      "base": grid.base(), "arms": arms, "seeds": list(grid.seeds),
      "analysis": {
          "claim": "At matched behaviour efficacy, context-frozen training keeps context "
                   "understanding within 2 points of the base, whether or not the decision "
                   "depends on the note.",
          "report_metrics": ["score:B_train", f"forgetting:{CONTEXT}",
                             f"logp_forgetting:{CONTEXT}", "forgetting:rule",
                             "forgetting:K1+K2", "value:context_cka", "value:kl_to_base"],
          "criteria": [
              kept("context kept, note relevant (margin 2 points)", "cf_relevant",
                   primary=True, matched=True),
              kept("context kept, note ignored (margin 2 points)", "cf_ignored",
                   matched=True),
              more("note relevant: full backprop forgets context more", f"forgetting:{CONTEXT}",
                   "full_relevant", "cf_relevant", matched=True, secondary=True),
              more("note ignored: full backprop forgets context more", f"forgetting:{CONTEXT}",
                   "full_ignored", "cf_ignored", matched=True, secondary=True),
              more("note ignored: full backprop loses more context log-probability",
                   f"logp_forgetting:{CONTEXT}", "full_ignored", "cf_ignored", matched=True,
                   secondary=True),
              kept("planted forgetting loses context (margin 2 points)", "planted_forgetting",
                   control="positive", expect="not supported"),
              more("a reseeded copy does not lose more context log-probability",
                   f"logp_forgetting:{CONTEXT}", "reseeded", "cf_relevant", control="null",
                   expect="inconclusive"),
          ],
          "plots": [
              {"kind": "bars", "metrics": ["score:B_train", f"score:{CONTEXT}"]},
              {"kind": "bars", "metrics": [f"logp_forgetting:{CONTEXT}"]},
              {"kind": "bars", "metrics": ["value:context_cka"]},
              {"kind": "stability", "probe": "context"},
          ],
      },
  }
