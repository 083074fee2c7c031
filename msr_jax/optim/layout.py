"""How APOLLO sees a parameter as a matrix: which axes are inputs, which is compressed.

Flax stores kernels as (inputs..., outputs...): `nnx.Linear` as (in, out), a
`nnx.LinearGeneral` query kernel as (d_model, heads, head_dim), its output kernel as
(heads, head_dim, d_model), a convolution as (kh, kw, in, out). APOLLO works on a
matrix, so a leaf of rank k > 2 is viewed as the (prod(shape[:s]), prod(shape[s:]))
matrix for one split point s (a free reshape, the axes stay in order).

The rule for s (`num_input_axes=None`): the split whose two sides are closest in size
(smallest |log(in) - log(out)|), ties going to fewer input axes. It recovers
(d_model, heads * head_dim) for the query kernel, (heads * head_dim, d_model) for the
output kernel and (kh * kw * in, out) for a convolution. It cannot know a stacked
(layers, in, out) kernel from a 3-D matrix: pass `num_input_axes` (an int, or a
function of the shape) where the default guesses wrong.

Within the matrix, the channels are the larger side and the smaller side is
compressed; on a tie the input side is compressed, so that the channels are the
outputs, as in the reference's torch (out, in) layout.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence, Union

NumInputAxes = Union[None, int, Callable[[tuple[int, ...]], int]]


def num_input_axes_for(shape: Sequence[int], num_input_axes: NumInputAxes = None) -> int:
  """Number of leading axes of `shape` that form the matrix's input side."""
  shape = tuple(int(d) for d in shape)
  if len(shape) < 2:
    raise ValueError(f"APOLLO needs a leaf with at least 2 axes, got shape {shape}")
  if len(shape) == 2:
    return 1
  if num_input_axes is None:
    return _balanced_split(shape)
  split = num_input_axes(shape) if callable(num_input_axes) else num_input_axes
  if not isinstance(split, int) or not 1 <= split < len(shape):
    raise ValueError(
        f"num_input_axes={split!r} for shape {shape}: expected an int in [1, {len(shape) - 1}]")
  return split


def _balanced_split(shape: tuple[int, ...]) -> int:
  def imbalance(split: int) -> float:
    n_in, n_out = math.prod(shape[:split]), math.prod(shape[split:])
    return abs(math.log(max(n_in, 1)) - math.log(max(n_out, 1)))
  # min() keeps the first of equal keys, so ties go to fewer input axes.
  return min(range(1, len(shape)), key=imbalance)


def matrix_dims(shape: Sequence[int], num_input_axes: NumInputAxes = None) -> tuple[int, int]:
  """(inputs, outputs) of the matrix view of a leaf of this shape."""
  split = num_input_axes_for(shape, num_input_axes)
  return math.prod(shape[:split]), math.prod(shape[split:])


def compresses_inputs(n_in: int, n_out: int) -> bool:
  """True when the input side is compressed (it is the smaller side, or a tie)."""
  return n_in <= n_out


def channels_and_compressed(shape: Sequence[int],
                            num_input_axes: NumInputAxes = None) -> tuple[int, int]:
  """(channels, compressed) sizes: (max(in, out), min(in, out))."""
  n_in, n_out = matrix_dims(shape, num_input_axes)
  return max(n_in, n_out), min(n_in, n_out)
