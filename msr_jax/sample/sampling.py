"""Choosing the next token from logits: greedy, temperature, top-k and top-p.

Every knob is a traced value, so one compiled program serves every setting:

- `temperature == 0` is greedy (argmax); the chosen token's log-probability under the
  sampling distribution is then 0 (a point mass).
- `top_k <= 0` disables top-k; otherwise only the k highest logits survive (ties with the
  k-th survive too).
- `top_p >= 1` disables nucleus filtering; otherwise the smallest set of highest-probability
  tokens whose mass reaches `top_p` survives (the most likely token always does).

Both filters need the vocabulary sorted, which costs more than the rest of a small model's
decode step, so `lax.cond` skips the sort when they are off and skips sampling entirely
when decoding greedily (on CPU and GPU a `cond` runs only the branch taken).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Choice(NamedTuple):
  tokens_B: jnp.ndarray         # int32
  logprobs_B: jnp.ndarray       # log-prob under the sampling distribution actually used
  raw_logprobs_B: jnp.ndarray   # log-prob under the model (softmax of the raw logits)


def filter_logits(logits_BxV: jnp.ndarray, top_k: jnp.ndarray,
                  top_p: jnp.ndarray) -> jnp.ndarray:
  """Sets the logits that top-k and then top-p reject to -inf (one sort for both)."""
  vocab = logits_BxV.shape[-1]
  sorted_BxV = -jnp.sort(-logits_BxV, axis=-1)  # Descending.
  rank_V = jnp.arange(vocab)
  k = jnp.where(top_k > 0, jnp.minimum(top_k, vocab), vocab)
  sorted_BxV = jnp.where(rank_V < k, sorted_BxV, -jnp.inf)
  probs_BxV = jax.nn.softmax(sorted_BxV, axis=-1)
  # Mass strictly before each rank: a token survives while that mass is below top_p, so
  # the top token always survives and the set stops at the first rank reaching top_p.
  mass_before_BxV = jnp.cumsum(probs_BxV, axis=-1) - probs_BxV
  keep_BxV = (mass_before_BxV < top_p) & (rank_V < k)
  # The smallest surviving logit is the threshold; ties with it survive as well.
  threshold_B = jnp.min(jnp.where(keep_BxV, sorted_BxV, jnp.inf), axis=-1)
  return jnp.where(logits_BxV >= threshold_B[:, None], logits_BxV, -jnp.inf)


def _take(values_BxV: jnp.ndarray, tokens_B: jnp.ndarray) -> jnp.ndarray:
  return jnp.take_along_axis(values_BxV, tokens_B[:, None], axis=-1)[:, 0]


def choose(logits_BxV: jnp.ndarray, key: jax.Array, temperature: jnp.ndarray,
           top_k: jnp.ndarray, top_p: jnp.ndarray) -> Choice:
  """Picks one token per row. `temperature`, `top_k`, `top_p` are scalars (traceable)."""
  logits_BxV = logits_BxV.astype(jnp.float32)
  temperature = jnp.asarray(temperature, jnp.float32)
  top_k = jnp.asarray(top_k, jnp.int32)
  top_p = jnp.asarray(top_p, jnp.float32)

  def greedy(_):
    tokens_B = jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
    return tokens_B, jnp.zeros(tokens_B.shape, jnp.float32)

  def sample(_):
    scaled_BxV = logits_BxV / temperature
    scaled_BxV = jax.lax.cond((top_k > 0) | (top_p < 1.0),
                              lambda x: filter_logits(x, top_k, top_p),
                              lambda x: x, scaled_BxV)
    tokens_B = jax.random.categorical(key, scaled_BxV, axis=-1).astype(jnp.int32)
    return tokens_B, _take(jax.nn.log_softmax(scaled_BxV, axis=-1), tokens_B)

  tokens_B, logprobs_B = jax.lax.cond(temperature > 0, sample, greedy, None)
  raw_logprobs_B = _take(jax.nn.log_softmax(logits_BxV, axis=-1), tokens_B)
  return Choice(tokens_B, logprobs_B, raw_logprobs_B)
