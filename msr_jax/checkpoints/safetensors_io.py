"""Reading and writing the safetensors format as plain numpy, bfloat16 included.

numpy has no bfloat16, and `safetensors.numpy` refuses BF16 tensors, so the reader parses
the (simple, documented) format itself and views BF16 bytes as `ml_dtypes.bfloat16`.
Owning the parser also lets every error name the file and tensor, and lets a truncated
file fail on open (the header's offsets are checked against the file size) rather than on
first use. The format never executes code: a JSON header, then raw little-endian bytes.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from typing import Mapping

import ml_dtypes
import numpy as np

from msr_jax import atomic
from msr_jax.checkpoints.errors import CheckpointError

# safetensors dtype name <-> numpy dtype (little-endian, as the format mandates).
DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype("<i8"), "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"), "I8": np.dtype("i1"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("bool"),
}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024  # The reference implementation's limit.


class SafetensorsFile:
  """A read-only, memory-mapped safetensors file; tensors are read on demand."""

  def __init__(self, path: str | os.PathLike):
    self.path = os.fspath(path)
    try:
      with open(self.path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
          raise CheckpointError(f"{self.path}: truncated safetensors file ({size} bytes)")
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > min(_MAX_HEADER, size - 8):
          raise CheckpointError(f"{self.path}: truncated or corrupt safetensors file "
                                f"(header of {header_len} bytes, file of {size})")
        header_bytes = f.read(header_len)
        self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
      raise CheckpointError(f"{self.path}: cannot read: {e}") from e
    try:
      header = json.loads(header_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      raise CheckpointError(f"{self.path}: corrupt safetensors header: {e}") from e
    self.metadata = header.pop("__metadata__", None) or {}
    self._data_start = 8 + header_len
    self._entries: dict[str, tuple[np.dtype, tuple[int, ...], int, int]] = {}
    for name, info in header.items():
      self._entries[name] = self._check_entry(name, info, size)

  def _check_entry(self, name, info, size):
    try:
      dtype = DTYPES[info["dtype"]]
      shape = tuple(int(d) for d in info["shape"])
      begin, end = (int(x) for x in info["data_offsets"])
    except (KeyError, TypeError, ValueError) as e:
      raise CheckpointError(f"{self.path}: tensor {name!r}: malformed header entry "
                            f"{info!r} ({e!r})") from e
    if end - begin != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
      raise CheckpointError(f"{self.path}: tensor {name!r}: byte range {begin}..{end} does "
                            f"not match dtype {info['dtype']} and shape {list(shape)}")
    if self._data_start + end > size:
      raise CheckpointError(f"{self.path}: truncated file: tensor {name!r} ends at byte "
                            f"{self._data_start + end} but the file has {size}")
    return dtype, shape, begin, end

  def keys(self) -> list[str]:
    return list(self._entries)

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def shape(self, name: str) -> tuple[int, ...]:
    return self._entries[name][1]

  def get(self, name: str) -> np.ndarray:
    """The tensor as a read-only numpy array view of the mapped file."""
    if name not in self._entries:
      raise CheckpointError(f"{self.path}: missing tensor {name!r}")
    dtype, shape, begin, end = self._entries[name]
    start = self._data_start + begin
    return np.frombuffer(self._map, dtype=dtype, count=(end - begin) // dtype.itemsize,
                         offset=start).reshape(shape)


def save(path: str | os.PathLike, tensors: Mapping[str, np.ndarray],
         metadata: Mapping[str, str] | None = None) -> None:
  """Writes `tensors` atomically (temp file in the same folder, then os.replace).

  `metadata` goes to `__metadata__`; transformers requires {"format": "pt"} there.
  """
  header: dict[str, object] = {}
  if metadata:
    header["__metadata__"] = dict(metadata)
  arrays, offset = [], 0
  for name in sorted(tensors):  # Sorted names make files byte-for-byte reproducible.
    array = np.ascontiguousarray(tensors[name])
    if array.dtype not in _NAMES:
      raise CheckpointError(f"{path}: tensor {name!r}: unsupported dtype {array.dtype}")
    array = array.astype(array.dtype.newbyteorder("<"), copy=False)
    header[name] = {"dtype": _NAMES[array.dtype], "shape": list(array.shape),
                    "data_offsets": [offset, offset + array.nbytes]}
    arrays.append(array)
    offset += array.nbytes
  header_bytes = json.dumps(header, separators=(",", ":")).encode()
  header_bytes += b" " * (-len(header_bytes) % 8)  # Aligns the data section to 8 bytes.
  # Memoryviews, not tobytes(): a multi-GB model is not copied a second time in memory.
  atomic.write_bytes(path, [struct.pack("<Q", len(header_bytes)), header_bytes] +
                     [memoryview(a.reshape(-1).view(np.uint8)) for a in arrays])


