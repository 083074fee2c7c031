"""The base checkpoint's on-disk form: safetensors parameters + JSON config, atomically.

A checkpoint folder holds `params.safetensors` (flat parameter paths such as
`layers.0.attn.q_proj.kernel`), `model_config.json` (the `ModelConfig` fields),
`tokenizer.json` and, once evaluated, `card.json`. Safetensors rather than an orbax folder
because the base checkpoint is committed to git (a few MB, one file, stable across orbax
versions) and every experiment only reads it; training state goes through orbax elsewhere.
"""

from __future__ import annotations

import os

import numpy as np

from msr_jax import atomic
from msr_jax.checkpoints import native
from msr_jax.checkpoints.errors import CheckpointNotFoundError
from msr_jax.checkpoints.json_file import read_json
from msr_jax.checkpoints.params import named_arrays
from msr_jax.model import ModelConfig

__all__ = ["CARD", "CONFIG", "PARAMS", "TOKENIZER", "flat_params", "load", "load_config",
           "read_json", "save"]

PARAMS, CONFIG, TOKENIZER, CARD = ("params.safetensors", "model_config.json", "tokenizer.json",
                                   "card.json")


def flat_params(params) -> dict[str, np.ndarray]:
  """Dotted names -> arrays, from an `nnx.State` or its pure dict (`nnx.to_pure_dict`):
  the names every checkpoint of the project uses (`checkpoints.params.named_arrays`)."""
  return named_arrays(params)


def save(directory: str, config: ModelConfig, params) -> None:
  """Writes the parameters, then the config (a folder with a config is complete); the
  same writer as `checkpoints.native`, with the config as bare `ModelConfig` fields."""
  native.save_params(directory, params)
  atomic.write_json(os.path.join(directory, CONFIG), native.config_fields(config))


def _require_config(directory: str) -> None:
  """A folder without a config is an error naming the file it lacks."""
  if not native.is_native(directory):
    raise CheckpointNotFoundError(f"{os.path.join(directory, CONFIG)}: no model config; is "
                                  f"{directory} a checkpoint?")


def load_config(directory: str) -> ModelConfig:
  """The `ModelConfig` in `directory`; errors name the file and the field."""
  _require_config(directory)
  return native.read_config(directory)


def load(directory: str):
  """Returns (config, graphdef, params) with every parameter checked for name and shape;
  read by `msr_jax.checkpoints.native`, so a truncated, malformed or incomplete folder is
  an error naming the file at fault."""
  _require_config(directory)  # read once, by native.load_model
  return native.load_model(directory)
