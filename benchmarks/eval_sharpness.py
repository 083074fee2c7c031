"""Cost of the sharpness measurements relative to one gradient evaluation.

Times, on the same model and batch in one process: a jitted value-and-grad of the LM loss
(the work of a training step without the optimizer update), one Hessian-vector product,
the power iteration at the spec's settings (<= 30 HVPs, tol 1e-3) and a 10-sample
Hutchinson trace. Prints each as a ratio to the gradient.

  PYTHONPATH=. python benchmarks/eval_sharpness.py [--batch 16] [--seq 64] [--reps 5]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from msr_jax.eval import sharpness
from msr_jax.model import Decoder, ModelConfig, forward
from msr_jax.train.losses import masked_cross_entropy


def lm_loss(params, graphdef, tokens_BxT):
  logits_BxTxV = forward(graphdef, params, tokens_BxT[:, :-1])[0]
  return masked_cross_entropy(logits_BxTxV, tokens_BxT[:, 1:],
                              jnp.ones(tokens_BxT[:, 1:].shape))


def best_time(fn, reps):
  jax.block_until_ready(fn())  # compile
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return float(np.min(times))  # the least-disturbed run on a shared machine


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--preset", default="townworld_tiny")
  parser.add_argument("--vocab", type=int, default=512)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--seq", type=int, default=64)
  parser.add_argument("--reps", type=int, default=5)
  args = parser.parse_args()

  config = ModelConfig.preset(args.preset, vocab_size=args.vocab)
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(0)), nnx.Param)
  tokens_BxT = jax.random.randint(jax.random.key(1), (args.batch, args.seq + 1), 0,
                                  args.vocab)
  loss_args = (graphdef, tokens_BxT)
  vector = jax.tree.map(jnp.ones_like, params)
  grad_fn = jax.jit(jax.value_and_grad(lm_loss))

  t_grad = best_time(lambda: grad_fn(params, *loss_args), args.reps)
  t_hvp = best_time(lambda: sharpness.hvp(lm_loss, params, vector, loss_args), args.reps)
  eig = sharpness.top_hessian_eigenvalue(lm_loss, params, jax.random.key(0),
                                         loss_args=loss_args)
  t_eig = best_time(lambda: sharpness.top_hessian_eigenvalue(
      lm_loss, params, jax.random.key(0), loss_args=loss_args).eigenvalue, 1)
  t_tr = best_time(lambda: sharpness.hutchinson_trace(
      lm_loss, params, jax.random.key(0), 10, loss_args).trace, 1)

  n = sum(x.size for x in jax.tree.leaves(params))
  print(f"{args.preset}: {n / 1e6:.2f}M parameters, batch {args.batch} x {args.seq} tokens, "
        f"{jax.devices()[0].platform}")
  print(f"value_and_grad          {1e3 * t_grad:8.1f} ms   1.00x")
  print(f"hvp (jvp of grad)       {1e3 * t_hvp:8.1f} ms   {t_hvp / t_grad:.2f}x")
  print(f"power iteration ({int(eig.num_iters):2d} HVPs) {1e3 * t_eig:8.1f} ms   "
        f"{t_eig / t_grad:.2f}x   lambda = {float(eig.eigenvalue):.4g}")
  print(f"hutchinson (10 samples) {1e3 * t_tr:8.1f} ms   {t_tr / t_grad:.2f}x")


if __name__ == "__main__":
  main()
