"""The jitted step: accumulation equals one large batch, non-finite batches are skipped,
the learning rate is reported, and a sharded step equals the single-device one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from msr_jax import optim
from msr_jax.model import make_mesh
from msr_jax.train.batch import Batch, stack_micro_batches
from msr_jax.train.state import init_state
from msr_jax.train.step import jit_train_step, make_train_step
from tests.train.conftest import assert_trees_close, random_batch


def adamw():
  return optim.make_optimizer({"name": "adamw", "learning_rate": 1e-2, "weight_decay": 0.1})


def test_accumulation_equals_one_large_batch(model):
  config, graphdef, params = model
  big = random_batch(6, batch_size=2)
  rows = [Batch(*(None if x is None else x[i:i + 1] for x in big)) for i in range(2)]
  # Plain SGD at lr 1 makes the update the gradient itself, so the parameters compare
  # the two gradients. (After one Adam step an element is about lr * sign(g), and its
  # float rounding is amplified without bound where g is near zero.)
  sgd = optim.make_optimizer({"name": "sgd", "learning_rate": 1.0})
  for tx in (adamw(), sgd):
    one = jax.jit(make_train_step(graphdef, config, tx, "context_frozen"))
    accumulated = jax.jit(make_train_step(graphdef, config, tx, "context_frozen",
                                          micro_batches=2))
    state_a, metrics_a = one(init_state(params, tx), big)
    state_b, metrics_b = accumulated(init_state(params, tx), stack_micro_batches(rows))
    np.testing.assert_allclose(metrics_a["loss"], metrics_b["loss"], rtol=1e-6)
    assert float(metrics_a["weight"]) == float(metrics_b["weight"])
  assert_trees_close(state_a.params, state_b.params, rtol=1e-5)
  assert not np.allclose(state_a.params["embed"]["embedding"], params["embed"]["embedding"])


def test_learning_rate_is_reported(model):
  config, graphdef, params = model
  tx = adamw()
  _, metrics = jax.jit(make_train_step(graphdef, config, tx, "context_frozen"))(
      init_state(params, tx), random_batch(6, batch_size=2))
  np.testing.assert_allclose(metrics["learning_rate"], 1e-2, rtol=1e-6)


def test_nonfinite_batch_skips_update(model):
  config, graphdef, params = model
  tx = adamw()
  step = jax.jit(make_train_step(graphdef, config, tx, "context_frozen"))
  state, _ = step(init_state(params, tx), random_batch(7))
  bad = random_batch(8)
  bad = bad._replace(weights_BxD=bad.weights_BxD.at[0, 0].set(jnp.nan))
  new_state, metrics = step(state, bad)
  assert int(metrics["skipped"]) == 1 and int(new_state.num_skipped) == 1
  assert int(new_state.step) == int(state.step) + 1
  jax.tree_util.tree_map(np.testing.assert_array_equal, new_state.params, state.params)
  jax.tree_util.tree_map(np.testing.assert_array_equal, new_state.opt_state, state.opt_state)
  # A good batch afterwards trains again.
  after, metrics = step(new_state, random_batch(9))
  assert int(metrics["skipped"]) == 0 and int(after.num_skipped) == 1


def test_sharded_step_equals_single_device(model):
  """Two steps on a data=2 x fsdp=4 mesh equal the single-device steps.

  Parameters are compared under plain SGD at lr 1 (the update is the gradient itself);
  under AdamW the comparison is of its first moment, which is linear in the gradients.
  AdamW's parameters are not compared: after a step an element moves by about
  lr * g / |g|, so where g is near zero the reduction order of the sharded matmuls decides
  its sign (one element of 2048 moved 1.5e-5 apart at lr 1e-2 after the attention layout
  change, with the first moments equal to 1e-5).
  """
  assert jax.device_count() == 8
  config, graphdef, params = model
  batches = [random_batch(10 + i, batch_size=4) for i in range(2)]
  mesh = make_mesh(data=2, fsdp=4)
  sgd = optim.make_optimizer({"name": "sgd", "learning_rate": 1.0})
  for tx in (adamw(), sgd):
    step = make_train_step(graphdef, config, tx, "context_frozen")
    single, state = jit_train_step(step, init_state(params, tx), donate=False)
    sharded, sharded_state = jit_train_step(step, init_state(params, tx), mesh=mesh,
                                            batch=batches[0], donate=False)
    kernel = sharded_state.params["layers"][0]["mlp"]["up_proj"]["kernel"]
    assert len(kernel.sharding.device_set) == 8 and kernel.sharding.spec[0] == "fsdp"
    for batch in batches:
      state, metrics = single(state, batch)
      sharded_state, sharded_metrics = sharded(sharded_state, batch)
      np.testing.assert_allclose(metrics["loss"], sharded_metrics["loss"], rtol=1e-5)
    if tx is sgd:
      assert_trees_close(state.params, sharded_state.params, rtol=1e-5, atol=1e-5)
      assert not np.allclose(state.params["embed"]["embedding"], params["embed"]["embedding"])
    else:
      mu = lambda s: s.opt_state.inner_state[0].mu  # adamw's first moment
      assert_trees_close(mu(state), mu(sharded_state), rtol=1e-5, atol=1e-5)