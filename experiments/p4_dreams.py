"""P4: dream data generalises better than real examples alone.

Arms, gated to matched learning on the training situations: real only; real + filtered
dreams (kept where the format judge and the model's own confidence, a mean token
probability of at least 0.9 with the note in context, both accept; neither knows the
rule: configs/townworld_arms.py `dream`); real + unfiltered dreams and real + oracle
recombinations (an upper bound) at the full tier;
and the controls of what dreams add: real + as many extra real records as dream walks
(more data, not dreams), and real + that many real situations answered with the rule note
in context and judged as dreams are (the note distilled without dreaming). Dreams landing
in a seed's held-out N2 cells are dropped, so N2 measures cells no dream covered. Each
judge's acceptance and what filtering removed are in the report. The unfiltered and the
oracle arms run at the full tier only (the decide tier's 30 minutes go to the controls).
Controls: records of the held-out cells leaked into training must be found to help N2; a
copy of real-only that differs only in its training seed must not.
"""

import pathlib

from msr_jax.runner.arms import arm_grid

ARMS = pathlib.Path(__file__).resolve().parents[1] / "configs" / "townworld_arms.py"

NOVEL = "N1+N2+N3"


def get_experiment(scale):
  grid = arm_grid(ARMS, scale)
  count = int(grid.arm["dream"]["count"])
  arms = {"real_only": {},
          "filtered": {"dream.mode": "filtered"},
          "extra_real": {"data.extra_real": count},
          "distill": {"dream.mode": "distill"},
          "leak": {"data.extra_real": count, "data.extra_cells": "held_out"},
          "reseeded": grid.controls["reseeded"]}
  if scale == "full":  # what the filter adds, and the upper bound: oracle answers
    arms["unfiltered"] = {"dream.mode": "unfiltered"}
    arms["oracle"] = {"dream.mode": "oracle"}
  beats = lambda name, arm, baseline, metric="score:N2", **extra: {
      "name": name, "kind": "superiority", "metric": metric, "arm": arm,
      "baseline": baseline, "direction": "greater", **extra}
  criteria = [
      beats("filtered dreams > real only on uncovered N2 cells", "filtered",
            "real_only", primary=True, matched=True),
      beats("filtered dreams > as many extra real records, on N2", "filtered",
            "extra_real", matched=True),
      beats("filtered dreams > the note distilled without dreams, on N2", "filtered",
            "distill", matched=True),
      beats("filtered dreams > real only on N1-N3", "filtered", "real_only",
            f"score:{NOVEL}", matched=True, secondary=True),
      beats("held-out cells leaked into training help N2", "leak", "real_only",
            control="positive", expect="supported"),
      beats("a reseeded copy of real only does not", "reseeded", "real_only",
            control="null", expect="inconclusive"),
  ]
  if scale == "full":
    criteria += [beats("filtered > unfiltered dreams on N2", "filtered", "unfiltered",
                       matched=True, secondary=True),
                 beats("oracle dreams > real only on N2", "oracle", "real_only",
                       matched=True, secondary=True)]
  return {
      "name": "p4_dreams", "prediction": "P4",
      "entry": "msr_jax.runner.townworld_arm:run",
      "base": grid.base(), "arms": arms, "seeds": list(grid.seeds),
      "analysis": {
          "claim": "Real + filtered dreams beat real-only data on grid cells no dream "
                   "covered, and beat as much extra real data and the rule note distilled "
                   "without dreams.",
          "report_metrics": ["score:B_train", "score:N1", "score:N2", "score:N3", "logp:N2",
                             "forgetting:K1+K2+C1_*+C2"],
          "criteria": criteria,
          "plots": [{"kind": "bars", "metrics": ["score:N1", "score:N2", "score:N3"]},
                    {"kind": "pareto", "learned": f"gain:{NOVEL}",
                     "forgetting": "forgetting:K1+K2+C1_*+C2",
                     "exclude": ["leak", "reseeded"]}],
      },
  }
