"""The `dream` section of a dream-loop config, with every field `msr_jax.dream` reads and
its defaults. `configs/dream.py` embeds it; the experiment runner's dreaming arms start
from it and change what they set, so no caller keeps its own copy of the defaults."""

from __future__ import annotations

import ml_collections


def dream_defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
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
      "dream_weight": 0.5,         # share of dream examples when a cycle has dreams
      # The trainer guard's drops count from the base model's retention score too
      # ("base"), or only from each cycle's start and best ("cycle": a decline of a few
      # points per cycle is never caught).
      "guard_anchor": "base",
      "temperature": ml_collections.ConfigDict({
          "initial": 0.7, "minimum": 0.1, "maximum": 1.5, "target_failure": 0.3,
          "gain": 1.0}),
  })
