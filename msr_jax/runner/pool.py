"""A pool of long-lived worker processes (`python -m msr_jax.runner.worker --serve`).

Each worker runs one run at a time and keeps its JAX caches between runs. A worker that
dies mid-run (a segfault, an out-of-memory kill, `os._exit`) is reported with its exit
code and replaced by a fresh one; the other workers go on. `runs_per_worker` recycles a
worker after that many runs (0: never), bounding what a long sweep's caches can hold.
"""

from __future__ import annotations

import dataclasses
import json
import os
import selectors
import subprocess
import sys


@dataclasses.dataclass
class Finished:
  run: object
  exit_code: int | None  # None: the worker answered; otherwise it died with this code
  log: str


class _Worker:

  def __init__(self, run_dir: str, env: dict):
    self.proc = subprocess.Popen(
        [sys.executable, "-m", "msr_jax.runner.worker", "--serve", "--run-dir", run_dir],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, bufsize=1)
    self.run, self.log, self.served = None, None, 0

  def start(self, run, spec_path: str, log_path: str) -> None:
    self.run, self.log = run, log_path
    self.proc.stdin.write(json.dumps({"spec": spec_path, "log": log_path}) + "\n")
    self.proc.stdin.flush()

  def close(self) -> None:
    if self.proc.poll() is None:
      self.proc.stdin.close()
      self.proc.wait()


class WorkerPool:

  def __init__(self, run_dir: str, size: int, env: dict | None = None, runs_per_worker: int = 0):
    self.run_dir, self.size = str(run_dir), max(1, size)
    self.env = dict(os.environ if env is None else env)
    self.runs_per_worker = runs_per_worker
    self.idle: list[_Worker] = []
    self.busy: list[_Worker] = []
    self.selector = selectors.DefaultSelector()

  def has_room(self) -> bool:
    return len(self.busy) < self.size

  def submit(self, run, spec_path: str, log_path: str) -> None:
    worker = self.idle.pop() if self.idle else _Worker(self.run_dir, self.env)
    worker.start(run, spec_path, log_path)
    self.busy.append(worker)
    self.selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)

  def wait(self, timeout: float = 1.0) -> list[Finished]:
    """Runs that finished (or whose worker died) within `timeout` seconds."""
    finished = []
    for key, _ in self.selector.select(timeout):
      worker = key.data
      line = worker.proc.stdout.readline()
      self.selector.unregister(worker.proc.stdout)
      self.busy.remove(worker)
      if line.startswith("done "):
        finished.append(Finished(worker.run, None, worker.log))
        worker.served += 1
        if self.runs_per_worker and worker.served >= self.runs_per_worker:
          worker.close()
        else:
          self.idle.append(worker)
      else:  # End of file: the worker died in the middle of this run.
        finished.append(Finished(worker.run, worker.proc.wait(), worker.log))
    return finished

  def close(self) -> None:
    for worker in self.idle + self.busy:
      worker.close()
    self.idle, self.busy = [], []
    self.selector.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    if exc[0] is not None:  # Interrupted: stop the runs in progress, do not wait for them.
      for worker in self.busy:
        worker.proc.kill()
    self.close()
