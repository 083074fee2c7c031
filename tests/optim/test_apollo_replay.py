"""300+ steps of scale_by_apollo (float32) against a float64 NumPy transcription of the spec.

The reference below follows APOLLO_SPEC.md literally, in the spec's torch layout
(G is (m, n) = (out, in), P is (r, n) for m >= n and (m, r) for m < n), so it also
checks how the optax version maps Flax's (in, out) kernels onto the spec. It is fed
the same P sequence: the documented key schedule, drawn once per block.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msr_jax import optim

_F32 = lambda x: float(np.float32(x))  # Hyperparameters as the float32 code sees them.


@functools.partial(jax.jit, static_argnums=(4, 5))
def _projection(seed, leaf_index, count, gap, dim, rank):
  """P (dim, rank) by the documented key schedule."""
  key = optim.projection_key(seed, leaf_index, count, gap)
  return optim.gaussian_projection(key, dim, rank)


class SpecApollo:
  """APOLLO for one (m, n) torch-layout matrix, in float64, step by step."""

  def __init__(self, m, n, rank, scale_type, scale, b1, b2, eps, gamma):
    self.m, self.n, self.rank = m, n, rank
    self.scale_type, self.scale, self.gamma = scale_type, scale, gamma
    self.b1, self.b2, self.eps = b1, b2, eps
    shape = (m, rank) if m >= n else (rank, n)
    self.M, self.V = np.zeros(shape), np.zeros(shape)
    self.prev = None
    self.limited_steps = 0

  def step(self, k, G, P):
    if self.m >= self.n:
      R = G @ P.T  # P (r, n), R (m, r).
    else:
      R = P.T @ G  # P (m, r), R (r, n).
    self.M = self.b1 * self.M + (1 - self.b1) * R
    self.V = self.b2 * self.V + (1 - self.b2) * R**2
    N = self.M / (np.sqrt(self.V) + self.eps)
    if self.scale_type == "tensor":
      S = G * (np.linalg.norm(N) / (np.linalg.norm(R) + 1e-8))
    elif self.m >= self.n:  # One factor per row (channel) of G.
      S = G * (np.linalg.norm(N, axis=1) / (np.linalg.norm(R, axis=1) + 1e-8))[:, None]
    else:  # One factor per column.
      S = G * (np.linalg.norm(N, axis=0) / (np.linalg.norm(R, axis=0) + 1e-8))[None, :]
    S = S * np.sqrt(self.scale)
    if self.gamma is not None:
      if self.prev is not None:
        limit = max(np.linalg.norm(S) / (self.prev + 1e-8), self.gamma) / self.gamma
        self.limited_steps += limit > 1
        S = S / limit
      self.prev = np.linalg.norm(S)
    t = k + 1
    return np.sqrt(1 - self.b2**t) / (1 - self.b1**t) * S


def _gradients(shape_IxO, steps, seed):
  """A drifting gradient with noise, magnitude swings and a few 100x jumps."""
  rng = np.random.default_rng(seed)
  base = rng.standard_normal(shape_IxO)
  magnitude_T = np.exp(rng.uniform(-2.0, 2.0, steps))
  magnitude_T[rng.choice(steps, 6, replace=False)] *= 100.0
  g_TxIxO = np.stack([
      magnitude_T[t] * (base * np.cos(t / 40) + rng.standard_normal(shape_IxO))
      for t in range(steps)])
  return g_TxIxO.astype(np.float32)


@pytest.mark.parametrize("scale_type, rank", [("channel", 4), ("tensor", 12)])
def test_matches_float64_spec_for_300_steps(scale_type, rank):
  steps, gap, seed = 320, 50, 3
  b1, b2, eps, gamma, scale = _F32(0.9), _F32(0.999), _F32(1e-6), _F32(1.01), 2.0
  # Flax (in, out) shapes: torch m >= n, m < n, and a tie. Leaf order: a, b, c.
  shapes = {"a": (6, 10), "b": (10, 6), "c": (8, 8)}
  grads = {name: _gradients(shape, steps, i) for i, (name, shape) in enumerate(
      sorted(shapes.items()))}

  tx = optim.scale_by_apollo(rank=rank, scale_type=scale_type, scale=scale,
                             update_proj_gap=gap, b1=b1, b2=b2, eps=eps,
                             limiter_gamma=gamma, seed=seed)

  @jax.jit
  def run(grads_T):
    def body(state, g):
      updates, state = tx.update(g, state)
      return state, updates
    params = {name: jnp.zeros(shape) for name, shape in shapes.items()}
    return jax.lax.scan(body, tx.init(params), grads_T)[1]

  updates_T = jax.device_get(run(grads))

  for leaf_index, (name, (n_in, n_out)) in enumerate(sorted(shapes.items())):
    m, n = n_out, n_in  # Torch layout (out, in).
    spec = SpecApollo(m, n, rank, scale_type, scale, b1, b2, eps, gamma)
    for k in range(steps):
      if k % gap == 0:
        p_DxR = np.asarray(_projection(seed, leaf_index, k, gap, min(m, n), rank), np.float64)
        P = p_DxR.T if m >= n else p_DxR  # The spec's (r, n) or (m, r).
      expected_OxI = spec.step(k, grads[name][k].T.astype(np.float64), P)
      np.testing.assert_allclose(updates_T[name][k], expected_OxI.T, rtol=1e-5,
                                 err_msg=f"leaf {name}, step {k}")
    assert spec.limited_steps >= 5, (name, spec.limited_steps)  # The limiter was exercised.
