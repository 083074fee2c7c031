"""The decoder: cache equivalence on ragged batches, causality, sharding, dtypes."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from msr_jax.model import (Decoder, ModelConfig, forward, init_cache, make_mesh, prefill,
                           shard_params)
from msr_jax.model import rope
from msr_jax.model.layers import FlatLinear, Linear
from msr_jax.model.sharding import batch_sharding, path_to_str, spec_for

TINY = ModelConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_layers=2,
                   num_heads=4, num_kv_heads=2, rope_theta=500000.0)
FWD = jax.jit(forward, static_argnums=0)


def _split(config, seed=0):
  return nnx.split(Decoder(config, rngs=nnx.Rngs(seed)), nnx.Param)


def _tokens(shape, vocab, seed=1):
  return jnp.asarray(np.random.default_rng(seed).integers(0, vocab, shape), jnp.int32)


@pytest.mark.parametrize("config", [
    TINY,
    dataclasses.replace(TINY, qkv_bias=True, architecture="qwen2", tie_embeddings=True),
    dataclasses.replace(TINY, qk_norm=True, architecture="qwen3", head_dim=16),
])
def test_ragged_prefill_then_decode_equals_full_forward(config):
  graphdef, params = _split(config)
  lengths = [5, 9, 2]
  total = 14
  tokens_BxT = _tokens((3, total), config.vocab_size)
  full_BxTxV, _ = FWD(graphdef, params, tokens_BxT)
  # Ragged prefill: right-padded prompts of different lengths in one call.
  prompt_BxP = jnp.where(jnp.arange(9)[None] < jnp.asarray(lengths)[:, None],
                         tokens_BxT[:, :9], 0)
  cache = init_cache(config, 3, 32)
  prefill_BxPxV, cache = FWD(graphdef, params, prompt_BxP, None, cache,
                             jnp.asarray(lengths, jnp.int32))
  np.testing.assert_array_equal(cache.lengths_B, lengths)
  for b, n in enumerate(lengths):
    np.testing.assert_allclose(prefill_BxPxV[b, :n], full_BxTxV[b, :n], atol=1e-5, rtol=0)
  # Then one token at a time; each row continues at its own length.
  for step in range(total - max(lengths) + 3):
    idx = jnp.asarray(lengths) + step
    next_B1 = jnp.take_along_axis(tokens_BxT, jnp.minimum(idx, total - 1)[:, None], axis=1)
    step_Bx1xV, cache = FWD(graphdef, params, next_B1, idx[:, None], cache)
    for b in range(3):
      if idx[b] < total:
        np.testing.assert_allclose(step_Bx1xV[b, 0], full_BxTxV[b, idx[b]], atol=1e-5, rtol=0)


@pytest.mark.parametrize("config", [TINY, dataclasses.replace(TINY, dtype="bfloat16")])
def test_prefill_equals_forward_on_an_empty_cache_and_decodes_on(config):
  """`prefill` attends over the prompt alone; the cache it builds must be the one a
  forward into an empty cache builds, slot for slot, and decoding must continue on it."""
  graphdef, params = _split(config)
  lengths = jnp.asarray([5, 9, 2], jnp.int32)
  tokens_BxT = _tokens((3, 9), config.vocab_size)
  via_cache, cache_a = FWD(graphdef, params, tokens_BxT, None, init_cache(config, 3, 16),
                           lengths)
  direct, cache_b = jax.jit(prefill, static_argnums=(0, 3))(graphdef, params, tokens_BxT, 16,
                                                             lengths)
  assert cache_b.capacity == 16 and cache_b.k_LxBxKxSxH.dtype == cache_a.k_LxBxKxSxH.dtype
  np.testing.assert_array_equal(cache_b.lengths_B, lengths)
  tol = 1e-5 if config.dtype == "float32" else 3e-2
  np.testing.assert_allclose(direct, via_cache, atol=tol, rtol=0)
  for b, n in enumerate([5, 9, 2]):
    for a_LxKxSxH, b_LxKxSxH in ((cache_a.k_LxBxKxSxH[:, b], cache_b.k_LxBxKxSxH[:, b]),
                                 (cache_a.v_LxBxKxSxH[:, b], cache_b.v_LxBxKxSxH[:, b])):
      np.testing.assert_allclose(np.asarray(b_LxKxSxH[:, :, :n], np.float32),
                                 np.asarray(a_LxKxSxH[:, :, :n], np.float32), atol=tol, rtol=0)
  next_Bx1 = _tokens((3, 1), config.vocab_size, seed=2)
  step_a, _ = FWD(graphdef, params, next_Bx1, None, cache_a)
  step_b, _ = FWD(graphdef, params, next_Bx1, None, cache_b)
  np.testing.assert_allclose(step_b, step_a, atol=tol, rtol=0)
  with pytest.raises(ValueError, match="capacity 4 is below the 9 tokens"):
    prefill(graphdef, params, tokens_BxT, 4)


def test_logits_at_one_position_per_row_equal_the_full_logits_there():
  """`logits_at_B` (a prefill that only samples the next token) gives, for each row, the
  full forward's logits at that row's position, and the same cache."""
  graphdef, params = _split(TINY)
  tokens_BxT = _tokens((3, 9), TINY.vocab_size)
  lengths_B = jnp.asarray([5, 9, 2], jnp.int32)
  run = jax.jit(prefill, static_argnums=(0, 3))
  full_BxTxV, cache_full = run(graphdef, params, tokens_BxT, 12, lengths_B)
  last_Bx1xV, cache_last = run(graphdef, params, tokens_BxT, 12, lengths_B, None,
                               lengths_B - 1)
  assert last_Bx1xV.shape == (3, 1, TINY.vocab_size)
  for b, n in enumerate([5, 9, 2]):
    np.testing.assert_allclose(last_Bx1xV[b, 0], full_BxTxV[b, n - 1], atol=1e-5, rtol=0)
  np.testing.assert_array_equal(cache_last.k_LxBxKxSxH, cache_full.k_LxBxKxSxH)
  # Rows differ: the test would pass for a gather that took one row's position for all.
  assert not np.allclose(last_Bx1xV[0, 0], full_BxTxV[0, 8], atol=1e-3)
  on_positions, _ = forward(graphdef, params, tokens_BxT, logits_at_B=jnp.asarray([0, 3, 8]))
  wanted_BxV = full_BxTxV[jnp.arange(3), jnp.asarray([0, 3, 8])]
  np.testing.assert_allclose(on_positions[:, 0], wanted_BxV, atol=1e-5, rtol=0)


def test_segments_compute_each_packed_document_as_if_alone():
  """GQA model, ragged documents (3 + 5 + 1 tokens, then a 2-token one in row 2): each
  document's logits equal a forward of it alone; gradients do not cross documents."""
  graphdef, params = _split(TINY)
  tokens_BxT = _tokens((2, 9), TINY.vocab_size, seed=4)
  segments_BxT = np.asarray([[1, 1, 1, 2, 2, 2, 2, 2, 3], [1, 1, 1, 1, 1, 1, 1, 2, 2]])
  packed_BxTxV, _ = FWD(graphdef, params, tokens_BxT, segment_ids_BxT=segments_BxT)
  for b in range(2):
    for segment in np.unique(segments_BxT[b]):
      where = np.flatnonzero(segments_BxT[b] == segment)
      alone_1xTxV, _ = FWD(graphdef, params, tokens_BxT[b:b + 1, where])
      np.testing.assert_allclose(packed_BxTxV[b, where], alone_1xTxV[0], atol=1e-5, rtol=0)
  embed_1xTxD = nnx.merge(graphdef, params).embed(tokens_BxT[:1])

  def last_of_second(x_1xTxD):  # document 2's last output, as a function of the inputs
    model = nnx.merge(graphdef, params)
    tables = rope.tables(jnp.asarray([[0, 1, 2, 0, 1, 2, 3, 4, 0]]), TINY)
    for i, block in enumerate(model.layers):
      x_1xTxD, _, _ = block(x_1xTxD, tables, i, segment_ids_BxT=segments_BxT[:1])
    return x_1xTxD[0, 7].sum()

  grad_TxD = jax.grad(last_of_second)(embed_1xTxD)[0]
  assert np.abs(grad_TxD[3:8]).max() > 0
  np.testing.assert_array_equal(grad_TxD[:3], 0.0)
  np.testing.assert_array_equal(grad_TxD[8:], 0.0)
  with pytest.raises(ValueError, match="segment_ids_BxT"):  # a cache has no documents
    forward(graphdef, params, tokens_BxT, cache=init_cache(TINY, 2, 12),
            segment_ids_BxT=segments_BxT)


