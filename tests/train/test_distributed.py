"""Multi-host training (`train/distributed.py`): two processes on this machine's CPU,
joined by `jax.distributed` from the environment, take the same update as one process
with as many devices; the scheduler environments map to the right initialisation."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from msr_jax.train import distributed

WORKER = pathlib.Path(__file__).with_name("distributed_worker.py")
ROOT = pathlib.Path(__file__).resolve().parents[2]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(devices: int, **extra) -> dict:
  env = {k: v for k, v in os.environ.items() if not k.startswith(("MSR_", "SLURM_", "OMPI_"))}
  env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), **extra)
  return env


def _one_and_two(tmp_path, *args):
  """The worker as one process of 4 devices and as two processes of 2."""
  one = tmp_path / "one.npz"
  subprocess.run([sys.executable, str(WORKER), str(one), *[a.format(n="one") for a in args]],
                 env=_env(4), check=True, timeout=300)
  two = tmp_path / "two.npz"
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, str(WORKER), str(two), *[a.format(n="two") for a in args]],
      env=_env(2, MSR_COORDINATOR=f"localhost:{port}", MSR_NUM_PROCESSES="2",
               MSR_PROCESS_ID=str(i)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
      for i in range(2)]
  outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
  assert all(p.returncode == 0 for p in procs), "\n".join(outputs)
  return np.load(one), np.load(two)


def test_two_processes_take_the_same_update_as_one(tmp_path):
  """The jitted step with full backprop (the loop test below trains context-frozen)."""
  a, b = _one_and_two(tmp_path, "full")
  assert sorted(a.files) == sorted(b.files) and len(a.files) > 10
  np.testing.assert_allclose(b["losses"], a["losses"], rtol=1e-6)
  for name in a.files:
    np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_train_loop_across_two_processes_equals_one(tmp_path):
  """`train_loop` from an HF folder on a 2 x 2 mesh: the same losses and weights from two
  processes as from one; process 1 logs in a folder of its own, the checkpoints are
  shared."""
  sys.path.insert(0, str(pathlib.Path(__file__).parent))
  from test_train_from_checkpoint import _hf_folder
  folder = _hf_folder(tmp_path / "hf", "llama")
  a, b = _one_and_two(tmp_path, "loop", str(folder), str(tmp_path / "run_{n}"))
  np.testing.assert_allclose(b["losses"], a["losses"], rtol=1e-6)
  for name in a.files:
    np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-7, err_msg=name)
  assert (tmp_path / "run_two" / "process_1" / "metrics.jsonl").exists()
  assert sorted(p.name for p in (tmp_path / "run_two" / "checkpoints").iterdir()
                if p.name.isdigit()) == ["2", "3"]


def test_the_environment_decides_the_initialisation():
  assert distributed.cluster_kwargs({}) is None
  assert distributed.cluster_kwargs({"SLURM_NTASKS": "1"}) is None
  assert distributed.cluster_kwargs({"SLURM_NTASKS": "4", "SLURM_PROCID": "2",
                                     "SLURM_STEP_ID": "0"}) == {}
  # A batch script outside any srun step is one process, however many tasks it asked for.
  assert distributed.cluster_kwargs({"SLURM_NTASKS": "4"}) is None
  assert distributed.cluster_kwargs({"OMPI_COMM_WORLD_SIZE": "2"}) == {}
  assert distributed.cluster_kwargs({"MSR_COORDINATOR": "h:1", "MSR_NUM_PROCESSES": "2",
                                     "MSR_PROCESS_ID": "1", "MSR_LOCAL_DEVICES": "0,1"}) == {
      "coordinator_address": "h:1", "num_processes": 2, "process_id": 1,
      "local_device_ids": [0, 1]}
  assert distributed.cluster_kwargs({"MSR_COORDINATOR": "h:1", "MSR_NUM_PROCESSES": "1",
                                     "MSR_PROCESS_ID": "0"}) is None
  with pytest.raises(ValueError, match="MSR_NUM_PROCESSES"):
    distributed.cluster_kwargs({"MSR_COORDINATOR": "h:1"})
