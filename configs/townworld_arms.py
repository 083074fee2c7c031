"""The Townworld arms of the experiments: an arm's defaults, the scales, the six defences
and the stress grid (`get_config(scale)`, scale "smoke" | "decide" | "full").

Scales (tiers): "decide" is `msr reproduce`'s: every prediction with its controls, gated
to matched learning, 5 seeds with held-out cells and templates rotated across them, <= 30
min on a 2-core CPU. "full" is the longer tier to publish from (10 seeds, larger probe
sets and caps). "smoke" is a pipeline check for tests: a few steps, no verdicts.

  arm       the config every arm of every experiment starts from, at this scale, read by
            `msr_jax.runner.townworld_arm:run`. Its `optim`, `train`, `guard`, `lora` and
            `regularizer` sections use the trainer's field names
            (msr_jax/train/config.py) and override it; `gate` is the efficacy gate on a
            validation split of the stage's behaviour.
  seeds     the seeds of every arm
  defences  {name: {"on": changes, "off": changes}}: the switches of P5 and the
            ablations (dotted field names of `arm`); "all" is every defence on
  stress    {cell: changes}: every defence set runs in every cell, and robustness is its
            worst composite score over the cells
  controls  {name: changes}: arms with known answers shared by several experiments

Experiment files read it through `msr_jax.runner.arms.arm_grid`. Paths are relative to
the directory `msr reproduce` runs in (the repository root).
"""

from __future__ import annotations

import ml_collections

from msr_jax.runner.config import set_dotted

ARM = {
    "base_checkpoint": "assets/townworld_base",
    "stages": 1,                 # sequential behaviour updates (R1, then held-out rules)
    # Added to the seed for the training randomness only (data, order, dreams): arms that
    # differ in `reseed` alone are the null controls' inert switch.
    "reseed": 0,
    # rotate: each seed holds out its own two R1 cells (N2) and two request templates (N3)
    # (World.rotated), so generalisation claims rest on every cell and template.
    "splits": {"rotate": False},
    "optim": {"name": "adamw", "learning_rate": 1e-4, "weight_decay": 0.0, "kwargs": {}},
    "train": {"mode": "context_frozen", "steps": 60, "batch_size": 8},
    # regime: note_relevant | note_ignored (P3) | everywhere | contrary (P2's controls);
    # extra_real: that many more real records at the dreams' weight, from the training
    # cells ("train") or, a planted leak, the held-out N2 cells ("held_out").
    "data": {"mixture": "diverse", "behaviour_records": 512, "replay_records": 1024,
             "replay_weight": 0.5, "regime": "note_relevant", "dream_weight": 0.3,
             "extra_real": 0, "extra_cells": "train"},
    "guard": {"every": 0, "threshold": 0.05, "action": "halve_lr"},
    # The efficacy gate (msr_jax/train/gate.py): every `every` steps (0: off) the stage's
    # behaviour is scored on `validation_items` items where its rule fires and as many near
    # misses where it must not (disjoint from every scored item); the stage stops when
    # both reach `target`, train.steps is the cap.
    "gate": {"every": 0, "target": 0.8, "validation_items": 40},
    "stress": {"bad_batch_fraction": 0.0, "bad_dream_fraction": 0.0},
    # The literature's baselines (docs/baselines.md), off at 0: LoRA on every block
    # projection (nnx.LoRA; alpha 0 means alpha = rank), and loss terms toward the base
    # weights (EWC's Fisher and the KL term read Townworld's replay records).
    "lora": {"rank": 0, "alpha": 0.0},
    "regularizer": {"l2_sp": 0.0, "ewc": 0.0, "kl_to_base": 0.0},
    # mode: none | filtered | unfiltered | oracle | distill (the note without dreams);
    # judge: the training signal ("format+self": both accept; the self judge accepts an
    # answer whose mean token probability under the model, note in context, reaches
    # self_threshold: 0.5 accepted every dream in the pilot, docs/results/pilot.md);
    # judges: also reported.
    "dream": {"mode": "none", "count": 256, "judge": "format+self", "self_threshold": 0.9,
              "judges": ("format", "self", "oracle")},
    "memory": {"self_targets": False},
    "eval": {"every": 20, "sizes": {}, "during_items": 48, "sharpness": False,
             "sharpness_iters": 30},
}

