"""The one-defence ablation shared by `experiments/ablation_*.py`.

The full system against the full system without one defence, over P5's stress grid (the
"all" runs are P5's own: same configs, so the result store computes them once). They run
at the full tier only: the decide tier spends its 30 minutes on the predictions and their
controls (fewer cells, more seeds), and a leave-one-out arm per defence would double P5.
"""

from __future__ import annotations

from msr_jax.runner.arms import ArmGrid


def ablation_experiment(defence: str, grid: ArmGrid) -> dict:
  """The experiment of switching `defence` off, on `grid` (`arms.arm_grid`)."""
  if defence not in grid.defences:
    raise ValueError(f"unknown defence {defence!r}; expected one of {sorted(grid.defences)}")
  rest = tuple(d for d in grid.defences if d != defence)
  sets = {"all": grid.defences, f"no_{defence}": rest}
  return {
      "name": f"ablation_{defence}", "prediction": "ablation",
      "entry": "msr_jax.runner.townworld_arm:run",
      "base": grid.base(**{"eval.sharpness": True}),
      "arms": grid.defence_arms(sets), "seeds": list(grid.seeds), "scales": ["full"],
      "analysis": {
          "claim": f"Switching the {defence} defence off lowers the worst-case composite score.",
          "report_metrics": ["value:composite", "forgetting:K1+K2+C1_*+C2", "score:N1+N2+N3"],
          "criteria": [
              {"name": f"all > no_{defence} (worst case over the grid)",
               "kind": "worst_case_superiority", "metric": "value:composite", "arm": "all",
               "baselines": [f"no_{defence}"]},
          ],
          "plots": [{"kind": "bars", "metrics": ["value:composite", "score:N1+N2+N3"]}],
      },
  }
