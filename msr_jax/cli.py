"""The `msr` command.

Each sub-command lives in its own module under `msr_jax.commands` and exposes
`register(subparsers)`, which adds its parser and sets `func` to the function that runs it.
New commands are found automatically, so adding one never touches this file.

An error that is the user's to fix (a `msr_jax.errors.UserError`: a bad file, field or run
folder) or a full disk is printed as one line, `msr COMMAND: ...`, with exit code 1;
MSR_TRACEBACK=1 shows the traceback as well.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from msr_jax import commands
from msr_jax.errors import UserError, describe_disk_full, disk_full_cause


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="msr", description=__doc__.splitlines()[0])
  subparsers = parser.add_subparsers(dest="command", required=True)
  for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
    module = importlib.import_module(f"{commands.__name__}.{info.name}")
    register = getattr(module, "register", None)
    if register is not None:
      register(subparsers)
  return parser


def entry() -> None:
  """The `msr` console script: `main`, and after a full disk an immediate exit, before
  the storage library's threads can print their own reports of it."""
  sys.exit(main(exit_hard_on_disk_full=True))


def main(argv: list[str] | None = None, exit_hard_on_disk_full: bool = False) -> int:
  parser = build_parser()
  args, extra = parser.parse_known_args(argv)
  if extra and not getattr(args, "accepts_overrides", False):
    parser.error(f"unrecognized arguments: {' '.join(extra)}")
  args.overrides = extra
  try:
    result = args.func(args)
  except Exception as e:  # noqa: BLE001 - re-raised unless it is the user's to fix
    disk_full = disk_full_cause(e) is not None
    if isinstance(e, UserError):
      message = str(e)
    elif disk_full:
      message = describe_disk_full(e, "writing failed")  # not a training run: no resume
    else:
      raise
    if os.environ.get("MSR_TRACEBACK"):
      raise
    print(f"msr {args.command}: {message}", file=sys.stderr)
    if disk_full and exit_hard_on_disk_full:
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(1)
    return 1
  return int(result or 0)


if __name__ == "__main__":
  entry()
