"""KL to base and linear CKA against float64 references; the model wrappers on a tiny decoder."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from msr_jax.eval import similarity
from msr_jax.model import Decoder, ModelConfig, forward


def reference_token_kl(base_BxTxV, cur_BxTxV):
  def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))
  lp, lq = log_softmax(base_BxTxV.astype(np.float64)), log_softmax(cur_BxTxV.astype(np.float64))
  return np.sum(np.exp(lp) * (lp - lq), -1)


def logits(seed, shape=(2, 5, 11), scale=3.0):
  return (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)


def test_token_kl_matches_reference_and_is_zero_for_same_distribution():
  base, cur = logits(0), logits(1)
  np.testing.assert_allclose(np.asarray(similarity.token_kl(base, cur)),
                             reference_token_kl(base, cur), rtol=1e-5, atol=1e-6)
  shifted = base + np.arange(5, dtype=np.float32)[None, :, None]  # softmax-invariant
  np.testing.assert_allclose(np.asarray(similarity.token_kl(base, shifted)), 0.0, atol=1e-5)


def test_kl_to_base_averages_only_masked_tokens():
  base, cur = logits(2), logits(3)
  mask = np.array([[1, 1, 0, 0, 0], [0, 1, 1, 1, 0]], bool)
  cur_garbage = cur.copy()
  cur_garbage[~mask] = np.nan  # padding must not leak into the mean
  expected = reference_token_kl(base, cur)[mask].mean()
  np.testing.assert_allclose(float(similarity.kl_to_base(base, cur_garbage, mask)),
                             expected, rtol=1e-5)
  per_row = similarity.kl_to_base_per_row(base, cur, mask)
  ref = reference_token_kl(base, cur)
  np.testing.assert_allclose(np.asarray(per_row),
                             [ref[0, :2].mean(), ref[1, 1:4].mean()], rtol=1e-5)


def test_kl_to_base_is_stable_for_large_and_infinite_logits():
  base, cur = 1e4 * logits(4), 1e4 * logits(5)
  kl = float(similarity.kl_to_base(base, cur, np.ones((2, 5))))
  assert np.isfinite(kl)
  np.testing.assert_allclose(kl, reference_token_kl(base, cur).mean(), rtol=1e-5)
  base_inf, cur = logits(6), logits(7)
  base_inf[..., :3] = -np.inf  # base puts no mass there: those terms are 0, not NaN
  lp = base_inf[..., 3:] - np.log(np.exp(base_inf[..., 3:].astype(np.float64)).sum(-1,
                                                                              keepdims=True))
  lq = cur - np.log(np.exp(cur.astype(np.float64)).sum(-1, keepdims=True))
  expected = np.sum(np.exp(lp) * (lp - lq[..., 3:]), -1).mean()
  np.testing.assert_allclose(float(similarity.kl_to_base(base_inf, cur, np.ones((2, 5)))),
                             expected, rtol=1e-5)


def test_kl_to_base_empty_mask_and_bad_shapes():
  assert np.isnan(float(similarity.kl_to_base(logits(0), logits(1), np.zeros((2, 5)))))
  with pytest.raises(ValueError, match="mask_BxT has shape"):
    similarity.kl_to_base(logits(0), logits(1), np.ones((2, 4)))
  with pytest.raises(ValueError, match="of one shape"):
    similarity.kl_to_base(logits(0), logits(1, (2, 5, 12)), np.ones((2, 5)))


def reference_cka(x, y):
  """Kornblith et al. eq. via HSIC with the centring matrix H, float64."""
  n = x.shape[0]
  h = np.eye(n) - np.ones((n, n)) / n
  k, l = x @ x.T, y @ y.T
  hsic = lambda a, b: np.trace(a @ h @ b @ h)
  return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


@pytest.mark.parametrize("n", [6, 40])  # N < D uses Gram matrices, N > D features
def test_linear_cka_matches_hsic_reference(n):
  rng = np.random.default_rng(n)
  x = rng.normal(size=(n, 12))
  y = x[:, :8] @ rng.normal(size=(8, 9)) + 0.5 * rng.normal(size=(n, 9))
  np.testing.assert_allclose(float(similarity.linear_cka(x.astype(np.float32),
                                                         y.astype(np.float32))),
                             reference_cka(x, y), rtol=1e-5)


def test_linear_cka_invariances():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(30, 10)).astype(np.float32)
  y = (x @ rng.normal(size=(10, 10)) + rng.normal(size=(30, 10))).astype(np.float32)
  q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
  base = float(similarity.linear_cka(x, y))
  assert 0.0 < base < 1.0
  np.testing.assert_allclose(float(similarity.linear_cka(x, x)), 1.0, rtol=1e-6)
  np.testing.assert_allclose(float(similarity.linear_cka((x @ q).astype(np.float32) * 7.5, y)),
                             base, rtol=1e-5)
  np.testing.assert_allclose(float(similarity.linear_cka(x, y + 100.0)), base, rtol=1e-5)
  # A non-orthogonal map does change it: the invariance test above can fail.
  stretch = np.diag(np.geomspace(0.01, 10.0, 10)).astype(np.float32)
  assert abs(float(similarity.linear_cka(x @ stretch, y)) - base) > 1e-2


def test_linear_cka_mask_equals_row_subset():
  rng = np.random.default_rng(1)
  x, y = rng.normal(size=(20, 5)), rng.normal(size=(20, 7))
  mask = rng.random(20) < 0.5
  x_pad, y_pad = x.copy(), y.copy()
  x_pad[~mask] = 1e6  # masked-out rows must not matter
  np.testing.assert_allclose(
      float(similarity.linear_cka(x_pad.astype(np.float32), y_pad.astype(np.float32), mask)),
      reference_cka(x[mask], y[mask]), rtol=1e-5)
  with pytest.raises(ValueError, match="same number of rows"):
    similarity.linear_cka(x[:5], y)


@pytest.fixture(scope="module")
def tiny_model():
  config = ModelConfig.preset("townworld_tiny", vocab_size=64).replace(
      hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, num_kv_heads=2,
      head_dim=16)
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(0)), nnx.Param)
  perturb = jax.jit(lambda ps: jax.tree.map(
      lambda p: p + 0.3 * jax.random.normal(jax.random.key(1), p.shape, p.dtype), ps))
  moved = perturb(params)
  tokens = jax.random.randint(jax.random.key(2), (2, 9), 0, 64)
  mask = np.zeros((2, 9), bool)
  mask[0, :6] = mask[1, :4] = True
  return config, graphdef, params, moved, tokens, mask


def test_hidden_states_shape_and_model_kl(tiny_model):
  config, graphdef, params, moved, tokens, mask = tiny_model
  hidden = similarity.hidden_states(graphdef, params, tokens)
  assert hidden.shape == (config.num_layers, 2, 9, config.hidden_size)
  assert float(similarity.model_kl_to_base(graphdef, params, params, tokens, mask)) == 0.0
  kl = float(similarity.model_kl_to_base(graphdef, params, moved, tokens, mask))
  fwd = jax.jit(forward, static_argnums=0)
  expected = similarity.kl_to_base(fwd(graphdef, params, tokens)[0],
                                   fwd(graphdef, moved, tokens)[0], mask)
  assert kl > 0
  np.testing.assert_allclose(kl, float(expected), rtol=1e-5)


def test_hidden_state_cka_per_layer(tiny_model):
  config, graphdef, params, moved, tokens, mask = tiny_model
  same = similarity.hidden_state_cka(graphdef, params, params, tokens, mask)
  np.testing.assert_allclose(np.asarray(same), np.ones(config.num_layers), rtol=1e-5)
  cka_L = np.asarray(similarity.hidden_state_cka(graphdef, params, moved, tokens, mask))
  base_h = np.asarray(similarity.hidden_states(graphdef, params, tokens), np.float64)
  now_h = np.asarray(similarity.hidden_states(graphdef, moved, tokens), np.float64)
  expected = [reference_cka(base_h[l][mask], now_h[l][mask]) for l in range(config.num_layers)]
  assert np.all(cka_L < 0.999)
  np.testing.assert_allclose(cka_L, expected, rtol=1e-4)
