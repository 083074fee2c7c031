"""Choosing by parameter path which leaves APOLLO handles and which AdamW handles.

A label function maps a parameter tree to a tree of the same structure whose leaves
are the strings `APOLLO` or `ADAM`, the contract of `optax.partition`. It works on
plain nested dicts and on `nnx.State` trees alike: paths are rendered as dotted
strings (`layers.0.attn.q_proj.kernel`), with the trailing `.value` that an
`nnx.Variable` node adds dropped.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

import jax
import numpy as np

from msr_jax.param_paths import path_to_str

APOLLO = "apollo"
ADAM = "adam"

# The attention and MLP projections of msr_jax.model.Decoder (and of any model that
# names its layers the Llama/Qwen way). Embeddings, the LM head, norms and biases are
# left to AdamW, as in the reference.
DEFAULT_APOLLO_PATTERNS: tuple[str, ...] = (
    r"(^|\.)attn\.[qkvo]_proj\.kernel$",
    r"(^|\.)mlp\.(gate|up|down)_proj\.kernel$",
)

LabelFn = Callable[[Any], Any]


def path_label_fn(patterns: Iterable[str] = DEFAULT_APOLLO_PATTERNS) -> LabelFn:
  """A label function giving `APOLLO` to leaves whose path matches any regex.

  Patterns are searched (`re.search`) in the dotted path. A matched leaf with fewer
  than two axes is an error: it names the path, since silently sending a vector to
  AdamW would hide a wrong pattern.
  """
  compiled = [re.compile(p) for p in patterns]

  def label_fn(params: Any) -> Any:
    def label(path, leaf):
      name = path_to_str(path)
      if not any(c.search(name) for c in compiled):
        return ADAM
      shape = tuple(getattr(leaf, "shape", np.shape(leaf)))  # ShapeDtypeStructs too.
      if len(shape) < 2:
        raise ValueError(
            f"parameter {name!r} matches an APOLLO pattern but has shape "
            f"{shape}: APOLLO applies to matrices only")
      return APOLLO
    return jax.tree_util.tree_map_with_path(label, params)

  return label_fn


default_label_fn: LabelFn = path_label_fn()
