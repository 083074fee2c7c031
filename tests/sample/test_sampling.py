"""choose() and filter_logits(): the filters keep the right sets, samples follow the law."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msr_jax.sample import bucket_length, choose, filter_logits, pad_prompts
from msr_jax.sample.prompts import pad_eos_ids

LOGITS_V = jnp.log(jnp.array([0.05, 0.4, 0.1, 0.3, 0.15]))  # Ranks: 1, 3, 4, 2, 0.


def _kept(top_k, top_p):
  out = filter_logits(LOGITS_V[None], jnp.int32(top_k), jnp.float32(top_p))
  return set(np.flatnonzero(np.isfinite(np.asarray(out[0]))).tolist())


def test_top_k_keeps_the_k_largest():
  assert _kept(1, 1.0) == {1}
  assert _kept(3, 1.0) == {1, 3, 4}
  assert _kept(0, 1.0) == {0, 1, 2, 3, 4}  # 0 is off.
  assert _kept(99, 1.0) == {0, 1, 2, 3, 4}


def test_top_p_keeps_the_smallest_set_reaching_p():
  assert _kept(0, 0.4) == {1}          # 0.4 alone reaches 0.4.
  assert _kept(0, 0.41) == {1, 3}
  assert _kept(0, 0.85) == {1, 3, 4}   # 0.4 + 0.3 + 0.15 = 0.85.
  assert _kept(0, 0.86) == {1, 3, 4, 2}
  assert _kept(0, 1e-6) == {1}         # The top token always survives.


def test_top_p_applies_after_top_k():
  # Top-2 renormalises {0.4, 0.3} to {0.571, 0.429}: p=0.6 needs both.
  assert _kept(2, 0.6) == {1, 3}
  assert _kept(2, 0.5) == {1}


def _frequencies(temperature, top_k, top_p, n=20000):
  logits_NxV = jnp.broadcast_to(LOGITS_V, (n, LOGITS_V.shape[0]))
  choice = jax.jit(choose)(logits_NxV, jax.random.key(0), jnp.float32(temperature),
                           jnp.int32(top_k), jnp.float32(top_p))
  counts = np.bincount(np.asarray(choice.tokens_B), minlength=LOGITS_V.shape[0])
  return counts / n, choice


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.5, 0, 1.0),
                                                     (2.0, 3, 1.0), (1.0, 0, 0.85)])
def test_samples_follow_the_filtered_tempered_distribution(temperature, top_k, top_p):
  freq, choice = _frequencies(temperature, top_k, top_p)
  kept = sorted(_kept(top_k, top_p))
  expected = np.zeros(LOGITS_V.shape[0])
  expected[kept] = np.asarray(jax.nn.softmax(LOGITS_V[jnp.array(kept)] / temperature))
  # 5 standard errors of a binomial frequency with n = 20000.
  np.testing.assert_allclose(freq, expected, atol=5 * np.sqrt(0.25 / 20000))
  # Each sample's reported log-prob is its log-prob under that same distribution.
  np.testing.assert_allclose(np.exp(np.asarray(choice.logprobs_B)),
                             expected[np.asarray(choice.tokens_B)], rtol=1e-5)
  np.testing.assert_allclose(choice.raw_logprobs_B,
                             np.asarray(LOGITS_V)[np.asarray(choice.tokens_B)], rtol=1e-5)


def test_temperature_zero_is_argmax_with_zero_logprob():
  choice = choose(LOGITS_V[None], jax.random.key(0), 0.0, 0, 1.0)
  assert int(choice.tokens_B[0]) == 1
  assert float(choice.logprobs_B[0]) == 0.0
  np.testing.assert_allclose(choice.raw_logprobs_B[0], np.log(0.4), rtol=1e-6)


def test_bucket_length_rounds_up():
  assert bucket_length(1, (4, 8)) == 4
  assert bucket_length(5, (8, 4)) == 8
  assert bucket_length(9, (4, 8)) == 16   # Past the largest: a multiple of it.
  with pytest.raises(ValueError, match="prompt_buckets"):
    bucket_length(3, (0,))


def test_pad_prompts_right_pads_to_a_bucket():
  padded = pad_prompts([[3, 4], [5, 6, 7]], vocab_size=10, pad_id=9, buckets=(4,))
  np.testing.assert_array_equal(padded.tokens_BxP, [[3, 4, 9, 9], [5, 6, 7, 9]])
  np.testing.assert_array_equal(padded.lengths_B, [2, 3])
  with pytest.raises(ValueError, match="lengths: a length exceeds"):
    pad_prompts(np.zeros((2, 3), np.int32), 10, lengths=[1, 4])
  with pytest.raises(ValueError, match="pad_id 10"):
    pad_prompts([[1]], 10, pad_id=10)


def test_eos_ids_pad_to_a_fixed_size():
  assert pad_eos_ids(None).tolist() == [-1] * 8
  assert pad_eos_ids(2).tolist() == [2] + [-1] * 7
  assert pad_eos_ids(range(9)).shape == (16,)
