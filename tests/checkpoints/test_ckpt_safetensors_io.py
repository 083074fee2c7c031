"""The numpy safetensors reader/writer: bf16, compatibility with the reference library."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy

from msr_jax.checkpoints import safetensors_io
from msr_jax.checkpoints.errors import CheckpointError


def test_round_trip_with_bf16(tmp_path):
  rng = np.random.default_rng(0)
  tensors = {"a": rng.standard_normal((3, 5)).astype(np.float32),
             "b": rng.standard_normal((7,)).astype(ml_dtypes.bfloat16),
             "c": np.arange(6, dtype=np.int64).reshape(2, 3),
             "d": rng.standard_normal((2, 2)).astype(np.float16)}
  path = tmp_path / "x.safetensors"
  safetensors_io.save(path, tensors, metadata={"format": "pt"})
  f = safetensors_io.SafetensorsFile(path)
  assert sorted(f.keys()) == ["a", "b", "c", "d"] and f.metadata == {"format": "pt"}
  for name, array in tensors.items():
    assert f.get(name).dtype == array.dtype
    np.testing.assert_array_equal(f.get(name), array)
  with pytest.raises(CheckpointError, match=r"x\.safetensors: missing tensor 'e'"):
    f.get("e")


def test_reads_and_writes_the_reference_format(tmp_path):
  tensors = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "s": np.ones((1,), np.float16)}
  ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
  safetensors.numpy.save_file(tensors, theirs)
  safetensors_io.save(ours, tensors)
  back = safetensors.numpy.load_file(ours)
  f = safetensors_io.SafetensorsFile(theirs)
  for name, array in tensors.items():
    np.testing.assert_array_equal(back[name], array)
    np.testing.assert_array_equal(f.get(name), array)


def test_inconsistent_header_entry_is_named(tmp_path):
  path = tmp_path / "bad.safetensors"
  safetensors_io.save(path, {"w": np.zeros((2, 2), np.float32)})
  data = path.read_bytes().replace(b'"shape":[2,2]', b'"shape":[2,3]')
  path.write_bytes(data)
  with pytest.raises(CheckpointError, match=r"bad\.safetensors: tensor 'w': byte range"):
    safetensors_io.SafetensorsFile(path)
