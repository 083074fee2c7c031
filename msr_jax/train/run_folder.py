"""A training run's folder: one process at a time, and a resume that is the same run.

Lock. `RunLock` holds an exclusive `flock` on `<run_dir>/.lock` while a run trains; a
second process on the same folder fails at once with a `RunFolderError` naming the holder
(pid and host) instead of deleting the first one's checkpoints. The kernel drops the lock
when its process dies, so a lock file left by a killed run is stale: it is reported and
taken over.

Config. A fresh run stores its config in `<run_dir>/config.json`. A resume compares the
config it is given with the stored one, field by field: any difference in a field that
changes what the run computes (every field but `RUN_NEUTRAL`) is refused with the list of
differences, unless `allow_config_change` is set; then the change is applied, recorded in
`<run_dir>/config_changes.jsonl` (step, field, stored and new value) once the checkpoint is
restored, and the stored config becomes the new one. A field that only one of the two
configs has (a newer code version added it) is not compared. Before this check a changed learning rate was silently ignored on
resume (the optimizer state carried the old one) while a changed batch size took effect.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket

from msr_jax import atomic
from msr_jax.errors import UserError

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
CONFIG_FILE = "config.json"
CHANGES_FILE = "config_changes.jsonl"
# Fields that say how a run is watched, kept, named or laid out on devices, never what it
# computes (a mesh changes the rounding at most: the sharded step equals the single-device
# one within 1e-5, tests/train/test_step.py).
RUN_NEUTRAL = ("run_dir", "resume", "progress", "tensorboard", "allow_config_change",
               "checkpoint.every", "checkpoint.keep", "mesh.data", "mesh.fsdp")


class RunFolderError(UserError, RuntimeError):
  """A run folder that cannot be used as asked (locked, or resumed with another config)."""


class RunLock:
  """Exclusive use of a run folder for as long as the context lasts."""

  def __init__(self, run_dir: str):
    self.path = os.path.join(run_dir, LOCK_FILE)
    self._fd: int | None = None

  def __enter__(self) -> "RunLock":
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read_holder(fd)
      os.close(fd)
      raise RunFolderError(
          f"{os.path.dirname(self.path)}: the run folder is in use by {holder} (lock "
          f"{self.path}); wait for it to end or use another --run-dir") from None
    except OSError as e:  # a file system without flock (some network mounts)
      log.warning("%s: cannot lock the run folder (%s); running without a lock", self.path,
                  e.strerror or e)
    try:
      stale = _read_holder(fd, default="")
      if stale:
        log.warning("%s: taking over the stale lock of %s (it no longer runs)", self.path,
                    stale)
      os.ftruncate(fd, 0)
      os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode(),
                0)
    except BaseException:
      os.close(fd)  # closing releases the lock
      raise
    self._fd = fd
    return self

  def __exit__(self, *exc) -> None:
    fd, self._fd = self._fd, None
    if fd is not None:
      os.ftruncate(fd, 0)  # an empty lock file is a clean end; a filled one is stale
      os.close(fd)


def _read_holder(fd: int, default: str = "another process") -> str:
  try:
    holder = json.loads(os.pread(fd, 4096, 0).decode() or "null")
  except (OSError, ValueError):
    return default
  if not isinstance(holder, dict):
    return default
  return f"pid {holder.get('pid')} on {holder.get('host')}"


def flat_config(config) -> dict:
  """A config (ConfigDict or dict) as {dotted field: JSON value}."""
  tree = json.loads(config.to_json_best_effort(sort_keys=True)) if hasattr(
      config, "to_json_best_effort") else json.loads(json.dumps(config, default=repr))
  flat = {}

  def walk(prefix: str, node) -> None:
    if isinstance(node, dict) and node:
      for key, value in node.items():
        walk(f"{prefix}.{key}" if prefix else key, value)
    else:
      flat[prefix] = node

  walk("", tree)
  return flat


def config_differences(stored: dict, current: dict) -> dict:
  """{field: (stored, current)} for every field of both that changes the run. A field of
  one only (a code version that added or removed one) is not compared, and is logged."""
  one_only = sorted(set(stored) ^ set(current))
  if one_only:
    log.info("resume: fields of one config only, not compared: %s", one_only)
  return {f: (stored[f], current[f]) for f in sorted(set(stored) & set(current))
          if f not in RUN_NEUTRAL and stored[f] != current[f]}


def stored_config(run_dir: str):
  """The config a run stored (`store_config`), as a nested ConfigDict."""
  import ml_collections
  from msr_jax.checkpoints.json_file import read_json
  flat = read_json(os.path.join(run_dir, CONFIG_FILE), "no run config")
  tree: dict = {}
  for dotted, value in flat.items():
    *parents, leaf = dotted.split(".")
    node = tree
    for name in parents:
      node = node.setdefault(name, {})
    node[leaf] = value
  return ml_collections.ConfigDict(tree)


def store_config(run_dir: str, config) -> None:
  atomic.write_text(os.path.join(run_dir, CONFIG_FILE),
                    json.dumps(flat_config(config), indent=1, sort_keys=True) + "\n")


def check_resume_config(run_dir: str, config, step: int, allow_change: bool) -> dict:
  """Refuses a resume whose config changes the run (see the module docstring); returns
  the changes it allows, {field: (stored, new)}, which the caller records with
  `record_config_changes` once the checkpoint is restored. Nothing is written here but
  the config of a folder from before configs were stored."""
  path = os.path.join(run_dir, CONFIG_FILE)
  current = flat_config(config)
  if not os.path.exists(path):
    log.warning("%s: missing (a run folder from before configs were stored); resuming "
                "with the given config and storing it", path)
    store_config(run_dir, config)
    return {}
  try:
    with open(path, encoding="utf-8") as f:
      stored = json.load(f)
  except ValueError as e:
    raise RunFolderError(f"{path}: damaged stored config ({e}); cannot tell whether the "
                         "resume is the same run") from None
  changes = config_differences(stored, current)
  if not changes:
    return changes
  listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items())
  if not allow_change:
    raise RunFolderError(
        f"{run_dir}: resuming at step {step} with a config that changes the run ({listed}); "
        "use the stored config, another run folder, or allow the change "
        "(--allow-config-change, recorded in the run)")
  log.warning("%s: resuming at step %d with config changes allowed: %s", run_dir, step, listed)
  return changes


def record_config_changes(run_dir: str, config, step: int, changes: dict) -> None:
  """Appends allowed changes to config_changes.jsonl; the stored config becomes `config`."""
  lines = "".join(json.dumps({"step": step, "field": k, "stored": a, "new": b},
                             sort_keys=True) + "\n" for k, (a, b) in changes.items())
  changes_path = os.path.join(run_dir, CHANGES_FILE)
  previous = ""
  if os.path.exists(changes_path):
    with open(changes_path, encoding="utf-8") as f:
      previous = f.read()
  atomic.write_text(changes_path, previous + lines)
  store_config(run_dir, config)
