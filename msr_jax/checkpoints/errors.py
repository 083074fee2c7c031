"""The one error type every checkpoint reader raises, so callers catch a single thing."""

from __future__ import annotations

from msr_jax.errors import UserError


class CheckpointError(UserError, ValueError):
  """A checkpoint could not be loaded or written; the message names the file and the
  tensor or field at fault. Raised before anything is returned: no partial loads."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
  """A checkpoint file or folder that is not there; the message names it."""
