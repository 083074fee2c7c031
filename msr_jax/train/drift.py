"""The drift monitor: how far each parameter group has moved, computed inside the step.

Groups are by layer and kind: `layers.{i}.attn`, `layers.{i}.mlp`, `layers.{i}.norm`,
`embed`, `norm` (the final norm) and `lm_head`, plus `all`. For each group g:
  drift/g        = ||p_g - p0_g|| / ||p0_g||     (distance from the starting weights)
  update_ratio/g = ||u_g|| / ||p_g||             (this step's update over the weights)
Both are a handful of reductions per step, cheap next to the forward pass.
"""

from __future__ import annotations

import collections
import re

import jax
import jax.numpy as jnp

from msr_jax.param_paths import path_to_str

_LAYER = re.compile(r"^layers\.(\d+)\.(\w+)")


def group_of(path: str) -> str:
  """Parameter group of a dotted path ("layers.2.attn.q_proj.kernel" -> "layers.2.attn")."""
  match = _LAYER.match(path)
  if match:
    index, part = match.groups()
    kind = "norm" if part.endswith("norm") else part
    return f"layers.{index}.{kind}"
  head = path.split(".", 1)[0]
  return "norm" if head.endswith("norm") else head


def _group_sq_norms(tree) -> dict[str, jnp.ndarray]:
  sums = collections.defaultdict(list)
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    sq = jnp.sum(jnp.square(leaf.astype(jnp.float32)))
    sums[group_of(path_to_str(path))].append(sq)
    sums["all"].append(sq)
  return {g: sum(v) for g, v in sums.items()}


def _ratio(num_sq, den_sq):
  return jnp.sqrt(num_sq) / jnp.maximum(jnp.sqrt(den_sq), jnp.finfo(jnp.float32).tiny)


def drift_metrics(params, ref_params, old_params) -> dict[str, jnp.ndarray]:
  """Per-group drift from `ref_params` and update ratio of `params - old_params`."""
  sub = lambda a, b: a.astype(jnp.float32) - b.astype(jnp.float32)
  delta = _group_sq_norms(jax.tree_util.tree_map(sub, params, ref_params))
  ref = _group_sq_norms(ref_params)
  update = _group_sq_norms(jax.tree_util.tree_map(sub, params, old_params))
  old = _group_sq_norms(old_params)
  out = {}
  for g in ref:
    out[f"drift/{g}"] = _ratio(delta[g], ref[g])
    out[f"update_ratio/{g}"] = _ratio(update[g], old[g])
  return out
