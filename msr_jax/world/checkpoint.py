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
from msr_jax.model import Decoder, ModelConfig

PARAMS, CONFIG, TOKENIZER, CARD = ("params.safetensors", "model_config.json", "tokenizer.json",
                                   "card.json")


def read_json(path: str, missing: str):
  """The JSON object in `path`; a missing file is a FileNotFoundError naming it and `missing`."""
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    raise FileNotFoundError(f"{path}: {missing}") from None


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
  path = os.path.join(directory, CONFIG)
  fields = read_json(path, f"no model config; is {directory} a checkpoint?")
  known = {f.name for f in dataclasses.fields(ModelConfig)}
  unknown = sorted(set(fields) - known)
  if unknown:
    raise ValueError(f"{path}: unknown ModelConfig fields {unknown}")
  for key in ("rope_scaling",):  # JSON turns tuples into lists; the config is hashable.
    if fields.get(key) is not None:
      fields[key] = tuple(tuple(x) for x in fields[key])
  if isinstance(fields.get("eos_token_id"), list):
    fields["eos_token_id"] = tuple(fields["eos_token_id"])
  return ModelConfig(**fields)


def load(directory: str):
  """Returns (config, graphdef, params) with every parameter checked for shape."""
  config = load_config(directory)
  graphdef, params = nnx.split(nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0))),
                               nnx.Param)
  path = os.path.join(directory, PARAMS)
  tensors = safetensors.numpy.load_file(path)
  flat = nnx.to_flat_state(params)
  expected = {".".join(map(str, p)) for p, _ in flat}
  if expected != set(tensors):
    raise ValueError(f"{path}: parameter names differ from the config's model: missing "
                     f"{sorted(expected - set(tensors))[:5]}, extra "
                     f"{sorted(set(tensors) - expected)[:5]}")
  leaves = []
  for p, variable in flat:
    name = ".".join(map(str, p))
    array = tensors[name]
    if array.shape != variable.shape:
      raise ValueError(f"{path}: {name} has shape {array.shape}, expected {variable.shape}")
    leaves.append((p, variable.replace(jax.numpy.asarray(array))))
  return config, graphdef, nnx.from_flat_state(leaves)
