"""The `data` section of a training config, with every field `msr_jax.data` reads.

A config file embeds it as `config.data = get_data_config()` and may change any field;
overrides work as usual (`--config.data.mixture=narrow`, `--config.data.weights.dream=0.5`).
"""

from __future__ import annotations

import ml_collections


def get_data_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.paths = ()                 # JSONL files to read (see docs/data.md)
  config.on_error = "raise"         # "raise" | "skip" malformed records
  # "diverse": every source in `weights`, drawn in proportion (empty: every source the
  # records hold, equally); "narrow": only `narrow_source` (empty: the records' only
  # source). Equal steps and tokens either way; only the sources change.
  config.mixture = "diverse"
  config.weights = ml_collections.ConfigDict()
  config.narrow_source = ""
  config.seed = 0
  config.max_context_tokens = 512   # longer contexts are cut from the left (counted)
  config.keep_first = 0             # tokens kept at the start when cutting (e.g. 1 for BOS)
  config.context_buckets = (32, 64, 128, 256, 512)
  config.decision_buckets = (8, 16, 32, 64, 128)
  # A decision longer than the largest decision bucket, found when the data is loaded:
  # "raise" (naming file, line and id) | "skip" (counted and listed) | "cut" (its first
  # tokens, counted); "" = as on_error.
  config.long_decisions = ""
  config.replay_ratio = 0.0         # fraction of emitted examples drawn from replay
  config.replay_capacity = 10_000
  return config
