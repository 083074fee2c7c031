"""One cycle's training: real and dream examples mixed, context-frozen steps.

The pieces are the trainer's: `train.setup.examples_from_records` (tokenize + segment),
`train.data_stream.BatchStream` over `data.mixture` (the mixture of the "townworld" real
source and the "dream" source), `train.step.make_train_step` in context-frozen mode with
its non-finite skipping and drift metrics, and an optimizer from `optim.make_optimizer`.
Every cycle runs the same number of steps with the same batch size whatever the mode, so
the arms of P4 train on equal steps and (up to example lengths) equal tokens; the dream
share of the mixture is `dream_weight` when the cycle has dreams, 0 otherwise.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import jax
import ml_collections
import numpy as np

from msr_jax import optim
from msr_jax.data.config import get_data_config
from msr_jax.data.records import Record
from msr_jax.data.segmentation import Example
from msr_jax.train.data_stream import BatchStream
from msr_jax.train.setup import examples_from_records
from msr_jax.train.state import TrainState, init_state
from msr_jax.train.step import jit_train_step, make_train_step

REAL, DREAM = "townworld", "dream"


@dataclasses.dataclass
class Trainer:
  state: TrainState
  step_fn: object  # jitted (state, batch) -> (state, metrics)


def data_config(train: ml_collections.ConfigDict, seed: int,
                has_dreams: bool) -> ml_collections.ConfigDict:
  """A config whose `data` section is the cycle's mixture (see module doc)."""
  data = get_data_config()
  data.seed = seed
  data.max_context_tokens = int(train.max_context_tokens)
  data.context_buckets = tuple(train.context_buckets)
  data.decision_buckets = tuple(train.decision_buckets)
  w = float(train.dream_weight)
  if has_dreams and 0 < w < 1:
    data.mixture = "diverse"
    data.weights = ml_collections.ConfigDict({REAL: 1.0 - w, DREAM: w})
  elif has_dreams and w == 1:
    data.mixture, data.narrow_source = "narrow", DREAM
  else:
    data.mixture, data.narrow_source = "narrow", REAL
  return ml_collections.ConfigDict({"data": data})


def make_trainer(train: ml_collections.ConfigDict, graphdef, model_config,
                 base_params, seed: int) -> Trainer:
  tx = optim.make_optimizer(train.optimizer)
  state = init_state(base_params, tx, seed=seed)
  step = make_train_step(graphdef, model_config, tx, mode=train.mode, monitor_drift=True)
  jitted, state = jit_train_step(step, state, donate=False)
  return Trainer(state=state, step_fn=jitted)


def examples(records: Sequence[Record], adapter,
             train: ml_collections.ConfigDict) -> Mapping[str, list[Example]]:
  config = data_config(train, 0, False).data
  return examples_from_records(records, adapter, config)


def train_cycle(trainer: Trainer, train: ml_collections.ConfigDict,
                real: Sequence[Example], dreams: Sequence[Example], seed: int,
                pad_id: int) -> dict:
  """Runs `train.steps_per_cycle` steps; returns the cycle's training statistics."""
  sources = {REAL: list(real)}
  if dreams:
    sources[DREAM] = list(dreams)
  config = data_config(train, seed, bool(dreams))
  stream = BatchStream(config, sources, int(train.batch_size), 1, pad_id)
  losses, tokens, decision_tokens, skipped, drift = [], 0, 0.0, 0, None
  for _ in range(int(train.steps_per_cycle)):
    batch = stream.next_batch()
    tokens += batch.num_tokens
    decision_tokens += float(np.sum(batch.weights_BxD))
    trainer.state, metrics = trainer.step_fn(trainer.state, batch)
    metrics = jax.device_get(metrics)
    losses.append(float(metrics["loss"]))
    skipped += int(metrics["skipped"])
    drift = float(metrics.get("drift/all", np.nan))
  counts = stream.mixture.counts
  return {"steps": int(train.steps_per_cycle), "loss_first": losses[0],
          "loss_last": losses[-1], "loss_mean": float(np.mean(losses)),
          "tokens": tokens, "decision_tokens": decision_tokens, "skipped": skipped,
          "drift_all": drift, "examples_real": int(counts.get(REAL, 0)),
          "examples_dream": int(counts.get(DREAM, 0))}
