"""This project's own checkpoint folder: `msr_config.json` + `params.safetensors` (+ tokenizer).

Parameters are stored under our own dotted paths ("layers.0.attn.q_proj.kernel") in our
layout and dtype, so a save/load round trip is exact. The config holds every
`ModelConfig` field. Townworld base checkpoints (`model_config.json`, the same fields and
the same parameter file) load through the same reader.
"""

from __future__ import annotations

import dataclasses
import os

from msr_jax import atomic
from msr_jax.checkpoints import safetensors_io, tokenizer_io
from msr_jax.checkpoints.errors import CheckpointError
from msr_jax.checkpoints.json_file import read_json
from msr_jax.checkpoints.params import build_params, check_names, named_arrays
from msr_jax.model import ModelConfig

CONFIG_FILE = "msr_config.json"
PARAMS_FILE = "params.safetensors"
FORMAT = "msr_jax.native"
VERSION = 1
# Config files this reader accepts, in order: ours, then Townworld's base checkpoint.
CONFIG_FILES = (CONFIG_FILE, "model_config.json")


def is_native(folder: str) -> bool:
  return os.path.isdir(folder) and any(
      os.path.exists(os.path.join(folder, name)) for name in CONFIG_FILES)


def save(path: str, config: ModelConfig, params, tokenizer=None) -> None:
  """Writes a checkpoint folder: parameters first, the config last (a folder with a
  config is complete), each file atomically."""
  path = os.fspath(path)
  save_params(path, params)
  tokenizer_io.save_tokenizer(tokenizer, path)
  atomic.write_json(os.path.join(path, CONFIG_FILE),
                    {"format": FORMAT, "version": VERSION, "config": config_fields(config)})


def save_params(path: str, params) -> None:
  """`params.safetensors` of a checkpoint folder (every folder of this project: ours and
  Townworld's base), atomically, under the project's parameter names."""
  os.makedirs(path, exist_ok=True)
  safetensors_io.save(os.path.join(path, PARAMS_FILE), named_arrays(params),
                      metadata={"format": FORMAT})


def config_fields(config: ModelConfig) -> dict:
  """The `ModelConfig` as JSON fields."""
  fields = dataclasses.asdict(config)
  fields["rope_scaling"] = config.rope_scaling_dict  # JSON has no tuples of pairs.
  return fields


def read_config(folder: str, **changes) -> ModelConfig:
  path = next(os.path.join(folder, n) for n in CONFIG_FILES
              if os.path.exists(os.path.join(folder, n)))
  raw = read_json(path)
  if os.path.basename(path) == CONFIG_FILE:
    if raw.get("format") != FORMAT or raw.get("version") != VERSION:
      raise CheckpointError(f"{path}: fields 'format'/'version': expected {FORMAT!r} "
                            f"version {VERSION}, got {raw.get('format')!r} version "
                            f"{raw.get('version')!r}")
    fields = raw.get("config")
    if not isinstance(fields, dict):
      raise CheckpointError(f"{path}: missing or malformed field 'config'")
  else:
    fields = raw
  known = {f.name for f in dataclasses.fields(ModelConfig)}
  unknown = sorted(set(fields) - known)
  if unknown:
    raise CheckpointError(f"{path}: unknown config fields {unknown}")
  fields = dict(fields)
  if isinstance(fields.get("rope_scaling"), list):  # [[key, value], ...] also accepted.
    fields["rope_scaling"] = tuple(tuple(pair) for pair in fields["rope_scaling"])
  fields.update(changes)
  try:
    return ModelConfig(**fields)
  except (TypeError, ValueError) as e:
    raise CheckpointError(f"{path}: {e}") from e


def load(path: str, **config_changes):
  """Reads a checkpoint folder: returns (config, graphdef, params, tokenizer or None)."""
  config, graphdef, params = load_model(path, **config_changes)
  return config, graphdef, params, tokenizer_io.load_tokenizer(os.fspath(path))


def load_model(path: str, **config_changes):
  """(config, graphdef, params) of a checkpoint folder, without its tokenizer."""
  path = os.fspath(path)
  if not is_native(path):
    raise CheckpointError(f"{path}: not a checkpoint folder (no {' or '.join(CONFIG_FILES)})")
  config = read_config(path, **config_changes)
  params_path = os.path.join(path, PARAMS_FILE)
  if not os.path.exists(params_path):
    raise CheckpointError(f"{params_path}: missing")
  weights = safetensors_io.SafetensorsFile(params_path)
  used: set[str] = set()

  def fetch(name: str):
    if name not in weights:
      raise CheckpointError(f"{params_path}: missing tensor {name!r}")
    used.add(name)
    return weights.get(name)

  graphdef, params = build_params(config, fetch, source=params_path)
  check_names(weights.keys(), used, (), source=params_path)
  return config, graphdef, params
