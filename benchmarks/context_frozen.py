"""Context-frozen vs full backprop: step time and peak memory against context length.

For each context length (default 512 ... 8192) with 64 decision tokens and batch 1, on
`townworld_tiny` widened to width 512 (8 heads of 64, 4 layers, MLP 1280, vocab 1024),
float32, AdamW, the drift monitor on (as in real runs), one fresh subprocess per (mode,
length) measures:
  - compiled memory: `memory_analysis()` of the compiled step, temp + argument + output
    bytes (the step donates its state, so arguments and outputs alias: the sum counts the
    state twice, in both modes alike);
  - process peak RSS (`ru_maxrss`) after the timed steps, and its growth over the RSS
    just before the first step (the runtime and the model's own arrays excluded);
  - step time: the median of `--steps` steps after one warm-up step;
  - XLA's flop count of the compiled step (`cost_analysis()`), available even for a
    configuration too large to run (for a chunked prefill, counted on the one-shot
    prefill: XLA counts a scan's body once).
A configuration whose compiled memory exceeds `--max-gib` is compiled but not run (its time
and RSS are reported as "-"), so the benchmark cannot exhaust a shared machine.

  python benchmarks/context_frozen.py [--contexts 512,1024,2048,4096,8192] [--steps 3]
      [--prefill-chunk 1024] [--max-gib 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time

DECISION = 64


def _rss_bytes() -> int:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(mode: str, context: int, steps: int, prefill_chunk: int, max_bytes: float) -> dict:
  import jax
  import numpy as np
  from flax import nnx

  from msr_jax import optim
  from msr_jax.model import Decoder, ModelConfig
  from msr_jax.train.batch import Batch
  from msr_jax.train.state import init_state
  from msr_jax.train.step import make_train_step

  config = dataclasses.replace(
      ModelConfig.preset("townworld_tiny"), hidden_size=512, intermediate_size=1280,
      num_heads=8, num_kv_heads=8, head_dim=64, num_layers=4,
      max_position_embeddings=context + DECISION)
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(0)), nnx.Param)
  tx = optim.make_optimizer({"name": "adamw", "learning_rate": 1e-4})
  state = init_state(params, tx)
  rng = np.random.default_rng(0)
  tokens = lambda n: rng.integers(0, config.vocab_size, (1, n)).astype(np.int32)
  batch = Batch(tokens(context), np.asarray([context], np.int32), tokens(DECISION),
                tokens(DECISION), np.ones((1, DECISION), np.float32))
  step = jax.jit(make_train_step(graphdef, config, tx, mode, prefill_chunk=prefill_chunk),
                 donate_argnums=0)
  began = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - began
  analysis = compiled.memory_analysis()
  out = {"mode": mode, "context": context, "compile_s": compile_s,
         "temp_bytes": analysis.temp_size_in_bytes,
         "argument_bytes": analysis.argument_size_in_bytes,
         "output_bytes": analysis.output_size_in_bytes}
  out["compiled_bytes"] = out["temp_bytes"] + out["argument_bytes"] + out["output_bytes"]
  out["flops"] = _flops(compiled)
  if mode == "context_frozen" and 0 < prefill_chunk < context:
    # XLA counts a while loop's body once, so the chunked prefill's scan is undercounted;
    # the one-shot prefill does the same arithmetic (up to the chunk padding).
    out["flops"] = _flops(jax.jit(make_train_step(graphdef, config, tx, mode)).lower(
        state, batch).compile())
  out["step_s"] = out["peak_rss"] = out["rss_growth"] = None
  if out["compiled_bytes"] > max_bytes:
    return out
  rss_before = _rss_bytes()
  state, metrics = compiled(state, batch)  # warm-up
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    began = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - began)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
  out.update(step_s=statistics.median(times), peak_rss=peak, rss_growth=peak - rss_before,
             loss=float(metrics["loss"]))
  return out


def _flops(compiled) -> float | None:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"]) if cost and "flops" in cost else None


def _gib(x):
  return "-" if x is None else f"{x / 2**30:.2f}"


def _ratio(a, b):
  return "-" if a is None or b is None else f"{a / b:.3f}"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--contexts", default="512,1024,2048,4096,8192")
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--prefill-chunk", type=int, default=1024)
  parser.add_argument("--max-gib", type=float, default=8.0)
  parser.add_argument("--worker", nargs=2, metavar=("MODE", "CONTEXT"), help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    mode, context = args.worker
    print(json.dumps(worker(mode, int(context), args.steps, args.prefill_chunk,
                            args.max_gib * 2**30)))
    return
  import jax
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
        f"{os.cpu_count()} cpus; decision {DECISION} tokens, batch 1, float32, "
        f"prefill_chunk {args.prefill_chunk}", flush=True)
  header = ("context | flop ratio | full step s | frozen step s | time ratio | full compiled GiB | "
            "frozen compiled GiB | compiled ratio | full peak RSS GiB | frozen peak RSS GiB"
            " | RSS ratio | RSS growth ratio")
  rows = []
  for context in [int(c) for c in args.contexts.split(",")]:
    results = {}
    for mode in ("full", "context_frozen"):
      command = [sys.executable, os.path.abspath(__file__), "--worker", mode, str(context),
                 "--steps", str(args.steps), "--prefill-chunk", str(args.prefill_chunk),
                 "--max-gib", str(args.max_gib)]
      done = subprocess.run(command, capture_output=True, text=True, check=False)
      if done.returncode:
        raise SystemExit(f"worker {mode} {context} failed:\n{done.stderr[-3000:]}")
      results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
      print(json.dumps(results[mode]), file=sys.stderr, flush=True)
    f, c = results["full"], results["context_frozen"]
    rows.append(f"{context} | {_ratio(c['flops'], f['flops'])} | {f['step_s'] and round(f['step_s'], 3) or '-'} | "
                f"{c['step_s'] and round(c['step_s'], 3) or '-'} | "
                f"{_ratio(c['step_s'], f['step_s'])} | {_gib(f['compiled_bytes'])} | "
                f"{_gib(c['compiled_bytes'])} | {_ratio(c['compiled_bytes'], f['compiled_bytes'])}"
                f" | {_gib(f['peak_rss'])} | {_gib(c['peak_rss'])} | "
                f"{_ratio(c['peak_rss'], f['peak_rss'])} | "
                f"{_ratio(c['rss_growth'], f['rss_growth'])}")
    print(rows[-1] if len(rows) > 1 else header + "\n" + "--- | " * 11 + "---\n" + rows[-1],
          flush=True)


if __name__ == "__main__":
  main()
