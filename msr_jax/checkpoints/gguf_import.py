"""GGUF import (llama.cpp files of the llama, qwen2 and qwen3 architectures).

Tensors are dequantised to float32 with the `gguf` package (F32, F16, BF16, Q8_0, Q4_0,
Q4_1 and the other types `gguf.quants` knows). llama.cpp's llama converter permutes the
rows of the query and key weights for GGML's RoPE layout; the llama key map's
"gguf_q"/"gguf_k" transforms undo that (the Qwen converters do not permute). The
tokenizer is rebuilt from the `tokenizer.ggml.*` metadata.
"""

from __future__ import annotations

import os

import numpy as np

from msr_jax.checkpoints import gguf_tokenizer, keymap
from msr_jax.checkpoints.errors import CheckpointError
from msr_jax.checkpoints.params import build_params, check_names
from msr_jax.model import ModelConfig

KEYMAPS = {arch: keymap.KeyMap(rows) for arch, rows in keymap.GGUF_KEYMAPS.items()}
SUPPORTED_ARCHITECTURES = tuple(KEYMAPS)
# Our config field -> GGUF metadata key ("{arch}" is general.architecture).
CONFIG_FIELDS: dict[str, str] = {
    "num_layers": "{arch}.block_count",
    "hidden_size": "{arch}.embedding_length",
    "intermediate_size": "{arch}.feed_forward_length",
    "num_heads": "{arch}.attention.head_count",
    "num_kv_heads": "{arch}.attention.head_count_kv",
    "head_dim": "{arch}.attention.key_length",
    "rope_theta": "{arch}.rope.freq_base",
    "rms_norm_eps": "{arch}.attention.layer_norm_rms_epsilon",
    "max_position_embeddings": "{arch}.context_length",
    "vocab_size": "{arch}.vocab_size",
    "bos_token_id": "tokenizer.ggml.bos_token_id",
    "eos_token_id": "tokenizer.ggml.eos_token_id",
    "pad_token_id": "tokenizer.ggml.padding_token_id",
}
REQUIRED_FIELDS = ("num_layers", "hidden_size", "intermediate_size", "num_heads")
# Defaults llama.cpp itself assumes when a key is absent.
DEFAULTS = {"rope_theta": 10000.0, "rms_norm_eps": 1e-5}
GGUF_MAGIC = b"GGUF"


def is_gguf(path: str) -> bool:
  if not os.path.isfile(path):
    return False
  with open(path, "rb") as f:
    return f.read(4) == GGUF_MAGIC


def open_reader(path: str):
  import gguf
  try:
    return gguf.GGUFReader(path)
  except Exception as e:  # The reader raises ValueError, IndexError, struct errors...
    raise CheckpointError(f"{path}: not a readable GGUF file (truncated or corrupt?): "
                          f"{type(e).__name__}: {e}") from e


def read_fields(reader, path: str) -> dict:
  """{metadata key: python value} (strings decoded, arrays as lists)."""
  fields = {}
  for key, field in reader.fields.items():
    try:
      fields[key] = field.contents()
    except Exception as e:
      raise CheckpointError(f"{path}: field {key!r}: unreadable: {e}") from e
  return fields


