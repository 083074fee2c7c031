"""Runs one arm x seed in this process and stores its result: `python -m msr_jax.runner.worker`.

The sweep starts one worker per run so arms never share JAX state, and a crash (even a
segfault or an out-of-memory kill) costs only that run. An exception is recorded in the
result store with its traceback; the parent records deaths that left no result.
"""

from __future__ import annotations

import argparse
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
  store = ResultStore(run_dir)
  start = time.time()
  result = {"spec": spec, "key": spec["key"]}
  try:
    output = resolve_entry(spec["entry"])(spec["config"], spec["seed"])
    result.update(status="ok", output=output)
  except Exception:  # Recorded, not raised: one arm's failure must not stop the sweep.
    result.update(status="error", error=traceback.format_exc())
  result["wall_s"] = time.time() - start
  store.put(spec["key"], result)
  return result


def main(argv=None) -> int:
  parser = argparse.ArgumentParser()
  parser.add_argument("--spec", required=True, help="path to the run spec JSON")
  parser.add_argument("--run-dir", required=True)
  args = parser.parse_args(argv)
  with open(args.spec) as f:
    spec = json.load(f)
  enable_compilation_cache(args.run_dir)
  result = run_spec(spec, args.run_dir)
  return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
  sys.exit(main())
