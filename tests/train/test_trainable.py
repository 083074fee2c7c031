"""Training a chosen part of the model (`config.train.trainable`, LoRA's adapters): the
frozen parameters do not move, the optimizer keeps state for the trainable ones only,
and the update equals `jax.grad` of the plain loss w.r.t. those parameters + optax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from msr_jax import optim
from msr_jax.model.lora import LORA_PARAMS, LoRASpec, add_lora
from msr_jax.train import trainable
from msr_jax.train.objectives import loss_sums
from msr_jax.train.state import init_state
from msr_jax.train.step import make_train_step
from tests.train.conftest import random_batch, tiny_model


def _lora_model():
  config, graphdef, params = tiny_model()
  graphdef, params = add_lora(graphdef, params, LoRASpec(rank=4, alpha=8.0), seed=1)
  return config, graphdef, params


@pytest.mark.parametrize("mode", ["context_frozen", "full"])
def test_a_lora_step_equals_the_plain_formulation(mode):
  config, graphdef, params = _lora_model()
  paths = trainable.select(params, LORA_PARAMS)
  # Plain SGD at lr 1: the update is the gradient itself, so the parameters compare the
  # two gradients (after an Adam step an element is about lr * sign(g), and rounding is
  # amplified without bound where g is near zero).
  tx = optax.sgd(1.0)
  batch = random_batch(5)
  state, _ = jax.jit(make_train_step(graphdef, config, tx, mode, trainable=paths))(
      init_state(params, tx, trainable=paths), batch)

  # The reference: the mean masked loss as a function of the adapters alone.
  lora_only = trainable.take(params, paths)
  def loss(sub):
    total, weight = loss_sums(mode, graphdef, trainable.put(params, sub, paths), batch,
                              config)
    return total / weight
  grads = jax.grad(loss)(lora_only)
  updates, _ = tx.update(grads, tx.init(lora_only), lora_only)
  expected = trainable.put(params, optax.apply_updates(lora_only, updates), paths)
  for path, leaf in jax.tree_util.tree_leaves_with_path(state.params):
    want = dict(jax.tree_util.tree_leaves_with_path(expected))[path]
    np.testing.assert_allclose(np.asarray(leaf), np.asarray(want), rtol=1e-5, atol=1e-7)
  # The base is bit for bit the same; the adapters moved.
  flat_old = dict(jax.tree_util.tree_leaves_with_path(params))
  moved = {jax.tree_util.keystr(p) for p, x in jax.tree_util.tree_leaves_with_path(
      state.params) if not np.array_equal(np.asarray(x), np.asarray(flat_old[p]))}
  assert moved and all("lora" in p for p in moved)
  assert any("lora_b" in p for p in moved)


def test_the_optimizer_state_covers_the_trainable_parameters_only():
  _, _, params = _lora_model()
  paths = trainable.select(params, LORA_PARAMS)
  state = init_state(params, optim.make_optimizer({"name": "adamw", "learning_rate": 1e-3}),
                     trainable=paths)
  moment_bytes = sum(x.size for x in jax.tree.leaves(state.opt_state) if x.ndim > 0)
  lora_size = sum(x.size for x in jax.tree.leaves(trainable.take(params, paths)))
  assert moment_bytes == 2 * lora_size  # Adam's mu and nu, nothing for the base


def test_a_path_pattern_freezes_everything_else():
  config, graphdef, params = tiny_model()
  paths = trainable.select(params, r"\.mlp\.")
  assert paths and all(".mlp." in p for p in paths)
  tx = optax.sgd(0.1)
  state, _ = jax.jit(make_train_step(graphdef, config, tx, "full", trainable=paths))(
      init_state(params, tx, trainable=paths), random_batch(6))
  for (path, new), old in zip(jax.tree_util.tree_leaves_with_path(state.params),
                              jax.tree.leaves(params)):
    changed = not np.array_equal(np.asarray(new), np.asarray(old))
    assert changed == (".mlp." in "." + ".".join(str(k.key) for k in path) + "."), path
  with pytest.raises(ValueError, match="matches no parameter"):
    trainable.select(params, "no_such_param")
