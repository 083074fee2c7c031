"""The regularisers (`train/regularizers.py`) against hand-computed gradients and plain
formulations: L2-SP and EWC, the diagonal Fisher, the KL to the base; and in the step and
the loop (a run from an HF checkpoint, resumed and exported)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from msr_jax.train import regularizers as reg_lib
from msr_jax.train.objectives import loss_sums
from msr_jax.train.state import init_state
from msr_jax.train.step import make_train_step
from tests.train.conftest import random_batch, tiny_model


def _moved(params, scale=0.05, seed=1):
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(tree, [x + scale * jax.random.normal(k, x.shape)
                                   for x, k in zip(leaves, keys)])


def _retain(seed=0, rows=4, length=10, vocab=48):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, vocab, (rows, length)).astype(np.int32)
  weights = (rng.random((rows, length)) < 0.6).astype(np.float32)
  weights[:, -1] = 0.0
  weights[-1] = 0.0  # a row without weight: not counted by the Fisher
  return reg_lib.RetainSet(jnp.asarray(tokens), jnp.asarray(weights))


def test_l2_sp_and_ewc_gradients_are_the_hand_computed_ones():
  _, graphdef, base = tiny_model()
  params = _moved(base)
  fisher = jax.tree.map(lambda x: jnp.abs(x) * 3.0, _moved(jax.tree.map(jnp.zeros_like, base)))
  reg = reg_lib.Regularizer(l2_sp=0.7, ewc=2.5)
  def total(p):
    return reg_lib.penalty(reg, graphdef, p, p, base, base, {"fisher": fisher}, 0)[0]
  value, grads = jax.value_and_grad(total)(params)
  want = jax.tree.map(lambda p, b, f: 0.7 * (p - b) + 2.5 * f * (p - b), params, base, fisher)
  jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-8),
               grads, want)
  flat = lambda t: np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)]).astype(np.float64)
  d, f = flat(params) - flat(base), flat(fisher)
  assert float(value) == pytest.approx(0.35 * (d @ d) + 1.25 * (f * d) @ d, rel=1e-5)


def test_the_diagonal_fisher_is_the_mean_squared_per_row_gradient():
  _, graphdef, params = tiny_model()
  retain = _retain()
  fisher = reg_lib.diagonal_fisher(graphdef, params, retain)
  rows = []
  for tokens, weights in zip(np.asarray(retain.tokens_NxT), np.asarray(retain.weights_NxT)):
    if weights.sum() == 0:
      continue
    def nll(p, tokens=tokens, weights=weights):  # the plain formulation, row by row
      from msr_jax.model import forward
      logits = forward(graphdef, p, tokens[None])[0][0, :-1]
      logp = jax.nn.log_softmax(logits, -1)[np.arange(len(tokens) - 1), tokens[1:]]
      return -(logp * weights[:-1]).sum() / weights[:-1].sum()
    rows.append(jax.tree.map(jnp.square, jax.grad(nll)(params)))
  want = jax.tree.map(lambda *r: sum(r) / len(r), *rows)
  assert len(rows) == 3
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-12),
               fisher, want)


def test_the_kl_term_is_zero_at_the_base_and_its_gradient_matches_a_plain_formulation():
  _, graphdef, base = tiny_model()
  retain = _retain()
  tokens, weights = retain.tokens_NxT, retain.weights_NxT
  value, grads = jax.value_and_grad(
      lambda p: reg_lib.kl_to_base(graphdef, p, base, tokens, weights))(base)
  assert abs(float(value)) < 1e-6
  assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)) < 1e-6
  params = _moved(base, 0.2)

  def plain(p):
    from msr_jax.model import forward
    log_p = jax.nn.log_softmax(forward(graphdef, p, tokens)[0], -1)
    log_q = jax.lax.stop_gradient(jax.nn.log_softmax(forward(graphdef, base, tokens)[0], -1))
    kl = optax.losses.kl_divergence_with_log_targets(log_p, log_q)  # KL(base || p)
    return (kl * weights).sum() / weights.sum()
  value, grads = jax.value_and_grad(
      lambda p: reg_lib.kl_to_base(graphdef, p, base, tokens, weights))(params)
  want_value, want = jax.value_and_grad(plain)(params)
  assert float(value) > 1e-3 and float(value) == pytest.approx(float(want_value), rel=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7),
               grads, want)


def test_the_step_adds_the_penalty_gradient_once():
  """SGD at lr 1: the update is the gradient, so the regularised step must equal the
  plain step plus the hand-computed penalty gradient (and log each term)."""
  config, graphdef, base = tiny_model()
  retain = _retain()
  reg = reg_lib.Regularizer(l2_sp=0.3, kl_to_base=0.5, retain_rows=2)
  tx = optax.sgd(1.0)
  batch = random_batch(4)
  start = init_state(base, tx, aux={"retain": retain})
  start = start._replace(params=_moved(base))  # away from theta0, so L2-SP pulls back
  state, metrics = jax.jit(make_train_step(graphdef, config, tx, "full",
                                           regularizer=reg))(start, batch)
  p = start.params
  task = jax.grad(lambda q: (lambda t, w: t / w)(*loss_sums("full", graphdef, q, batch,
                                                           config)))(p)
  # Step 0 reads rows 0..1 of the retention set.
  kl = jax.grad(lambda q: reg_lib.kl_to_base(graphdef, q, base, retain.tokens_NxT[:2],
                                             retain.weights_NxT[:2]))(p)
  want = jax.tree.map(lambda q, t, k, b: q - (t + 0.5 * k + 0.3 * (q - b)), p, task, kl, base)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               state.params, want)
  assert {"reg_l2_sp", "reg_kl_to_base"} <= set(metrics) and "reg_ewc" not in metrics
  assert float(metrics["reg_kl_to_base"]) > 0
