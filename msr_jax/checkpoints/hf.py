"""Hugging Face folders: import (config.json + safetensors, single or sharded) and export.

The export is what `transformers.AutoModelForCausalLM.from_pretrained` loads: config.json
from `ModelConfig.to_hf_config`, one model.safetensors in torch layout, tokenizer files.
Only safetensors are read: `pytorch_model.bin` is a pickle and is refused.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np

from msr_jax import atomic
from msr_jax.checkpoints import keymap, safetensors_io, tokenizer_io
from msr_jax.checkpoints.errors import CheckpointError
from msr_jax.checkpoints.json_file import read_json
from msr_jax.checkpoints.params import build_params, check_names, named_arrays
from msr_jax.model import ModelConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
KEYMAP = keymap.KeyMap(keymap.HF_KEYMAP)


def read_config(folder: str, **changes) -> ModelConfig:
  path = os.path.join(folder, CONFIG_FILE)
  hf = read_json(path)
  try:
    return ModelConfig.from_hf_config(hf, source=path, **changes)
  except (TypeError, ValueError) as e:
    raise CheckpointError(str(e)) from e


def open_weights(folder: str) -> dict[str, safetensors_io.SafetensorsFile]:
  """{tensor name: the open file that holds it}, from the index or the single file."""
  index_path = os.path.join(folder, INDEX_FILE)
  single_path = os.path.join(folder, WEIGHTS_FILE)
  if os.path.exists(index_path):
    weight_map = read_json(index_path).get("weight_map")
    if not isinstance(weight_map, dict):
      raise CheckpointError(f"{index_path}: missing or malformed field 'weight_map'")
    files: dict[str, safetensors_io.SafetensorsFile] = {}
    where = {}
    for name, filename in weight_map.items():
      path = os.path.join(folder, os.path.basename(str(filename)))
      if path not in files:
        if not os.path.exists(path):
          raise CheckpointError(f"{index_path}: tensor {name!r} is in {filename!r}, "
                                f"which does not exist")
        files[path] = safetensors_io.SafetensorsFile(path)
      if name not in files[path]:
        raise CheckpointError(f"{path}: missing tensor {name!r} (listed in {index_path})")
      where[name] = files[path]
    return where
  if os.path.exists(single_path):
    f = safetensors_io.SafetensorsFile(single_path)
    return {name: f for name in f.keys()}
  raise CheckpointError(f"{folder}: no {WEIGHTS_FILE} or {INDEX_FILE} (pickled "
                        f"pytorch_model.bin files are not loaded: convert to safetensors)")


def import_hf(folder: str, **config_changes):
  """Loads an HF folder: returns (config, graphdef, params, tokenizer or None).

  `config_changes` override config fields (e.g. param_dtype="bfloat16").
  """
  folder = os.fspath(folder)
  if not os.path.isdir(folder):
    raise CheckpointError(f"{folder}: not a folder")
  config = read_config(folder, **config_changes)
  where = open_weights(folder)
  used: set[str] = set()

  def fetch(path: str) -> np.ndarray:
    name, transform = KEYMAP.to_theirs(path)
    if name not in where:
      raise CheckpointError(f"{folder}: missing tensor {name!r} (parameter {path})")
    used.add(name)
    array = where[name].get(name)
    if array.dtype != np.float32:
      array = array.astype(np.float32)  # bf16/f16 -> f32 before layout changes.
    return transform.to_ours(array, config)

  graphdef, params = build_params(config, fetch, source=folder)
  ignored = keymap.HF_IGNORED + (keymap.HF_IGNORED_WHEN_TIED if config.tie_embeddings else ())
  check_names(list(where), used, ignored, source=folder)
  tokenizer = tokenizer_io.load_tokenizer(folder)
  return config, graphdef, params, tokenizer


def export_hf(folder: str, config: ModelConfig, params, tokenizer=None,
              dtype: str | None = None) -> None:
  """Writes an HF folder that `AutoModelForCausalLM.from_pretrained` loads.

  `dtype` (e.g. "bfloat16") is the stored tensor dtype; default `config.param_dtype`.
  """
  folder = os.fspath(folder)
  _check_representable(config, folder)
  os.makedirs(folder, exist_ok=True)
  dtype = jnp.dtype(dtype or config.param_dtype)  # jnp.dtype knows "bfloat16".
  tensors = {}
  for path, array in named_arrays(params).items():
    name, transform = KEYMAP.to_theirs(path)
    tensors[name] = np.ascontiguousarray(
        transform.to_theirs(array.astype(np.float32), config).astype(dtype))
  safetensors_io.save(os.path.join(folder, WEIGHTS_FILE), tensors, metadata={"format": "pt"})
  hf = config.to_hf_config()
  hf["torch_dtype"] = dtype.name
  atomic.write_json(os.path.join(folder, CONFIG_FILE), hf)
  # A stale index from an earlier sharded export would shadow the new single file.
  stale = os.path.join(folder, INDEX_FILE)
  if os.path.exists(stale):
    os.remove(stale)
  tokenizer_io.save_tokenizer(tokenizer, folder)


def _check_representable(config: ModelConfig, folder: str) -> None:
  """Refuses configs whose HF class would hold different tensors than our model: HF Qwen2
  always has q/k/v biases, and HF Llama/Qwen3's `attention_bias` adds an o_proj bias too."""
  if config.architecture == "qwen2" and not config.qkv_bias:
    raise CheckpointError(f"{folder}: cannot export architecture 'qwen2' without qkv_bias "
                          f"(Qwen2ForCausalLM always has q/k/v biases)")
  if config.architecture in ("llama", "qwen3") and config.qkv_bias:
    raise CheckpointError(f"{folder}: cannot export architecture {config.architecture!r} "
                          f"with qkv_bias (its attention_bias also biases o_proj); use "
                          f"architecture 'qwen2' for q/k/v biases")
