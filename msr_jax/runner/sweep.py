"""Sweeps: expand experiments into runs, run them in N worker processes at a time.

Finished runs (an "ok" result in the store) are skipped, so a killed sweep resumes where
it stopped; `index` runs a single run in this process (none if it finished already), for
a cluster job array (`scripts/slurm_sweep.sh`: `msr sweep experiments/p1_forgetting.py
--index $SLURM_ARRAY_TASK_ID`, sized by `msr sweep ... --count`).
"""

from __future__ import annotations

import json
import os
import pathlib

from tqdm import tqdm

from msr_jax.runner import experiment as experiment_lib
from msr_jax.runner.pool import WorkerPool
from msr_jax import atomic
from msr_jax.runner.store import ResultStore
from msr_jax.runner.worker import run_spec


def prepare(exp_paths: list[str], run_dir: str, scale: str) -> tuple[list[dict], list]:
  """Loads and expands the experiments; records them (with their analysis) in run_dir."""
  run_dir = pathlib.Path(run_dir)
  experiments, runs = [], []
  for path in exp_paths:
    exp = experiment_lib.load_experiment(path, scale)
    experiments.append(exp)
    runs.extend(experiment_lib.expand(exp))
  index_path = run_dir / "experiments.json"
  known = {}
  if index_path.exists():
    known = {e["name"]: e for e in json.loads(index_path.read_text())}
  known.update({e["name"]: e for e in experiments})
  atomic.write_json(index_path, list(known.values()))
  for run in runs:
    atomic.write_json(run_dir / "specs" / f"{run.key}.json", run.to_json())
  return experiments, runs


def count_runs(exp_paths: list[str], scale: str) -> int:
  """How many runs (arms x seeds) the experiments expand to: the `--index` range."""
  return sum(len(experiment_lib.expand(experiment_lib.load_experiment(p, scale)))
             for p in exp_paths)


# A worker's compiled programs accumulate: after about 45 Townworld arms a worker ran out
# of memory for LLVM's code sections (2-core CPU, 24 GiB). Recycling it after 20 keeps
# well clear of that at the cost of one re-trace per 20 runs.
RUNS_PER_WORKER = 20


def _worker_env() -> dict:
  env = dict(os.environ)
  # Each worker gets its own process; keep arms from fighting over the same cores.
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  return env


def run_sweep(exp_paths: list[str], run_dir: str, scale: str = "smoke", jobs: int = 1,
              index: int | None = None, progress: bool = True,
              runs_per_worker: int = RUNS_PER_WORKER) -> dict:
  """Runs every unfinished run, `jobs` worker processes at a time (each serving many runs,
  `runs_per_worker` at most when it is not 0); `index` runs one run in this process."""
  run_dir = str(run_dir)
  _, runs = prepare(exp_paths, run_dir, scale)
  store = ResultStore(run_dir)
  if index is not None:
    if not 0 <= index < len(runs):
      raise IndexError(f"--index {index}: the sweep has {len(runs)} runs (0..{len(runs) - 1})")
    if store.is_done(runs[index].key):  # a re-submitted job array redoes nothing
      return {"total": 1, "ran": 0, "failed": 0, "skipped": 1}
    result = run_spec(runs[index].to_json(), run_dir)
    return {"total": 1, "ran": 1, "failed": int(result["status"] != "ok"), "skipped": 0}

  unique = list({r.key: r for r in runs}.values())
  pending = [r for r in unique if not store.is_done(r.key)]
  skipped = len(unique) - len(pending)
  bar = tqdm(total=len(unique), initial=skipped, desc="arms", unit="run", disable=not progress,
             dynamic_ncols=True)
  failed, queue = 0, list(pending)
  log_dir = pathlib.Path(run_dir) / "logs"
  log_dir.mkdir(parents=True, exist_ok=True)
  with WorkerPool(run_dir, jobs, _worker_env(), runs_per_worker) as pool:
    while queue or pool.busy:
      while queue and pool.has_room():
        run = queue.pop(0)
        log = log_dir / f"{run.experiment}.{run.arm}.s{run.seed}.{run.key}.log"
        log.write_text("")
        pool.submit(run, str(pathlib.Path(run_dir) / "specs" / f"{run.key}.json"), str(log))
      for done in pool.wait():
        result = store.get(done.run.key)
        if done.exit_code is not None and not (result and result.get("status") == "ok"):
          # The worker died before it could record this run (or left an older error).
          tail = pathlib.Path(done.log).read_text()[-4000:]
          store.put(done.run.key, {"spec": done.run.to_json(), "key": done.run.key,
                                   "status": "error",
                                   "error": f"worker exited with code {done.exit_code}:\n{tail}"})
          result = store.get(done.run.key)
        if result is None or result.get("status") != "ok":
          failed += 1
        bar.update(1)
        bar.set_postfix(failed=failed, remaining=len(queue) + len(pool.busy))
  bar.close()
  return {"total": len(unique), "ran": len(pending), "failed": failed, "skipped": skipped}
