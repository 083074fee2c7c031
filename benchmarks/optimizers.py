"""Optimizer-state memory and train-step time of APOLLO / APOLLO-Mini against AdamW.

Three parts:
1. State bytes (shapes only, nothing allocated) for townworld_tiny (vocab 512) and for
   the parameter shapes of qwen2_0p5b: each optimizer's whole state, and its state for
   the APOLLO matrices alone (attention and MLP projection kernels) against AdamW's
   state for the same matrices. Checks that each APOLLO matrix holds exactly
   2 * max(m, n) * rank elements plus one scalar.
2. Train-step time on townworld_tiny (vocab 512): one jitted step doing forward,
   next-token cross-entropy, grad and the optimizer update, same batch for all. After
   a warm-up, the optimizers are timed in turn (interleaved, rotating the order, so
   drift in machine load hits all alike) and the median is reported as a ratio to
   AdamW's median in the same run.
3. With --convergence: language modelling on a seeded sparse Markov chain (every token
   has 4 successors) for --steps steps, AdamW and APOLLO each at the best learning rate
   of a small grid, 10% warm-up then cosine to 0.1 lr (the reference's recipe), final
   loss on held-out sequences.

  python benchmarks/optimizers.py                  # parts 1 and 2 (about a minute)
  python benchmarks/optimizers.py --convergence    # and part 3 (a few minutes)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from msr_jax import optim  # noqa: E402
from msr_jax.model import Decoder, ModelConfig, forward  # noqa: E402
from msr_jax.optim import labels, layout  # noqa: E402

VOCAB = 512
# name -> (make_optimizer config without learning_rate, rank or None)
OPTIMIZERS = {
    "adamw": ({"name": "adamw"}, None),
    "apollo r128": ({"name": "apollo", "rank": 128}, 128),
    "apollo r256": ({"name": "apollo", "rank": 256}, 256),
    "apollo_mini": ({"name": "apollo_mini"}, 1),
}


def _abstract_params(config: ModelConfig):
  abstract = nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0)))
  return nnx.split(abstract, nnx.Param)[1]


def _matrices(params) -> list:
  """The leaves the default label function gives to APOLLO, in flattening order."""
  pairs = zip(jax.tree.leaves(params), jax.tree.leaves(labels.default_label_fn(params)))
  return [leaf for leaf, label in pairs if label == labels.APOLLO]


def _state_bytes(tx, params) -> int:
  return optim.optimizer_state_bytes(jax.eval_shape(tx.init, params))


def memory_table(model_name: str, config: ModelConfig) -> None:
  params = _abstract_params(config)
  matrices = _matrices(params)
  itemsize = np.dtype(config.param_dtype).itemsize
  n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
  print(f"\n## {model_name}: {n_params / 1e6:.1f}M parameters, {len(matrices)} APOLLO "
        f"matrices ({sum(int(np.prod(m.shape)) for m in matrices) / 1e6:.1f}M), "
        f"{config.param_dtype}")
  print("| optimizer | state total (MB) | matrix state (MB) | matrix state vs AdamW |")
  print("| --- | ---: | ---: | ---: |")
  adamw_matrix = _state_bytes(optax.adamw(1e-3), matrices)
  for name, (cfg, rank) in OPTIMIZERS.items():
    total = _state_bytes(optim.make_optimizer({**cfg, "learning_rate": 1e-3}), params)
    if rank is None:
      matrix = adamw_matrix
    else:
      scale_type = "tensor" if name == "apollo_mini" else "channel"
      matrix = _state_bytes(optim.scale_by_apollo(rank, scale_type=scale_type), matrices)
      # Exactly 2 max(m, n) r moment elements per matrix, plus a float32 limiter scalar
      # per matrix and the int32 step count.
      elements = sum(2 * max(layout.matrix_dims(m.shape)) * rank for m in matrices)
      assert matrix == elements * itemsize + 4 * len(matrices) + 4, (name, matrix)
    print(f"| {name} | {total / 1e6:.2f} | {matrix / 1e6:.3f} | "
          f"{100 * matrix / adamw_matrix:.2f}% |")


def _loss_fn(graphdef):
  def loss(params, tokens_BxT):
    logits_BxTxV, _ = forward(graphdef, params, tokens_BxT[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(
        logits_BxTxV, tokens_BxT[:, 1:]).mean()
  return loss


def _train_step(graphdef, tx):
  loss_fn = _loss_fn(graphdef)

  @jax.jit
  def step(params, opt_state, tokens_BxT, lr):
    opt_state = optim.set_learning_rate(opt_state, lr)
    loss, grads = jax.value_and_grad(loss_fn)(params, tokens_BxT)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss
  return step


def _tiny_model(seed: int = 0):
  config = ModelConfig.preset("townworld_tiny", vocab_size=VOCAB)
  return nnx.split(Decoder(config, rngs=nnx.Rngs(seed)), nnx.Param)


def step_times(batch: int, length: int, repeats: int) -> None:
  graphdef, params = _tiny_model()
  tokens_BxT = jnp.asarray(np.random.default_rng(0).integers(0, VOCAB, (batch, length + 1)))
  runs = {}
  for name, (cfg, _) in OPTIMIZERS.items():
    tx = optim.make_optimizer({**cfg, "learning_rate": 1e-3})
    step = _train_step(graphdef, tx)
    state = (params, tx.init(params))
    for _ in range(3):  # Compile and warm up.
      state = step(*state, tokens_BxT, 1e-3)[:2]
    jax.block_until_ready(state)
    runs[name] = [step, state, []]
  names = list(runs)
  for r in range(repeats):
    for name in names[r % len(names):] + names[:r % len(names)]:
      step, state, times = runs[name]
      start = time.perf_counter()
      runs[name][1] = jax.block_until_ready(step(*state, tokens_BxT, 1e-3)[:2])
      times.append(time.perf_counter() - start)
  base = statistics.median(runs["adamw"][2])
  print(f"\n## Train step, townworld_tiny (vocab {VOCAB}), batch {batch}x{length}, "
        f"median of {repeats} interleaved repeats")
  print("| optimizer | step (ms) | vs AdamW |")
  print("| --- | ---: | ---: |")
  for name, (_, _, times) in runs.items():
    median = statistics.median(times)
    print(f"| {name} | {1e3 * median:.2f} | {median / base:.3f}x |")


def _markov_data(num_sequences: int, length: int, seed: int) -> np.ndarray:
  """Sequences of a fixed random sparse Markov chain: 4 successors per token."""
  rng = np.random.default_rng(1234)  # The chain itself is the same for every split.
  successors_VxK = rng.integers(0, VOCAB, (VOCAB, 4))
  probs_VxK = rng.dirichlet(np.ones(4), VOCAB)
  rng = np.random.default_rng(seed)
  tokens = np.empty((num_sequences, length), np.int32)
  tokens[:, 0] = rng.integers(0, VOCAB, num_sequences)
  for t in range(1, length):
    prev = tokens[:, t - 1]
    choice = (rng.random(num_sequences)[:, None] > np.cumsum(probs_VxK[prev], 1)).sum(1)
    tokens[:, t] = successors_VxK[prev, np.minimum(choice, 3)]
  entropy = -(probs_VxK * np.log(probs_VxK)).sum(1).mean()
  return tokens, entropy


def convergence(steps: int, batch: int, length: int) -> None:
  train, entropy = _markov_data(steps * batch, length + 1, seed=1)
  held_out, _ = _markov_data(256, length + 1, seed=2)
  grid = {"adamw": [1e-3, 3e-3, 1e-2], "apollo r32": [3e-3, 1e-2, 3e-2],
          "apollo_mini": [3e-3, 1e-2, 3e-2]}
  configs = {"adamw": {"name": "adamw"}, "apollo r32": {"name": "apollo", "rank": 32},
             "apollo_mini": {"name": "apollo_mini"}}
  schedule_cfg = {"schedule": "cosine", "warmup_steps": steps // 10, "total_steps": steps,
                  "final_lr_ratio": 0.1}
  print(f"\n## Convergence: townworld_tiny on a sparse Markov chain (vocab {VOCAB}), "
        f"{steps} steps of {batch}x{length}; chain entropy {entropy:.3f} nats")
  print("| optimizer | lr | final held-out loss |")
  print("| --- | ---: | ---: |")
  best = {}
  for name, lrs in grid.items():
    tx = optim.make_optimizer({**configs[name], "learning_rate": 1.0})
    graphdef, _ = _tiny_model()
    step, eval_loss = _train_step(graphdef, tx), jax.jit(_loss_fn(graphdef))
    for lr in lrs:
      schedule = optim.make_schedule({**schedule_cfg, "learning_rate": lr})
      _, params = _tiny_model()
      state = (params, tx.init(params))
      for k in range(steps):
        state = step(*state, train[k * batch:(k + 1) * batch], schedule(k))[:2]
      loss = float(np.mean([eval_loss(state[0], held_out[i:i + 64])
                            for i in range(0, len(held_out), 64)]))
      best[name] = min(best.get(name, np.inf), loss)
      print(f"| {name} | {lr:g} | {loss:.4f} |")
  for name in grid:
    print(f"best {name}: {best[name]:.4f} ({100 * (best[name] / best['adamw'] - 1):+.1f}% "
          "vs AdamW)")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--length", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=40)
  parser.add_argument("--convergence", action="store_true")
  parser.add_argument("--steps", type=int, default=300, help="convergence steps")
  parser.add_argument("--convergence-length", type=int, default=32,
                      help="sequence length of the convergence runs (a first-order chain "
                      "needs little context)")
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, "
        f"{os.cpu_count()} CPUs (shared machine: timings are noisy)")
  memory_table(f"townworld_tiny (vocab {VOCAB})",
               ModelConfig.preset("townworld_tiny", vocab_size=VOCAB))
  memory_table("qwen2_0p5b (shapes only)", ModelConfig.preset("qwen2_0p5b"))
  step_times(args.batch, args.length, args.repeats)
  if args.convergence:
    convergence(args.steps, args.batch, args.convergence_length)


if __name__ == "__main__":
  main()
