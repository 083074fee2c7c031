"""P5: the combination of defences is more robust than any single technique.

Defence sets: none, each defence alone, all together, and all but one (leave-one-out),
each run in every cell of a stress grid (a high learning rate with sequential updates;
injected bad batches and bad dreams). Robustness = the worst case over the grid of the
composite score (behaviour on novel situations x retained knowledge x retained context x
kept specificity, the base policy where R1 must not fire). "All" is compared with each
single defence by an intersection-union test (it must beat every one).
"""

import pathlib

from msr_jax.runner.arms import arm_grid

ARMS = pathlib.Path(__file__).resolve().parents[1] / "configs" / "townworld_arms.py"


def get_experiment(scale):
  grid = arm_grid(ARMS, scale)
  ALL = grid.defences
  sets = {"none": (), "all": ALL}
  sets.update({f"only_{d}": (d,) for d in ALL})
  sets.update({f"no_{d}": tuple(x for x in ALL if x != d) for d in ALL})
  base = grid.base(**{"eval.sharpness": True})
  return {
      "name": "p5_combination", "prediction": "P5",
      "entry": "msr_jax.runner.townworld_arm:run",
      "base": base, "arms": grid.defence_arms(sets), "seeds": list(grid.seeds),
      "analysis": {
          "claim": "All defences together have a higher worst-case composite score over the "
                   "stress grid than any single defence alone.",
          "report_metrics": ["value:composite", "forgetting:K1+K2+C1_*+C2", "score:N1+N2+N3",
                             "value:sharpness.lambda_max"],
          "criteria": [
              {"name": "all > best single defence (worst case over the grid)",
               "kind": "worst_case_superiority", "metric": "value:composite", "arm": "all",
               "baselines": [f"only_{d}" for d in ALL], "primary": True},
              {"name": "all > none (worst case over the grid)",
               "kind": "worst_case_superiority", "metric": "value:composite", "arm": "all",
               "baselines": ["none"]},
          ],
          "plots": [
              {"kind": "bars", "metrics": ["value:composite"]},
              {"kind": "scatter_output", "x": "sharpness.quadratic_prediction",
               "metric": "forgetting:K1+K2+C1_*+C2"},
              {"kind": "scatter_output", "x": "sharpness.lambda_max",
               "metric": "forgetting:K1+K2+C1_*+C2"},
          ],
      },
  }
