"""The `msr` command.

Each sub-command lives in its own module under `msr_jax.commands` and exposes
`register(subparsers)`, which adds its parser and sets `func` to the function that runs it.
New commands are found automatically, so adding one never touches this file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from msr_jax import commands


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="msr", description=__doc__.splitlines()[0])
  subparsers = parser.add_subparsers(dest="command", required=True)
  for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
    module = importlib.import_module(f"{commands.__name__}.{info.name}")
    register = getattr(module, "register", None)
    if register is not None:
      register(subparsers)
  return parser


def main(argv: list[str] | None = None) -> int:
  parser = build_parser()
  args, extra = parser.parse_known_args(argv)
  if extra and not getattr(args, "accepts_overrides", False):
    parser.error(f"unrecognized arguments: {' '.join(extra)}")
  args.overrides = extra
  result = args.func(args)
  return int(result or 0)


if __name__ == "__main__":
  sys.exit(main())
