"""P2: a behaviour change generalises to novel situations (and only to them).

The standard arm (lr 1e-4, diverse data, context-frozen, gated to matched learning; the
same run as P3's and P4's reference arms). Each seed holds out its own two R1 cells (N2)
and two request templates (N3) (`splits.rotate`), so over the seeds every cell and
template is novel somewhere; intervals are over seeds, which carry the cell-to-cell
variance. Transfer ratio = gain on N1-N3 over gain on the training situations.
Controls: transfer planted (the novel splits trained too: "everywhere") must be found;
transfer removed (the novel splits taught the base policy: "contrary") must not be;
an arm taught to fire everywhere (answers that ignore the note) must fail specificity,
and the untrained base must pass it.
"""

import pathlib

from msr_jax.runner.arms import arm_grid

ARMS = pathlib.Path(__file__).resolve().parents[1] / "configs" / "townworld_arms.py"

TRANSFER = "transfer_ratio:N1+N2+N3/B_train"


def _transfer(name, arm, **extra):
  return {"name": name, "kind": "threshold", "metric": TRANSFER, "arm": arm, "min": 0.8,
          "ci_low_min": 0.5, **extra}


def get_experiment(scale):
  grid = arm_grid(ARMS, scale)
  arms = {"standard": {}, "everywhere": {"data.regime": "everywhere"},
          "contrary": {"data.regime": "contrary"},
          "fires_everywhere": {"data.regime": "note_ignored"},
          "untrained": grid.controls["untrained"]}
  return {
      "name": "p2_generalisation", "prediction": "P2",
      "entry": "msr_jax.runner.townworld_arm:run",
      "base": grid.base(), "arms": arms, "seeds": list(grid.seeds),
      "analysis": {
          "claim": "The learned rule transfers to unseen people, grid cells and templates "
                   "(transfer ratio >= 0.8, lower CI > 0.5) without firing where it must not "
                   "(specificity >= 95%).",
          "report_metrics": ["score:B_train", "score:N1", "score:N2", "score:N3", "score:spec",
                             "score:N4_*", "logp:N2"],
          "criteria": [
              _transfer("transfer ratio N1-N3", "standard", primary=True, matched=True),
              {"name": "specificity", "kind": "threshold", "metric": "score:spec",
               "arm": "standard", "min": 0.95, "matched": True},
              {"name": "transfer ratio on held-out cells (N2)", "kind": "threshold",
               "metric": "transfer_ratio:N2/B_train", "arm": "standard", "min": 0.8,
               "ci_low_min": 0.5, "matched": True, "secondary": True},
              {"name": "transfer ratio on held-out templates (N3)", "kind": "threshold",
               "metric": "transfer_ratio:N3/B_train", "arm": "standard", "min": 0.8,
               "ci_low_min": 0.5, "matched": True, "secondary": True},
              _transfer("planted transfer (novel splits trained) is found", "everywhere",
                        control="positive", expect="supported"),
              _transfer("no transfer (novel splits taught the base policy) is not found",
                        "contrary", control="null", expect="not supported"),
              {"name": "an arm that fires everywhere fails specificity", "kind": "threshold",
               "metric": "score:spec", "arm": "fires_everywhere", "min": 0.95,
               "control": "positive", "expect": "not supported"},
              {"name": "the untrained base passes specificity", "kind": "threshold",
               "metric": "score:spec", "arm": "untrained", "min": 0.95, "control": "null",
               "expect": "supported"},
          ],
          "plots": [
              {"kind": "curve", "probes": ["N4_3", "N4_5", "N4_7", "N4_9"], "x": [3, 5, 7, 9],
               "xlabel": "distractor facts in the note", "arms": ["standard"]},
              {"kind": "bars", "metrics": ["gain:B_train", "gain:N1", "gain:N2", "gain:N3",
                                           "score:spec"]},
          ],
      },
  }
