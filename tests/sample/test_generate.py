"""generate(): cached decode against the uncached model, batching, keys, filters, EOS."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from msr_jax.model import Decoder, ModelConfig, forward
from msr_jax.sample import generate
from msr_jax.sample.generation import TRACE_COUNTS

VOCAB = 96
NEW = 6
BUCKETS = (8, 16)
# Ragged on purpose: different lengths, one in each bucket when alone.
PROMPTS = [[5, 17, 33], [9, 2, 71, 40, 40, 12, 88], [60, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]
WIDTH = 32  # The uncached reference runs at one width (one compilation); right padding is
            # harmless to a causal forward.
_full_forward = jax.jit(forward, static_argnums=0)


def _reference_logits(model, sequence):
  """Logits of the uncached model at every position of one sequence, T x V."""
  graphdef, params = model
  padded = np.zeros((1, WIDTH), np.int32)
  padded[0, :len(sequence)] = sequence
  logits, _ = _full_forward(graphdef, params, jnp.asarray(padded))
  return logits[0, :len(sequence)]


@pytest.fixture(scope="module")
def model():
  config = ModelConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_layers=2,
                       num_heads=4, num_kv_heads=2, rope_theta=10000.0)
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(0)), nnx.Param)
  # The 0.02 init makes a random model's logits almost flat; widen them so that greedy
  # choices are decided by clear margins, not by float rounding.
  params = jax.tree.map(lambda x: x * 8.0 if x.ndim == 2 else x, params)
  return graphdef, params


def _greedy(model, prompts, **kw):
  graphdef, params = model
  return generate(graphdef, params, prompts, NEW, temperature=0.0, prompt_buckets=BUCKETS,
                  **kw)


def test_greedy_equals_repeated_argmax_of_full_forward(model):
  out = _greedy(model, PROMPTS)
  for b, prompt in enumerate(PROMPTS):
    sequence = list(prompt)
    for _ in range(NEW):
      sequence.append(int(jnp.argmax(_reference_logits(model, sequence)[-1])))
    np.testing.assert_array_equal(np.asarray(out.tokens_BxN[b]), sequence[len(prompt):])
  np.testing.assert_array_equal(out.lengths_B, [NEW] * len(PROMPTS))
  np.testing.assert_array_equal(out.logprobs_BxN, 0.0)  # Greedy is a point mass.


def test_attention_windows_double_up_to_the_capacity():
  from msr_jax.sample.generation import attention_windows
  assert attention_windows(160) == (64, 128, 160)
  assert attention_windows(64) == (64,)
  assert attention_windows(22, first=4) == (4, 8, 16, 22)


def test_windowed_decode_equals_full_forward(model, monkeypatch):
  """With 4-slot windows a 12-token decode crosses every window (4, 8, 16, 28): rows of
  different lengths change windows at the same step, and must still see all their slots."""
  from msr_jax.sample import generation
  monkeypatch.setattr(generation, "FIRST_WINDOW", 4)
  graphdef, params = model
  new = 12  # A shape no other test compiles, so this trace sees the small windows.
  out = generate(graphdef, params, PROMPTS, new, temperature=0.0, prompt_buckets=BUCKETS)
  for b, prompt in enumerate(PROMPTS):
    sequence = list(prompt)
    for _ in range(new):
      logits_TxV = _reference_logits(model, sequence)
      sequence.append(int(jnp.argmax(logits_TxV[-1])))
    np.testing.assert_array_equal(np.asarray(out.tokens_BxN[b]), sequence[len(prompt):])
    logprobs_TxV = np.asarray(jax.nn.log_softmax(_reference_logits(model, sequence), axis=-1))
    expected = [logprobs_TxV[len(prompt) - 1 + t, sequence[len(prompt) + t]] for t in range(new)]
    np.testing.assert_allclose(out.raw_logprobs_BxN[b], expected, rtol=1e-5, atol=1e-5)


def test_raw_logprobs_are_the_models_log_softmax(model):
  out = _greedy(model, PROMPTS[:1])
  sequence = PROMPTS[0] + np.asarray(out.tokens_BxN[0]).tolist()
  logprobs_TxV = np.asarray(jax.nn.log_softmax(_reference_logits(model, sequence), axis=-1))
  start = len(PROMPTS[0])
  expected = [logprobs_TxV[start - 1 + t, sequence[start + t]] for t in range(NEW)]
  np.testing.assert_allclose(out.raw_logprobs_BxN[0], expected, rtol=1e-5, atol=1e-5)


def test_batch_equals_each_prompt_alone(model):
  batch = _greedy(model, PROMPTS)
  for b, prompt in enumerate(PROMPTS):
    alone = _greedy(model, [prompt])
    np.testing.assert_array_equal(batch.tokens_BxN[b], alone.tokens_BxN[0])
    np.testing.assert_allclose(batch.raw_logprobs_BxN[b], alone.raw_logprobs_BxN[0],
                               rtol=1e-5, atol=1e-5)


def test_padded_array_with_lengths_equals_lists(model):
  array = np.full((len(PROMPTS), 12), 3, np.int32)
  for b, prompt in enumerate(PROMPTS):
    array[b, :len(prompt)] = prompt
  from_array = _greedy(model, array, prompt_lengths=[len(p) for p in PROMPTS])
  np.testing.assert_array_equal(from_array.tokens_BxN, _greedy(model, PROMPTS).tokens_BxN)


def _sample(model, key, temperature=1.0, top_k=0, top_p=1.0):
  graphdef, params = model
  return generate(graphdef, params, PROMPTS, NEW, temperature, top_k, top_p, (), key,
                  prompt_buckets=BUCKETS)


def test_same_key_same_samples_different_key_different(model):
  first = _sample(model, jax.random.key(1))
  again = _sample(model, jax.random.key(1))
  other = _sample(model, jax.random.key(2))
  np.testing.assert_array_equal(first.tokens_BxN, again.tokens_BxN)
  np.testing.assert_array_equal(first.logprobs_BxN, again.logprobs_BxN)
  assert np.any(np.asarray(first.tokens_BxN) != np.asarray(other.tokens_BxN))
  # Unfiltered at temperature 1 the sampling distribution is the model's own.
  np.testing.assert_allclose(first.logprobs_BxN, first.raw_logprobs_BxN, rtol=1e-5, atol=1e-5)


def test_top_k_one_equals_greedy(model):
  sampled = _sample(model, jax.random.key(3), temperature=1.5, top_k=1)
  greedy = _greedy(model, PROMPTS)
  np.testing.assert_array_equal(sampled.tokens_BxN, greedy.tokens_BxN)
  np.testing.assert_allclose(sampled.logprobs_BxN, 0.0, atol=1e-6)  # A single survivor.


def test_tiny_top_p_equals_greedy(model):
  sampled = _sample(model, jax.random.key(4), temperature=1.0, top_p=1e-4)
  np.testing.assert_array_equal(sampled.tokens_BxN, _greedy(model, PROMPTS).tokens_BxN)


def test_eos_stops_each_row_at_its_own_eos(model):
  free = np.asarray(_greedy(model, PROMPTS).tokens_BxN)
  eos = int(free[0, 2])  # Row 0 emits it at step 2 at the latest.
  out = _greedy(model, PROMPTS, eos_ids=(eos,), pad_id=0)
  tokens, lengths = np.asarray(out.tokens_BxN), np.asarray(out.lengths_B)
  for b in range(len(PROMPTS)):
    hits = np.flatnonzero(free[b] == eos)
    expected = int(hits[0]) + 1 if hits.size else NEW
    assert lengths[b] == expected
    np.testing.assert_array_equal(tokens[b, :expected], free[b, :expected])
    np.testing.assert_array_equal(tokens[b, expected:], 0)
    np.testing.assert_array_equal(np.asarray(out.raw_logprobs_BxN)[b, expected:], 0.0)
  assert lengths[0] <= 3
  assert int(out.num_steps) == lengths.max()


def test_loop_ends_when_every_row_has_stopped(model):
  free = np.asarray(_greedy(model, PROMPTS).tokens_BxN)
  out = _greedy(model, PROMPTS, eos_ids=[int(t) for t in free[:, 0]])  # All stop at once.
  np.testing.assert_array_equal(out.lengths_B, 1)
  assert int(out.num_steps) == 1
  np.testing.assert_array_equal(np.asarray(out.tokens_BxN)[:, 1:], 0)


def test_changing_sampling_knobs_does_not_recompile(model):
  _sample(model, jax.random.key(0), temperature=0.7, top_k=5, top_p=0.9)
  before = dict(TRACE_COUNTS)
  _sample(model, jax.random.key(1), temperature=0.0, top_k=0, top_p=1.0)
  _sample(model, jax.random.key(2), temperature=2, top_k=40, top_p=0.5)
  graphdef, params = model
  generate(graphdef, params, PROMPTS, NEW, 1.0, 3, 1.0, (7, 8, 9), jax.random.key(3),
           pad_id=5, prompt_buckets=BUCKETS)
  assert dict(TRACE_COUNTS) == before


def test_bad_input_is_rejected_with_a_clear_error(model):
  graphdef, params = model
  with pytest.raises(ValueError, match=r"prompts\[1\]\[2\] = 96"):
    generate(graphdef, params, [[1], [1, 2, 96]], 2)
  with pytest.raises(ValueError, match=r"prompts\[0\] is empty"):
    generate(graphdef, params, [[]], 2)
  with pytest.raises(ValueError, match="PRNG key"):
    generate(graphdef, params, [[1]], 2, temperature=0.5)
  with pytest.raises(ValueError, match="top_p"):
    generate(graphdef, params, [[1]], 2, top_p=0.0)
  with pytest.raises(ValueError, match="max_new_tokens"):
    generate(graphdef, params, [[1]], 0)
