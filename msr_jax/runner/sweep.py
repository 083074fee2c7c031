"""Sweeps: expand experiments into runs, run each in its own process, N at a time.

Finished runs (an "ok" result in the store) are skipped, so a killed sweep resumes where
it stopped; `index` runs a single run in this process, for a cluster job array
(`msr sweep experiments/p1_forgetting.py --index $SLURM_ARRAY_TASK_ID`).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

from tqdm import tqdm

from msr_jax.runner import experiment as experiment_lib
from msr_jax.runner.store import ResultStore, write_json_atomic
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
  write_json_atomic(index_path, list(known.values()))
  for run in runs:
    write_json_atomic(run_dir / "specs" / f"{run.key}.json", run.to_json())
  return experiments, runs


def _worker_env() -> dict:
  env = dict(os.environ)
  # Each worker gets its own process; keep arms from fighting over the same cores.
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  return env


def run_sweep(exp_paths: list[str], run_dir: str, scale: str = "smoke", jobs: int = 1,
              index: int | None = None, progress: bool = True) -> dict:
  run_dir = str(run_dir)
  _, runs = prepare(exp_paths, run_dir, scale)
  store = ResultStore(run_dir)
  if index is not None:
    if not 0 <= index < len(runs):
      raise IndexError(f"--index {index}: the sweep has {len(runs)} runs (0..{len(runs) - 1})")
    result = run_spec(runs[index].to_json(), run_dir)
    return {"total": 1, "ran": 1, "failed": int(result["status"] != "ok"), "skipped": 0}

  unique = list({r.key: r for r in runs}.values())
  pending = [r for r in unique if not store.is_done(r.key)]
  skipped = len(unique) - len(pending)
  bar = tqdm(total=len(unique), initial=skipped, desc="arms", unit="run", disable=not progress,
             dynamic_ncols=True)
  failed, active = 0, []
  queue = list(pending)
  log_dir = pathlib.Path(run_dir) / "logs"
  log_dir.mkdir(parents=True, exist_ok=True)
  while queue or active:
    while queue and len(active) < max(1, jobs):
      run = queue.pop(0)
      spec_path = pathlib.Path(run_dir) / "specs" / f"{run.key}.json"
      log = open(log_dir / f"{run.experiment}.{run.arm}.s{run.seed}.{run.key}.log", "w")
      proc = subprocess.Popen(
          [sys.executable, "-m", "msr_jax.runner.worker", "--spec", str(spec_path),
           "--run-dir", run_dir], stdout=log, stderr=subprocess.STDOUT, env=_worker_env())
      active.append((proc, run, log))
    time.sleep(0.2)
    still = []
    for proc, run, log in active:
      code = proc.poll()
      if code is None:
        still.append((proc, run, log))
        continue
      log.close()
      result = store.get(run.key)
      if result is None:  # The process died before it could record anything.
        tail = pathlib.Path(log.name).read_text()[-4000:]
        store.put(run.key, {"spec": run.to_json(), "key": run.key, "status": "error",
                            "error": f"worker exited with code {code}:\n{tail}"})
        result = store.get(run.key)
      if result.get("status") != "ok":
        failed += 1
      bar.update(1)
      bar.set_postfix(failed=failed, remaining=len(queue) + len(still))
    active = still
  bar.close()
  return {"total": len(unique), "ran": len(pending), "failed": failed, "skipped": skipped}
