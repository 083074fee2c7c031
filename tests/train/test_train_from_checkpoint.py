"""`msr train` from anything `msr_jax.load` reads: a tiny Hugging Face folder (Llama, Qwen2,
Qwen3) and a GGUF file built here, trained a few steps with the checkpoint's own tokenizer
and chat template; a tokenizer of another model, and a dtype for the checkpoint."""

from __future__ import annotations

import pathlib
import sys

import jax
import numpy as np
import pytest
import transformers

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "data"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "checkpoints"))

from data_testlib import (CHATML, byte_bpe_tokenizer, conversation, hf_tokenizer,  # noqa: E402
                          word_level_tokenizer)
from msr_jax.data.jsonl import write_records  # noqa: E402
from msr_jax.errors import ConfigError  # noqa: E402
from msr_jax.runner.config import load_config  # noqa: E402
from msr_jax.train import setup  # noqa: E402
from msr_jax.train.loop import train_loop  # noqa: E402

ARCHITECTURES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {"tie_word_embeddings": True}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 16}),
}


def _hf_folder(folder: pathlib.Path, arch: str, extra_corpus=()) -> pathlib.Path:
  """A random tiny model of `arch` and a byte-level BPE tokenizer with a ChatML template."""
  import torch
  tokenizer = hf_tokenizer(byte_bpe_tokenizer(extra_corpus), CHATML)
  config_cls, model_cls, extra = ARCHITECTURES[arch]
  torch.manual_seed(0)
  config = getattr(transformers, config_cls)(
      vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512, **extra)
  getattr(transformers, model_cls)(config).save_pretrained(folder)
  tokenizer.save_pretrained(folder)
  return folder


def _records(path: pathlib.Path) -> str:
  write_records(path, [conversation(rid=f"c{i}") for i in range(12)])
  return str(path)


def _config(tmp_path, checkpoint: str, **changes):
  config = load_config("configs/train.py", [
      f"--config.model.checkpoint={checkpoint}", "--config.data.tokenizer=",
      "--config.train.steps=3", "--config.train.batch_size=2", "--config.guard.every=0",
      "--config.checkpoint.every=0", "--config.progress=False",
      "--config.data.context_buckets=(32,64,128)", "--config.data.decision_buckets=(16,32,64)",
      "--config.data.max_context_tokens=128", "--config.optim.learning_rate=0.01"])
  config.data.paths = (_records(tmp_path / "records.jsonl"),)
  config.run_dir = str(tmp_path / "run")
  config.resume = False
  for key, value in changes.items():
    section, field = key.split(".")
    config[section][field] = value
  return config


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_trains_from_a_hugging_face_folder_with_its_own_tokenizer(tmp_path, arch):
  folder = _hf_folder(tmp_path / "hf", arch)
  config = _config(tmp_path, str(folder))
  before = setup.load_checkpoint(config.model)[2]
  result = train_loop(config)
  assert result.summary["step"] == 3 and np.isfinite(result.summary["final_loss"])
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                       before, result.state.params)
  assert max(jax.tree.leaves(moved)) > 0  # the checkpoint's weights were trained


def test_trains_from_a_gguf_file_and_takes_its_tokenizer(tmp_path):
  import torch
  import ckpt_fixtures as fx
  c = fx.TINY
  torch.manual_seed(0)
  model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
      vocab_size=c.vocab_size, hidden_size=c.hidden_size,
      intermediate_size=c.intermediate_size, num_hidden_layers=c.num_layers,
      num_attention_heads=c.num_heads, num_key_value_heads=c.num_kv_heads,
      rope_theta=c.rope_theta, rms_norm_eps=c.rms_norm_eps, tie_word_embeddings=False,
      max_position_embeddings=c.max_position_embeddings))
  state = {k: v.float().numpy() for k, v in model.state_dict().items()}
  path = tmp_path / "tiny.gguf"
  fx.write_gguf(path, fx.gguf_tensors(state, c), c, "F32")
  result = train_loop(_config(tmp_path, str(path)))
  assert result.summary["step"] == 3 and np.isfinite(result.summary["final_loss"])
  # The GGUF given as the tokenizer is read as one (its metadata, not its bytes as text).
  adapter, vocab_size, _ = setup.make_adapter(str(path))
  assert vocab_size == c.vocab_size
  assert len(adapter.encode(conversation().messages, [2]).tokens_T) > 0


