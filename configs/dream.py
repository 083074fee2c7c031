"""The dream loop on Townworld (`msr dream --config configs/dream.py[:smoke]`).

Arms of prediction P4 differ only in `dream.mode`: "none" (real only), "filtered",
"unfiltered", "oracle" (scenarios answered by the oracle policy); equal steps and batch
sizes in every arm. `smoke` is a seconds-long run on a random 2-layer, width-32 model.
"""

from __future__ import annotations

import ml_collections


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
  c.dream = ml_collections.ConfigDict({
      "cycles": 4,
      "mode": "filtered",          # filtered | unfiltered | oracle | none
      "walks_per_cycle": 128,
      "walk_length": 3,            # memories per collision: the first 3 distinct nodes
      "restart_prob": 0.1,
      "split_cell": False,         # item and weather from different memories
      "judges": ("format", "self", "oracle"),   # each reported separately
      "judge": "format",           # the training signal
      "threshold": 0.5,            # acceptance threshold of the format / oracle judges
      "self_threshold": 0.5,       # of the self-consistency judge (token probability)
      "top_fraction": None,        # or keep only the best fraction (filtered mode)
      "max_new_tokens": 12,
      "generate_batch_size": 64,
      "temperature": ml_collections.ConfigDict({
          "initial": 0.7, "minimum": 0.1, "maximum": 1.5, "target_failure": 0.3,
          "gain": 1.0}),
  })
  c.train = ml_collections.ConfigDict({
      "mode": "context_frozen",
      "steps_per_cycle": 30,
      "batch_size": 32,
      "dream_weight": 0.5,         # share of dream examples when a cycle has dreams
      "max_context_tokens": 256,
      # Few buckets, few compiled step shapes (decisions are about 8 words).
      "context_buckets": (64, 128, 256),
      "decision_buckets": (16, 32),
      "optimizer": ml_collections.ConfigDict({
          "name": "adamw", "learning_rate": 3e-4, "weight_decay": 0.0, "clip_norm": 1.0}),
  })
  c.guard = ml_collections.ConfigDict({
      "enabled": True, "threshold": 0.05, "action": "halve_lr", "max_rollbacks": 3})
  c.probes = ml_collections.ConfigDict({"seed": 1234, "sizes": ml_collections.ConfigDict()})
  if arg == "smoke":
    c.out_dir = "runs/dream_smoke"
    c.model.update({"init": "random", "hidden_size": 32, "intermediate_size": 64,
                    "num_layers": 2, "num_heads": 2, "num_kv_heads": 2, "head_dim": 16})
    c.memory.num_real = 24
    c.dream.update({"cycles": 2, "walks_per_cycle": 8, "max_new_tokens": 8,
                    "generate_batch_size": 8})
    c.train.update({"steps_per_cycle": 2, "batch_size": 4})
    c.probes.sizes = ml_collections.ConfigDict({
        "K1": 4, "K2": 4, "C1": 1, "C2": 4, "r1_note": 4, "behaviour": 4})
  elif arg not in (None, ""):
    raise ValueError(f"configs/dream.py: unknown argument {arg!r} (expected none or smoke)")
  return c
