"""Device meshes and path-based sharding rules for parameters (and anything shaped like them).

A mesh has two axes: "data" (batch) and "fsdp" (parameters and optimizer state are split
over it). Rules are data: (regex over the parameter path, partition spec). The first rule
that matches wins; a dimension that does not divide by its mesh axis stays replicated, so
every model runs on every mesh.
"""

from __future__ import annotations

import re

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from msr_jax.param_paths import path_to_str

DATA, FSDP = "data", "fsdp"

# (path regex, spec). Kernels are (in, out) and embeddings (V, D): split the first axis.
DEFAULT_RULES: tuple[tuple[str, tuple], ...] = (
    (r"(^|\.)embedding$", (FSDP, None)),
    (r"(^|\.)kernel$", (FSDP, None)),
    (r".*", ()),
)


def make_mesh(data: int | None = None, fsdp: int | None = None, devices=None) -> Mesh:
  """A ("data", "fsdp") mesh. Default: every device on "data"."""
  devices = list(devices if devices is not None else jax.devices())
  n = len(devices)
  if data is None and fsdp is None:
    data, fsdp = n, 1
  elif data is None:
    data = n // fsdp
  elif fsdp is None:
    fsdp = n // data
  if data * fsdp != n:
    raise ValueError(f"mesh data={data} x fsdp={fsdp} does not match {n} devices")
  return Mesh(np.asarray(devices).reshape(data, fsdp), (DATA, FSDP))


def spec_for(path: str, shape: tuple[int, ...], mesh: Mesh,
             rules=DEFAULT_RULES) -> PartitionSpec:
  for pattern, spec in rules:
    if re.search(pattern, path):
      if len(spec) > len(shape):
        return PartitionSpec()
      axes = []
      for dim, axis in zip(shape, spec):
        size = 1 if axis is None else mesh.shape[axis]
        axes.append(axis if axis is not None and dim % size == 0 else None)
      return PartitionSpec(*axes)
  return PartitionSpec()


def tree_shardings(tree, mesh: Mesh, rules=DEFAULT_RULES):
  """NamedShardings for every array leaf of `tree`, chosen by its path."""
  def one(path, leaf):
    shape = tuple(getattr(leaf, "shape", ()))
    return NamedSharding(mesh, spec_for(path_to_str(path), shape, mesh, rules))
  return jax.tree_util.tree_map_with_path(one, tree)


def shard_params(params, mesh: Mesh, rules=DEFAULT_RULES):
  """Places parameters (or optimizer state) on the mesh by path rules."""
  return jax.device_put(params, tree_shardings(params, mesh, rules))


def batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
  """Splits the leading (batch) axis over "data", the rest replicated."""
  return NamedSharding(mesh, PartitionSpec(DATA, *([None] * (ndim - 1))))
