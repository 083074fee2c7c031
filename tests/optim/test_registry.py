"""make_optimizer from configs, the registry, schedules and the learning-rate helpers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from msr_jax import optim
from msr_jax.optim import registry

PARAMS = {"mlp": {"up_proj": {"kernel": jnp.ones((4, 6))}}, "norm": jnp.ones(4)}
GRADS = jax.tree.map(lambda p: jnp.asarray(
    np.random.default_rng(p.size).standard_normal(p.shape), p.dtype), PARAMS)


def _step(tx, state=None, grads=GRADS):
  state = tx.init(PARAMS) if state is None else state
  return jax.jit(tx.update)(grads, state, PARAMS)


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd", "lion", "apollo", "apollo_mini"])
def test_every_builtin_builds_and_steps(name):
  tx = optim.make_optimizer({"name": name, "learning_rate": 1e-2})
  updates, state = _step(tx)
  assert jax.tree.map(jnp.shape, updates) == jax.tree.map(jnp.shape, PARAMS)
  assert all(bool(jnp.all(jnp.isfinite(u))) and float(jnp.abs(u).max()) > 0
             for u in jax.tree.leaves(updates))
  np.testing.assert_allclose(optim.get_learning_rate(state), 1e-2, rtol=1e-6)


def test_config_dict_kwargs_nested_or_direct_are_the_same():
  config = ml_collections.ConfigDict({"name": "apollo", "learning_rate": 0.1,
                                      "kwargs": {"rank": 2, "scale_type": "tensor"}})
  direct = {"name": "apollo", "learning_rate": 0.1, "rank": 2, "scale_type": "tensor"}
  state = optim.make_optimizer(config).init(PARAMS)
  mu = state.inner_state[0].inner_states["apollo"].inner_state.mu
  assert mu["mlp"]["up_proj"]["kernel"].shape == (6, 2)
  a = jax.tree.map(np.shape, optim.make_optimizer(direct).init(PARAMS))
  assert a == jax.tree.map(np.shape, state)


@pytest.mark.parametrize("config, field", [
    ({"learning_rate": 0.1}, "'name'"),
    ({"name": "adamx", "learning_rate": 0.1}, "unknown optimizer 'adamx'.*apollo"),
    ({"name": "sgd"}, "'learning_rate'"),
    ({"name": "sgd", "learning_rate": -1.0}, "'learning_rate': must be > 0"),
    ({"name": "sgd", "learning_rate": "fast"}, "'learning_rate': expected float"),
    ({"name": "apollo", "learning_rate": 0.1, "rnak": 4}, "'rnak': not an argument"),
    ({"name": "apollo", "learning_rate": 0.1, "rank": 4, "kwargs": {"rank": 8}},
     r"\['rank'\] given both"),
    ({"name": "adam", "learning_rate": 0.1, "weight_decay": 0.1}, "takes no weight decay"),
    ({"name": "sgd", "learning_rate": 0.1, "schedule": "cosin"}, "'schedule'"),
    ({"name": "sgd", "learning_rate": 0.1, "schedule": "cosine"}, "'total_steps'"),
    ({"name": "sgd", "learning_rate": 0.1, "schedule": "cosine", "total_steps": 5,
      "warmup_steps": 5}, "'total_steps': must exceed"),
    ({"name": "sgd", "learning_rate": 0.1, "clip_norm": 0.0}, "'clip_norm'"),
])
def test_bad_configs_name_the_field(config, field):
  with pytest.raises(optim.OptimizerConfigError, match=field):
    optim.make_optimizer(config)


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_schedule_drives_the_learning_rate(schedule):
  config = {"name": "sgd", "learning_rate": 0.5, "schedule": schedule, "warmup_steps": 2,
            "total_steps": 6, "final_lr_ratio": 0.1}
  expected = optim.make_schedule(config)
  tx = optim.make_optimizer(config)
  update, state = jax.jit(tx.update), tx.init(PARAMS)
  for k in range(7):
    updates, state = update(GRADS, state, PARAMS)
    np.testing.assert_allclose(optim.get_learning_rate(state), expected(k), rtol=1e-6)
    np.testing.assert_allclose(updates["norm"], -expected(k) * GRADS["norm"], rtol=1e-6)
  if schedule != "constant":
    np.testing.assert_allclose(expected(6), 0.05, rtol=1e-6)
  np.testing.assert_allclose(expected(2), 0.5, rtol=1e-6)


def test_set_and_scale_learning_rate_change_the_next_steps():
  tx = optim.make_optimizer({"name": "sgd", "learning_rate": 0.1})
  update = jax.jit(tx.update)
  _, state = update(GRADS, tx.init(PARAMS), PARAMS)
  state = optim.set_learning_rate(state, 0.05)
  np.testing.assert_allclose(optim.get_learning_rate(state), 0.05, rtol=1e-6)
  updates, state = update(GRADS, state, PARAMS)
  np.testing.assert_allclose(updates["norm"], -0.05 * GRADS["norm"], rtol=1e-6)
  halve = jax.jit(lambda s: optim.scale_learning_rate(s, 0.5))  # Works under jit too.
  updates, state = update(GRADS, halve(state), PARAMS)
  np.testing.assert_allclose(updates["norm"], -0.025 * GRADS["norm"], rtol=1e-6)
  # Found inside wrappers such as MultiSteps.
  multi = optax.MultiSteps(tx, every_k_schedule=2).init(PARAMS)
  np.testing.assert_allclose(optim.get_learning_rate(optim.scale_learning_rate(multi, 2.0)),
                             0.2, rtol=1e-6)
  with pytest.raises(ValueError, match="make_optimizer"):
    optim.get_learning_rate(optax.sgd(0.1).init(PARAMS))


def test_halving_a_schedule_halves_every_later_step():
  config = {"name": "sgd", "learning_rate": 0.4, "schedule": "cosine", "warmup_steps": 1,
            "total_steps": 5}
  tx, expected = optim.make_optimizer(config), optim.make_schedule(config)
  update, state = jax.jit(tx.update), tx.init(PARAMS)
  with pytest.raises(ValueError, match="current learning rate is 0"):
    optim.set_learning_rate(state, 0.1)  # Warm-up starts at 0: no multiplier helps.
  state = optim.scale_learning_rate(state, 0.5)
  for k in range(4):
    updates, state = update(GRADS, state, PARAMS)
    np.testing.assert_allclose(updates["norm"], -0.5 * expected(k) * GRADS["norm"],
                               rtol=1e-6, atol=1e-9)


def test_clip_norm_runs_first_and_weight_decay_reaches_the_optimizer():
  huge = jax.tree.map(lambda g: 1e3 * g, GRADS)
  tx = optim.make_optimizer({"name": "sgd", "learning_rate": 1.0, "clip_norm": 1.0})
  updates, _ = _step(tx, grads=huge)
  np.testing.assert_allclose(optax.tree.norm(updates), 1.0, rtol=1e-5)
  # AdamW on zero gradients moves only by decoupled decay: -lr * wd * W.
  tx = optim.make_optimizer({"name": "adamw", "learning_rate": 0.1, "weight_decay": 0.5})
  updates, _ = _step(tx, grads=jax.tree.map(jnp.zeros_like, GRADS))
  jax.tree.map(lambda u, p: np.testing.assert_allclose(u, -0.05 * p, rtol=1e-6),
               updates, PARAMS)


def test_registering_a_new_transformation_makes_it_configurable(monkeypatch):
  monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
  optim.register_optimizer("signsgd", lambda learning_rate, weight_decay=0.0: optax.chain(
      optax.scale_by_sign(), optax.add_decayed_weights(weight_decay),
      optax.scale_by_learning_rate(learning_rate)))
  assert "signsgd" in optim.registered_optimizers()
  updates, _ = _step(optim.make_optimizer({"name": "signsgd", "learning_rate": 0.25}))
  np.testing.assert_allclose(updates["norm"], -0.25 * np.sign(GRADS["norm"]))
  with pytest.raises(ValueError, match="already registered"):
    optim.register_optimizer("signsgd", optax.sgd)
  optim.register_optimizer("signsgd", optax.sgd, overwrite=True)
