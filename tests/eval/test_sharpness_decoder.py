"""Sharpness on the real decoder: nnx.State params, graphdef passed through loss_args."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from msr_jax.eval import sharpness
from msr_jax.model import Decoder, ModelConfig, forward
from msr_jax.train.losses import masked_cross_entropy


def lm_loss(params, graphdef, tokens_BxT, weights_BxT):
  logits_BxTxV = forward(graphdef, params, tokens_BxT[:, :-1])[0]
  return masked_cross_entropy(logits_BxTxV, tokens_BxT[:, 1:], weights_BxT[:, 1:])


def test_directional_sharpness_matches_finite_difference_of_the_gradient():
  config = ModelConfig.preset("townworld_tiny", vocab_size=64).replace(
      hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2, num_kv_heads=2,
      head_dim=16)
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(0)), nnx.Param)
  tokens_BxT = jax.random.randint(jax.random.key(2), (4, 10), 0, 64)
  args = (graphdef, tokens_BxT, jnp.ones((4, 10)))
  d = jax.jit(lambda ps: jax.tree.map(
      lambda x: jax.random.normal(jax.random.key(3), x.shape, x.dtype), ps))(params)

  sharp = float(sharpness.directional_sharpness(lm_loss, params, d, loss_args=args))
  forgetting = float(sharpness.quadratic_forgetting(lm_loss, params, d, loss_args=args))

  # Central difference of the gradient along d. Its truncation error scales as eps^2
  # (measured on this model: 2.2% at eps = 1e-3, 0.2% at 3e-4, 0.02% at 1e-4), and float32
  # rounding does not yet dominate at 1e-4.
  eps = 1e-4
  grad = jax.jit(jax.grad(lm_loss))
  shift = lambda s: jax.tree.map(lambda p, v: p + s * v, params, d)
  g_diff = jax.tree.map(jnp.subtract, grad(shift(eps), *args), grad(shift(-eps), *args))
  d_dot_d = float(sharpness.tree_vdot(d, d))
  fd_sharp = float(sharpness.tree_vdot(d, g_diff)) / (2 * eps * d_dot_d)
  assert abs(sharp / fd_sharp - 1) < 1e-3
  assert abs(forgetting / (0.5 * sharp * d_dot_d) - 1) < 1e-6
