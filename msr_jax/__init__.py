"""msr-jax: continual fine-tuning of language models without forgetting, in JAX.

`import msr_jax` stays cheap (no JAX, no transformers): `load` and `forward_logits` are
imported from `msr_jax.api` on first use.
"""

from __future__ import annotations

import importlib

__all__ = ["load", "forward_logits", "LoadedModel"]
_LAZY = {"load": "msr_jax.api", "forward_logits": "msr_jax.api", "LoadedModel": "msr_jax.api"}


def __getattr__(name: str):
  if name in _LAZY:
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # Later lookups skip this hook.
    return value
  raise AttributeError(f"module 'msr_jax' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + __all__)
