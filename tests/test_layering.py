"""Imports only go down: the generic library knows no testbed and no orchestration.

DESIGN.md's layers: model, checkpoints, optim, data, train, sample and memory are the
generic library, and so are eval (metrics, KL, CKA, sharpness, probe scoring) and dream
(the loop over its domain interface); world (Townworld, with its probes and dream domain)
is a domain; runner and commands orchestrate. A module
of the library that imports a domain or the orchestration, even inside a function, is
what this test refuses (configs and experiments name the testbed, not the library).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "msr_jax"
LIBRARY = ("model", "checkpoints", "optim", "data", "train", "sample", "memory")
# The generic parts above the core library: they import no domain either (their docs may
# name Townworld's implementation of their interfaces).
GENERIC = LIBRARY + ("eval", "dream")
ABOVE = ("msr_jax.world", "msr_jax.chat", "msr_jax.runner", "msr_jax.commands", "msr_jax.cli")


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
  out = []
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      out += [(node.lineno, alias.name) for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      out += [(node.lineno, node.module)] + [
          (node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
  return out


@pytest.mark.parametrize("folder", GENERIC)
def test_the_library_imports_no_domain_and_no_orchestration(folder):
  bad = [f"{path.relative_to(PACKAGE.parent)}:{line}: {name}"
         for path in sorted((PACKAGE / folder).rglob("*.py"))
         for line, name in _imports(path)
         if any(name == above or name.startswith(above + ".") for above in ABOVE)]
  assert not bad, "\n".join(bad)


def test_the_library_defaults_name_no_testbed():
  from msr_jax.data.config import get_data_config
  data = get_data_config()
  assert dict(data.weights) == {} and data.narrow_source == ""
  text = "\n".join(p.read_text() for f in LIBRARY for p in (PACKAGE / f).rglob("*.py"))
  assert "msr_jax.world" not in text
