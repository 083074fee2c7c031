"""Logit parity with transformers' PyTorch models on random tiny configs (no downloads).

Each case builds a torch model from a config, saves it with `save_pretrained`, imports it
with our loader and compares float32 logits on a 520-token prompt (short prompts hide RoPE
errors). The tolerance (1e-4 max absolute logit difference) is fixed: never loosen it.
Weights are drawn with std 0.1 (not HF's 0.02) so attention is far from uniform and the
logits span several units; a positional bug then shows up as a large difference.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from msr_jax.checkpoints.hf import export_hf, import_hf  # noqa: E402
from msr_jax.model import forward  # noqa: E402

TOLERANCE = 1e-4
PROMPT_LENGTH = 520
VOCAB = 256
FWD = jax.jit(forward, static_argnums=0)
_COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
               initializer_range=0.1, attn_implementation="eager")
_LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 128}
# name -> (config class, model class, config overrides).
CASES = {
    "llama3_gqa_untied": ("LlamaConfig", "LlamaForCausalLM",
                          dict(rope_theta=500000.0, rope_scaling=_LLAMA3_SCALING,
                               tie_word_embeddings=False)),
    "llama_tied": ("LlamaConfig", "LlamaForCausalLM",
                   dict(rope_theta=500000.0, tie_word_embeddings=True)),
    "qwen2_bias_tied": ("Qwen2Config", "Qwen2ForCausalLM",
                        dict(rope_theta=1e6, tie_word_embeddings=True)),
    "qwen3_qknorm_untied": ("Qwen3Config", "Qwen3ForCausalLM",
                            dict(rope_theta=1e6, head_dim=32, tie_word_embeddings=False)),
    "qwen3_qknorm_tied": ("Qwen3Config", "Qwen3ForCausalLM",
                          dict(rope_theta=1e6, head_dim=24, tie_word_embeddings=True)),
}


def _torch_logits(model, tokens_BxT: np.ndarray) -> np.ndarray:
  with torch.inference_mode():
    return model(torch.from_numpy(tokens_BxT).long()).logits.float().numpy()


@pytest.fixture(scope="module", params=sorted(CASES))
def saved_case(request, tmp_path_factory):
  """(name, torch model, its saved folder, tokens, torch logits) for one case."""
  config_cls, model_cls, overrides = CASES[request.param]
  torch.manual_seed(0)
  config = getattr(transformers, config_cls)(**_COMMON, **overrides)
  model = getattr(transformers, model_cls)(config).eval()
  folder = tmp_path_factory.mktemp(request.param)
  model.save_pretrained(folder)
  tokens_BxT = np.random.default_rng(0).integers(0, VOCAB, (2, PROMPT_LENGTH)).astype(np.int32)
  return request.param, model, str(folder), tokens_BxT, _torch_logits(model, tokens_BxT)


def test_import_matches_torch_logits(saved_case):
  name, _, folder, tokens_BxT, expected_BxTxV = saved_case
  config, graphdef, params, _ = import_hf(folder)
  if name == "llama3_gqa_untied":  # The case really exercises what it claims.
    assert config.rope_scaling_dict["rope_type"] == "llama3" and config.num_kv_heads == 2
  logits_BxTxV, _ = FWD(graphdef, params, tokens_BxT)
  diff = np.abs(np.asarray(logits_BxTxV) - expected_BxTxV).max()
  assert np.abs(expected_BxTxV).max() > 1.0  # Logits are not trivially small.
  assert diff <= TOLERANCE, f"{name}: max |logit difference| {diff:.3g} > {TOLERANCE}"


def test_export_round_trip_loads_in_transformers(saved_case, tmp_path):
  name, model, folder, tokens_BxT, expected_BxTxV = saved_case
  config, _, params, _ = import_hf(folder)
  export_hf(tmp_path, config, params)
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(
      tmp_path, attn_implementation="eager", trust_remote_code=False)
  assert type(reloaded) is type(model)
  assert reloaded.config.tie_word_embeddings == model.config.tie_word_embeddings
  diff = np.abs(_torch_logits(reloaded.eval(), tokens_BxT) - expected_BxTxV).max()
  assert diff <= TOLERANCE, f"{name}: round trip changed logits by {diff:.3g}"
  # And our own re-import of the export is exact.
  _, graphdef2, params2, _ = import_hf(tmp_path)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params2)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_parity_detects_a_wrong_rope_theta(tmp_path):
  """The parity check is sensitive to the classic silent bug (theta ignored)."""
  torch.manual_seed(0)
  config = transformers.LlamaConfig(**_COMMON, rope_theta=500000.0)
  model = transformers.LlamaForCausalLM(config).eval()
  model.save_pretrained(tmp_path)
  tokens_BxT = np.random.default_rng(0).integers(0, VOCAB, (1, PROMPT_LENGTH)).astype(np.int32)
  expected = _torch_logits(model, tokens_BxT)
  _, graphdef, params, _ = import_hf(tmp_path, rope_theta=10000.0)
  logits, _ = FWD(graphdef, params, tokens_BxT)
  assert np.abs(np.asarray(logits) - expected).max() > 100 * TOLERANCE


def test_bf16_and_sharded_checkpoint_import(tmp_path):
  """A bf16 model saved in several shards (with an index) loads to the same weights."""
  torch.manual_seed(1)
  config = transformers.Qwen2Config(**_COMMON, rope_theta=1e6)
  model = transformers.Qwen2ForCausalLM(config).to(torch.bfloat16).eval()
  model.save_pretrained(tmp_path, max_shard_size="40KB")
  assert os.path.exists(tmp_path / "model.safetensors.index.json")
  assert len([n for n in os.listdir(tmp_path) if n.endswith(".safetensors")]) > 1
  loaded_config, _, params, _ = import_hf(tmp_path)
  assert loaded_config.param_dtype == "float32"
  state = {k: v.float().numpy() for k, v in model.state_dict().items()}
  np.testing.assert_array_equal(np.asarray(params["layers"][1]["attn"]["q_proj"]["kernel"][...]),
                                state["model.layers.1.self_attn.q_proj.weight"].T)
  np.testing.assert_array_equal(np.asarray(params["embed"]["embedding"][...]),
                                state["model.embed_tokens.weight"])
