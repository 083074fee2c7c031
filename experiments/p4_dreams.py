"""P4: dream data generalises better than real examples alone.

Arms at equal steps and batch sizes: real only; real + filtered dreams (the format judge,
which does not know the rule); real + unfiltered dreams; real + oracle recombinations (an
upper bound). Dreams landing in held-out N2 cells are dropped, so N2 measures cells no
dream covered.
"""

import pathlib

from msr_jax.runner.arms import arm_grid

ARMS = pathlib.Path(__file__).resolve().parents[1] / "configs" / "townworld_arms.py"

NOVEL = "N1+N2+N3"


def get_experiment(scale):
  grid = arm_grid(ARMS, scale)
  arms = {"real_only": {}, "filtered": {"dream.mode": "filtered"},
          "unfiltered": {"dream.mode": "unfiltered"}, "oracle": {"dream.mode": "oracle"}}
  return {
      "name": "p4_dreams", "prediction": "P4",
      "entry": "msr_jax.runner.townworld_arm:run",
      "base": grid.base(), "arms": arms, "seeds": list(grid.seeds),
      "analysis": {
          "claim": "Real + filtered dreams beat real-only data on grid cells no dream covered.",
          "report_metrics": ["score:B_train", "score:N1", "score:N2", "score:N3",
                             "forgetting:K1+K2+C1_*+C2"],
          "criteria": [
              {"name": "filtered dreams > real only on uncovered N2 cells",
               "kind": "superiority", "metric": "score:N2", "arm": "filtered",
               "baseline": "real_only", "direction": "greater", "primary": True},
              {"name": "filtered dreams > real only on N1-N3", "kind": "superiority",
               "metric": f"score:{NOVEL}", "arm": "filtered", "baseline": "real_only",
               "direction": "greater"},
          ],
          "plots": [{"kind": "bars", "metrics": ["score:N1", "score:N2", "score:N3"]},
                    {"kind": "pareto", "learned": f"gain:{NOVEL}",
                     "forgetting": "forgetting:K1+K2+C1_*+C2"}],
      },
  }
