"""scale_by_apollo as an optax citizen: jit, inject_hyperparams, MultiSteps, dtypes, trees."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from msr_jax import optim


def _grads(params, seed=0):
  # NumPy draws: eager jax.random would compile per shape, which dominates these tests.
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)


def _run(tx, params, steps, jit=True, seed=0):
  update = jax.jit(tx.update) if jit else tx.update
  state, history = tx.init(params), []
  for k in range(steps):
    updates, state = update(_grads(params, seed + k), state, params)
    history.append(updates)
  return history, state


PARAMS = {"q": jnp.zeros((6, 10)), "o": jnp.zeros((10, 6))}


def test_jit_matches_eager():
  tx = optim.scale_by_apollo(rank=3, update_proj_gap=1)
  params = {"q": PARAMS["q"]}
  eager, _ = _run(tx, params, 1, jit=False)  # Op by op: slow, so one step.
  jitted, _ = _run(tx, params, 1, jit=True)
  for a, b in zip(eager, jitted):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5), a, b)


def test_inject_hyperparams_with_static_rank_gap_and_scale_type():
  static = ("rank", "update_proj_gap", "scale_type", "seed", "projection_fn")
  injected = optax.inject_hyperparams(optim.scale_by_apollo, static_args=static)(
      rank=3, update_proj_gap=2, scale_type="channel", scale=4.0, b1=0.8)
  plain = optim.scale_by_apollo(rank=3, update_proj_gap=2, scale=4.0, b1=0.8)
  got, state = _run(injected, PARAMS, 3)
  want, _ = _run(plain, PARAMS, 3)
  for a, b in zip(got, want):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6), a, b)
  # A changed hyperparameter takes effect: a fresh state with scale 16 doubles step 1.
  state = injected.init(PARAMS)
  state.hyperparams["scale"] = jnp.asarray(16.0)
  doubled, _ = jax.jit(injected.update)(_grads(PARAMS), state)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, 2 * y, rtol=1e-6), doubled, want[0])


def test_multisteps_accumulates_then_applies_the_mean():
  tx = optim.scale_by_apollo(rank=3)
  multi = optax.MultiSteps(tx, every_k_schedule=2)
  state = multi.init(PARAMS)
  g1, g2 = _grads(PARAMS, 1), _grads(PARAMS, 2)
  first, state = jax.jit(multi.update)(g1, state, PARAMS)
  assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(first))
  second, state = jax.jit(multi.update)(g2, state, PARAMS)
  mean = jax.tree.map(lambda a, b: (a + b) / 2, g1, g2)
  want, _ = jax.jit(tx.update)(mean, tx.init(PARAMS))
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6),
               second, want)
  assert int(state.inner_opt_state.count) == 1


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_parameters_keep_their_dtype(dtype):
  params = {"w": jnp.ones((6, 10), dtype), "bias": jnp.ones((10,), dtype)}
  tx = optim.apollo(1e-2, rank=3, label_fn=optim.path_label_fn([r"^w$"]))
  state = tx.init(params)
  assert state[0].inner_states["apollo"].inner_state.mu["w"].dtype == dtype
  mu_f32 = optim.scale_by_apollo(rank=3, mu_dtype=jnp.float32).init({"w": params["w"]})
  assert mu_f32.mu["w"].dtype == jnp.float32 and mu_f32.nu["w"].dtype == dtype
  update = jax.jit(tx.update)
  for k in range(3):
    updates, state = update(_grads(params, k), state, params)
    assert all(u.dtype == dtype for u in jax.tree.leaves(updates))
    params = optax.apply_updates(params, updates)
    assert all(p.dtype == dtype for p in jax.tree.leaves(params))
  assert all(bool(jnp.all(jnp.isfinite(p.astype(jnp.float32)))) for p in jax.tree.leaves(params))


def test_tree_mixing_1d_2d_3d_leaves():
  params = {"bias": jnp.zeros((10,)), "dense": jnp.zeros((6, 10)),
            "heads": jnp.zeros((8, 2, 6)), "out": jnp.zeros((2, 6, 8))}
  label_fn = optim.path_label_fn([r"^(dense|heads|out)$"])
  tx = optim.apollo(1e-2, rank=3, label_fn=label_fn)
  history, state = _run(tx, params, 2)
  assert jax.tree.map(jnp.shape, history[-1]) == jax.tree.map(jnp.shape, params)
  moments = state[0].inner_states["apollo"].inner_state.mu
  # (8, 2, 6) is the (8, 12) matrix and (2, 6, 8) the (12, 8) one: 12 channels each.
  assert moments["heads"].shape == moments["out"].shape == (12, 3)
  with pytest.raises(ValueError, match="'bias'"):
    optim.scale_by_apollo(rank=3).init(params)


def test_leaf_with_more_axes_is_its_matrix_view():
  views = {"x": ((8, 2, 6), (8, 12)), "y": ((2, 6, 8), (12, 8)),
           "z": ((3, 3, 4, 16), (36, 16))}
  # P by compressed size only, so that a leaf and its matrix view get the same P.
  by_dim = lambda key, dim, rank, dtype: jnp.asarray(
      np.random.default_rng(dim).standard_normal((dim, rank)), dtype)
  tx = optim.scale_by_apollo(rank=3, projection_fn=by_dim)
  grads = {}
  for name, (shape, matrix) in views.items():
    grads[name] = _grads({"w": jnp.zeros(shape)}, seed=len(grads))["w"]
    grads[name + "_matrix"] = grads[name].reshape(matrix)
  updates, _ = jax.jit(tx.update)(grads, tx.init(grads))
  for name, (shape, matrix) in views.items():
    np.testing.assert_allclose(updates[name].reshape(matrix), updates[name + "_matrix"],
                               rtol=1e-6, err_msg=name)
  # An explicit split overrides the balanced rule: two input axes.
  explicit = jax.eval_shape(optim.scale_by_apollo(rank=3, num_input_axes=2).init, grads)
  for name, (shape, _) in views.items():
    n_in, n_out = np.prod(shape[:2]), np.prod(shape[2:])
    assert explicit.mu[name].shape == (max(n_in, n_out), 3)


def test_same_seed_same_updates_and_distinct_projections_per_leaf():
  params = {"a": jnp.zeros((6, 10)), "b": jnp.zeros((6, 10))}
  same = {"a": _grads(params)["a"], "b": _grads(params)["a"]}  # Identical gradients.
  tx = optim.scale_by_apollo(rank=2)
  u1, _ = tx.update(same, tx.init(params))
  u2, _ = optim.scale_by_apollo(rank=2).update(same, tx.init(params))
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(x, y), u1, u2)
  # Same shape, same gradient, different leaf: different P, hence different scaling.
  assert not np.allclose(u1["a"], u1["b"], rtol=1e-3)
  u3, _ = optim.scale_by_apollo(rank=2, seed=1).update(same, tx.init(params))
  assert not np.allclose(u1["a"], u3["a"], rtol=1e-3)


def test_state_bytes_counts_every_array():
  tx = optim.scale_by_apollo(rank=4)
  state = tx.init(PARAMS)
  # Two (10, 4) float32 moments per leaf, one float32 prev_norm per leaf, int32 count.
  assert optim.optimizer_state_bytes(state) == (2 * 2 * 10 * 4 + 2 + 1) * 4
  abstract = jax.eval_shape(tx.init, PARAMS)
  assert optim.optimizer_state_bytes(abstract) == optim.optimizer_state_bytes(state)
  adam = optax.adam(1e-3).init({"w": jnp.zeros((5, 7), jnp.bfloat16)})
  assert optim.optimizer_state_bytes(adam) == 2 * 35 * 2 + 4