# What a scale changes in every arm. train.steps is the cap of a gated stage (and the
# budget of an ungated one).
SCALES = {
    "smoke": {"train.steps": 20, "train.batch_size": 8, "data.behaviour_records": 128,
              "data.replay_records": 256, "eval.every": 10, "eval.during_items": 16,
              "dream.count": 32, "eval.sharpness_iters": 5, "gate.every": 10,
              "gate.validation_items": 16, "splits.rotate": True,
              "eval.sizes": {"K1": 20, "K2": 20, "qa_trained": 0, "K4": 0, "C1": 4,
                             "C2": 12, "R0": 12, "rule": 8, "rule_novel": 8,
                             "r1_note": 8, "behaviour": 12, "N4": 6}},
    "decide": {"train.steps": 300, "train.batch_size": 8, "data.behaviour_records": 256,
               "data.replay_records": 512, "eval.every": 50, "eval.during_items": 32,
               "dream.count": 96, "eval.sharpness_iters": 10, "gate.every": 20,
               "gate.target": 0.75, "gate.validation_items": 48, "splits.rotate": True,
               "eval.sizes": {"K1": 64, "K2": 64, "qa_trained": 0, "K4": 0, "C1": 16,
                              "C2": 64, "R0": 48, "rule": 32, "rule_novel": 32,
                              "r1_note": 32, "behaviour": 48, "N4": 16}},
    "full": {"train.steps": 600, "train.batch_size": 16, "data.behaviour_records": 2048,
             "data.replay_records": 4096, "eval.every": 25, "eval.during_items": 96,
             "dream.count": 512, "gate.every": 10, "gate.validation_items": 128,
             "splits.rotate": True, "eval.sizes": {}},
}
SEEDS = {"smoke": [0, 1], "decide": [0, 1, 2, 3, 4], "full": list(range(10))}

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

# Calibrated in the pilot (docs/results/pilot.md) so that "no defence" learns the
# behaviour and forgets: ungated, too hot (lr 1e-3) for too long. One cell at the decide
# tier (fewer cells, more seeds); the full tier adds sequential updates and dirty data.
HOT = {"optim.learning_rate": 1e-3, "gate.every": 0, "train.steps": 60}
STRESS = {
    "smoke": {"hot": {**HOT, "train.steps": 20}},
    "decide": {"hot": HOT},
    "full": {"hot": HOT,
             "sequential": {**HOT, "stages": 2},
             "dirty": {**HOT, "stress.bad_batch_fraction": 0.2,
                       "stress.bad_dream_fraction": 0.3}},
}


# Arms with known answers that several experiments use as controls (changes of `arm`):
#   planted_forgetting  full backprop, hot (lr 1e-3), ungated, on answers that ignore the
#                       note: forgets knowledge and context (measured in the pilot,
#                       docs/results/pilot.md), so a forgetting criterion must flag it
#   reseeded            only the training randomness differs: a comparison with the arm it
#                       copies must not fire
#   untrained           no step: the base model's scores through the same pipeline
CONTROLS = {
    "planted_forgetting": {"train.mode": "full", "data.regime": "note_ignored",
                           "optim.learning_rate": 1e-3, "gate.every": 0, "train.steps": 100},
    "reseeded": {"reseed": 100},
    "untrained": {"gate.every": 0, "train.steps": 0},
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
  c.controls = ml_collections.ConfigDict(CONTROLS, allow_dotted_keys=True, sort_keys=False)
  return c