def read_config(fields: dict, tensors: dict, path: str, **changes) -> ModelConfig:
  arch = fields.get("general.architecture")
  if arch not in SUPPORTED_ARCHITECTURES:
    raise CheckpointError(f"{path}: field 'general.architecture': unsupported architecture "
                          f"{arch!r}; supported: {list(SUPPORTED_ARCHITECTURES)}")
  kwargs = dict(DEFAULTS)
  for ours, key in CONFIG_FIELDS.items():
    value = fields.get(key.format(arch=arch))
    if isinstance(value, float):
      # Stored as float32: 1e-5 reads back as 9.99999975e-06. The shortest decimal that
      # rounds to the same float32 is the value the converter wrote.
      value = float(str(np.float32(value)))
    if value is not None:
      kwargs[ours] = value
  for name in REQUIRED_FIELDS:
    if name not in kwargs:
      raise CheckpointError(f"{path}: missing field {CONFIG_FIELDS[name].format(arch=arch)!r}")
  kwargs.setdefault("num_kv_heads", kwargs["num_heads"])
  if "vocab_size" not in kwargs:  # Older files: the vocabulary is the token list.
    kwargs["vocab_size"] = len(fields.get("tokenizer.ggml.tokens") or []) or None
    if kwargs["vocab_size"] is None:
      raise CheckpointError(f"{path}: missing field '{arch}.vocab_size'")
  head_dim = kwargs.get("head_dim", kwargs["hidden_size"] // kwargs["num_heads"])
  rotary = fields.get(f"{arch}.rope.dimension_count", head_dim)
  if rotary != head_dim:
    raise CheckpointError(f"{path}: field '{arch}.rope.dimension_count' = {rotary}: partial "
                          f"rotary embeddings (head_dim {head_dim}) are not supported")
  scaling = fields.get(f"{arch}.rope.scaling.type", "none")
  if scaling != "none" or "rope_freqs.weight" in tensors:
    raise CheckpointError(f"{path}: field '{arch}.rope.scaling.type' / tensor "
                          f"'rope_freqs.weight': RoPE scaling in GGUF files is not supported")
  kwargs["tie_embeddings"] = "output.weight" not in tensors
  kwargs["qkv_bias"] = "blk.0.attn_q.bias" in tensors
  kwargs["qk_norm"] = arch == "qwen3"
  kwargs["architecture"] = arch
  kwargs.update(changes)
  try:
    return ModelConfig(**kwargs)
  except (TypeError, ValueError) as e:
    raise CheckpointError(f"{path}: {e}") from e


def dequantize(tensor, path: str) -> np.ndarray:
  """A GGUF tensor as float32 in numpy order (the reverse of GGUF's ne order)."""
  from gguf import quants
  if tensor.data.nbytes != tensor.n_bytes:
    raise CheckpointError(f"{path}: truncated file: tensor {tensor.name!r} has "
                          f"{tensor.data.nbytes} of {tensor.n_bytes} bytes")
  try:
    array = quants.dequantize(tensor.data, tensor.tensor_type)
  except NotImplementedError as e:
    raise CheckpointError(f"{path}: tensor {tensor.name!r}: cannot dequantise type "
                          f"{tensor.tensor_type.name}") from e
  shape = tuple(int(d) for d in reversed(tensor.shape))
  if array.size != int(np.prod(shape)):
    raise CheckpointError(f"{path}: tensor {tensor.name!r}: {array.size} values for shape "
                          f"{shape}")
  return np.asarray(array, np.float32).reshape(shape)


def import_gguf(path: str, **config_changes):
  """Loads a GGUF file: returns (config, graphdef, params, tokenizer or None)."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise CheckpointError(f"{path}: no such file")
  reader = open_reader(path)
  fields = read_fields(reader, path)
  tensors = {t.name: t for t in reader.tensors}
  config = read_config(fields, tensors, path, **config_changes)
  names = KEYMAPS[config.architecture]
  used: set[str] = set()

  def fetch(param: str) -> np.ndarray:
    name, transform = names.to_theirs(param)
    if name not in tensors:
      raise CheckpointError(f"{path}: missing tensor {name!r} (parameter {param})")
    used.add(name)
    return transform.to_ours(dequantize(tensors[name], path), config)

  graphdef, params = build_params(config, fetch, source=path)
  check_names(list(tensors), used, keymap.GGUF_IGNORED, source=path)
  tokenizer = None
  if "tokenizer.ggml.model" in fields:  # Present in every llama.cpp conversion.
    tokenizer = gguf_tokenizer.build_tokenizer(fields, path)
  return config, graphdef, params, tokenizer