def test_reading_a_cache_without_writing_equals_writing_it():
  """`write_cache=False` (context-frozen's decision pass) gives the logits of the ordinary
  cached forward, for rows of different lengths, and hands the cache back untouched."""
  graphdef, params = _split(TINY)
  lengths = jnp.asarray([5, 9, 2], jnp.int32)
  _, cache = prefill(graphdef, params, _tokens((3, 9), TINY.vocab_size), 16, lengths)
  new_Bx4 = _tokens((3, 4), TINY.vocab_size, seed=3)
  positions_Bx4 = lengths[:, None] + jnp.arange(4)[None]
  written, _ = forward(graphdef, params, new_Bx4, positions_Bx4, cache=cache)
  read, same = forward(graphdef, params, new_Bx4, positions_Bx4, cache=cache,
                       write_cache=False)
  np.testing.assert_allclose(read, written, atol=1e-5, rtol=0)
  assert same is cache


def test_default_positions_continue_after_cache():
  graphdef, params = _split(TINY)
  tokens_BxT = _tokens((2, 8), TINY.vocab_size)
  full, _ = FWD(graphdef, params, tokens_BxT)
  cache = init_cache(TINY, 2, 8)
  _, cache = forward(graphdef, params, tokens_BxT[:, :5], cache=cache)
  tail, _ = forward(graphdef, params, tokens_BxT[:, 5:], cache=cache)
  np.testing.assert_allclose(tail, full[:, 5:], atol=1e-5, rtol=0)


