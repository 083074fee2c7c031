"""GGUF import: small files written with gguf.GGUFWriter from a random tiny llama."""

from __future__ import annotations

import dataclasses
import shutil

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

import ckpt_fixtures as fx  # noqa: E402
from msr_jax.checkpoints.errors import CheckpointError  # noqa: E402
from msr_jax.checkpoints.gguf_import import import_gguf  # noqa: E402
from msr_jax.checkpoints.hf import export_hf  # noqa: E402
from msr_jax.model import forward  # noqa: E402

FWD = jax.jit(forward, static_argnums=0)
PROMPT_LENGTH = 520
# Worst-case rounding error of one element, in units of its block's quantisation step
# (Q4_0 can clip the largest value by a full step; the rest round to half a step), with
# slack for the float16 scale.
STEP_BOUND = {"Q8_0": 0.6, "Q4_0": 1.05, "Q4_1": 0.6}


def _step(x_RxC: np.ndarray, qtype: str) -> np.ndarray:
  """Each element's quantisation step, from its 32-wide block."""
  blocks = x_RxC.reshape(x_RxC.shape[0], -1, 32)
  if qtype == "Q8_0":
    step = np.abs(blocks).max(-1) / 127
  elif qtype == "Q4_0":
    step = np.abs(blocks).max(-1) / 8
  else:
    step = (blocks.max(-1) - blocks.min(-1)) / 15
  return np.repeat(step, 32, axis=-1)


@pytest.fixture(scope="module")
def torch_llama():
  torch.manual_seed(0)
  c = fx.TINY
  config = transformers.LlamaConfig(
      vocab_size=c.vocab_size, hidden_size=c.hidden_size,
      intermediate_size=c.intermediate_size, num_hidden_layers=c.num_layers,
      num_attention_heads=c.num_heads, num_key_value_heads=c.num_kv_heads,
      rope_theta=c.rope_theta, rms_norm_eps=c.rms_norm_eps, tie_word_embeddings=False,
      max_position_embeddings=c.max_position_embeddings, initializer_range=0.1,
      attn_implementation="eager")
  model = transformers.LlamaForCausalLM(config).eval()
  state = {k: v.float().numpy() for k, v in model.state_dict().items()}
  tokens_BxT = np.random.default_rng(0).integers(0, c.vocab_size, (1, PROMPT_LENGTH))
  with torch.inference_mode():
    logits = model(torch.from_numpy(tokens_BxT)).logits.numpy()
  return state, tokens_BxT.astype(np.int32), logits


@pytest.fixture(scope="module")
def f32_file(torch_llama, tmp_path_factory):
  path = tmp_path_factory.mktemp("gguf") / "tiny-f32.gguf"
  fx.write_gguf(path, fx.gguf_tensors(torch_llama[0], fx.TINY), fx.TINY, "F32")
  return path


def test_f32_gguf_matches_torch_logits(torch_llama, f32_file):
  _, tokens_BxT, expected = torch_llama
  config, graphdef, params, _ = import_gguf(f32_file)
  assert config == dataclasses.replace(fx.TINY, pad_token_id=None, tie_embeddings=False)
  logits, _ = FWD(graphdef, params, tokens_BxT)
  assert np.abs(np.asarray(logits) - expected).max() <= 1e-4


@pytest.mark.parametrize("arch,overrides", [
    ("qwen2", dict(rope_theta=1e6)),
    ("qwen3", dict(rope_theta=1e6, head_dim=32, tie_word_embeddings=True)),
])
def test_qwen_gguf_matches_torch_logits(tmp_path, arch, overrides):
  """Qwen2 (q/k/v biases) and Qwen3 (qk-norm) files: no Q/K permutation to undo."""
  torch.manual_seed(1)
  c = fx.TINY
  config = getattr(transformers, f"{arch.capitalize()}Config")(
      vocab_size=c.vocab_size, hidden_size=c.hidden_size,
      intermediate_size=c.intermediate_size, num_hidden_layers=c.num_layers,
      num_attention_heads=c.num_heads, num_key_value_heads=c.num_kv_heads,
      rms_norm_eps=c.rms_norm_eps, initializer_range=0.1, attn_implementation="eager",
      **overrides)
  model = getattr(transformers, f"{arch.capitalize()}ForCausalLM")(config).eval()
  state = {k: v.float().numpy() for k, v in model.state_dict().items()}
  ours = fx.TINY.replace(architecture=arch, rope_theta=1e6, qkv_bias=arch == "qwen2",
                         qk_norm=arch == "qwen3", head_dim=overrides.get("head_dim", 16),
                         tie_embeddings=overrides.get("tie_word_embeddings", False))
  path = tmp_path / f"{arch}.gguf"
  fx.write_gguf(path, fx.gguf_tensors(state, ours, arch), ours, "F32", arch=arch)
  loaded_config, graphdef, params, _ = import_gguf(path)
  assert loaded_config.replace(pad_token_id=None) == ours
  tokens_BxT = np.random.default_rng(2).integers(0, c.vocab_size, (1, PROMPT_LENGTH))
  with torch.inference_mode():
    expected = model(torch.from_numpy(tokens_BxT)).logits.numpy()
  logits, _ = FWD(graphdef, params, tokens_BxT.astype(np.int32))
  assert np.abs(np.asarray(logits) - expected).max() <= 1e-4


