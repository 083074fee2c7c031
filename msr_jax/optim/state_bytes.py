"""Counting the memory an optimizer state holds."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def _leaf_bytes(leaf: Any) -> int:
  if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
    return np.asarray(leaf).nbytes  # A Python scalar kept in the state.
  size = int(np.prod(leaf.shape, dtype=np.int64))
  if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
    # Typed PRNG keys: count the key data (e.g. 2 x uint32 for threefry).
    return size * jax.random.key_data(jax.random.key(0)).nbytes
  return size * np.dtype(leaf.dtype).itemsize


def optimizer_state_bytes(opt_state: Any) -> int:
  """Bytes held by the arrays of `opt_state` (arrays or `jax.ShapeDtypeStruct`s).

  Works on the result of `jax.eval_shape(tx.init, params)`, so it can size a state
  without allocating it.
  """
  return sum(_leaf_bytes(leaf) for leaf in jax.tree.leaves(opt_state))
