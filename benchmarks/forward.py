"""Prefill and decode speed of our JAX model against transformers' PyTorch model, same weights.

For each model the weights are written once as a Hugging Face folder that both sides load
(ours through `msr_jax.load`, torch through `AutoModelForCausalLM.from_pretrained`), so
both run the same float32 numbers on the same CPU in the same process. Repeats interleave
the two frameworks (JAX, torch, JAX, torch...) so machine-load drift hits both alike;
medians are reported, with the ratio JAX / torch (> 1: JAX is faster).

  python benchmarks/forward.py                    # both models, 1 thread each
  python benchmarks/forward.py --threads 0        # all cores for both
  python benchmarks/forward.py --no-pin           # 1 thread each, not pinned to one core
  python benchmarks/forward.py --models townworld_tiny --repeats 3
  python benchmarks/forward.py --full-logits      # prefill with logits at every position

Models: townworld_tiny (the preset, random weights) and smollm2-135m (the bundled
SmolLM2-135M-Instruct Q4_1 GGUF, dequantised to float32 and exported to an HF folder).
Decode is greedy: each side feeds back its own argmax; the table says whether the two
generated the same tokens (they should: same weights, float32).

Prefill is the prefill of generation: the prompt's keys and values into the cache and the
logits of its last position, which is all a sampler reads (ours: `logits_at_B`; torch:
`logits_to_keep=1`, what `generate` passes). `--full-logits` makes both sides compute the
logits of every prompt position instead (a scoring forward).
"""

from __future__ import annotations

import argparse
import os
import sys


# Default repeats: the tiny model is cheap, so more repeats steady its medians on a shared
# machine.
REPEATS = {"townworld_tiny": 25, "smollm2-135m": 5}


def _parse() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", nargs="+", default=["townworld_tiny", "smollm2-135m"],
                      choices=["townworld_tiny", "smollm2-135m"])
  parser.add_argument("--threads", type=int, default=1,
                      help="CPU threads for each framework (0: all cores)")
  parser.add_argument("--no-pin", action="store_true",
                      help="with --threads 1, leave the process free to move between cores")
  parser.add_argument("--full-logits", action="store_true",
                      help="prefill computes the logits of every prompt position, not the last")
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--prompt-length", type=int, default=128)
  parser.add_argument("--new-tokens", type=int, default=32)
  parser.add_argument("--repeats", type=int, default=None,
                      help="interleaved repeats per model (default: %s)" % REPEATS)
  return parser.parse_args()


ARGS = _parse()
if ARGS.threads == 1 and not ARGS.no_pin:
  # One thread per framework means one core for both. The XLA flags below do not keep JAX
  # on one core (its library fusions run matmuls on their own threads: a 2048^2 matmul used
  # 1.97 CPU-s per wall-s under them), and unpinned the scheduler may also run JAX's
  # runtime thread on the other core than the one torch just warmed.
  os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
if ARGS.threads == 1:  # Must be set before JAX initialises its CPU client.
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_cpu_multi_thread_eigen=false"
                             " intra_op_parallelism_threads=1").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import functools  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from flax import nnx  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import msr_jax  # noqa: E402
from msr_jax.checkpoints.hf import export_hf  # noqa: E402
from msr_jax.model import Decoder, ModelConfig, forward, prefill  # noqa: E402


def _prefill(config, graphdef, params, tokens_BxP, capacity, full_logits):
  b, p = tokens_BxP.shape
  last_B = None if full_logits else jnp.full((b,), p - 1, jnp.int32)
  logits_BxPxV, cache = prefill(graphdef, params, tokens_BxP, capacity, logits_at_B=last_B)
  return jnp.argmax(logits_BxPxV[:, -1], -1).astype(jnp.int32), cache


def _decode_step(graphdef, params, cache, token_B):
  logits_Bx1xV, cache = forward(graphdef, params, token_B[:, None], cache=cache)
  return jnp.argmax(logits_Bx1xV[:, 0], -1).astype(jnp.int32), cache


class JaxRunner:
  name = "jax"

  def __init__(self, folder: str, capacity: int):
    loaded = msr_jax.load(folder)
    self.params = loaded.params
    # The graph definition is bound once (functools.partial) instead of being a static
    # argument: jit hashes static arguments on every call, and hashing a GraphDef costs
    # about 0.2 ms (townworld_tiny) to 2 ms (SmolLM2, 30 layers), as much as a decode step.
    self._prefill = jax.jit(functools.partial(_prefill, loaded.config, loaded.graphdef,
                                              capacity=capacity,
                                              full_logits=ARGS.full_logits))
    self._step = jax.jit(functools.partial(_decode_step, loaded.graphdef), donate_argnums=1)
    self.config = loaded.config

  def prefill(self, tokens_BxP, new_tokens):
    del new_tokens
    return jax.block_until_ready(self._prefill(self.params, jnp.asarray(tokens_BxP)))

  def decode(self, state, new_tokens):
    token_B, cache = state
    out = [token_B]
    for _ in range(new_tokens - 1):
      token_B, cache = self._step(self.params, cache, token_B)
      out.append(token_B)
    return np.stack(jax.device_get(jax.block_until_ready(out)), 1)


