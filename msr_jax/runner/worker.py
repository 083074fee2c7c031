"""Runs arm x seed runs and stores their results: `python -m msr_jax.runner.worker`.

Two modes. `--spec FILE` runs one run and exits. `--serve` is the sweep's long-lived
worker: it reads one request per line on stdin (JSON: {"spec": path, "log": path}), runs
it with its stdout and stderr sent to that run's log file, and answers `done KEY` on its
own stdout. A served worker keeps what JAX has traced and compiled between runs, which
at smoke scale is most of an arm's cost; runs share no other state (an entry is a
function of its config and seed), so a run's result does not depend on what ran before
it in the same process. A crash (even a segfault or an out-of-memory kill) costs only
the run in progress: the sweep records it and starts a fresh worker. An exception is
recorded in the result store with its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import time
import traceback

from msr_jax.runner.store import ResultStore


def resolve_entry(entry: str):
  module_name, _, function_name = entry.partition(":")
  module = importlib.import_module(module_name)
  return getattr(module, function_name)


def enable_compilation_cache(run_dir: str) -> None:
  """Arms of a sweep compile the same shapes: share the compiled programs on disk."""
  import jax

  jax.config.update("jax_compilation_cache_dir", os.path.join(run_dir, ".jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def run_spec(spec: dict, run_dir: str) -> dict:
  """Runs one spec and stores its result. What it prints (a header, the run's own warnings
  and output, the outcome with the traceback of a failure) is the run's log in a sweep."""
  store = ResultStore(run_dir)
  start = time.time()
  result = {"spec": spec, "key": spec["key"]}
  print(f"run {spec['key']}: {spec.get('experiment')} / {spec.get('arm')} / seed "
        f"{spec['seed']} ({spec['entry']})", flush=True)
  try:
    output = resolve_entry(spec["entry"])(spec["config"], spec["seed"])
    result.update(status="ok", output=output)
  except Exception:  # Recorded, not raised: one arm's failure must not stop the sweep.
    result.update(status="error", error=traceback.format_exc())
  result["wall_s"] = time.time() - start
  store.put(spec["key"], result)
  print(f"run {spec['key']}: {result['status']} in {result['wall_s']:.1f} s", flush=True)
  if result["status"] != "ok":
    print(result["error"], file=sys.stderr, flush=True)
  return result


def log_to_stderr() -> None:
  """msr_jax's warnings and notes (data cuts, skipped records, guard events) to stderr,
  which a served run points at its log."""
  import logging
  handler = logging.StreamHandler(sys.stderr)
  handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
  logger = logging.getLogger("msr_jax")
  logger.addHandler(handler)
  logger.setLevel(logging.INFO)
  logger.propagate = False  # a library may have given the root logger a handler too


@contextlib.contextmanager
def output_to(log_path: str):
  """Points file descriptors 1 and 2 (Python's and native code's output) at a log file."""
  sys.stdout.flush()
  sys.stderr.flush()
  saved = os.dup(1), os.dup(2)
  with open(log_path, "a") as log:
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    try:
      yield
    finally:
      sys.stdout.flush()
      sys.stderr.flush()
      os.dup2(saved[0], 1)
      os.dup2(saved[1], 2)
      os.close(saved[0])
      os.close(saved[1])


def serve(run_dir: str, requests=None, replies=None) -> int:
  """Runs requests until stdin closes; returns the number of runs that failed."""
  requests = requests or sys.stdin
  # Replies go to the stdout this process started with; runs write to their logs.
  replies = replies or os.fdopen(os.dup(1), "w", buffering=1)
  failed = 0
  for line in requests:
    if not line.strip():
      continue
    request = json.loads(line)
    with open(request["spec"]) as f:
      spec = json.load(f)
    with output_to(request["log"]):
      result = run_spec(spec, run_dir)
    failed += result["status"] != "ok"
    replies.write(f"done {spec['key']}\n")
    replies.flush()
  return failed


def main(argv=None) -> int:
  parser = argparse.ArgumentParser()
  mode = parser.add_mutually_exclusive_group(required=True)
  mode.add_argument("--spec", help="path to the run spec JSON: run it and exit")
  mode.add_argument("--serve", action="store_true",
                    help="run requests read from stdin until it closes (the sweep's workers)")
  parser.add_argument("--run-dir", required=True)
  args = parser.parse_args(argv)
  enable_compilation_cache(args.run_dir)
  log_to_stderr()
  if args.serve:
    serve(args.run_dir)
    return 0
  with open(args.spec) as f:
    spec = json.load(f)
  result = run_spec(spec, args.run_dir)
  return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
  sys.exit(main())
