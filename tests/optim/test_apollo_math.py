"""The exact cases of the APOLLO spec: shapes, redraws, closed forms, limiter, invariances."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msr_jax import optim
from msr_jax.optim import apollo_scaling as apollo_lib
from msr_jax.optim import layout


def _fixed(*projections):
  """A projection_fn returning the given (dim, rank) matrices, looked up by dim."""
  by_dim = {p.shape[0]: p for p in projections}

  def projection_fn(key, dim, rank, dtype):
    del key
    assert (dim, rank) == by_dim[dim].shape
    return jnp.asarray(by_dim[dim], dtype)
  return projection_fn


def _normal(seed, shape):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# Flax (in, out) shapes: torch m = out >= n = in, torch m < n, and a tie (which
# compresses the input side). Keys sort as listed, so these are leaves 0, 1, 2.
SHAPES = {"a": (6, 10), "b": (10, 6), "c": (8, 8)}


def _to_CxD(x_IxO):
  """The (channels, compressed) view: channels are the larger side, outputs on a tie."""
  return x_IxO.T if x_IxO.shape[0] <= x_IxO.shape[1] else x_IxO


def test_state_and_projection_shapes():
  requested = []

  def projection_fn(key, dim, rank, dtype):
    requested.append((dim, rank))  # Static: recorded while tracing (once per size).
    return optim.gaussian_projection(key, dim, rank, dtype)

  tx = optim.scale_by_apollo(rank=3, projection_fn=projection_fn)
  params = {name: jnp.zeros(shape) for name, shape in SHAPES.items()}
  state = tx.init(params)
  # Torch m >= n: moments (m, r), P (r, n); m < n: moments (r, n), P (m, r); both are
  # stored as (channels, rank) = (max, r) and P as (compressed, r) = (min, r).
  assert {k: v.shape for k, v in state.mu.items()} == {"a": (10, 3), "b": (10, 3),
                                                       "c": (8, 3)}
  assert jax.tree.map(jnp.shape, state.nu) == jax.tree.map(jnp.shape, state.mu)
  grads = {name: jnp.asarray(_normal(i, shape)) for i, (name, shape) in
           enumerate(SHAPES.items())}
  updates, state = jax.jit(tx.update)(grads, state)
  assert jax.tree.map(jnp.shape, updates) == SHAPES
  assert sorted(requested) == [(6, 3), (8, 3)]


@pytest.mark.parametrize("rank", [1, 4, 16])
def test_state_holds_exactly_two_max_dim_times_rank_plus_scalars(rank):
  shapes = [(6, 10), (10, 6), (7, 7), (4, 3, 5), (64, 1)]
  tx = optim.scale_by_apollo(rank=rank)
  for shape in shapes:
    state = jax.eval_shape(tx.init, {"w": jax.ShapeDtypeStruct(shape, jnp.float32)})
    n_in, n_out = layout.matrix_dims(shape)
    elements = sum(np.prod(x.shape, dtype=int) for x in jax.tree.leaves(state))
    # mu and nu, plus the limiter's previous norm and the step count.
    assert elements == 2 * max(n_in, n_out) * rank + 2, shape


def test_projection_is_redrawn_only_every_gap_and_moments_carry_over():
  gap, b1 = 3, 0.8
  tx = optim.scale_by_apollo(rank=2, update_proj_gap=gap, b1=b1)
  update = jax.jit(tx.update)
  state = tx.init({"w": jnp.zeros((4, 6))})
  projections = []
  for k in range(2 * gap + 1):
    # The documented schedule: key = fold_in(fold_in(key(seed), leaf), k // gap).
    projections.append(np.asarray(
        optim.gaussian_projection(optim.projection_key(0, 0, k, gap), 4, 2)))
    if k > 0:
      same = np.array_equal(projections[k], projections[k - 1])
      assert same == (k % gap != 0), k
    g_IxO = _normal(k, (4, 6))
    mu_before = np.asarray(state.mu["w"])
    _, state = update({"w": jnp.asarray(g_IxO)}, state)
    # Not reset at a redraw: the new projected gradient joins the old moment.
    r_CxR = g_IxO.T @ projections[k]
    np.testing.assert_allclose(state.mu["w"], b1 * mu_before + (1 - b1) * r_CxR,
                               rtol=1e-5, atol=1e-6)
  assert len({p.tobytes() for p in projections}) == 3  # Blocks k // gap = 0, 1, 2.


@pytest.mark.parametrize("b1, b2", [(0.9, 0.999), (0.5, 0.7)])
def test_first_step_closed_form_channel(b1, b2):
  """dW_i = -lr sqrt(scale) sqrt(r) G_i / (||R_i|| + 1e-8), whatever b1 and b2."""
  rank, scale = 4, 3.0
  p6, p8 = _normal(1, (6, rank)) / np.sqrt(rank), _normal(2, (8, rank)) / np.sqrt(rank)
  grads = {name: _normal(3 + i, shape) for i, (name, shape) in enumerate(SHAPES.items())}
  tx = optim.scale_by_apollo(rank=rank, scale=scale, b1=b1, b2=b2, eps=0.0,
                             projection_fn=_fixed(p6, p8))
  updates, _ = jax.jit(tx.update)(jax.tree.map(jnp.asarray, grads), tx.init(grads))
  for name, g_IxO in grads.items():
    g_CxD = _to_CxD(g_IxO.astype(np.float64))
    p_DxR = p6 if g_CxD.shape[1] == 6 else p8
    r_norm_Cx1 = np.linalg.norm(g_CxD @ p_DxR, axis=1, keepdims=True)
    expected_CxD = np.sqrt(scale) * np.sqrt(rank) * g_CxD / (r_norm_Cx1 + 1e-8)
    np.testing.assert_allclose(_to_CxD(np.asarray(updates[name])), expected_CxD, rtol=2e-6,
                               err_msg=name)


def test_first_step_closed_form_tensor():
  """dW = -lr sqrt(scale) sqrt(max(m, n) r) G / (||R||_F + 1e-8)."""
  rank, scale = 2, 128.0
  p6, p8 = _normal(1, (6, rank)) / np.sqrt(rank), _normal(2, (8, rank)) / np.sqrt(rank)
  grads = {name: _normal(3 + i, shape) for i, (name, shape) in enumerate(SHAPES.items())}
  tx = optim.scale_by_apollo(rank=rank, scale=scale, scale_type="tensor", eps=0.0,
                             projection_fn=_fixed(p6, p8))
  updates, _ = jax.jit(tx.update)(jax.tree.map(jnp.asarray, grads), tx.init(grads))
  for name, g_IxO in grads.items():
    g_CxD = _to_CxD(g_IxO.astype(np.float64))
    r_norm = np.linalg.norm(g_CxD @ (p6 if g_CxD.shape[1] == 6 else p8))
    expected_CxD = np.sqrt(scale * g_CxD.shape[0] * rank) * g_CxD / (r_norm + 1e-8)
    np.testing.assert_allclose(_to_CxD(np.asarray(updates[name])), expected_CxD, rtol=2e-6,
                               err_msg=name)


def test_identity_projection_with_constant_channels_is_adam():
  """P = I, channel mode, no limiter, each channel constant along the compressed axis."""
  b1, b2 = 0.9, 0.999
  tx = optim.scale_by_apollo(rank=5, b1=b1, b2=b2, eps=0.0, limiter_gamma=None,
                             projection_fn=_fixed(np.eye(5, dtype=np.float32)))
  shapes = {"a": (5, 7), "b": (7, 5)}
  state = tx.init({name: jnp.zeros(shape) for name, shape in shapes.items()})
  update = jax.jit(tx.update)
  m = {name: np.zeros(shape) for name, shape in shapes.items()}  # AdamW, no decay, float64.
  v = {name: np.zeros(shape) for name, shape in shapes.items()}
  b1_64, b2_64 = np.float64(np.float32(b1)), np.float64(np.float32(b2))
  rng = np.random.default_rng(5)
  signs_C = rng.choice([-1.0, 1.0], 7)  # A fixed sign per channel.
  for t in range(1, 21):
    a_C = (signs_C * rng.uniform(0.2, 3.0, 7)).astype(np.float32)
    g_DxC = np.broadcast_to(a_C, (5, 7))  # Constant along the compressed axis.
    grads = {"a": g_DxC, "b": g_DxC.T}
    updates, state = update(jax.tree.map(jnp.asarray, grads), state)
    for name, g in grads.items():
      m[name] = b1_64 * m[name] + (1 - b1_64) * g
      v[name] = b2_64 * v[name] + (1 - b2_64) * g.astype(np.float64)**2
      adam = (m[name] / (1 - b1_64**t)) / np.sqrt(v[name] / (1 - b2_64**t))
      np.testing.assert_allclose(updates[name], adam, rtol=1e-5, err_msg=f"{name} {t}")


def test_limiter_caps_growth_at_gamma_and_lets_decreases_through():
  gamma = 1.01
  limited = optim.scale_by_apollo(rank=3, limiter_gamma=gamma, bias_correction=False)
  free = optim.scale_by_apollo(rank=3, limiter_gamma=None, bias_correction=False)
  state = limited.init({"w": jnp.zeros((6, 9))})
  update_limited, update_free = jax.jit(limited.update), jax.jit(free.update)
  rng = np.random.default_rng(6)
  capped = passed = 0
  previous_norm = None
  for k in range(40):
    magnitude = [0.01, 1.0, 100.0][rng.integers(3)]
    grads = {"w": jnp.asarray(magnitude * _normal(10 + k, (6, 9)))}
    u_limited, new_state = update_limited(grads, state)
    u_free, _ = update_free(grads, state)  # Same state: what the step would be unlimited.
    norm_limited = float(jnp.linalg.norm(u_limited["w"]))
    norm_free = float(jnp.linalg.norm(u_free["w"]))
    if previous_norm is not None and norm_free > gamma * previous_norm:
      capped += 1
      # Exactly gamma (up to the 1e-8 guard), in the unlimited direction.
      np.testing.assert_allclose(norm_limited / previous_norm, gamma, rtol=1e-6)
      np.testing.assert_allclose(u_limited["w"] * (norm_free / norm_limited), u_free["w"],
                                 rtol=1e-5, atol=1e-6)
    else:
      passed += 1
      np.testing.assert_allclose(u_limited["w"], u_free["w"], rtol=1e-6)
    np.testing.assert_allclose(new_state.prev_norm["w"], norm_limited, rtol=1e-6)
    state, previous_norm = new_state, norm_limited
  assert capped >= 5 and passed >= 5


@pytest.mark.parametrize("scale_type", ["channel", "tensor"])
def test_eps_zero_updates_are_invariant_to_gradient_scale(scale_type):
  tx = optim.scale_by_apollo(rank=3, scale_type=scale_type, eps=0.0, update_proj_gap=4)
  update = jax.jit(tx.update)
  factors = (1.0, 1e-2, 1e3)  # Where the 1e-8 guards stay below 1e-6 relative.
  states = [tx.init({"w": jnp.zeros((5, 8))}) for _ in factors]
  for k in range(10):
    g = _normal(20 + k, (5, 8)) * (1 + 10 * (k == 6))  # A jump, so the limiter acts.
    outs = [update({"w": jnp.asarray(c * g)}, state) for c, state in zip(factors, states)]
    states = [state for _, state in outs]
    for (u, _), c in zip(outs[1:], factors[1:]):
      np.testing.assert_allclose(u["w"], outs[0][0]["w"], rtol=1e-5, err_msg=f"c={c}")


def test_projection_preserves_squared_row_norms_in_expectation():
  """Johnson-Lindenstrauss: E ||G_i P||^2 = ||G_i||^2 over the keys the schedule uses."""
  dim, rank, gap, num_keys = 16, 8, 200, 4000
  g_CxD = jnp.asarray(_normal(7, (3, dim)))

  def ratio_C(block):
    key = optim.projection_key(0, 0, block * gap, gap)
    r_CxR = g_CxD @ optim.gaussian_projection(key, dim, rank)
    return jnp.sum(r_CxR**2, axis=1) / jnp.sum(g_CxD**2, axis=1)

  ratios_KxC = jax.vmap(ratio_C)(jnp.arange(num_keys))
  # Each ratio has std sqrt(2 / rank) = 0.5; the mean of 4000 has std 0.008.
  np.testing.assert_allclose(jnp.mean(ratios_KxC, axis=0), 1.0, atol=0.04)
  assert jnp.std(ratios_KxC) > 0.3  # The keys really differ.


def test_default_projection_has_variance_one_over_rank():
  p = optim.gaussian_projection(jax.random.key(0), 256, 64)
  assert p.shape == (256, 64) and p.dtype == jnp.float32
  np.testing.assert_allclose(jnp.var(p) * 64, 1.0, atol=0.03)
  np.testing.assert_allclose(jnp.mean(p), 0.0, atol=0.01)


def test_bad_arguments_are_clear_errors():
  with pytest.raises(ValueError, match="rank"):
    optim.scale_by_apollo(rank=0)
  with pytest.raises(ValueError, match="scale_type"):
    optim.scale_by_apollo(rank=2, scale_type="row")
  with pytest.raises(ValueError, match="update_proj_gap"):
    optim.scale_by_apollo(rank=2, update_proj_gap=0)
  with pytest.raises(ValueError, match="limiter_gamma"):
    optim.scale_by_apollo(rank=2, limiter_gamma=0.5)
  with pytest.raises(ValueError, match="'b.bias'"):
    optim.scale_by_apollo(rank=2).init({"b": {"bias": jnp.zeros(3)}})
  with pytest.raises(ValueError, match="projection_fn returned"):
    tx = optim.scale_by_apollo(rank=2, projection_fn=lambda k, d, r, t: jnp.zeros((r, d)))
    tx.update({"w": jnp.ones((3, 4))}, tx.init({"w": jnp.ones((3, 4))}))


def test_bias_correction_constant():
  # c_t for t = 1 is sqrt(1 - b2) / (1 - b1), computed without float32 cancellation.
  t = jnp.float32(1.0)
  c_1 = (jnp.sqrt(apollo_lib._one_minus_power(jnp.float32(0.999), t)) /
         apollo_lib._one_minus_power(jnp.float32(0.9), t))
  expected = np.sqrt(1 - np.float64(np.float32(0.999))) / (1 - np.float64(np.float32(0.9)))
  np.testing.assert_allclose(c_1, expected, rtol=1e-6)
