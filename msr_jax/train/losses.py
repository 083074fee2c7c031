"""Token-level losses, always in float32.

The training loss is a weighted mean over tokens: `sum(w * nll) / sum(w)`. Weights carry the
decision mask (0 on context, padding and non-decision tokens) and any per-record weight, so
one function serves fine-tuning (loss on decisions only) and pre-training (weights = 1 on
every real token). The sum and the weight total are also returned separately so gradient
accumulation can add them over micro-batches and divide once, which makes accumulation
exactly equal to one large batch (a mean of per-micro-batch means is not, when micro-batches
hold different numbers of decision tokens).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def token_nll(logits_BxTxV: jnp.ndarray, targets_BxT: jnp.ndarray) -> jnp.ndarray:
  """Negative log-likelihood of each target token, float32, shape BxT."""
  logits_BxTxV = logits_BxTxV.astype(jnp.float32)
  log_z_BxT = jax.nn.logsumexp(logits_BxTxV, axis=-1)
  target_logit_BxT = jnp.take_along_axis(
      logits_BxTxV, targets_BxT[..., None].astype(jnp.int32), axis=-1)[..., 0]
  return log_z_BxT - target_logit_BxT


def weighted_nll_sums(logits_BxTxV: jnp.ndarray, targets_BxT: jnp.ndarray,
                      weights_BxT: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(sum of weighted token losses, sum of weights), both float32 scalars.

  Tokens with weight 0 contribute exactly 0 to the value even when their logits are not
  finite (`where`, not a product). A non-finite *weight* is not masked: it is a bad
  batch, and the step must see it (and skip the update).
  """
  weights_BxT = weights_BxT.astype(jnp.float32)
  nll_BxT = token_nll(logits_BxTxV, targets_BxT)
  weighted_BxT = jnp.where(weights_BxT != 0, weights_BxT * nll_BxT, 0.0)
  return jnp.sum(weighted_BxT), jnp.sum(weights_BxT)


def masked_cross_entropy(logits_BxTxV: jnp.ndarray, targets_BxT: jnp.ndarray,
                         weights_BxT: jnp.ndarray) -> jnp.ndarray:
  """Weighted mean token cross-entropy: sum(w * nll) / sum(w) (0 when every weight is 0)."""
  total, weight = weighted_nll_sums(logits_BxTxV, targets_BxT, weights_BxT)
  return total / jnp.maximum(weight, jnp.finfo(jnp.float32).tiny)
