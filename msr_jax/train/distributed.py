"""Training past one machine: `jax.distributed` from the environment a scheduler sets.

`initialize_from_env()` starts JAX's multi-controller runtime when the environment says
that this process is one of several, and does nothing otherwise:
  - explicit: MSR_COORDINATOR (host:port of process 0), MSR_NUM_PROCESSES, MSR_PROCESS_ID
    (and MSR_LOCAL_DEVICES, comma-separated local device ids, if a process should not take
    every local device);
  - Slurm (SLURM_NTASKS > 1 inside an `srun` step, SLURM_STEP_ID set) and Open MPI
    (OMPI_COMM_WORLD_SIZE > 1):
    `jax.distributed.initialize()` detects coordinator, count and rank itself.
On the CPU backend the collectives go through gloo. It must run before anything touches a
device; `msr train` calls it first.

Every process runs the same program on the same data stream (seeded, so every process
builds the same global batch); `global_tree(tree, shardings)` turns such host values into
global arrays, each process materialising only its own shards
(`jax.make_array_from_callback`), which is what the jitted step takes across hosts.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping

import jax
import numpy as np

log = logging.getLogger(__name__)

_initialized = False


def _explicit(environ: Mapping[str, str]) -> dict | None:
  if "MSR_COORDINATOR" not in environ:
    return None
  try:
    kwargs = {"coordinator_address": environ["MSR_COORDINATOR"],
              "num_processes": int(environ["MSR_NUM_PROCESSES"]),
              "process_id": int(environ["MSR_PROCESS_ID"])}
  except (KeyError, ValueError) as e:
    raise ValueError("MSR_COORDINATOR is set: MSR_NUM_PROCESSES and MSR_PROCESS_ID must be "
                     f"integers ({e})") from None
  if environ.get("MSR_LOCAL_DEVICES"):
    kwargs["local_device_ids"] = [int(i) for i in environ["MSR_LOCAL_DEVICES"].split(",")]
  return kwargs


def cluster_kwargs(environ: Mapping[str, str] | None = None) -> dict | None:
  """The arguments of `jax.distributed.initialize` that the environment asks for ({} to let
  JAX detect a Slurm or Open MPI job), or None for a single process."""
  environ = os.environ if environ is None else environ
  explicit = _explicit(environ)
  if explicit is not None:
    return explicit if explicit["num_processes"] > 1 else None
  # Slurm: only inside a job step (`srun`), where every task runs this program; a batch
  # script itself (SLURM_NTASKS set, no step) is one process and must not wait for others.
  if int(environ.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_STEP_ID" in environ:
    return {}
  if int(environ.get("OMPI_COMM_WORLD_SIZE", "1") or 1) > 1:
    return {}
  return None


def initialize_from_env(environ: Mapping[str, str] | None = None) -> bool:
  """Starts the multi-process runtime if the environment names one; True when it did (or
  had). Idempotent."""
  global _initialized
  if _initialized:
    return True
  kwargs = cluster_kwargs(environ)
  if kwargs is None:
    return False
  if jax.config.jax_platforms in (None, "", "cpu") or "cpu" in str(jax.config.jax_platforms):
    # The CPU backend's cross-process collectives (a no-op choice on GPU and TPU).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
  _initialized = True
  log.info("jax.distributed: process %d of %d, %d of %d devices local",
           jax.process_index(), jax.process_count(), jax.local_device_count(),
           jax.device_count())
  return True


def is_multi_process() -> bool:
  return jax.process_count() > 1


def global_tree(tree, shardings):
  """Host values (the same on every process) as global arrays with `shardings`; each
  process builds only the shards its devices hold."""
  def one(x, sharding):
    if isinstance(x, jax.Array) and x.sharding == sharding:
      return x
    value = np.asarray(jax.device_get(x) if isinstance(x, jax.Array) else x)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])
  return jax.tree.map(one, tree, shardings)
