"""The one-defence ablation shared by `experiments/ablation_*.py`.

The full system against the full system without one defence, over P5's stress grid; the
runs are P5's own (same configs, so the result store computes them once).
"""

from __future__ import annotations

from msr_jax.runner.townworld_arm import DEFENCES, SEEDS, defence_arms, scaled_config


def ablation_experiment(defence: str, scale: str) -> dict:
  if defence not in DEFENCES:
    raise ValueError(f"unknown defence {defence!r}; expected one of {sorted(DEFENCES)}")
  rest = tuple(d for d in DEFENCES if d != defence)
  sets = {"all": tuple(DEFENCES), f"no_{defence}": rest}
  return {
      "name": f"ablation_{defence}", "prediction": "ablation",
      "entry": "msr_jax.runner.townworld_arm:run",
      "base": scaled_config(scale, **{"eval.sharpness": True}),
      "arms": defence_arms(scale, sets), "seeds": SEEDS[scale],
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
