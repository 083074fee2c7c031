"""`msr info`: versions, devices and the default mesh."""

from __future__ import annotations

import importlib.metadata
import platform


def register(subparsers) -> None:
  parser = subparsers.add_parser("info", help="print versions, devices and the default mesh")
  parser.set_defaults(func=run)


def run(args) -> int:
  import jax

  from msr_jax.model import sharding

  print(f"python      {platform.python_version()}")
  for name in ("msr-jax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint",
               "transformers", "tokenizers", "safetensors", "ml-collections", "numpy"):
    try:
      version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      version = "not installed"
    print(f"{name:<18}{version}")
  print(f"backend     {jax.default_backend()}")
  for device in jax.devices():
    print(f"device      {device}")
  mesh = sharding.make_mesh()
  print(f"mesh        {dict(mesh.shape)}")
  return 0
