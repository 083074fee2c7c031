"""Turning named numpy arrays into the model's `(graphdef, params)` and back.

The expected parameter set comes from the model itself (`nnx.eval_shape` of a `Decoder`:
shapes only, nothing allocated), so loaders cannot disagree with the model about which
tensors exist or their shapes. A loader maps names and layouts; this module checks that
every parameter is present with the right shape before anything is returned.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from msr_jax.checkpoints.errors import CheckpointError
from msr_jax.model import Decoder, ModelConfig
from msr_jax.param_paths import path_to_str


def abstract_params(config: ModelConfig):
  """(graphdef, {path: ShapeDtypeStruct}, treedef) of a model with this config."""
  model = nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(model, nnx.Param)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
  return graphdef, {path_to_str(p): leaf for p, leaf in leaves}, treedef


def build_params(config: ModelConfig, fetch: Callable[[str], np.ndarray], source: str):
  """Builds `(graphdef, params)`, calling `fetch(path)` for every parameter.

  `fetch` returns the tensor in our layout (it raises `CheckpointError` naming the file
  and tensor if it is missing). Shapes are checked here; values are cast to
  `config.param_dtype`. Raises before returning anything if any tensor is bad.
  """
  graphdef, expected, treedef = abstract_params(config)
  dtype = jnp.dtype(config.param_dtype)
  arrays = []
  for path, spec in expected.items():
    array = np.asarray(fetch(path))
    if tuple(array.shape) != tuple(spec.shape):
      raise CheckpointError(f"{source}: parameter {path}: shape {tuple(array.shape)} does "
                            f"not match the config's {tuple(spec.shape)}")
    if not np.issubdtype(array.dtype, np.floating) and array.dtype != jnp.bfloat16:
      raise CheckpointError(f"{source}: parameter {path}: dtype {array.dtype} is not a "
                            f"floating-point type")
    arrays.append(jnp.asarray(array, dtype=dtype))
  return graphdef, jax.tree_util.tree_unflatten(treedef, arrays)


def named_arrays(params) -> dict[str, np.ndarray]:
  """{dotted path: numpy array} of an `nnx.State` of parameters (host copies)."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(params)
  return {path_to_str(p): np.asarray(jax.device_get(leaf)) for p, leaf in leaves}


def check_names(found: Mapping[str, object] | list[str], used: set[str],
                ignored: tuple[str, ...], source: str) -> None:
  """Raises if the file holds tensors that no parameter used (a different architecture,
  or a config that does not match the weights) unless they match an `ignored` pattern."""
  unused = [n for n in found if n not in used and not any(re.fullmatch(p, n) for p in ignored)]
  if unused:
    more = f" and {len(unused) - 5} more" if len(unused) > 5 else ""
    raise CheckpointError(f"{source}: unexpected tensors {sorted(unused)[:5]}{more}: the "
                          f"weights do not match the config (another architecture?)")
