"""Generated tokens per second: msr_jax `generate` against transformers' PyTorch `generate`.

Same weights (ours exported to a Hugging Face folder that torch loads), same prompts,
same CPU, same run, interleaved repeats; torch runs at whichever of 1 thread and one
per core is faster. Greedy, exactly `--new-tokens` tokens per row
(JAX: no EOS id; torch: `min_new_tokens` suppresses EOS). Prefill is inside the timing of
both. Also reports how many generated tokens agree between the two (a check that they run
the same model; long greedy runs of a random model can part ways at a near-tie).

  PYTHONPATH=. python benchmarks/sampling.py                      # both models
  PYTHONPATH=. python benchmarks/sampling.py --models tiny --batches 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from msr_jax.model import Decoder, ModelConfig  # noqa: E402
from msr_jax.sample import generate  # noqa: E402

SENTENCES = [
    "The baker in the old town opens her shop before sunrise because",
    "Write a short poem about a lighthouse keeper who",
    "Q: What is the capital of France?\nA:",
    "Once upon a time, in a village at the edge of a forest, there lived",
    "The three most important things to remember when learning a language are",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "My neighbour asked to borrow my ladder, and I said",
    "In 1969, the first humans landed on the Moon. The mission",
]


def load_tiny():
  config = ModelConfig.preset("townworld_tiny")
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(0)), nnx.Param)
  return config, graphdef, params, None


def load_smollm2():
  try:
    from msr_jax.checkpoints.gguf_import import import_gguf
    from msr_jax.checkpoints.registry import resolve
  except ImportError as e:
    raise SystemExit(f"SmolLM2 needs the GGUF import of msr_jax.checkpoints: {e}")
  return import_gguf(resolve("smollm2-135m-instruct-q4_1"))


MODELS = {"tiny": load_tiny, "smollm2": load_smollm2}


def make_prompts(tokenizer, vocab_size: int, batch: int, seed: int = 0) -> list[list[int]]:
  """Real sentences when there is a tokenizer, else seeded random ids of ragged lengths."""
  if tokenizer is not None:
    prompts = []
    for i in range(batch):
      ids = tokenizer.encode(SENTENCES[i % len(SENTENCES)])
      prompts.append(list(getattr(ids, "ids", ids)))
    return prompts
  rng = np.random.default_rng(seed)
  return [rng.integers(1, vocab_size, size=int(rng.integers(12, 29))).tolist()
          for _ in range(batch)]


def torch_model(config, params, folder: str):
  import torch
  from transformers import AutoModelForCausalLM

  from msr_jax.checkpoints.hf import export_hf
  export_hf(folder, config, params, dtype="float32")
  model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
  return model.eval()


def torch_generate(model, prompts, new_tokens: int, pad_id: int):
  """Left-padded batch (what HF decoder-only generation expects) with an attention mask."""
  import torch
  width = max(len(p) for p in prompts)
  ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
  mask = torch.zeros((len(prompts), width), dtype=torch.long)
  for b, p in enumerate(prompts):
    ids[b, width - len(p):] = torch.tensor(p)
    mask[b, width - len(p):] = 1
  with torch.inference_mode():
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                         max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                         pad_token_id=pad_id)
  return out[:, width:].numpy()


def jax_generate(graphdef, params, prompts, new_tokens: int, pad_id: int):
  out = generate(graphdef, params, prompts, new_tokens, temperature=0.0, eos_ids=(),
                 pad_id=pad_id)
  return np.asarray(jax.block_until_ready(out.tokens_BxN))


def timed(fn):
  start = time.perf_counter()
  result = fn()
  return time.perf_counter() - start, result


def fastest_threads(run, counts) -> int:
  """The torch thread count with the shortest short run (each tried twice, after a warm-up)."""
  import torch
  best = {}
  for threads in counts:
    torch.set_num_threads(threads)
    run()
    best[threads] = min(timed(run)[0] for _ in range(2))
  return min(best, key=best.get)


def bench(name: str, batches, new_tokens: int, repeats: int) -> list[tuple]:
  import torch
  config, graphdef, params, tokenizer = MODELS[name]()
  pad_id = config.pad_token_id if config.pad_token_id is not None else 0
  # On a loaded machine torch's OpenMP threads can spin against each other and collapse
  # (10x slower at 2 threads than at 1 on a shared 2-core machine), so the baseline runs
  # at whichever of 1 thread and 1 per core is faster on a short run.
  thread_counts = sorted({1, os.cpu_count() or 1})
  rows = []
  with tempfile.TemporaryDirectory() as folder:
    reference = torch_model(config, params, folder)
    for batch in batches:
      prompts = make_prompts(tokenizer, config.vocab_size, batch)
      ours = lambda: jax_generate(graphdef, params, prompts, new_tokens, pad_id)  # noqa: E731
      theirs = lambda: torch_generate(reference, prompts, new_tokens, pad_id)  # noqa: E731
      threads = fastest_threads(lambda: torch_generate(reference, prompts, 8, pad_id),  # noqa: B023
                                thread_counts)
      torch.set_num_threads(threads)
      compile_s, _ = timed(ours)  # First call compiles.
      timed(theirs)               # Warm-up.
      jax_s, torch_s = [], []
      for _ in range(repeats):    # Interleaved, so load on the machine hits both alike.
        seconds, jax_tokens = timed(ours)
        jax_s.append(seconds)
        seconds, torch_tokens = timed(theirs)
        torch_s.append(seconds)
      agree = float(np.mean(jax_tokens == torch_tokens))
      generated = batch * new_tokens
      jax_tps = generated / statistics.median(jax_s)
      torch_tps = generated / statistics.median(torch_s)
      rows.append((name, batch, jax_tps, torch_tps, threads, agree))
      print(f"{name:8s} batch {batch}: jax {jax_tps:7.1f} tok/s  torch {torch_tps:7.1f} tok/s "
            f"({threads} threads)  ratio {jax_tps / torch_tps:5.2f}  agree {agree:.3f}  "
            f"(jax first call {compile_s:.1f} s)", flush=True)
  return rows


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="tiny,smollm2",
                      help=f"comma-separated, from {sorted(MODELS)}")
  parser.add_argument("--batches", default="1,8")
  parser.add_argument("--new-tokens", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args(argv)
  names = [m for m in args.models.split(",") if m]
  for m in names:
    if m not in MODELS:
      parser.error(f"--models: unknown {m!r}; known: {sorted(MODELS)}")
  batches = [int(b) for b in args.batches.split(",")]
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
        f"{args.new_tokens} new tokens, greedy, median of {args.repeats}")
  rows = []
  for name in names:
    rows += bench(name, batches, args.new_tokens, args.repeats)
  print("\n| model | batch | msr_jax tok/s | torch tok/s (threads) | ratio | tokens agreeing |")
  print("| --- | --- | --- | --- | --- | --- |")
  for name, batch, jax_tps, torch_tps, threads, agree in rows:
    print(f"| {name} | {batch} | {jax_tps:.0f} | {torch_tps:.0f} ({threads}) | "
          f"{jax_tps / torch_tps:.2f}x | {agree:.1%} |")


if __name__ == "__main__":
  sys.exit(main())
