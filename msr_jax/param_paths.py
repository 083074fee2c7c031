"""The dotted name of a pytree leaf: the one formatter of parameter paths in msr-jax.

Sharding rules, optimizer labels, the drift monitor's groups, checkpoint tensor names and
error messages all name a parameter the same way ("layers.0.attn.q_proj.kernel"), for
plain nested dicts and `nnx.State` trees alike: the trailing `.value` an `nnx.Variable`
node adds is not part of the name.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax


def path_to_str(path: Sequence[Any]) -> str:
  """Renders a `jax.tree_util` key path as a dotted string."""
  parts = []
  for i, key in enumerate(path):
    if isinstance(key, jax.tree_util.GetAttrKey):
      if key.name == "value" and i == len(path) - 1:  # an nnx.Variable's array
        continue
      parts.append(key.name)
    elif isinstance(key, (jax.tree_util.DictKey, jax.tree_util.FlattenedIndexKey)):
      parts.append(str(key.key))
    elif isinstance(key, jax.tree_util.SequenceKey):
      parts.append(str(key.idx))
    else:
      parts.append(str(key))
  return ".".join(parts)
