from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from msr_jax.train.losses import masked_cross_entropy, token_nll, weighted_nll_sums


def test_token_nll_matches_log_softmax():
  logits = jax.random.normal(jax.random.key(0), (2, 3, 7))
  targets = jnp.array([[0, 6, 3], [1, 1, 2]])
  expected = -np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)),
                                 np.asarray(targets)[..., None], -1)[..., 0]
  np.testing.assert_allclose(token_nll(logits, targets), expected, rtol=1e-6)


def test_masked_cross_entropy_is_weighted_mean_and_ignores_masked_values():
  logits = jax.random.normal(jax.random.key(1), (1, 4, 5))
  logits = logits.at[0, 3].set(jnp.nan)  # A masked position: must not reach the value.
  targets = jnp.array([[1, 2, 3, 4]])
  weights = jnp.array([[1.0, 2.0, 0.0, 0.0]])
  nll = np.asarray(token_nll(logits, targets))[0]
  expected = (nll[0] + 2 * nll[1]) / 3
  np.testing.assert_allclose(masked_cross_entropy(logits, targets, weights), expected,
                             rtol=1e-6)
  total, weight = weighted_nll_sums(logits, targets, weights)
  assert float(weight) == 3.0
  np.testing.assert_allclose(total, nll[0] + 2 * nll[1], rtol=1e-6)


def test_masked_cross_entropy_is_float32_from_bfloat16_and_zero_without_weights():
  logits = jax.random.normal(jax.random.key(2), (1, 2, 5)).astype(jnp.bfloat16)
  loss = masked_cross_entropy(logits, jnp.zeros((1, 2), jnp.int32), jnp.zeros((1, 2)))
  assert loss.dtype == jnp.float32 and float(loss) == 0.0


def test_nonfinite_weight_is_not_masked():
  logits = jnp.zeros((1, 2, 3))
  loss = masked_cross_entropy(logits, jnp.zeros((1, 2), jnp.int32), jnp.array([[1.0, jnp.nan]]))
  assert not np.isfinite(float(loss))
