"""Ablation of the architectural defence: the full system against the full system without it,
over the stress grid of P5 (the runs are P5's, shared through the result store)."""

from msr_jax.runner.townworld_arm import DEFENCES, SEEDS, defence_arms, scaled_config

DEFENCE = "architectural"


def get_experiment(scale):
  rest = tuple(d for d in DEFENCES if d != DEFENCE)
  sets = {"all": tuple(DEFENCES), f"no_{DEFENCE}": rest}
  return {
      "name": f"ablation_{DEFENCE}", "prediction": "ablation",
      "entry": "msr_jax.runner.townworld_arm:run",
      "base": scaled_config(scale, **{"eval.sharpness": True}),
      "arms": defence_arms(scale, sets), "seeds": SEEDS[scale],
      "analysis": {
          "claim": f"Switching the {DEFENCE} defence off lowers the worst-case composite score.",
          "report_metrics": ["value:composite", "forgetting:K1+K2+C1_*+C2", "score:N1+N2+N3"],
          "criteria": [
              {"name": f"all > no_{DEFENCE} (worst case over the grid)",
               "kind": "worst_case_superiority", "metric": "value:composite", "arm": "all",
               "baselines": [f"no_{DEFENCE}"]},
          ],
          "plots": [{"kind": "bars", "metrics": ["value:composite", "score:N1+N2+N3"]}],
      },
  }
