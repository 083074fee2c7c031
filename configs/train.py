"""Fine-tuning run: `msr train --config configs/train.py[:smoke]`.

Arguments: none (defaults below), "smoke" (a tiny model and a few steps, for CI and for
trying the command), "full" (full backprop instead of context-frozen; the baseline).
"""

from __future__ import annotations

import ml_collections

from msr_jax.data.config import get_data_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.run_dir = "runs/train"
  config.resume = True          # continue from the run folder's last checkpoint
  # A resume with a config that changes the run is refused unless this is set; the change
  # is then recorded in the run folder's config_changes.jsonl.
  config.allow_config_change = False
  config.progress = True        # tqdm bar (loss, tokens/s)

  config.model = ml_collections.ConfigDict()
  config.model.checkpoint = ""  # a checkpoint folder, or "" for a random init of preset
  config.model.preset = "townworld_tiny"
  for field in ("hidden_size", "intermediate_size", "num_layers", "num_heads",
                "num_kv_heads", "head_dim"):
    config.model[field] = 0     # 0: the preset's value
  config.model.dtype = ""
  config.model.param_dtype = ""

  config.data = get_data_config()
  config.data.kind = "jsonl"    # "jsonl" | "module:function" returning records
  # A tokenizer JSON file, an HF tokenizer folder, or "module:function" (Townworld's here).
  config.data.tokenizer = "msr_jax.world.tokenizer:training_adapter"
  config.data.townworld = ml_collections.ConfigDict({"world_seed": 0, "count": 512})

  config.optim = ml_collections.ConfigDict()
  config.optim.name = "adamw"
  config.optim.learning_rate = 1e-4
  config.optim.weight_decay = 0.0
  config.optim.schedule = "constant"
  config.optim.warmup_steps = 0

  config.train = ml_collections.ConfigDict()
  config.train.mode = "context_frozen"   # "context_frozen" | "full"
  config.train.steps = 1000
  config.train.batch_size = 8
  config.train.micro_batches = 1         # gradient accumulation (scan inside the step)
  config.train.prefill_chunk = 1024      # prefill long contexts this many tokens at a time (0: at once)
  config.train.monitor_drift = True

  config.checkpoint = ml_collections.ConfigDict({"every": 100, "keep": 3})

  config.guard = ml_collections.ConfigDict()
  config.guard.every = 50               # probe every N steps (0: no guard)
  config.guard.threshold = 0.1          # rollback when score < best - threshold
  config.guard.action = "halve_lr"      # "halve_lr" | "stop"
  config.guard.max_rollbacks = 3
  config.guard.anchor = None            # a score from outside the run (None: none);
                                        # drops then count from max(best, anchor)
  config.guard.holdout_examples = 32    # held out of training for the default probe
  config.guard.batch_size = 8

  config.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": 1})

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
