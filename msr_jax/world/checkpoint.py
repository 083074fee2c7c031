"""The base checkpoint's on-disk form: safetensors parameters + JSON config, atomically.

A checkpoint folder holds `params.safetensors` (flat parameter paths such as
`layers.0.attn.q_proj.kernel`), `model_config.json` (the `ModelConfig` fields),
`tokenizer.json` and, once evaluated, `card.json`. Safetensors rather than an orbax folder
because the base checkpoint is committed to git (a few MB, one file, stable across orbax
versions) and every experiment only reads it; training state goes through orbax elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
import safetensors.numpy
from flax import nnx

from msr_jax import atomic
from msr_jax.checkpoints import native
from msr_jax.checkpoints.errors import CheckpointError, CheckpointNotFoundError
from msr_jax.model import ModelConfig

PARAMS, CONFIG, TOKENIZER, CARD = ("params.safetensors", "model_config.json", "tokenizer.json",
                                   "card.json")


def read_json(path: str, missing: str):
  """The JSON value in `path`; every failure is a `CheckpointError` naming the file (and
  `missing` when there is no file)."""
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except FileNotFoundError:
    raise CheckpointNotFoundError(f"{path}: {missing}") from None
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{path}: line {e.lineno}: malformed JSON: {e.msg}") from None
  except (OSError, UnicodeDecodeError, RecursionError) as e:
    raise CheckpointError(f"{path}: cannot read: {e!r}") from None


def write_json(path: str, obj) -> None:
  atomic.write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def flat_params(params) -> dict[str, np.ndarray]:
  """Dotted names -> arrays, from an `nnx.State` or its pure dict (`nnx.to_pure_dict`)."""
  state = params if isinstance(params, nnx.State) else nnx.State(params)
  return {".".join(map(str, path)): np.asarray(jax.device_get(v[...]))
          for path, v in nnx.to_flat_state(state)}


def save(directory: str, config: ModelConfig, params) -> None:
  """Writes the parameters, then the config (a folder with a config is complete)."""
  tensors = flat_params(params)
  with atomic.atomic_path(os.path.join(directory, PARAMS)) as tmp:
    safetensors.numpy.save_file(tensors, tmp)
  write_json(os.path.join(directory, CONFIG), dataclasses.asdict(config))


def load_config(directory: str) -> ModelConfig:
  """The `ModelConfig` in `directory`; errors name the file and the field."""
  if not native.is_native(directory):
    raise CheckpointNotFoundError(f"{os.path.join(directory, CONFIG)}: no model config; is "
                                  f"{directory} a checkpoint?")
  return native.read_config(directory)


def load(directory: str):
  """Returns (config, graphdef, params) with every parameter checked for name and shape;
  read by `msr_jax.checkpoints.native`, so a truncated, malformed or incomplete folder is
  an error naming the file at fault."""
  load_config(directory)  # a folder without a config: the file it lacks is named
  return native.load_model(directory)