def test_gguf_export_to_hf_loads_in_transformers(torch_llama, f32_file, tmp_path):
  _, tokens_BxT, expected = torch_llama
  config, _, params, tokenizer = import_gguf(f32_file)
  export_hf(tmp_path, config, params, tokenizer)
  model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path,
                                                            attn_implementation="eager")
  with torch.inference_mode():
    logits = model(torch.from_numpy(tokens_BxT).long()).logits.numpy()
  assert np.abs(logits - expected).max() <= 1e-4
  reloaded = transformers.AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
  assert reloaded(" the")["input_ids"] == tokenizer(" the")["input_ids"] == [258]


@pytest.mark.parametrize("qtype", ["F16", "Q8_0", "Q4_0", "Q4_1"])
def test_quantized_import_within_quantisation_error(torch_llama, tmp_path, qtype):
  from gguf import quants
  state = torch_llama[0]
  tensors = fx.gguf_tensors(state, fx.TINY)
  path = tmp_path / f"tiny-{qtype}.gguf"
  fx.write_gguf(path, tensors, fx.TINY, qtype)
  _, _, params, _ = import_gguf(path)
  ours = params["layers"][1]["attn"]["k_proj"]["kernel"][...]
  ours_hf = np.asarray(ours).T  # (out, in), HF row order.
  weight = state["model.layers.1.self_attn.k_proj.weight"]
  # Exact: our tensor, permuted back as the converter does, is what the file decodes to.
  permuted = fx.llama_cpp_permute(ours_hf, fx.TINY.num_heads, fx.TINY.num_kv_heads)
  if qtype == "F16":
    np.testing.assert_array_equal(permuted, tensors["blk.1.attn_k.weight"].astype(np.float16))
    np.testing.assert_allclose(ours_hf, weight, rtol=2 ** -11, atol=1e-7)
  else:
    qt = gguf.GGMLQuantizationType[qtype]
    decoded = quants.dequantize(quants.quantize(tensors["blk.1.attn_k.weight"], qt), qt)
    np.testing.assert_array_equal(permuted, decoded)
    error = np.abs(ours_hf - weight)
    assert np.all(error <= STEP_BOUND[qtype] * _step(weight, qtype) + 1e-7)
    assert error.max() > 0  # It really was quantised.
  embed = np.asarray(params["embed"]["embedding"][...])
  np.testing.assert_allclose(embed, state["model.embed_tokens.weight"],
                             atol=float(np.abs(state["model.embed_tokens.weight"]).max()) / 7)


def test_tokenizer_rebuilt_from_metadata(f32_file):
  *_, tokenizer = import_gguf(f32_file)
  ids = tokenizer(" the the<|end|>")["input_ids"]
  assert ids == [258, 258, 259]
  assert tokenizer.decode(ids) == " the the<|end|>"
  assert tokenizer.decode(ids, skip_special_tokens=True) == " the the"
  assert tokenizer.eos_token == tokenizer.bos_token == "<|end|>"
  assert tokenizer.decode(tokenizer("héllo wörld 42")["input_ids"]) == "héllo wörld 42"
  chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
  assert chat == "hi<|end|>"


def _tensors(torch_llama):
  return fx.gguf_tensors(torch_llama[0], fx.TINY)


def test_unknown_architecture_is_refused(torch_llama, tmp_path):
  path = tmp_path / "other.gguf"
  fx.write_gguf(path, _tensors(torch_llama), fx.TINY, "F32", arch="gpt2")
  with pytest.raises(CheckpointError, match=r"other\.gguf.*general\.architecture.*'gpt2'"):
    import_gguf(path)


def test_missing_tensor_is_named(torch_llama, tmp_path):
  tensors = _tensors(torch_llama)
  del tensors["blk.1.ffn_up.weight"]
  path = tmp_path / "missing.gguf"
  fx.write_gguf(path, tensors, fx.TINY, "F32")
  with pytest.raises(CheckpointError, match=r"missing\.gguf.*'blk\.1\.ffn_up\.weight'"):
    import_gguf(path)


def test_misshaped_tensor_is_named(torch_llama, tmp_path):
  tensors = _tensors(torch_llama)
  tensors["blk.0.ffn_gate.weight"] = tensors["blk.0.ffn_gate.weight"][:64]
  path = tmp_path / "shape.gguf"
  fx.write_gguf(path, tensors, fx.TINY, "F32")
  with pytest.raises(CheckpointError, match=r"shape\.gguf.*layers\.0\.mlp\.gate_proj.*shape"):
    import_gguf(path)


def test_missing_field_is_named(torch_llama, tmp_path):
  path = tmp_path / "nofield.gguf"
  fx.write_gguf(path, _tensors(torch_llama), fx.TINY, "F32",
                skip_fields=("llama.block_count",))
  with pytest.raises(CheckpointError, match=r"nofield\.gguf.*'llama\.block_count'"):
    import_gguf(path)


def test_unsupported_tokenizer_is_refused(torch_llama, tmp_path):
  path = tmp_path / "spm.gguf"
  fx.write_gguf(path, _tensors(torch_llama), fx.TINY, "F32", tokenizer="llama")
  with pytest.raises(CheckpointError, match=r"spm\.gguf.*tokenizer\.ggml\.model.*'llama'"):
    import_gguf(path)


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_file_is_refused(f32_file, tmp_path, keep):
  path = tmp_path / "cut.gguf"
  shutil.copy(f32_file, path)
  data = path.read_bytes()
  path.write_bytes(data[:int(len(data) * keep)])
  with pytest.raises(CheckpointError, match=r"cut\.gguf.*truncated"):
    import_gguf(path)