class TorchRunner:
  name = "torch"

  def __init__(self, folder: str):
    self.model = transformers.AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, trust_remote_code=False).eval()

  @torch.inference_mode()
  def prefill(self, tokens_BxP, new_tokens):
    del new_tokens
    out = self.model(input_ids=torch.from_numpy(tokens_BxP).long(), use_cache=True,
                     logits_to_keep=0 if ARGS.full_logits else 1)
    return out.logits[:, -1].argmax(-1), out.cache

  @torch.inference_mode()
  def decode(self, state, new_tokens):
    token_B, cache = state
    out = [token_B]
    for _ in range(new_tokens - 1):
      step = self.model(input_ids=token_B[:, None], cache=cache, use_cache=True)
      cache, token_B = step.cache, step.logits[:, -1].argmax(-1)
      out.append(token_B)
    return torch.stack(out, 1).numpy()


def _timed(fn, *args):
  start = time.perf_counter()
  result = fn(*args)
  return time.perf_counter() - start, result


def _folder_for(model: str, root: str) -> str:
  folder = os.path.join(root, model)
  if model == "townworld_tiny":
    config = ModelConfig.preset("townworld_tiny")
    _, params = nnx.split(Decoder(config, rngs=nnx.Rngs(0)), nnx.Param)
    export_hf(folder, config, params)
  else:
    loaded = msr_jax.load("smollm2-135m-instruct-q4_1")  # Dequantised to float32.
    export_hf(folder, loaded.config, loaded.params, loaded.tokenizer)
  return folder


def bench(model: str, root: str) -> list[tuple]:
  folder = _folder_for(model, root)
  runners = [JaxRunner(folder, ARGS.prompt_length + ARGS.new_tokens), TorchRunner(folder)]
  vocab = runners[0].config.vocab_size
  tokens_BxP = np.random.default_rng(0).integers(
      0, vocab, (ARGS.batch, ARGS.prompt_length)).astype(np.int32)
  n = ARGS.new_tokens
  times = {(r.name, phase): [] for r in runners for phase in ("prefill", "decode")}
  generated = {}
  compile_s, _ = _timed(lambda: runners[0].decode(runners[0].prefill(tokens_BxP, n), n))
  runners[1].decode(runners[1].prefill(tokens_BxP, n), n)  # Warm-up.
  repeats = ARGS.repeats or REPEATS[model]
  for _ in range(repeats):
    for r in runners:
      t_prefill, state = _timed(r.prefill, tokens_BxP, n)
      t_decode, generated[r.name] = _timed(r.decode, state, n)
      times[(r.name, "prefill")].append(t_prefill)
      times[(r.name, "decode")].append(t_decode)
  same = bool(np.array_equal(generated["jax"], generated["torch"]))
  rows = []
  for phase, count in (("prefill", ARGS.batch * ARGS.prompt_length),
                       ("decode", ARGS.batch * (n - 1))):
    jax_tps = count / statistics.median(times[("jax", phase)])
    torch_tps = count / statistics.median(times[("torch", phase)])
    rows.append((model, phase, jax_tps, torch_tps, jax_tps / torch_tps, same))
  print(f"# {model}: {repeats} repeats; JAX compile + first run {compile_s:.1f}s; greedy "
        f"tokens identical: {same}", flush=True)
  return rows


def main() -> None:
  threads = ARGS.threads or os.cpu_count()
  torch.set_num_threads(threads)
  print(f"# threads per framework: {threads}; batch {ARGS.batch}, prompt "
        f"{ARGS.prompt_length}, {ARGS.new_tokens} new tokens, prefill logits at "
        f"{'every position' if ARGS.full_logits else 'the last position'}, interleaved repeats "
        f"(medians); jax {jax.__version__}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}; cores {sorted(os.sched_getaffinity(0))}",
        flush=True)
  rows = []
  with tempfile.TemporaryDirectory() as root:
    for model in ARGS.models:
      rows += bench(model, root)
  print(f"{'model':<16}{'phase':<9}{'jax tok/s':>12}{'torch tok/s':>13}{'jax/torch':>11}")
  for model, phase, jax_tps, torch_tps, ratio, _ in rows:
    print(f"{model:<16}{phase:<9}{jax_tps:>12.1f}{torch_tps:>13.1f}{ratio:>11.2f}")


if __name__ == "__main__":
  main()
