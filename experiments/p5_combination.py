"""P5: the combination of defences is more robust than any single technique.

Defence sets: none, each defence alone, all together, each run in every cell of the stress
grid (configs/townworld_arms.py STRESS: at the decide tier one cell, calibrated in the
pilot so that no defence learns the behaviour and forgets; ungated, a fixed budget).
Robustness = the worst case over the grid of the composite score: behaviour on novel
situations x retained knowledge x retained context x kept specificity (x, with sequential
updates, what the later updates learned). "All" is compared with each single defence by
an intersection-union test (it must beat every one).
Controls: "all" against the untrained base (composite 0: R1 never fires there) must win;
"none" against a copy of itself that differs only in its training seed must not (the
same test on the cheapest arm).
"""

import pathlib

from msr_jax.runner.arms import arm_grid

ARMS = pathlib.Path(__file__).resolve().parents[1] / "configs" / "townworld_arms.py"


def get_experiment(scale):
  grid = arm_grid(ARMS, scale)
  ALL = grid.defences
  sets = {"none": (), "all": ALL}
  sets.update({f"only_{d}": (d,) for d in ALL})
  arms = grid.defence_arms(sets)
  for cell, stress in grid.stress.items():
    arms[f"untrained@{cell}"] = {**grid.defence_changes(ALL), **stress,
                                 **grid.controls["untrained"]}
    arms[f"none_reseeded@{cell}"] = {**grid.defence_changes(()), **stress,
                                     **grid.controls["reseeded"]}
  wins = lambda name, baselines, arm="all", **extra: {
      "name": name, "kind": "worst_case_superiority", "metric": "value:composite",
      "arm": arm, "baselines": baselines, **extra}
  return {
      "name": "p5_combination", "prediction": "P5",
      "entry": "msr_jax.runner.townworld_arm:run",
      "base": grid.base(**{"eval.sharpness": scale == "full"}), "arms": arms,
      "seeds": list(grid.seeds),
      "analysis": {
          "claim": "All defences together have a higher worst-case composite score over the "
                   "stress grid than every single defence alone.",
          "report_metrics": ["value:composite", "forgetting:K1+K2+C1_*+C2", "score:N1+N2+N3",
                             "score:spec"],
          "criteria": [
              wins("all > every single defence (worst case over the grid)",
                   [f"only_{d}" for d in ALL], primary=True),
              wins("all > none (worst case over the grid)", ["none"], secondary=True),
              wins("all beats the untrained base (composite 0)", ["untrained"],
                   control="positive", expect="supported"),
              wins("no defence does not beat a reseeded copy of itself", ["none_reseeded"],
                   arm="none", control="null", expect="inconclusive"),
          ],
          "plots": [
              {"kind": "bars", "metrics": ["value:composite"]},
              {"kind": "pareto", "learned": "score:N1+N2+N3",
               "forgetting": "forgetting:K1+K2+C1_*+C2",
               "exclude": [a for a in arms if a.startswith(("untrained", "none_reseeded"))]},
          ],
      },
  }
