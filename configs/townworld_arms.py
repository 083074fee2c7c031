"""The Townworld arms of the experiments: an arm's defaults, the scales, the six defences
and the stress grid (`get_config(scale)`, scale "smoke" | "full").

  arm       the config every arm of every experiment starts from, at this scale, read by
            `msr_jax.runner.townworld_arm:run`. Its `optim`, `train` and `guard` sections
            (and `lora`, `regularizer` where an experiment adds them) use the trainer's
            field names (msr_jax/train/config.py) and override it; `gate` is the efficacy
            gate on a validation split of the stage's behaviour.
  seeds     the seeds of every arm
  defences  {name: {"on": changes, "off": changes}}: the switches of P5 and the
            ablations (dotted field names of `arm`); "all" is every defence on
  stress    {cell: changes}: every defence set runs in every cell, and robustness is its
            worst composite score over the cells

Experiment files read it through `msr_jax.runner.arms.arm_grid`. Paths are relative to
the directory `msr reproduce` runs in (the repository root).
"""

from __future__ import annotations

import ml_collections

from msr_jax.runner.config import set_dotted

ARM = {
    "base_checkpoint": "assets/townworld_base",
    "stages": 1,                 # sequential behaviour updates (R1, then held-out rules)
    "optim": {"name": "adamw", "learning_rate": 1e-4, "weight_decay": 0.0, "kwargs": {}},
    "train": {"mode": "context_frozen", "steps": 60, "batch_size": 8},
    "data": {"mixture": "diverse", "behaviour_records": 512, "replay_records": 1024,
             "replay_weight": 0.5, "regime": "note_relevant", "dream_weight": 0.3},
    "guard": {"every": 0, "threshold": 0.05, "action": "halve_lr"},
    # The efficacy gate (msr_jax/train/gate.py): every `every` steps (0: off) the stage's
    # behaviour is scored on `validation_items` items (disjoint from every scored item);
    # the stage stops at `target`, train.steps is the cap.
    "gate": {"every": 0, "target": 0.8, "validation_items": 40},
    "stress": {"bad_batch_fraction": 0.0, "bad_dream_fraction": 0.0},
    "dream": {"mode": "none", "count": 256},
    "memory": {"self_targets": False},
    "eval": {"every": 20, "sizes": {}, "during_items": 48, "sharpness": False,
             "sharpness_iters": 30},
}

# What a scale changes in every arm. Smoke: the CPU, minutes for all five predictions.
SCALES = {
    "smoke": {"train.steps": 40, "train.batch_size": 8, "data.behaviour_records": 256,
              "data.replay_records": 512, "eval.every": 20, "eval.during_items": 32,
              "dream.count": 96, "eval.sharpness_iters": 10,
              "eval.sizes": {"K1": 60, "K2": 60, "qa_trained": 0, "K4": 0, "C1": 10,
                             "C2": 40, "R0": 40, "rule": 30, "rule_novel": 30,
                             "r1_note": 30, "behaviour": 40, "N4": 20}},
    "full": {"train.steps": 300, "train.batch_size": 16, "data.behaviour_records": 2048,
             "data.replay_records": 4096, "eval.every": 25, "eval.during_items": 96,
             "dream.count": 512, "eval.sizes": {}},
}
SEEDS = {"smoke": [0, 1, 2], "full": [0, 1, 2, 3, 4]}

DEFENCES = {
    "parameter": {"on": {"optim.name": "apollo", "optim.kwargs": {"rank": 32}},
                  "off": {"optim.name": "adamw", "optim.kwargs": {}}},
    "gradient": {"on": {"train.mode": "context_frozen"}, "off": {"train.mode": "full"}},
    "data": {"on": {"data.mixture": "diverse"}, "off": {"data.mixture": "narrow"}},
    "temporal": {"on": {"guard.every": 10}, "off": {"guard.every": 0}},
    "architectural": {"on": {"memory.self_targets": True},
                      "off": {"memory.self_targets": False}},
    "generative": {"on": {"dream.mode": "filtered"}, "off": {"dream.mode": "none"}},
}

STRESS = {
    "smoke": {"hot": {"optim.learning_rate": 1e-3, "stages": 2},
              "dirty": {"stress.bad_batch_fraction": 0.2, "stress.bad_dream_fraction": 0.3}},
    "full": {"hot": {"optim.learning_rate": 1e-3},
             "sequential": {"stages": 3},
             "dirty": {"stress.bad_batch_fraction": 0.2, "stress.bad_dream_fraction": 0.3},
             "all": {"optim.learning_rate": 1e-3, "stages": 3,
                     "stress.bad_batch_fraction": 0.2, "stress.bad_dream_fraction": 0.3}},
}


def get_config(scale: str | None = None) -> ml_collections.ConfigDict:
  scale = scale or "smoke"
  if scale not in SCALES:
    raise ValueError(f"configs/townworld_arms.py: unknown scale {scale!r} (expected one of "
                     f"{sorted(SCALES)})")
  arm = ml_collections.ConfigDict(ARM)
  for dotted, value in SCALES[scale].items():
    set_dotted(arm, dotted, value, f"configs/townworld_arms.py: scale {scale!r}: {dotted!r}")
  c = ml_collections.ConfigDict()
  c.scale = scale
  c.arm = arm
  c.seeds = list(SEEDS[scale])
  # Dotted field names as keys (the changes are applied with `set_dotted`), in the order
  # written: it is the order of the arms in every report.
  c.defences = ml_collections.ConfigDict(DEFENCES, allow_dotted_keys=True, sort_keys=False)
  c.stress = ml_collections.ConfigDict(STRESS[scale], allow_dotted_keys=True,
                                       sort_keys=False)
  return c
