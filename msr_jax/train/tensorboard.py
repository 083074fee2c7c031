"""metrics.jsonl's numbers as TensorBoard event files, through tensorboardX's writer.

Each line's numeric fields become scalars tagged `<type>/<field>` (`train/loss`,
`train/grad_norm`, `train/drift/all`, `train/tokens_per_s`, `guard/score`, ...) at the
line's step. metrics.jsonl stays the record a resume restores; the event files are for
watching (`tensorboard --logdir RUN_DIR`), and a resumed run appends a new event file
whose steps continue from the checkpoint.
"""

from __future__ import annotations

import contextlib
import math

from msr_jax.errors import RESUME_ADVICE, DiskFullError, describe_disk_full, disk_full_cause

FOLDER = "tensorboard"


class Board:

  def __init__(self, log_dir: str):
    from tensorboardX import SummaryWriter
    self.log_dir = log_dir
    with self._named("creating the event file"):
      self._writer = SummaryWriter(log_dir)

  @contextlib.contextmanager
  def _named(self, doing: str):
    """A full disk is an error naming the event folder (the run resumes once freed)."""
    try:
      yield
    except OSError as e:
      if disk_full_cause(e) is None:
        raise
      raise DiskFullError(describe_disk_full(e, f"{self.log_dir}: {doing}",
                                             RESUME_ADVICE)) from e

  def write(self, record: dict) -> None:
    kind, step = record.get("type", "event"), int(record["step"])
    with self._named("writing TensorBoard events"):
      for name, value in record.items():
        if name in ("type", "step") or isinstance(value, bool):
          continue
        if isinstance(value, (int, float)) and math.isfinite(value):
          self._writer.add_scalar(f"{kind}/{name}", value, step)

  def close(self) -> None:
    with self._named("closing the event file"):
      self._writer.close()
