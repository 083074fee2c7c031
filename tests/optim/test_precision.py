"""Optimizer state in float32 under bf16 parameters (`config.optim.state_dtype`)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from msr_jax import optim
from msr_jax.optim.precision import with_state_dtype


def _tree(dtype):
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  params = {"w": jax.random.normal(k1, (8, 16)), "b": jax.random.normal(k2, (16,))}
  grads = jax.tree.map(lambda p, k: 1e-3 * jax.random.normal(k, p.shape), params,
                       {"w": k3, "b": k1})
  return jax.tree.map(lambda x: x.astype(dtype), params), \
      jax.tree.map(lambda x: x.astype(dtype), grads)


def _run(tx, params, grads, steps=3):
  state = tx.init(params)
  for _ in range(steps):
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  return params, state


@pytest.mark.parametrize("name", ["adamw", "apollo_mini", "lion"])
def test_bf16_parameters_get_f32_moments_and_the_f32_update(name):
  params, grads = _tree(jnp.bfloat16)
  config = {"name": name, "learning_rate": 1e-3, "weight_decay": 0.01}
  new, state = _run(optim.make_optimizer(config), params, grads)
  moments = [x for x in jax.tree.leaves(state) if x.ndim > 0]
  assert moments and {x.dtype for x in moments} == {jnp.dtype(jnp.float32)}
  assert {x.dtype for x in jax.tree.leaves(new)} == {jnp.dtype(jnp.bfloat16)}
  # The reference: the plain optimizer on float32 copies, each update cast to bf16 before
  # it is applied to the bf16 weights.
  plain = optim.make_optimizer({**config, "state_dtype": ""})
  f32 = lambda t: jax.tree.map(lambda x: x.astype(jnp.float32), t)
  ref, ref_state = params, plain.init(f32(params))
  for _ in range(3):
    updates, ref_state = plain.update(f32(grads), ref_state, f32(ref))
    ref = optax.apply_updates(ref, jax.tree.map(lambda u: u.astype(jnp.bfloat16), updates))
  for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(ref)):
    np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


def test_state_dtype_empty_keeps_moments_in_the_parameters_dtype():
  params, grads = _tree(jnp.bfloat16)
  _, state = _run(optim.make_optimizer({"name": "adamw", "learning_rate": 1e-3,
                                        "state_dtype": ""}), params, grads)
  assert {x.dtype for x in jax.tree.leaves(state) if x.ndim > 0} == {jnp.dtype(jnp.bfloat16)}


def test_float32_parameters_are_untouched_bit_for_bit():
  params, grads = _tree(jnp.float32)
  tx = optax.adamw(1e-3, weight_decay=0.01)
  a, state_a = _run(with_state_dtype(tx), params, grads)
  b, state_b = _run(tx, params, grads)
  assert jax.tree.structure(state_a) == jax.tree.structure(state_b)
  for x, y in zip(jax.tree.leaves((a, state_a)), jax.tree.leaves((b, state_b))):
    np.testing.assert_array_equal(x, y)


def test_an_unknown_state_dtype_is_refused():
  with pytest.raises(optim.OptimizerConfigError, match="state_dtype"):
    optim.make_optimizer({"name": "adamw", "learning_rate": 1e-3, "state_dtype": "bf16"})
