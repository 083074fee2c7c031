"""Stability probes for the quality guard: `probe_fn(params) -> score` (higher is better).

`config.guard.probe` chooses the default: "retention" (a run from a checkpoint whose own
tokenizer has a chat template, under "auto"): the real-model probes' retention score
(`msr_jax.eval.real_probes`: closed-book facts and context recall), never the training
data; "heldout_loss" (under "auto" every other run: a random init, the testbed's word
tokenizer): the negative loss on a fixed held-out set of examples, padded once into
bucketed batches and evaluated with one jitted function per bucket shape. Townworld probes
(accuracy on retain people, notes, ...) plug in as any callable.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import numpy as np

from msr_jax.data.batch import iterate_batches
from msr_jax.data.segmentation import Example
from msr_jax.model.config import ModelConfig
from msr_jax.train.objectives import context_frozen_loss_sums


def heldout_loss_probe(graphdef, model_config: ModelConfig, examples: Sequence[Example],
                       batch_size: int, context_buckets: Sequence[int],
                       decision_buckets: Sequence[int], pad_id: int) -> Callable:
  """-(weighted mean decision loss) over `examples`; the same value in either mode."""
  if not examples:
    raise ValueError("heldout_loss_probe: no held-out examples")
  batches = list(iterate_batches(
      examples, batch_size, context_buckets, decision_buckets, pad_id))

  @jax.jit
  def sums(params, batch):
    return context_frozen_loss_sums(graphdef, params, batch, model_config)

  def probe(params) -> float:
    total, weight = 0.0, 0.0
    for batch in batches:
      t, w = jax.device_get(sums(params, batch))
      total, weight = total + float(t), weight + float(w)
    return -total / max(weight, np.finfo(np.float32).tiny)

  return probe


PROBES = ("auto", "retention", "heldout_loss")


def retention_probe(graphdef, tokenizer, pad_id: int) -> Callable:
  """The real-model probes' retention score (facts and context accuracy)."""
  from msr_jax.eval import real_probes
  probes = real_probes.build(tokenizer, pad_id=pad_id)
  return lambda params: real_probes.retention_score(
      real_probes.score(graphdef, params, probes, pad_id))
