"""Turning a batch of prompts of different lengths into one right-padded, bucketed array.

Every distinct prompt length would be a new compiled program, so the padded length is
rounded up to one of a few bucket sizes (past the largest bucket, to a multiple of it).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

DEFAULT_BUCKETS: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024, 2048)


class PaddedPrompts(NamedTuple):
  tokens_BxP: np.ndarray   # int32, right-padded with pad_id
  lengths_B: np.ndarray    # int32, real tokens per row (>= 1)


def bucket_length(length: int, buckets: Sequence[int] = DEFAULT_BUCKETS) -> int:
  """The smallest bucket >= length; past the largest, the next multiple of it."""
  if not buckets or any(int(b) <= 0 for b in buckets):
    raise ValueError(f"prompt_buckets must be positive sizes, got {tuple(buckets)!r}")
  for size in sorted(int(b) for b in buckets):
    if length <= size:
      return size
  largest = max(int(b) for b in buckets)
  return -(-length // largest) * largest


def pad_prompts(prompts, vocab_size: int, *, lengths=None, pad_id: int = 0,
                buckets: Sequence[int] = DEFAULT_BUCKETS) -> PaddedPrompts:
  """Validates prompts and right-pads them to a bucketed length.

  Args:
    prompts: a list of token-id lists, or a 2-D int array (right-padded).
    vocab_size: token ids must lie in [0, vocab_size).
    lengths: with an array, the real length of each row (default: the full width).
    pad_id: the id written into padding.
    buckets: allowed padded lengths.
  """
  if not 0 <= pad_id < vocab_size:
    raise ValueError(f"pad_id {pad_id} is outside the vocabulary [0, {vocab_size})")
  if isinstance(prompts, (list, tuple)):
    if lengths is not None:
      raise ValueError("prompt lengths are only given with a padded array of prompts")
    rows = [np.asarray(p, dtype=np.int64).reshape(-1) for p in prompts]
    lengths_B = np.array([len(r) for r in rows], np.int64)
  else:
    array = np.asarray(prompts)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
      raise ValueError(f"prompts: expected a 2-D integer array, got shape {array.shape} "
                       f"dtype {array.dtype}")
    lengths_B = (np.full(array.shape[0], array.shape[1], np.int64) if lengths is None
                 else np.asarray(lengths, np.int64).reshape(-1))
    if lengths_B.shape[0] != array.shape[0]:
      raise ValueError(f"prompt lengths: {lengths_B.shape[0]} lengths for "
                       f"{array.shape[0]} prompts")
    if np.any(lengths_B > array.shape[1]):
      raise ValueError(f"prompt lengths: a length exceeds the array width {array.shape[1]}")
    rows = [array[b, :n] for b, n in enumerate(lengths_B)]
  if not rows:
    raise ValueError("prompts: the batch is empty")
  for b, row in enumerate(rows):
    if row.size == 0:
      raise ValueError(f"prompts[{b}] is empty; every prompt needs at least one token")
    bad = (row < 0) | (row >= vocab_size)
    if np.any(bad):
      position = int(np.argmax(bad))
      raise ValueError(f"prompts[{b}][{position}] = {int(row[position])} is outside the "
                       f"vocabulary [0, {vocab_size})")
  width = bucket_length(int(lengths_B.max()), buckets)
  tokens_BxP = np.full((len(rows), width), pad_id, np.int32)
  for b, row in enumerate(rows):
    tokens_BxP[b, :row.size] = row
  return PaddedPrompts(tokens_BxP, lengths_B.astype(np.int32))


def pad_eos_ids(eos_ids) -> np.ndarray:
  """EOS ids as a fixed-size int32 array padded with -1 (never a token), so the number of
  EOS ids does not change the compiled program (up to 8; more round up to a power of 2)."""
  if eos_ids is None:
    eos_ids = ()
  elif isinstance(eos_ids, (int, np.integer)):
    eos_ids = (int(eos_ids),)
  ids = [int(i) for i in eos_ids]
  size = 8
  while size < len(ids):
    size *= 2
  return np.array(ids + [-1] * (size - len(ids)), np.int32)
