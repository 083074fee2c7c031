"""Which parameters train: a regex over parameter paths (`config.train.trainable`).

`select(params, pattern)` names the trainable leaves (dotted paths, `param_paths`); the
step differentiates and updates only `take(params, paths)`, a nested dict of those leaves,
and the optimizer keeps state for them alone, so a frozen base costs neither gradients
nor moments (LoRA: `msr_jax.model.lora.LORA_PARAMS`). `put` writes them back into the full
tree. `paths = None` means every parameter trains, and then nothing here runs at all (the
step is the plain one, bit for bit).
"""

from __future__ import annotations

import re
from typing import Any

import jax
from flax import traverse_util

from msr_jax.param_paths import path_to_str


def select(params, pattern: str) -> tuple[str, ...] | None:
  """The paths that `pattern` matches (`re.search`); None for "" (everything trains)."""
  if not pattern:
    return None
  compiled = re.compile(pattern)
  paths = tuple(path_to_str(p) for p, _ in jax.tree_util.tree_leaves_with_path(params))
  chosen = tuple(p for p in paths if compiled.search(p))
  if not chosen:
    raise ValueError(f"config.train.trainable={pattern!r} matches no parameter (paths such "
                     f"as {list(paths[:4])})")
  return chosen


def _flat(params) -> dict[tuple, Any]:
  return traverse_util.flatten_dict(params)


def _name(key: tuple) -> str:
  return ".".join(map(str, key))


def take(params, paths: tuple[str, ...] | None):
  """The trainable sub-tree (the whole tree for paths None)."""
  if paths is None:
    return params
  wanted = set(paths)
  return traverse_util.unflatten_dict({k: v for k, v in _flat(params).items()
                                       if _name(k) in wanted})


def put(params, sub, paths: tuple[str, ...] | None):
  """`params` with the leaves of `sub` (from `take`) written back."""
  if paths is None:
    return sub
  flat = traverse_util.flatten_dict(params, keep_empty_nodes=True)
  flat.update(_flat(sub))
  return traverse_util.unflatten_dict(flat)
