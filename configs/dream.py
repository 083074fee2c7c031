"""The dream loop on Townworld (`msr dream --config configs/dream.py[:smoke]`).

Arms of prediction P4 differ only in `dream.mode`: "none" (real only), "filtered",
"unfiltered", "oracle" (scenarios answered by the oracle policy); equal steps and batch
sizes in every arm. `smoke` is a seconds-long run on a random 2-layer, width-32 model.
"""

from __future__ import annotations

import os

import ml_collections

from msr_jax.dream.config import dream_defaults
from msr_jax.runner.config import load_config_file


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.out_dir = "runs/dream"
  c.model = ml_collections.ConfigDict({
      "init": "checkpoint", "checkpoint": "assets/townworld_base",
      # For init="random": the preset and any non-zero size changes.
      "preset": "townworld_tiny", "hidden_size": 0, "intermediate_size": 0,
      "num_layers": 0, "num_heads": 0, "num_kv_heads": 0, "head_dim": 0})
  # Used when init="random"; a checkpoint brings its own world and probe seed.
  c.world = ml_collections.ConfigDict({"seed": 0, "num_people": 240})
  # The memories: R1's real fine-tuning episodes, also the real training data.
  c.memory = ml_collections.ConfigDict({"seed": 0, "num_real": 256})
  c.dream = dream_defaults()  # every field and its meaning: msr_jax/dream/config.py
  # The trainer's own config (configs/train.py), run once per cycle by train_loop; the
  # dream loop sets its data mixture (real + dreams) per cycle.
  c.trainer = load_config_file(os.path.join(os.path.dirname(__file__), "train.py"))
  t = c.trainer
  t.seed, t.resume, t.progress = 0, False, False
  t.train.update({"mode": "context_frozen", "steps": 30, "batch_size": 32})
  t.optim.update({"name": "adamw", "learning_rate": 3e-4})
  t.data.max_context_tokens = 256
  # Few buckets, few compiled step shapes (Townworld decisions are about 8 words).
  t.data.context_buckets, t.data.decision_buckets = (64, 128, 256), (16, 32)
  # Probe retention (knowledge + context accuracy) at the start and end of every cycle;
  # roll the cycle back and halve the learning rate after a drop of more than 5 points.
  t.guard.update({"every": 30, "threshold": 0.05, "action": "halve_lr", "max_rollbacks": 3})
  t.checkpoint.update({"every": 30, "keep": 1})
  c.probes = ml_collections.ConfigDict({"seed": 1234, "sizes": ml_collections.ConfigDict()})
  if arg == "smoke":
    c.out_dir = "runs/dream_smoke"
    c.model.update({"init": "random", "hidden_size": 32, "intermediate_size": 64,
                    "num_layers": 2, "num_heads": 2, "num_kv_heads": 2, "head_dim": 16})
    c.memory.num_real = 24
    c.dream.update({"cycles": 2, "walks_per_cycle": 8, "max_new_tokens": 8,
                    "generate_batch_size": 8})
    c.trainer.train.update({"steps": 2, "batch_size": 4})
    c.trainer.guard.every = 2
    c.trainer.checkpoint.every = 2
    c.probes.sizes = ml_collections.ConfigDict({
        "K1": 4, "K2": 4, "C1": 1, "C2": 4, "r1_note": 4, "behaviour": 4})
  elif arg not in (None, ""):
    raise ValueError(f"configs/dream.py: unknown argument {arg!r} (expected none or smoke)")
  return c
