"""`apollo` / `apollo_mini` on the real decoder's parameter tree, and path labels."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from msr_jax import optim
from msr_jax.model import Decoder, ModelConfig
from msr_jax.optim import labels


def _decoder_params(num_layers=2, **changes):
  """The decoder's nnx.State, with zeros: only paths and shapes matter here."""
  config = ModelConfig.preset("townworld_tiny", vocab_size=64, num_layers=num_layers,
                              **changes)
  abstract = nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0)))
  _, params = nnx.split(abstract, nnx.Param)
  return jax.tree.map(lambda x: jnp.asarray(np.zeros(x.shape, x.dtype)), params)


def _grads(params, seed=0):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)


def _labelled(params, label_fn=labels.default_label_fn):
  flat = jax.tree_util.tree_flatten_with_path(label_fn(params))[0]
  return {optim.path_to_str(path): label for path, label in flat}


EXPECTED_APOLLO = {f"layers.{i}.{name}.kernel" for i in range(2) for name in (
    "attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.o_proj",
    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}


@pytest.mark.parametrize("changes", [{}, {"qkv_bias": True, "tie_embeddings": False}])
def test_default_labels_pick_projection_kernels_on_state_and_dict(changes):
  params = _decoder_params(**changes)
  got = _labelled(params)
  assert {path for path, label in got.items() if label == labels.APOLLO} == EXPECTED_APOLLO
  others = {path for path, label in got.items() if label == labels.ADAM}
  assert "embed.embedding" in others and "final_norm.scale" in others
  if changes:
    assert {"lm_head.kernel", "layers.0.attn.q_proj.bias"} <= others
  else:  # Tied: the one embedding matrix is one leaf, in one group.
    assert sum(path.startswith("embed") for path in got) == 1
  assert _labelled(nnx.to_pure_dict(params)) == got


def test_path_to_str_and_label_errors():
  path = (jax.tree_util.DictKey("layers"), jax.tree_util.SequenceKey(3),
          jax.tree_util.GetAttrKey("kernel"), jax.tree_util.GetAttrKey("value"))
  assert optim.path_to_str(path) == "layers.3.kernel"
  with pytest.raises(ValueError, match="'mlp.up_proj.kernel'.*matrices"):
    labels.default_label_fn({"mlp": {"up_proj": {"kernel": jnp.zeros(3)}}})


def test_apollo_is_scale_by_apollo_on_matrices_and_adam_elsewhere():
  params = _decoder_params(num_layers=1, qkv_bias=True)
  grads = _grads(params)
  lr = 0.01
  tx = optim.apollo(lr, rank=4, update_proj_gap=1)
  apollo_tx = optim.scale_by_apollo(rank=4, update_proj_gap=1)
  adam = optax.scale_by_adam(eps=1e-6)
  flat_labels = jax.tree.leaves(labels.default_label_fn(params))
  flat_grads = jax.tree.leaves(grads)
  # A list in flattening order gives every matrix the same leaf index as in `apollo`.
  matrix_grads = [g for g, l in zip(flat_grads, flat_labels) if l == labels.APOLLO]
  other_grads = [g for g, l in zip(flat_grads, flat_labels) if l == labels.ADAM]

  @jax.jit
  def all_three(params, grads, matrix_grads, other_grads):
    return (tx.update(grads, tx.init(params), params)[0],
            apollo_tx.update(matrix_grads, apollo_tx.init(matrix_grads))[0],
            adam.update(other_grads, adam.init(other_grads))[0])

  updates, want_matrix, want_other = all_three(params, grads, matrix_grads, other_grads)
  flat_updates = jax.tree.leaves(updates)
  want = iter(want_matrix), iter(want_other)
  for update, label in zip(flat_updates, flat_labels):
    expected = next(want[0] if label == labels.APOLLO else want[1])
    np.testing.assert_allclose(update, -lr * expected, rtol=1e-5, atol=1e-9)


SMALL = {"mlp": {"up_proj": {"kernel": jnp.ones((4, 6))}}, "norm": jnp.ones(4)}


def test_weight_decay_is_decoupled_in_optax_order():
  params = SMALL
  grads = _grads(params)
  lr, wd = 0.01, 0.1
  plain_tx, tx = optim.apollo(lr, rank=4), optim.apollo(lr, rank=4, weight_decay=wd)

  @jax.jit
  def both(grads, params):
    return (plain_tx.update(grads, plain_tx.init(params), params)[0],
            tx.update(grads, tx.init(params), params)[0])

  plain, decayed = both(grads, params)
  jax.tree.map(lambda d, u, p: np.testing.assert_allclose(d, u - lr * wd * p, rtol=1e-5,
                                                          atol=1e-9), decayed, plain, params)


def test_apollo_mini_is_rank_one_tensor_scaling_with_scale_128():
  params = SMALL
  tx = optim.apollo_mini(1e-3)
  state = tx.init(params)
  inner = state[0].inner_states[labels.APOLLO].inner_state
  assert all(m.shape[1] == 1 for m in jax.tree.leaves(inner.mu))
  want_tx = optim.apollo(1e-3, rank=1, scale=128.0, scale_type="tensor")

  @jax.jit
  def both(grads, state, want_state):
    return tx.update(grads, state, params) + want_tx.update(grads, want_state, params)

  want_state = want_tx.init(params)
  for k in range(2):
    got, state, want, want_state = both(_grads(params, k), state, want_state)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9),
                 got, want)


def test_learning_rate_schedule_scales_each_step():
  params = SMALL
  schedule = optax.linear_schedule(1.0, 0.25, 3)
  scheduled, constant = optim.apollo(schedule, rank=2), optim.apollo(1.0, rank=2)
  s_state, c_state = scheduled.init(params), constant.init(params)

  @jax.jit
  def both(grads, s_state, c_state):
    return scheduled.update(grads, s_state, params) + constant.update(grads, c_state, params)

  for k in range(4):
    got, s_state, want, c_state = both(_grads(params, k), s_state, c_state)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, schedule(k) * b, rtol=1e-6),
                 got, want)
