"""A SmolLM2-135M-Instruct train step: memory, tokens/s against PyTorch, checkpoint size.

On the shipped GGUF (float32) and one batch of the example's conversations
(`examples/forecast/train.jsonl`, loss on the answers), each configuration in its own
subprocess:
  ours      `msr_jax.train`'s step, context-frozen and full, AdamW or APOLLO-Mini:
            compiled memory of the step (`memory_analysis()`: arguments + temporaries,
            the state donated), process peak RSS, the median step time of `--steps`
            steps after a warm-up, and the size on disk of an orbax checkpoint of its state
            against the bytes of its parameters and optimizer state;
  pytorch   the same weights (exported with `msr export`'s writer) in transformers'
            LlamaForCausalLM, full backprop with the labels masked to the same answer
            tokens, `torch.optim.AdamW` with the same hyperparameters, the same threads.
Tokens/s counts the tokens each step runs forward over (context + decision), the same
number for every configuration.

  python benchmarks/real_model_step.py [--steps 5] [--batch 4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CHECKPOINT = "smollm2-135m-instruct-q4_1"
DATA = "examples/forecast/train.jsonl"
RUNS = [("ours", "context_frozen", "adamw"), ("ours", "full", "adamw"),
        ("ours", "context_frozen", "apollo_mini"), ("pytorch", "full", "adamw")]


def _batch(tokenizer, batch_size: int):
  from msr_jax.data.batch import make_batch
  from msr_jax.data.chat_template import ChatTemplateAdapter
  from msr_jax.data.pipeline import load_examples
  sources, _ = load_examples([DATA], ChatTemplateAdapter(tokenizer), 96, "raise", 0, 32, "")
  examples = [e for source in sorted(sources) for e in sources[source]][:batch_size]
  return make_batch(examples, (96,), (32,), tokenizer.pad_token_id or 0)


def run_ours(mode: str, optimizer: str, steps: int, batch_size: int) -> dict:
  import jax
  import numpy as np
  from msr_jax import optim
  from msr_jax.checkpoints import loader
  from msr_jax.checkpoints.orbax_state import StateCheckpointer
  from msr_jax.optim.state_bytes import optimizer_state_bytes
  from msr_jax.train.state import init_state, pure_params
  from msr_jax.train.step import make_train_step
  loaded = loader.load(CHECKPOINT)
  batch = _batch(loaded.tokenizer, batch_size)
  tx = optim.make_optimizer({"name": optimizer, "learning_rate": 1e-4})
  state = init_state(pure_params(loaded.params), tx)
  step = jax.jit(make_train_step(loaded.graphdef, loaded.config, tx, mode,
                                 monitor_drift=False), donate_argnums=(0,))
  memory = step.lower(state, batch).compile().memory_analysis()
  compiled_gib = (memory.argument_size_in_bytes + memory.temp_size_in_bytes) / 2 ** 30
  state, metrics = step(state, batch)
  jax.block_until_ready(metrics["loss"])
  times = []
  for _ in range(steps):
    began = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics["loss"])
    times.append(time.perf_counter() - began)
  params_bytes = sum(np.asarray(x).nbytes for x in jax.tree.leaves(state.params))
  state_bytes = params_bytes * 2 + optimizer_state_bytes(state.opt_state)  # + ref_params
  folder = tempfile.mkdtemp(prefix="msr-ckpt-")
  try:
    checkpointer = StateCheckpointer(folder, 1)
    checkpointer.save(1, {"train": state}, {})
    checkpointer.close()
    on_disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder)
                  for f in files)
  finally:
    shutil.rmtree(folder, ignore_errors=True)
  return {"step_s": statistics.median(times), "tokens": batch.num_tokens,
          "compiled_gib": compiled_gib, "loss": float(metrics["loss"]),
          "checkpoint_gib": on_disk / 2 ** 30, "state_gib": state_bytes / 2 ** 30}


def run_pytorch(steps: int, batch_size: int) -> dict:
  import numpy as np
  import torch
  import transformers
  from msr_jax.checkpoints import hf, loader
  torch.set_num_threads(os.cpu_count() or 1)
  loaded = loader.load(CHECKPOINT)
  batch = _batch(loaded.tokenizer, batch_size)
  folder = tempfile.mkdtemp(prefix="msr-hf-")
  try:
    hf.export_hf(folder, loaded.config, loaded.params, loaded.tokenizer)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        folder, local_files_only=True, torch_dtype=torch.float32)
  finally:
    shutil.rmtree(folder, ignore_errors=True)
  model.train()
  # The same rows as our full mode: each row's context, then its decision inputs (one
  # slot more, for the label of the last one). transformers' loss compares the logits at
  # t with the label at t + 1, so decision slot j (position n + j, target d[j]) is the
  # label at n + j + 1, where its weight is not zero; -100 elsewhere.
  b, c = batch.context_BxC.shape
  d = batch.inputs_BxD.shape[1]
  tokens = np.full((b, c + d + 1), loaded.tokenizer.pad_token_id or 0, np.int64)
  labels = np.full((b, c + d + 1), -100, np.int64)
  for row in range(b):
    n = int(batch.context_lengths_B[row])
    tokens[row, :n] = batch.context_BxC[row, :n]
    tokens[row, n:n + d] = batch.inputs_BxD[row]
    for j in range(d):
      if batch.weights_BxD[row, j] > 0:
        labels[row, n + j + 1] = batch.targets_BxD[row, j]
  tokens_t, labels_t = torch.from_numpy(tokens), torch.from_numpy(labels)
  opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                          weight_decay=0.0)

  def one() -> float:
    out = model(tokens_t, labels=labels_t)
    out.loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(out.loss)
  one()
  times = []
  for _ in range(steps):
    began = time.perf_counter()
    loss = one()
    times.append(time.perf_counter() - began)
  return {"step_s": statistics.median(times), "tokens": batch.num_tokens, "loss": loss}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.one:
    kind, mode, optimizer = args.one.split(",")
    result = (run_ours(mode, optimizer, args.steps, args.batch) if kind == "ours"
              else run_pytorch(args.steps, args.batch))
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print("RESULT " + json.dumps(result))
    return 0
  results = {}
  for run in RUNS:
    done = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--batch",
                           str(args.batch), "--one", ",".join(run)],
                          capture_output=True, text=True, check=True)
    line = next(l for l in done.stdout.splitlines() if l.startswith("RESULT "))
    results[run] = json.loads(line[len("RESULT "):])
  torch_tps = results[RUNS[-1]]["tokens"] / results[RUNS[-1]]["step_s"]
  print(f"SmolLM2-135M-Instruct, float32, batch {args.batch}, {results[RUNS[0]]['tokens']} "
        f"tokens per step, median of {args.steps} steps, {os.cpu_count()} CPU cores")
  print("| run | mode | optimizer | tokens/s | x PyTorch | compiled GiB | peak RSS GiB "
        "| checkpoint GiB (state GiB) |")
  print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
  for (kind, mode, optimizer), r in results.items():
    tps = r["tokens"] / r["step_s"]
    compiled = f"{r['compiled_gib']:.2f}" if "compiled_gib" in r else "-"
    ckpt = (f"{r['checkpoint_gib']:.2f} ({r['state_gib']:.2f})" if "checkpoint_gib" in r
            else "-")
    print(f"| {kind} | {mode} | {optimizer} | {tps:,.0f} | {tps / torch_tps:.2f} | "
          f"{compiled} | {r['peak_rss_gib']:.2f} | {ckpt} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
