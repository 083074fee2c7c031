"""Loading any checkpoint the project reads: a Hugging Face folder, a GGUF file, a
checkpoint folder of this project, or a bundled short name (`registry.BUNDLED`).

`load` is `msr_jax.load`; the trainer uses it for `config.model.checkpoint` and
`load_tokenizer` for a tokenizer given as a checkpoint (a GGUF file's is rebuilt from its
metadata without reading the weights).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from msr_jax.checkpoints.errors import CheckpointError
from msr_jax.model.config import ModelConfig


@dataclasses.dataclass
class LoadedModel:
  """A model ready to run: `forward(graphdef, params, tokens)` from `msr_jax.model`."""
  config: ModelConfig
  graphdef: Any
  params: Any                 # nnx.State of arrays, in config.param_dtype.
  tokenizer: Any | None       # A transformers fast tokenizer, or None.
  source: str                 # The path it was loaded from.
  format: str                 # "hf" | "gguf" | "native"
  _jitted: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)


def detect_format(path: str) -> str:
  """"gguf", "native" or "hf" for a path; raises naming what is missing."""
  from msr_jax.checkpoints import gguf_import, hf, native
  if os.path.isfile(path):
    if gguf_import.is_gguf(path):
      return "gguf"
    raise CheckpointError(f"{path}: not a GGUF file (no GGUF magic); expected a GGUF file, "
                          f"a Hugging Face folder or a checkpoint folder")
  if os.path.isdir(path):
    if native.is_native(path):
      return "native"
    if os.path.exists(os.path.join(path, hf.CONFIG_FILE)):
      return "hf"
    raise CheckpointError(f"{path}: missing {hf.CONFIG_FILE} (Hugging Face folder) or "
                          f"{native.CONFIG_FILE} (checkpoint folder)")
  raise CheckpointError(f"{path}: no such file or folder")


def load(path: str | os.PathLike, **config_changes) -> LoadedModel:
  """Loads a Hugging Face folder, a GGUF file, a checkpoint folder of this project, or a
  short name from `msr_jax.checkpoints.registry.BUNDLED`.

  `config_changes` override `ModelConfig` fields after reading the checkpoint's config,
  e.g. `param_dtype="bfloat16", dtype="bfloat16"`. Raises `CheckpointError` (a ValueError)
  naming the file and the tensor or field at fault; nothing is returned partially loaded.
  """
  from msr_jax.checkpoints import gguf_import, hf, native
  path = resolve(path)
  fmt = detect_format(path)
  reader = {"gguf": gguf_import.import_gguf, "native": native.load, "hf": hf.import_hf}[fmt]
  config, graphdef, params, tokenizer = reader(path, **config_changes)
  return LoadedModel(config, graphdef, params, tokenizer, path, fmt)


def resolve(path: str | os.PathLike) -> str:
  """The path itself, or the file a bundled short name stands for."""
  from msr_jax.checkpoints import registry
  path = os.fspath(path)
  if not os.path.exists(path) and path in registry.BUNDLED:
    return registry.resolve(path)
  return path


def load_tokenizer(path: str | os.PathLike):
  """The tokenizer of a checkpoint (a `transformers` fast tokenizer), or None if it has
  none; a GGUF file's is rebuilt from its metadata, its weights left unread."""
  from msr_jax.checkpoints import gguf_import, gguf_tokenizer, tokenizer_io
  path = resolve(path)
  if os.path.isdir(path):  # any folder with tokenizer files, a model or not
    return tokenizer_io.load_tokenizer(path)
  if detect_format(path) == "gguf":
    fields = gguf_import.read_fields(gguf_import.open_reader(path), path)
    if "tokenizer.ggml.model" not in fields:
      return None
    return gguf_tokenizer.build_tokenizer(fields, path)
  return tokenizer_io.load_tokenizer(path)
