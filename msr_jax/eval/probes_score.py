"""Scoring probe items with the model API: batched, jitted, teacher-forced.

Items are grouped into length buckets (multiples of `BUCKET`) and fixed-size batches, so a
full evaluation compiles a handful of shapes. For each item the jitted function returns the
answer span's summed log-probability and whether every answer token is the argmax (exact
match). Generic: a domain builds the items and summarizes the scores (Townworld's probes
and their summary are `msr_jax.world.probes`).
"""

from __future__ import annotations

import collections
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from msr_jax.model import forward

BUCKET = 32
BATCH_SIZE = 64


@dataclasses.dataclass(frozen=True)
class ProbeItem:
  """A token sequence and its answer span `tokens[start:end]`, scored teacher-forced."""
  probe: str
  tokens: np.ndarray  # int32[T]
  start: int  # answer span tokens[start:end]; predicted from positions start-1 .. end-2
  end: int
  twin: int = -1  # an index of another item this one is compared with (-1: none)
  # The group this item is not independent of (a grid cell, a template, a person): the
  # unit a generalisation claim resamples ("": the item stands alone).
  cluster: str = ""


@functools.partial(jax.jit, static_argnums=0)
def _score_batch(graphdef, params, tokens_BxT, target_mask_BxT):
  """Per row: (sum of answer log-probs, all answer tokens argmax).

  `target_mask_BxT[:, t]` is 1 where `tokens_BxT[:, t + 1]` is an answer token.
  """
  logits_BxTxV, _ = forward(graphdef, params, tokens_BxT)
  logp_BxTxV = jax.nn.log_softmax(logits_BxTxV[:, :-1].astype(jnp.float32), axis=-1)
  targets_BxT = tokens_BxT[:, 1:]
  mask_BxT = target_mask_BxT[:, :-1]
  logp_BxT = jnp.take_along_axis(logp_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]
  hit_BxT = jnp.argmax(logp_BxTxV, axis=-1) == targets_BxT
  logprob_B = jnp.sum(jnp.where(mask_BxT, logp_BxT, 0.0), axis=-1)
  exact_B = jnp.all(jnp.where(mask_BxT, hit_BxT, True), axis=-1)
  return logprob_B, exact_B


def score_items(graphdef, params, items: list[ProbeItem], pad_id: int = 0,
                batch_size: int = BATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
  """(log-probability float64[N], exact match bool[N]) of every item, in item order."""
  logprob = np.zeros(len(items))
  exact = np.zeros(len(items), dtype=bool)
  by_bucket = collections.defaultdict(list)
  for i, item in enumerate(items):
    by_bucket[-(-len(item.tokens) // BUCKET) * BUCKET].append(i)
  for length, indices in sorted(by_bucket.items()):
    for b in range(0, len(indices), batch_size):
      chunk = indices[b:b + batch_size]
      tokens_BxT = np.full((batch_size, length), pad_id, dtype=np.int32)
      mask_BxT = np.zeros((batch_size, length), dtype=bool)
      for row, i in enumerate(chunk):
        item = items[i]
        tokens_BxT[row, :len(item.tokens)] = item.tokens
        mask_BxT[row, item.start - 1:item.end - 1] = True
      lp_B, ex_B = jax.device_get(_score_batch(graphdef, params, tokens_BxT, mask_BxT))
      logprob[chunk] = lp_B[:len(chunk)]
      exact[chunk] = ex_B[:len(chunk)]
  return logprob, exact
