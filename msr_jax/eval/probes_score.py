"""Scoring probe items with the model API: batched, jitted, teacher-forced.

Items are grouped into length buckets (multiples of `BUCKET`) and fixed-size batches, so a
full evaluation compiles a handful of shapes. For each item the jitted function returns the
answer span's summed log-probability, its token count and whether every answer token is
the argmax (exact match). Summaries per probe: accuracy (exact match), mean log-probability
and, for K4, cross-entropy per token; C2 adds the memorization ratio from its twins.
"""

from __future__ import annotations

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np

from msr_jax.eval.probes import ProbeItem
from msr_jax.model import forward

BUCKET = 32
BATCH_SIZE = 64


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


def summarize(items: list[ProbeItem], logprob: np.ndarray, exact: np.ndarray) -> dict:
  """{probe: {"acc", "logprob", "n", ...}}, plus aggregates C1_trained, C1_long, N4."""
  out: dict[str, dict] = {}
  groups = collections.defaultdict(list)
  for i, item in enumerate(items):
    groups[item.probe].append(i)
  for probe, idx in groups.items():
    if probe == "C2_stored":
      continue
    entry = {"acc": float(exact[idx].mean()), "logprob": float(logprob[idx].mean()),
             "n": len(idx)}
    if probe == "K4":
      num_tokens = sum(items[i].end - items[i].start for i in idx)
      entry = {"ce": float(-logprob[idx].sum() / num_tokens), "n": len(idx)}
    if probe == "C2":
      p_note = np.exp(logprob[idx])
      p_stored = np.exp(logprob[[items[i].twin for i in idx]])
      entry["memorization_ratio"] = float(np.mean(p_stored / (p_stored + p_note)))
    out[probe] = entry
  return out


def add_aggregates(summary: dict, trained_note_facts: tuple[int, int]) -> dict:
  """Means over C1 lengths inside / beyond the trained range and over the N4 curve."""
  low, high = trained_note_facts
  c1 = {int(k.split("_")[1]): v["acc"] for k, v in summary.items() if k.startswith("C1_")}
  trained = [a for k, a in c1.items() if low <= k <= high]
  longer = [a for k, a in c1.items() if k > high]
  n4 = [v["acc"] for k, v in summary.items() if k.startswith("N4_")]
  if trained:
    summary["C1_trained"] = {"acc": float(np.mean(trained))}
  if longer:
    summary["C1_long"] = {"acc": float(np.mean(longer))}
  if n4:
    summary["N4"] = {"acc": float(np.mean(n4))}
  return summary
