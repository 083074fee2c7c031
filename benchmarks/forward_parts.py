"""Where a one-core prefill's time goes: the parts of our forward against PyTorch's.

Pinned to one core like `benchmarks/forward.py`, with random weights of a preset's
shapes. For each model it prints, in milliseconds (medians of interleaved repeats):
  - the jitted prefill (last position's logits) and the prefill with each part removed
    (RoPE, the attention core, the MLP), so the part's share is the difference;
  - every matmul shape of a layer, JAX against torch;
  - the attention core at the prompt length: ours (`attention.attend`, head-major), the
    layout it replaced (einsums that read and write B x T x K x G x H), and torch's
    `scaled_dot_product_attention`;
  - RoPE on the queries with its tables computed in the program against given as inputs.

  python benchmarks/forward_parts.py                     # smollm2_135m and townworld_tiny
  python benchmarks/forward_parts.py --models smollm2_135m --prompt-length 256
"""

from __future__ import annotations

import argparse
import os
import sys

os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_cpu_multi_thread_eigen=false"
                           " intra_op_parallelism_threads=1").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import statistics  # noqa: E402
import time  # noqa: E402
import unittest.mock  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from msr_jax.model import Decoder, ModelConfig, prefill, rope  # noqa: E402
from msr_jax.model import attention, layers  # noqa: E402


def _median_ms(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def _torch_ms(fn, *args, repeats: int) -> float:
  with torch.inference_mode():
    return _median_ms(fn, *args, repeats=repeats)


def _attend_token_major(q_BxTxNxH, k_BxKxSxH, v_BxKxSxH, mask_BxTxS):
  """The layout `attend` used before: both einsums read and write B x T x K x G x H."""
  b, t, n, h = q_BxTxNxH.shape
  k = k_BxKxSxH.shape[1]
  q = (q_BxTxNxH / np.sqrt(h)).reshape(b, t, k, n // k, h)
  scores = jnp.where(mask_BxTxS[:, None, None], jnp.einsum("btkgh,bksh->bkgts", q, k_BxKxSxH),
                     attention._MASKED)
  probs = jax.nn.softmax(scores, axis=-1)
  return jnp.einsum("bkgts,bksh->btkgh", probs, v_BxKxSxH).reshape(b, t, n, h)


def _prefill_parts(config: ModelConfig, t: int, repeats: int) -> None:
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(0)), nnx.Param)
  tokens_BxT = jnp.asarray(np.random.default_rng(0).integers(0, config.vocab_size, (1, t)),
                           jnp.int32)
  last_B = jnp.full((1,), t - 1, jnp.int32)

  def timed() -> float:
    run = jax.jit(lambda p, x: prefill(graphdef, p, x, t, logits_at_B=last_B))
    return _median_ms(run, params, tokens_BxT, repeats=repeats)

  full = timed()
  print(f"  prefill, {t} tokens, last logits: {full:8.2f} ms", flush=True)
  removed = {
      "RoPE": unittest.mock.patch.object(rope, "rotate", lambda x, cos, sin: x),
      "attention core": unittest.mock.patch.object(attention, "attend",
                                                   lambda q, k, v, mask, more=(): q),
      "MLP": unittest.mock.patch.object(layers.MLP, "__call__", lambda self, x: x),
  }
  for part, patch in removed.items():
    with patch:
      without = timed()
    print(f"  without {part:<15} {without:8.2f} ms  (the part: {full - without:6.2f} ms)",
          flush=True)


def _matmuls(config: ModelConfig, t: int, repeats: int) -> None:
  d, f, h = config.hidden_size, config.intermediate_size, config.head_dim
  shapes = {"q/o proj": (d, config.num_heads * h), "k/v proj": (d, config.num_kv_heads * h),
            "gate/up": (d, f), "down": (f, d)}
  rng = np.random.default_rng(0)
  matmul = jax.jit(lambda a, b: a @ b)
  for name, (k, n) in shapes.items():
    a, b = rng.standard_normal((t, k), np.float32), rng.standard_normal((k, n), np.float32)
    ours = _median_ms(matmul, jnp.asarray(a), jnp.asarray(b), repeats=repeats)
    theirs = _torch_ms(torch.matmul, torch.from_numpy(a), torch.from_numpy(b), repeats=repeats)
    print(f"  matmul {name:<9} {t}x{k}x{n}: jax {ours:7.3f} ms, torch {theirs:7.3f} ms, "
          f"jax/torch time {ours / theirs:5.2f}", flush=True)


def _attention(config: ModelConfig, t: int, repeats: int) -> None:
  n, k, h = config.num_heads, config.num_kv_heads, config.head_dim
  rng = np.random.default_rng(0)
  q = rng.standard_normal((1, t, n, h), np.float32)
  keys, values = (rng.standard_normal((1, k, t, h), np.float32) for _ in range(2))
  mask_BxTxS = attention._causal(1, t)
  args = (jnp.asarray(q), jnp.asarray(keys), jnp.asarray(values), mask_BxTxS)
  ours = _median_ms(jax.jit(attention.attend), *args, repeats=repeats)
  before = _median_ms(jax.jit(_attend_token_major), *args, repeats=repeats)
  tq = torch.from_numpy(q).transpose(1, 2)
  tk, tv = (torch.from_numpy(x).repeat_interleave(n // k, 1) for x in (keys, values))
  theirs = _torch_ms(lambda a, b, c: torch.nn.functional.scaled_dot_product_attention(
      a, b, c, is_causal=True), tq, tk, tv, repeats=repeats)
  print(f"  attention core, {n} heads x {t} x {t}: ours {ours:.3f} ms, token-major layout "
        f"{before:.3f} ms, torch sdpa {theirs:.3f} ms", flush=True)
  positions_BxT = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (1, t))
  in_program = _median_ms(jax.jit(lambda x, p: rope.apply_rope(x, p, config)), args[0],
                          positions_BxT, repeats=repeats)
  cos, sin = rope.tables(np.asarray(positions_BxT), config)
  given = _median_ms(jax.jit(rope.rotate), args[0], jnp.asarray(cos), jnp.asarray(sin),
                     repeats=repeats)
  print(f"  RoPE on the queries: tables computed in the program {in_program:.3f} ms, "
        f"given {given:.3f} ms", flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", nargs="+", default=["smollm2_135m", "townworld_tiny"])
  parser.add_argument("--prompt-length", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=30)
  args = parser.parse_args()
  torch.set_num_threads(1)
  print(f"# one core {sorted(os.sched_getaffinity(0))}; jax {jax.__version__}, torch "
        f"{torch.__version__}; medians of {args.repeats} repeats", flush=True)
  for name in args.models:
    config = ModelConfig.preset(name)
    print(f"{name}:", flush=True)
    _prefill_parts(config, args.prompt_length, max(3, args.repeats // 4))
    _matmuls(config, args.prompt_length, args.repeats)
    _attention(config, args.prompt_length, args.repeats)


if __name__ == "__main__":
  main()
