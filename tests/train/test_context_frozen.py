"""Context-frozen objective: equals the hand-built two-pass gradient, never reaches the
context's activations, and agrees with full mode on the loss but not on the gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from msr_jax.model import forward, init_cache
from msr_jax.train.objectives import context_frozen_loss_sums, full_loss_sums, prefill_context
from tests.train.conftest import assert_trees_close, random_batch, tiny_model


def two_pass_loss(graphdef, params, config, batch):
  """Row by row, no padding: prefill context[:n] with stop_gradient params, then the
  decision at positions n + arange(D) on that cache."""
  total, weight = 0.0, 0.0
  d = batch.inputs_BxD.shape[1]
  for b in range(batch.context_BxC.shape[0]):
    n = int(np.asarray(batch.context_lengths_B)[b])  # static: the reference is jitted
    cache = init_cache(config, 1, n + d)
    _, cache = forward(graphdef, jax.lax.stop_gradient(params), batch.context_BxC[b:b + 1, :n],
                       cache=cache)
    positions = (n + jnp.arange(d))[None]
    logits, _ = forward(graphdef, params, batch.inputs_BxD[b:b + 1], positions, cache=cache)
    logp = jax.nn.log_softmax(logits[0])
    nll = -jnp.take_along_axis(logp, batch.targets_BxD[b][:, None], -1)[:, 0]
    total = total + jnp.sum(batch.weights_BxD[b] * nll)
    weight = weight + jnp.sum(batch.weights_BxD[b])
  return total / weight


def mean_loss(fn):
  def loss(params):
    total, weight = fn(params)
    return total / weight
  return loss


def test_context_frozen_gradient_equals_two_pass(model):
  config, graphdef, params = model
  batch = random_batch(2, batch_size=3)
  loss, grads = jax.jit(jax.value_and_grad(mean_loss(
      lambda p: context_frozen_loss_sums(graphdef, p, batch, config))))(params)
  ref_loss, ref_grads = jax.jit(jax.value_and_grad(
      lambda p: two_pass_loss(graphdef, p, config, batch)))(params)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  assert_trees_close(grads, ref_grads, rtol=1e-4)


def test_same_loss_different_gradient_than_full(model):
  config, graphdef, params = model
  batch = random_batch(3, batch_size=2)
  frozen_loss, frozen_grads = jax.jit(jax.value_and_grad(mean_loss(
      lambda p: context_frozen_loss_sums(graphdef, p, batch, config))))(params)
  full_loss, full_grads = jax.jit(jax.value_and_grad(mean_loss(
      lambda p: full_loss_sums(graphdef, p, batch))))(params)
  np.testing.assert_allclose(frozen_loss, full_loss, rtol=1e-6)
  kernel = lambda g: np.asarray(g["layers"][0]["attn"]["k_proj"]["kernel"])
  difference = np.abs(kernel(frozen_grads) - kernel(full_grads)).max()
  assert difference > 1e-3 * np.abs(kernel(full_grads)).max()


def test_no_gradient_reaches_context_activations():
  # Untied embeddings and disjoint vocabularies: tokens 0..23 occur only in the context,
  # 24..47 only in the decision. A context token's embedding row is reached only through
  # the context's activations, so its gradient must be exactly zero (and is not in full
  # mode, which proves the check can fail).
  config, graphdef, params = tiny_model(tie_embeddings=False)
  batch = random_batch(4, batch_size=2)
  rng = np.random.default_rng(0)
  batch = batch._replace(
      context_BxC=jnp.asarray(rng.integers(0, 24, batch.context_BxC.shape), jnp.int32),
      inputs_BxD=batch.inputs_BxD % 24 + 24, targets_BxD=batch.targets_BxD % 24 + 24)
  frozen = jax.jit(jax.grad(mean_loss(
      lambda p: context_frozen_loss_sums(graphdef, p, batch, config))))(params)
  full = jax.jit(jax.grad(mean_loss(lambda p: full_loss_sums(graphdef, p, batch))))(params)
  rows = lambda g: np.asarray(g["embed"]["embedding"])[:24]
  assert np.all(rows(frozen) == 0.0)
  assert np.abs(rows(full)).max() > 0
  # And the cache handed to the decision forward carries no gradient path at all.
  cache_grad = jax.grad(lambda k: jnp.sum(prefill_context(
      graphdef, jax.tree_util.tree_map(lambda x: x + k, params), batch, config).k_LxBxKxSxH))(0.0)
  assert float(cache_grad) == 0.0


def test_chunked_prefill_equals_one_shot(model):
  config, graphdef, params = model
  batch = random_batch(5, batch_size=3, context=8, lengths=[2, 5, 8])
  prefill = jax.jit(lambda p, chunk: prefill_context(graphdef, p, batch, config, chunk),
                    static_argnums=1)
  whole = prefill(params, 0)
  for chunk in (4, 3):  # 3 does not divide the bucket: the context is padded to 9.
    chunked = prefill(params, chunk)
    assert chunked.capacity == -(-8 // chunk) * chunk + 4
    np.testing.assert_array_equal(whole.lengths_B, chunked.lengths_B)
    for b, n in enumerate([2, 5, 8]):
      for name in ("k_LxBxKxSxH", "v_LxBxKxSxH"):
        np.testing.assert_allclose(getattr(whole, name)[:, b, :, :n],
                                   getattr(chunked, name)[:, b, :, :n], rtol=1e-5, atol=1e-6)
  loss = jax.jit(lambda p, chunk: mean_loss(
      lambda q: context_frozen_loss_sums(graphdef, q, batch, config, chunk))(p),
      static_argnums=1)
  np.testing.assert_allclose(loss(params, 3), loss(params, 0), rtol=1e-6)
  np.testing.assert_allclose(loss(params, 4), loss(params, 0), rtol=1e-6)
