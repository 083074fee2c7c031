"""Errors that are the user's to fix, and recognising a full disk under library wrappers.

`UserError` marks an error about something the user gave or has (a file and its line or
field, a config field, a run folder): its message says what and where, so the `msr`
command prints that one line instead of a traceback. The readers' own error types
(`ConfigError`, `RecordError`, `CheckpointError`, `MemoryGraphError`, ...) derive from it.

A full disk reaches us wrapped: orbax re-raises a failed write from its threads, sometimes
several times over, and tensorstore reports it as text. `disk_full_cause` walks an
exception's chain and finds the out-of-space error underneath, so it can be reported as
one clear line.
"""

from __future__ import annotations

import errno
import re

# ENOSPC: the file system is full; EDQUOT: a quota; EFBIG: a file-size limit (ulimit -f).
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NO_SPACE_TEXT = ("no space left on device", "disk quota exceeded", "file too large")


class UserError(Exception):
  """An error whose message alone tells the user what to fix and where."""


class ConfigError(UserError, ValueError):
  """A config file or field that cannot be used; the message names the file or field."""


class DiskFullError(UserError, OSError):
  """A write failed for lack of space; the message names the file and what to do."""


def disk_full_cause(exc: BaseException) -> BaseException | None:
  """The out-of-space error in `exc`'s chain (causes, contexts, exception groups), if any."""
  seen, todo = set(), [exc]
  while todo:
    e = todo.pop()
    if e is None or id(e) in seen:
      continue
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno in NO_SPACE_ERRNOS:
      return e
    if any(text in str(e).lower() for text in _NO_SPACE_TEXT):
      return e
    todo += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]
  return None


RESUME_ADVICE = ("free space and run the same command again: the run resumes from its last "
                 "checkpoint")


def describe_disk_full(exc: BaseException, what: str,
                       advice: str = "free space and try again") -> str:
  """One line: what was being written, the system's words, and how to go on."""
  cause = disk_full_cause(exc) or exc
  where = getattr(cause, "filename", None)
  if isinstance(cause, OSError) and cause.strerror:
    reason = cause.strerror
  else:  # A library's text (tensorstore's, through orbax): its phrase and its last file.
    text = str(cause)
    reason = next((p for p in _NO_SPACE_TEXT if p in text.lower()), text.strip() or
                  type(cause).__name__).capitalize().splitlines()[0]
    files = re.findall(r'"(/[^"]+)"', text)
    where = where or (files[-1] if files else None)
  return f"{what}: out of disk space ({reason}{f': {where}' if where else ''}); {advice}"