def test_rope_tables_from_static_positions_equal_the_traced_ones():
  """Default positions are numpy, so RoPE's tables become constants of the program; they
  must match the tables computed from traced positions (explicit or after a cache)."""
  positions_BxT = np.broadcast_to(np.arange(700, dtype=np.int32), (2, 700))
  static = rope.tables(positions_BxT, TINY)
  assert all(isinstance(table, np.ndarray) for table in static)
  traced = jax.jit(lambda p: rope.tables(p, TINY))(jnp.asarray(positions_BxT))
  for a, b in zip(static, traced):
    np.testing.assert_allclose(a, b, atol=2e-6, rtol=0)
  graphdef, params = _split(TINY)
  tokens_BxT = _tokens((2, 9), TINY.vocab_size)
  default, _ = FWD(graphdef, params, tokens_BxT)
  explicit, _ = FWD(graphdef, params, tokens_BxT, jnp.broadcast_to(jnp.arange(9), (2, 9)))
  np.testing.assert_allclose(default, explicit, atol=1e-5, rtol=0)


def test_flat_projections_equal_batched_ones():
  """`FlatLinear` (v, o and the MLP) is `layers.Linear` (`nnx.Linear` with an optional LoRA
  adapter, here none) over the tokens flattened: the same parameters, logits and gradients
  as the batched dot; queries and keys stay batched."""
  graphdef, params = _split(TINY)
  batched = Decoder(TINY, rngs=nnx.Rngs(0))
  swapped = 0
  for _, module in nnx.iter_modules(batched):
    if type(module) is FlatLinear:
      module.__class__ = Linear
      swapped += 1
  # v, o, gate, up, down in every layer, and the untied LM head
  assert swapped == TINY.num_layers * 5 + (not TINY.tie_embeddings)
  block = nnx.merge(graphdef, params).layers[0]
  assert type(block.attn.q_proj) is Linear and type(block.attn.k_proj) is Linear
  batched_graphdef, batched_params = nnx.split(batched, nnx.Param)
  assert jax.tree.structure(batched_params) == jax.tree.structure(params)
  tokens_BxT = _tokens((3, 10), TINY.vocab_size)

  def loss(graphdef, params):
    logits_BxTxV, _ = forward(graphdef, params, tokens_BxT)
    return jnp.mean(jax.nn.log_softmax(logits_BxTxV)[..., 3]), logits_BxTxV

  (_, flat_logits), flat_grads = jax.value_and_grad(loss, argnums=1, has_aux=True)(
      graphdef, params)
  (_, ref_logits), ref_grads = jax.value_and_grad(loss, argnums=1, has_aux=True)(
      batched_graphdef, batched_params)
  np.testing.assert_allclose(flat_logits, ref_logits, atol=1e-6, rtol=0)
  for got, want in zip(jax.tree.leaves(flat_grads), jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(got, want, atol=1e-7, rtol=1e-5)


def test_causality_gradient_is_exactly_zero():
  graphdef, params = _split(TINY)
  tokens_BxT = _tokens((1, 12), TINY.vocab_size)
  embeds = params["embed"]["embedding"][...][tokens_BxT]
  t = 6

  def logit_sum_at_t(embeds_BxTxD):
    model = nnx.merge(graphdef, params)
    rope_tables = rope.tables(jnp.arange(12)[None], TINY)
    x = embeds_BxTxD
    for block in model.layers:
      x, _, _ = block(x, rope_tables)
    return model.embed.attend(model.final_norm(x))[0, t].sum()

  grad_BxTxD = jax.grad(logit_sum_at_t)(embeds)
  assert np.all(np.asarray(grad_BxTxD[:, t + 1:]) == 0.0)
  assert np.any(np.asarray(grad_BxTxD[:, :t + 1]) != 0.0)


def test_rope_theta_changes_logits():
  graphdef, params = _split(TINY)
  other, _ = _split(dataclasses.replace(TINY, rope_theta=10.0))
  tokens = _tokens((1, 16), TINY.vocab_size)
  a, _ = forward(graphdef, params, tokens)
  b, _ = forward(other, params, tokens)
  assert float(jnp.abs(a - b).max()) > 1e-3


def test_bf16_compute_and_params():
  config = dataclasses.replace(TINY, dtype="bfloat16", param_dtype="bfloat16")
  graphdef, params = _split(config)
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(params))
  ref_graphdef, _ = _split(TINY)
  params32 = jax.tree.map(lambda x: x.astype(jnp.float32), params)
  tokens = _tokens((2, 16), TINY.vocab_size)
  low, _ = FWD(graphdef, params, tokens)
  high, _ = FWD(ref_graphdef, params32, tokens)
  assert low.dtype == jnp.float32 and np.all(np.isfinite(low))
  # bf16 keeps ~3 significant digits; the logits must still agree closely.
  assert float(jnp.abs(low - high).max()) < 0.05 * float(jnp.abs(high).max()) + 0.05