def test_a_tokenizer_of_another_model_is_an_error_naming_the_field(tmp_path):
  folder = _hf_folder(tmp_path / "hf", "llama")
  # Larger than the model's vocabulary (Townworld's 543 tokens against 300).
  config = _config(tmp_path, str(folder), **{
      "data.tokenizer": "msr_jax.world.tokenizer:training_adapter"})
  with pytest.raises(ConfigError, match=r"543 tokens do not fit the model's vocabulary of"):
    train_loop(config)
  # Smaller, so it would fit, but another than the checkpoint's own: trained on, it would
  # be the wrong vocabulary, silently.
  small = tmp_path / "words.json"
  word_level_tokenizer().save(str(small))
  config = _config(tmp_path, str(folder), **{"data.tokenizer": str(small)})
  with pytest.raises(ConfigError, match=r"config.data.tokenizer=.* has \d+ tokens, but the "
                                        r"tokenizer of config.model.checkpoint=.* has 300"):
    train_loop(config)
  config = _config(tmp_path, str(folder))
  config.data.tokenizer, config.model.checkpoint = "", ""
  with pytest.raises(ConfigError, match="config.data.tokenizer: empty"):
    train_loop(config)
  config = _config(tmp_path, str(folder), **{"model.hidden_size": 64})
  with pytest.raises(ConfigError, match=r"config.model.hidden_size=64: a checkpoint"):
    train_loop(config)


def test_dtypes_apply_to_a_loaded_checkpoint(tmp_path):
  import jax.numpy as jnp
  folder = _hf_folder(tmp_path / "hf", "llama")
  config = _config(tmp_path, str(folder), **{"model.dtype": "bfloat16",
                                            "model.param_dtype": "bfloat16"})
  model_config, _, params, _ = setup.load_checkpoint(config.model)
  assert model_config.dtype == model_config.param_dtype == "bfloat16"
  assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype("bfloat16")}
  result = train_loop(config)
  assert np.isfinite(result.summary["final_loss"])
  assert {x.dtype for x in jax.tree.leaves(result.state.params)} == {jnp.dtype("bfloat16")}
  # Adam's moments stay float32 under bf16 parameters (config.optim.state_dtype).
  moments = [x for x in jax.tree.leaves(result.state.opt_state)
             if getattr(x, "shape", ()) != ()]
  assert moments and {x.dtype for x in moments} == {jnp.dtype("float32")}


def test_the_gpu_fine_tuning_config_runs_here_on_a_tiny_folder(tmp_path):
  """configs/hf_finetune.py (bf16 parameters and compute, f32 moments, fsdp over every
  device) on a tiny Llama folder and this machine's 8 forced CPU devices: two steps."""
  import jax.numpy as jnp
  folder = _hf_folder(tmp_path / "hf", "llama")
  records = _records(tmp_path / "chats.jsonl")
  config = load_config("configs/hf_finetune.py:llama-3.2-1b", [
      f"--config.model.checkpoint={folder}", f"--config.data.paths=('{records}',)",
      "--config.train.steps=2", "--config.train.batch_size=8", "--config.guard.every=0",
      "--config.checkpoint.every=0", "--config.progress=False", "--config.tensorboard=False",
      "--config.optim.total_steps=10", "--config.optim.warmup_steps=1"])
  config.run_dir, config.resume = str(tmp_path / "run"), False
  result = train_loop(config)
  assert np.isfinite(result.summary["final_loss"]) and result.summary["step"] == 2
  kernel = result.state.params["layers"][0]["mlp"]["up_proj"]["kernel"]
  assert kernel.dtype == jnp.bfloat16 and len(kernel.sharding.device_set) == jax.device_count()
  for arg in ("qwen2.5-0.5b", "llama-3.2-1b"):
    assert load_config(f"configs/hf_finetune.py:{arg}").mesh.fsdp == 0
