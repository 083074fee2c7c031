"""One cycle's training: real and dream examples mixed, through the trainer's `train_loop`.

`config.trainer` is a full training config (configs/train.py's schema): optimizer, mode
(context-frozen by default), batch size, quality guard, checkpoints. Each cycle calls
`msr_jax.train.loop.train_loop` in-process with
  - sources {the domain's real source: real examples, "dream": this cycle's dreams},
  - the cycle's mixture: "diverse" with weights (1 - dream_weight, dream_weight) when the
    cycle has dreams, "narrow" on the real source otherwise,
  - `train.steps` steps from the current parameters (the optimizer state starts afresh
    each cycle), and the dream loop's retention probe as the guard's `probe_fn`,
  - its own run folder `<run_dir>/train/cycle_<n>` (metrics.jsonl, orbax checkpoints).
Every cycle runs the same steps and batch size in every mode, so the arms of P4 train on
equal steps and (up to example lengths) equal tokens.
"""

from __future__ import annotations

import copy
import os
from typing import Callable, Mapping, Sequence

import ml_collections
import numpy as np

from msr_jax.data.mixture import build_mixture
from msr_jax.data.records import Record
from msr_jax.data.segmentation import Example
from msr_jax.train import metrics_log
from msr_jax.train.loop import train_loop
from msr_jax.train.setup import examples_from_records

DREAM = "dream"


def cycle_config(trainer: ml_collections.ConfigDict, seed: int, has_dreams: bool,
                 dream_weight: float, real: str) -> ml_collections.ConfigDict:
  """A copy of `trainer` whose data section is the cycle's mixture (see module doc)."""
  config = copy.deepcopy(trainer)
  data = config.data
  data.seed = int(seed)
  w = float(dream_weight)
  if not 0 <= w <= 1:
    raise ValueError(f"config.dream.dream_weight must be in [0, 1], got {w}")
  if has_dreams and 0 < w < 1:
    data.mixture = "diverse"
    data.weights = ml_collections.ConfigDict({real: 1.0 - w, DREAM: w})
  elif has_dreams and w == 1:
    data.mixture, data.narrow_source = "narrow", DREAM
  else:
    data.mixture, data.narrow_source = "narrow", real
  return config


def examples(records: Sequence[Record], adapter,
             trainer: ml_collections.ConfigDict) -> Mapping[str, list[Example]]:
  """Tokenized and segmented examples by source (the trainer's own pipeline)."""
  return examples_from_records(records, adapter, trainer.data)


def _draw_counts(config, sources, steps: int, batch_size: int) -> dict:
  """How many examples each source gives over the cycle: the stream's mixture is seeded,
  so drawing it again counts exactly what the loop drew."""
  mixture = build_mixture(config, sources)
  mixture.take(steps * batch_size)
  return dict(mixture.counts)


def train_cycle(trainer: ml_collections.ConfigDict, setup, params,
                real: Sequence[Example], dreams: Sequence[Example], *, seed: int,
                dream_weight: float, probe_fn: Callable, run_dir: str,
                guard_anchor: float | None = None):
  """Runs one cycle's training; returns (new params, statistics). `guard_anchor`: the
  score the trainer's guard measures drops from besides its own best (`QualityGuard`)."""
  real_source = setup.domain.real_source
  sources = {real_source: list(real)}
  if dreams:
    sources[DREAM] = list(dreams)
  config = cycle_config(trainer, seed, bool(dreams), dream_weight, real_source)
  with config.unlocked():
    config.seed = int(seed)
    config.guard.anchor = None if guard_anchor is None else float(guard_anchor)
  result = train_loop(config, sources, graphdef=setup.graphdef, params=params,
                      model_config=setup.model_config, probe_fn=probe_fn, run_dir=run_dir,
                      adapter=setup.adapter)
  lines = metrics_log.read(os.path.join(run_dir, "metrics.jsonl"))
  steps = [x for x in lines if x["type"] == "train"]
  guard = [x for x in lines if x["type"] == "guard"]
  losses = [float(x["loss"]) for x in steps]
  counts = _draw_counts(config, sources, len(steps), int(config.train.batch_size))
  stats = {
      "steps": len(steps), "loss_first": losses[0] if losses else None,
      "loss_last": losses[-1] if losses else None,
      "loss_mean": float(np.mean(losses)) if losses else None,
      "tokens": int(sum(x["tokens"] for x in steps)),
      "decision_tokens": float(sum(x["weight"] for x in steps)),
      "skipped": int(result.summary["num_skipped"]),
      "drift_all": steps[-1].get("drift/all") if steps else None,
      "examples_real": int(counts.get(real_source, 0)), "examples_dream": int(counts.get(DREAM, 0)),
      "guard": [{k: g.get(k) for k in ("step", "event", "score", "best_score", "anchor",
                                       "drop")} for g in guard],
      "rollbacks": int(result.summary["num_rollbacks"]),
      "stopped_by_guard": bool(result.summary["stopped_by_guard"]),
  }
  return result.merged()[1], stats  # LoRA adapters, where configured, merged
