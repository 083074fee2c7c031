"""What flattening the tokens before a projection (`layers.FlatLinear`) saves in training.

On this CPU, XLA computes the weight gradient of a dot batched over (B, T) through a
transposed copy of the output gradient; over (B*T) x D it does not. This prints, on the
Townworld pre-training step (its config, packed stage-2 batches, every core):
  - a SwiGLU MLP's forward and backward at the step's shapes, batched against flat;
  - the whole step with the projections batched (`layers.Linear` everywhere, as before),
    with v, o and the MLP flat (the model's choice), and with every projection flat;
    each as milliseconds per step (median of interleaved repeats), its speed-up over
    batched, and whether its parameters after the timed steps are bit-identical to
    batched's (a rebuilt checkpoint is only the shipped one if they are).

  python benchmarks/flat_linear.py
  python benchmarks/flat_linear.py --steps 20 --repeats 5
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs.townworld import get_config  # noqa: E402
from msr_jax.data.batch import packed_batch
from msr_jax.train.state import init_state
from msr_jax.model import Decoder  # noqa: E402
from msr_jax.model.layers import FlatLinear, Linear  # noqa: E402
from msr_jax.world import pretrain, tokenizer  # noqa: E402
from msr_jax.world.world import World  # noqa: E402

MLP = ("gate_proj", "up_proj", "down_proj")
VARIANTS = {
    "batched (before)": (),
    "v, o, MLP flat (the model)": ("v_proj", "o_proj", *MLP),
    "every projection flat": ("q_proj", "k_proj", "v_proj", "o_proj", *MLP),
}


def _model(config, flat: tuple[str, ...]) -> Decoder:
  """The decoder with exactly the projections named in `flat` as `FlatLinear`."""
  model = Decoder(config, rngs=nnx.Rngs(0))
  for path, module in nnx.iter_modules(model):
    if isinstance(module, nnx.Linear) and path:
      # FlatLinear adds no state to nnx.Linear: the class alone decides the dot's form.
      module.__class__ = FlatLinear if path[-1] in flat else Linear
  return model


def _digest(params) -> str:
  leaves = jax.tree.leaves(params)
  return hashlib.sha1(b"".join(np.asarray(x).tobytes() for x in leaves)).hexdigest()[:12]


def _mlp_ms(repeats: int) -> tuple[float, float]:
  keys = jax.random.split(jax.random.key(0), 5)
  x = jax.random.normal(keys[0], (16, 128, 128))
  gate, up = (0.02 * jax.random.normal(k, (128, 320)) for k in keys[1:3])
  down = 0.02 * jax.random.normal(keys[3], (320, 128))
  cotangent = jax.random.normal(keys[4], (16, 128, 128))

  def batched(x, gate, up, down):
    return jnp.dot(jax.nn.silu(x @ gate) * (x @ up), down)

  def flat(x, gate, up, down):
    x2 = x.reshape(-1, x.shape[-1])
    return jnp.dot(jax.nn.silu(x2 @ gate) * (x2 @ up), down).reshape(x.shape)

  fns = [jax.jit(jax.grad(lambda *a, f=f: jnp.sum(f(*a) * cotangent), argnums=(0, 1, 2, 3)))
         for f in (batched, flat)]
  times = [[], []]
  for fn in fns:
    jax.block_until_ready(fn(x, gate, up, down))
  for _ in range(repeats):
    for fn, out in zip(fns, times):
      start = time.perf_counter()
      for _ in range(20):
        result = fn(x, gate, up, down)
      jax.block_until_ready(result)
      out.append((time.perf_counter() - start) / 20 * 1e3)
  return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=30, help="steps per timed repeat")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()

  batched_ms, flat_ms = _mlp_ms(args.repeats)
  print(f"SwiGLU MLP forward+backward, 16 x 128 x 128 -> 320: batched {batched_ms:.1f} ms, "
        f"flat {flat_ms:.1f} ms ({batched_ms / flat_ms:.2f}x)")

  cfg = get_config()
  world, tok = World.build(cfg.world.seed, num_people=cfg.world.num_people), tokenizer.build()
  config = pretrain.model_config(cfg, tok.get_vocab_size())
  plan = pretrain.stages(cfg)
  data = pretrain.batches(cfg, plan[1], world, tok)
  batches = [next(data) for _ in range(args.steps)]
  batches = [packed_batch(tokens, mask, segments if cfg.train.document_mask else None)
             for tokens, mask, segments in batches]
  runs = {}
  for name, flat in VARIANTS.items():
    graphdef, params = nnx.split(_model(config, flat), nnx.Param)
    tx, step = pretrain.make_step(graphdef, config, plan[1].optim)
    state = init_state(params, tx)
    # Warm-up (compile) on a copy: the step donates its state.
    jax.block_until_ready(step(jax.tree.map(jnp.copy, state), batches[0]))
    runs[name] = {"step": step, "state": state, "ms": []}
  for _ in range(args.repeats):
    for run in runs.values():
      state = run["state"]
      start = time.perf_counter()
      for batch in batches:
        state, metrics = run["step"](state, batch)
      jax.block_until_ready(metrics["loss"])
      run["ms"].append((time.perf_counter() - start) / len(batches) * 1e3)
      run["state"] = state
  base = runs["batched (before)"]
  base_ms, base_digest = statistics.median(base["ms"]), _digest(base["state"].params)
  print(f"Pre-training step ({cfg.train.batch_size} x {cfg.train.seq_len} tokens, "
        f"{args.repeats} x {args.steps} steps each):")
  for name, run in runs.items():
    ms = statistics.median(run["ms"])
    same = "yes" if _digest(run["state"].params) == base_digest else "no"
    print(f"  {name:28s} {ms:7.1f} ms/step  {base_ms / ms:5.2f}x  bit-identical: {same}")


if __name__ == "__main__":
  main()
