"""Fine-tuning run: `msr train --config configs/train.py[:smoke]`.

The schema and its neutral defaults are `msr_jax/train/config.py`; this file adds the
testbed's choices: Townworld's tokenizer, and for `:smoke` its episodes.

Arguments: none (defaults below), "smoke" (a tiny model and a few steps, for CI and for
trying the command), "full" (full backprop instead of context-frozen; the baseline).
"""

from __future__ import annotations

import ml_collections

from msr_jax.train.config import get_config as trainer_defaults


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = trainer_defaults()
  config.tensorboard = True     # <run_dir>/tensorboard: `tensorboard --logdir runs/`
  config.data.tokenizer = "msr_jax.world.tokenizer:training_adapter"
  config.data.townworld = ml_collections.ConfigDict({"world_seed": 0, "count": 512})

  if arg == "full":
    config.train.mode = "full"
  elif arg == "smoke":
    config.data.kind = "msr_jax.world.behaviour:records_for_training"
    config.data.mixture = "narrow"
    config.data.narrow_source = "townworld"
    config.data.townworld.count = 64
    config.model.hidden_size = 64
    config.model.intermediate_size = 128
    config.model.num_layers = 2
    config.model.num_heads = 4
    config.model.num_kv_heads = 4
    config.data.context_buckets = (32, 64)
    config.data.decision_buckets = (8, 16)
    config.data.max_context_tokens = 64
    config.optim.learning_rate = 1e-3
    config.train.steps = 8
    config.train.batch_size = 2
    config.checkpoint.every = 4
    config.guard.every = 4
    config.guard.holdout_examples = 4
    config.guard.batch_size = 4
    config.run_dir = "runs/train_smoke"
  elif arg is not None:
    raise ValueError(f"configs/train.py: unknown argument {arg!r} (use smoke or full)")
  return config
