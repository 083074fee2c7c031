"""Full-mode objective and step against a hand-built masked loss over the concatenation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from msr_jax.model import forward
from msr_jax.train.objectives import full_loss_sums
from msr_jax.train.state import init_state
from msr_jax.train.step import make_train_step
from tests.train.conftest import random_batch


def plain_concatenated_loss(graphdef, params, batch):
  """Row by row: [context[:n] ++ inputs] through forward, masked CE on the decision."""
  total, weight = 0.0, 0.0
  for b in range(batch.context_BxC.shape[0]):
    n = int(np.asarray(batch.context_lengths_B)[b])  # static: the reference is jitted
    seq = jnp.concatenate([batch.context_BxC[b, :n], batch.inputs_BxD[b]])[None]
    logits, _ = forward(graphdef, params, seq)
    logp = jax.nn.log_softmax(logits[0, n:])
    nll = -jnp.take_along_axis(logp, batch.targets_BxD[b][:, None], -1)[:, 0]
    total = total + jnp.sum(batch.weights_BxD[b] * nll)
    weight = weight + jnp.sum(batch.weights_BxD[b])
  return total / weight


def test_full_gradient_equals_plain_masked_loss(model):
  config, graphdef, params = model
  batch = random_batch(0, batch_size=3)
  def ours(p):
    total, weight = full_loss_sums(graphdef, p, batch)
    return total / weight
  loss, grads = jax.jit(jax.value_and_grad(ours))(params)
  ref_loss, ref_grads = jax.jit(jax.value_and_grad(
      lambda p: plain_concatenated_loss(graphdef, p, batch)))(params)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                         grads, ref_grads)


def test_full_step_applies_optax_update(model):
  config, graphdef, params = model
  tx = optax.sgd(0.1)
  state = init_state(params, tx)
  batch = random_batch(1)
  step = jax.jit(make_train_step(graphdef, config, tx, mode="full"))
  new_state, metrics = step(state, batch)
  grads = jax.jit(jax.grad(lambda p: plain_concatenated_loss(graphdef, p, batch)))(params)
  expected = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, params, grads)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                         new_state.params, expected)
  assert int(new_state.step) == 1 and int(metrics["skipped"]) == 0
  assert float(metrics["weight"]) == float(jnp.sum(batch.weights_BxD))
  assert float(metrics["drift/all"]) > 0 and "update_ratio/layers.0.attn" in metrics
