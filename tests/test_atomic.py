"""Atomic writes: the old file survives a failed write, and no temp file is left behind."""

import os

import pytest

from msr_jax import atomic


def test_write_text_replaces_and_leaves_no_temp_file(tmp_path):
  path = tmp_path / "sub" / "result.json"
  atomic.write_text(path, "old\n")
  atomic.write_text(path, "new\n")
  assert path.read_text() == "new\n"
  assert os.listdir(path.parent) == ["result.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
  path = tmp_path / "card.json"
  atomic.write_text(path, "old\n")

  def chunks():
    yield b"half of a new fi"
    raise RuntimeError("killed mid-write")

  with pytest.raises(RuntimeError, match="killed mid-write"):
    atomic.write_bytes(path, chunks())
  assert path.read_text() == "old\n"
  assert os.listdir(tmp_path) == ["card.json"]


def test_atomic_path_hands_a_file_name_to_a_library_writer(tmp_path):
  path = tmp_path / "params.bin"
  with atomic.atomic_path(path) as tmp:
    assert os.path.dirname(tmp) == str(tmp_path) and not path.exists()
    with open(tmp, "wb") as f:
      f.write(b"\x00\x01")
  assert path.read_bytes() == b"\x00\x01"
  assert os.listdir(tmp_path) == ["params.bin"]


def test_new_files_follow_the_umask_and_rewrites_keep_the_mode(tmp_path):
  old = os.umask(0o022)
  try:
    path = tmp_path / "result.json"
    atomic.write_text(path, "a\n")
    assert os.stat(path).st_mode & 0o777 == 0o644  # not the temp file's 0600
    os.chmod(path, 0o640)
    atomic.write_text(path, "b\n")
    assert os.stat(path).st_mode & 0o777 == 0o640
    os.umask(0o027)
    atomic.write_text(tmp_path / "other.json", "c\n")
    assert os.stat(tmp_path / "other.json").st_mode & 0o777 == 0o640
  finally:
    os.umask(old)
