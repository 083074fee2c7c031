"""LoRA adapters (`msr_jax.model.lora`, Flax NNX's nnx.LoRA): a zero B factor is the base
model logit for logit; merged into the kernels, the adapted model's forward is unchanged."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from msr_jax.model import Decoder, ModelConfig, forward
from msr_jax.model.lora import LORA_PARAMS, LoRASpec, add_lora, has_lora, merge_lora
from msr_jax.train import trainable

TOKENS_BxT = (np.arange(2 * 12).reshape(2, 12) * 7 % 61).astype(np.int32)


def _base(**changes):
  config = ModelConfig.preset("townworld_tiny", vocab_size=64)
  config = dataclasses.replace(config, **changes)
  graphdef, state = nnx.split(Decoder(config, rngs=nnx.Rngs(0)), nnx.Param)
  return graphdef, nnx.to_pure_dict(state)


def _perturbed(params, seed=3):
  """Every LoRA B factor drawn at random (a trained adapter)."""
  key = jax.random.key(seed)
  def one(path, x):
    if path[-1].key == "lora_b":
      return 0.3 * jax.random.normal(jax.random.fold_in(key, hash(str(path)) % 2**31),
                                     x.shape, x.dtype)
    return x
  return jax.tree_util.tree_map_with_path(one, params)


@pytest.mark.parametrize("changes", [{}, {"qkv_bias": True, "qk_norm": True}])
def test_b_at_zero_is_the_base_model_exactly(changes):
  graphdef, params = _base(**changes)
  lora_graphdef, lora_params = add_lora(graphdef, params, LoRASpec(rank=4, alpha=16.0), 1)
  names = trainable.select(lora_params, LORA_PARAMS)
  # Every block projection got one: q k v o gate up down, A and B each.
  assert len(names) == 2 * 7 * len(params["layers"])
  base, _ = forward(graphdef, params, TOKENS_BxT)
  adapted, _ = forward(lora_graphdef, lora_params, TOKENS_BxT)
  np.testing.assert_array_equal(np.asarray(base), np.asarray(adapted))
  a = lora_params["layers"][0]["attn"]["q_proj"]["lora"]["lora_a"]
  assert a.shape == (params["layers"][0]["attn"]["q_proj"]["kernel"].shape[0], 4)
  assert float(jnp.abs(a).max()) > 0  # A is drawn, B is zero


@pytest.mark.parametrize("targets", [None, r"\.(q|v)_proj$"])
def test_the_merged_model_equals_the_unmerged_forward(targets):
  graphdef, params = _base()
  spec = LoRASpec(rank=8, alpha=4.0) if targets is None else LoRASpec(8, 4.0, targets)
  lora_graphdef, lora_params = add_lora(graphdef, params, spec, 1)
  lora_params = _perturbed(lora_params)
  adapted, _ = forward(lora_graphdef, lora_params, TOKENS_BxT)
  merged_graphdef, merged = merge_lora(lora_graphdef, lora_params)
  assert merged_graphdef == graphdef and not has_lora(merged_graphdef, merged)
  assert jax.tree.structure(merged) == jax.tree.structure(params)
  out, _ = forward(merged_graphdef, merged, TOKENS_BxT)
  base, _ = forward(graphdef, params, TOKENS_BxT)
  assert np.abs(np.asarray(adapted) - np.asarray(base)).max() > 1e-2  # the adapter acts
  np.testing.assert_allclose(np.asarray(out), np.asarray(adapted), atol=2e-5, rtol=0)
  # The scale is alpha / rank: the merge adds exactly scale * A @ B to each kernel.
  q = lora_params["layers"][1]["attn"]["q_proj"]
  np.testing.assert_allclose(
      merged["layers"][1]["attn"]["q_proj"]["kernel"],
      q["kernel"] + 0.5 * np.asarray(q["lora"]["lora_a"]) @ np.asarray(q["lora"]["lora_b"]),
      atol=1e-6)


def test_targets_that_match_nothing_and_a_second_adapter_are_refused():
  graphdef, params = _base()
  with pytest.raises(ValueError, match="match no projection"):
    add_lora(graphdef, params, LoRASpec(4, targets="nothing_here"))
  lora_graphdef, lora_params = add_lora(graphdef, params, LoRASpec(4))
  with pytest.raises(ValueError, match="already"):
    add_lora(lora_graphdef, lora_params, LoRASpec(4))
