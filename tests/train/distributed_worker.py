"""One process of the multi-host check (`test_distributed.py` runs it): three train steps
on a data=2 x fsdp=2 mesh over every global device, the parameters gathered and saved by
process 0. Run alone (one process with 4 CPU devices) it is the reference.

  distributed_worker.py OUT.npz MODE                      the jitted step
  distributed_worker.py OUT.npz loop HF_FOLDER RUN_DIR    `train_loop` from a checkpoint
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from msr_jax.train import distributed  # noqa: E402

distributed.initialize_from_env()

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

from msr_jax import optim  # noqa: E402
from msr_jax.model import make_mesh  # noqa: E402
from msr_jax.train.state import init_state  # noqa: E402
from msr_jax.train.step import jit_train_step, make_train_step  # noqa: E402
from tests.train.conftest import random_batch, tiny_model  # noqa: E402


def save(out, params, losses) -> None:
  gathered = multihost_utils.process_allgather(params, tiled=True)
  if jax.process_index() == 0:
    flat = {jax.tree_util.keystr(p): np.asarray(x)
            for p, x in jax.tree_util.tree_leaves_with_path(gathered)}
    np.savez(out, losses=np.asarray(losses), **flat)


def loop(out: str, folder: str, run_dir: str) -> None:
  import pathlib
  sys.path.insert(0, str(pathlib.Path(__file__).parent))
  from msr_jax.train import metrics_log
  from msr_jax.train.loop import train_loop
  from test_train_from_checkpoint import _config
  config = _config(pathlib.Path(run_dir).parent, folder, **{
      "mesh.data": 2, "mesh.fsdp": 2, "train.steps": 3, "train.batch_size": 4,
      "checkpoint.every": 2})
  config.run_dir = run_dir
  result = train_loop(config)
  losses = [m["loss"] for m in metrics_log.read(f"{result.summary['run_dir']}/metrics.jsonl")
            if m["type"] == "train"]
  save(out, result.state.params, losses)


def main(out: str, mode: str) -> None:
  assert jax.device_count() == 4, jax.device_count()
  config, graphdef, params = tiny_model()
  tx = optim.make_optimizer({"name": "adamw", "learning_rate": 1e-2, "weight_decay": 0.1})
  batches = [random_batch(20 + i, batch_size=4) for i in range(3)]
  mesh = make_mesh(data=2, fsdp=2)
  step = make_train_step(graphdef, config, tx, mode)
  jitted, state = jit_train_step(step, init_state(params, tx), mesh, batches[0])
  losses = []
  for batch in batches:
    state, metrics = jitted(state, batch)
    losses.append(float(metrics["loss"]))
  save(out, state.params, losses)


if __name__ == "__main__":
  if sys.argv[2] == "loop":
    loop(sys.argv[1], sys.argv[3], sys.argv[4])
  else:
    main(sys.argv[1], sys.argv[2])
