"""Orbax save/restore of a training state plus JSON metadata, keeping the last K steps.

A checkpoint is one orbax step folder with two items: `state` (any pytree of arrays: the
`TrainState` with parameters, optimizer state, step, RNG, reference weights, skip count)
and `meta` (a JSON object: the data iterator's position, the quality guard's state, the
run's config). Restoring takes an abstract target (`jax.ShapeDtypeStruct` leaves, with
shardings when the state lives on a mesh) so the state comes back with the same tree
structure, dtypes and placement it was saved from. Saves are made synchronous (waited
for) so a run killed right after a save always finds it complete; orbax itself writes
to a temporary folder and renames it, so a partially written step is never listed.

A save that fails for a full disk is reported by orbax from each of its threads, as log
records with tracebacks and as asyncio errors printed to stderr, before the error is
raised: a thousand lines that bury the one that matters. While a save runs that output is
held back; it is dropped after a full disk (the raised error carries the cause) and shown
otherwise (MSR_TRACEBACK=1 shows it always).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
from typing import Any, Iterator

import jax
import orbax.checkpoint as ocp

from msr_jax.errors import disk_full_cause


def _wait_for_quiet(buffer: io.StringIO, quiet_s: float = 0.5, limit_s: float = 5.0) -> None:
  """Returns once nothing was written to `buffer` for `quiet_s` (at most `limit_s`)."""
  start = last_change = time.monotonic()
  size = buffer.tell()
  while time.monotonic() - last_change < quiet_s and time.monotonic() - start < limit_s:
    time.sleep(0.05)
    if buffer.tell() != size:
      size, last_change = buffer.tell(), time.monotonic()


@contextlib.contextmanager
def _held_back_output() -> Iterator[None]:
  """Holds orbax's log records and stderr output; releases them only on success."""
  if os.environ.get("MSR_TRACEBACK"):
    yield
    return
  held: list[logging.LogRecord] = []

  def hold(record: logging.LogRecord) -> bool:
    held.append(record)
    return False

  loggers = [logging.getLogger(name) for name in ("absl", "orbax", "asyncio")]
  saved_stderr, buffer = sys.stderr, io.StringIO()
  for logger in loggers:
    logger.addFilter(hold)
  sys.stderr = buffer
  dropped = False
  try:
    yield
  except BaseException as e:
    # After a full disk orbax's threads go on reporting: let them finish, then drop it
    # all (the raised error names the cause). Any other failure shows what orbax said.
    dropped = disk_full_cause(e) is not None
    if dropped:
      _wait_for_quiet(buffer)
    raise
  finally:
    sys.stderr = saved_stderr
    for logger in loggers:
      logger.removeFilter(hold)
    if not dropped:
      saved_stderr.write(buffer.getvalue())
      for record in held:
        logging.getLogger(record.name).handle(record)


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) mirroring `tree`, as a restore target."""
  def one(x):
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))
  return jax.tree_util.tree_map(one, tree)


class StateCheckpointer:
  """Saves every call it is given; keeps the newest `max_to_keep` steps."""

  def __init__(self, directory: str | os.PathLike, max_to_keep: int = 3):
    if max_to_keep < 1:
      raise ValueError(f"checkpoint max_to_keep must be >= 1, got {max_to_keep}")
    self.directory = os.path.abspath(os.fspath(directory))
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_names=("state", "meta"))

  def save(self, step: int, state: Any, meta: dict) -> None:
    with _held_back_output():
      self.manager.save(int(step), args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
      self.manager.wait_until_finished()

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def restore(self, step: int, target: Any) -> tuple[Any, dict]:
    """(state shaped like `target`, meta) of `step`; `target` may hold arrays or
    ShapeDtypeStructs."""
    if step not in self.manager.all_steps():
      raise FileNotFoundError(f"{self.directory}: no checkpoint for step {step} "
                              f"(have {self.all_steps()})")
    restored = self.manager.restore(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_like(target)), meta=ocp.args.JsonRestore()))
    return restored["state"], dict(restored["meta"])

  def close(self) -> None:
    self.manager.close()