def test_sharded_forward_matches_single_device():
  assert jax.device_count() == 8, "tests/conftest.py sets 8 simulated CPU devices"
  config = dataclasses.replace(TINY, hidden_size=64, intermediate_size=128, vocab_size=128)
  graphdef, params = _split(config)
  tokens = _tokens((4, 24), config.vocab_size)
  expected, _ = FWD(graphdef, params, tokens)
  mesh = make_mesh(data=2, fsdp=4)
  sharded = shard_params(params, mesh)
  kernel = sharded["layers"][0]["attn"]["q_proj"]["kernel"][...]
  assert kernel.sharding.spec == jax.sharding.PartitionSpec("fsdp", None)
  got, _ = FWD(graphdef, sharded, jax.device_put(tokens, batch_sharding(mesh, 2)))
  np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_sharding_rule_falls_back_when_not_divisible():
  mesh = make_mesh(data=2, fsdp=4)
  assert spec_for("layers.0.mlp.up_proj.kernel", (6, 8), mesh) == jax.sharding.PartitionSpec(None, None)
  assert spec_for("final_norm.scale", (8,), mesh) == jax.sharding.PartitionSpec()


def test_param_paths_and_count():
  config = ModelConfig.preset("townworld_tiny", vocab_size=600)
  _, params = _split(config)
  paths = {path_to_str(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)}
  assert "layers.3.attn.q_proj.kernel" in paths and "lm_head.kernel" not in paths
  count = sum(x.size for x in jax.tree.leaves(params))
  assert count == config.num_params()
  assert 0.7e6 < count < 0.9e6


def test_hf_config_round_trip_and_errors():
  for name in ("smollm2_135m", "qwen2_0p5b", "llama3_1b"):
    config = ModelConfig.preset(name)
    again = ModelConfig.from_hf_config(config.to_hf_config())
    assert again == config, name
  with pytest.raises(ValueError, match="model_type"):
    ModelConfig.from_hf_config({"model_type": "gpt2"}, source="x/config.json")
  with pytest.raises(ValueError, match="num_hidden_layers"):
    ModelConfig.from_hf_config({"model_type": "llama", "vocab_size": 3, "hidden_size": 4,
                                "intermediate_size": 8, "num_attention_heads": 2})
