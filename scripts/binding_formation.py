"""Does the in-context copy beneath binding form? Trains a fresh Townworld model on one of
`msr_jax.world.binding_tasks.TASKS` and prints held-out accuracy as it trains.

  python scripts/binding_formation.py TASK [--steps 1500] [--lr 1e-3] [--batch-size 16]
      [--facts 2,4] [--questions 4] [--model "{'num_layers': 2}"] [--every 250]
      [--induction-steps 1000]

The model is `configs/townworld.py`'s (preset and overrides from --model), trained with
its optimizer (AdamW, warm-up and cosine decay, clipping, weight decay) and document mask.
Copy tasks print the share of second-copy tokens predicted (chance about 1/530); note
tasks print, per note size, the share of first answers right (chance 1/facts). With
--induction-steps, the run opens with that many batches of the `induction` task (counted
in --steps, as `induction_steps` is in the recipe's stage 1). Figures
from this script are in docs/townworld.md ("Below the binding").
"""

from __future__ import annotations

import argparse
import ast
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from msr_jax.data.batch import packed_batch
from msr_jax.train.state import init_state
from msr_jax.data.tokenize import tokenize_record
from msr_jax.model import Decoder, forward
from msr_jax.runner.config import load_config_file
from msr_jax.world import binding_tasks, corpus, pretrain, tokenizer
from msr_jax.world.world import World

EVAL_SIZES = (2, 4, 6)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("task", choices=binding_tasks.TASKS)
  parser.add_argument("--steps", type=int, default=1500)
  parser.add_argument("--lr", type=float, default=1e-3)
  parser.add_argument("--batch-size", type=int, default=16)
  parser.add_argument("--facts", default="2,4", help="inclusive range of facts per note")
  parser.add_argument("--questions", type=int, default=4, help="at most, per note")
  parser.add_argument("--model", default="{}", help="ModelConfig overrides, a dict literal")
  parser.add_argument("--every", type=int, default=250)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--induction-steps", type=int, default=0,
                      help="open with this many content-copy batches")
  args = parser.parse_args()

  recipe = load_config_file("configs/townworld.py")  # the recipe's optimizer settings
  recipe.model = ml_collections.ConfigDict({"preset": recipe.model.preset,
                                            **ast.literal_eval(args.model)})
  world, tok = World.build(recipe.world.seed, num_people=recipe.world.num_people), \
      tokenizer.build()
  config = pretrain.model_config(recipe, tok.get_vocab_size())
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(args.seed)), nnx.Param)
  optim_config = pretrain.stage_optim(recipe, {
      "learning_rate": args.lr,
      "warmup_steps": min(recipe.optim.warmup_steps, args.steps // 4)}, args.steps)
  tx, step_fn = pretrain.make_step(graphdef, config, optim_config)
  state = init_state(params, tx, seed=args.seed)
  logits_fn = jax.jit(lambda p, t: forward(graphdef, p, t)[0])
  adapter, pad = tokenizer.adapter(tok), tok.token_to_id(tokenizer.PAD)
  seq_len = recipe.train.seq_len
  facts = tuple(int(x) for x in args.facts.split(","))

  if args.task in ("offset", "induction"):
    fixed = args.task == "offset"
    train = binding_tasks.copy_stream(np.random.default_rng([args.seed, 1]), tok,
                                      args.batch_size, seq_len, fixed)
    eval_tokens, eval_mask, _ = next(binding_tasks.copy_stream(
        np.random.default_rng([args.seed, 2]), tok, 128, seq_len, fixed))

    def score(p) -> str:
      predicted = np.asarray(jnp.argmax(logits_fn(p, eval_tokens), -1))
      hits = (predicted[:, :-1] == eval_tokens[:, 1:]) * eval_mask[:, :-1]
      return f"copied {hits.sum() / eval_mask[:, :-1].sum():.3f}"
  else:
    stream = binding_tasks.records(world, args.seed, args.task, facts, args.questions)
    train = corpus.pack(stream, adapter, args.batch_size, seq_len, pad)
    held_out = {}
    rng = np.random.default_rng([args.seed, 3])
    for k in EVAL_SIZES:
      encoded = [tokenize_record(binding_tasks.record(world, rng, args.task, k, f"eval-{k}-{i}"),
                                 adapter) for i in range(200)]
      tokens = np.full((len(encoded), max(len(e.tokens) for e in encoded)), pad, np.int32)
      for i, e in enumerate(encoded):
        tokens[i, :len(e.tokens)] = e.tokens
      held_out[k] = (tokens, np.array([e.spans[0].start for e in encoded]))

    def score(p) -> str:
      out = []
      for k, (tokens, starts) in held_out.items():
        predicted = np.asarray(jnp.argmax(logits_fn(p, tokens), -1))
        rows = np.arange(len(starts))
        right = np.mean(predicted[rows, starts - 1] == tokens[rows, starts])
        out.append(f"{k} facts {right:.3f} (chance {1 / k:.3f})")
      return ", ".join(out)

  print(f"task {args.task}: {args.steps} steps, batch {args.batch_size}, lr {args.lr}, "
        f"model {dict(recipe.model)}, induction steps {args.induction_steps}", flush=True)
  start = time.time()
  opening = binding_tasks.copy_stream(np.random.default_rng([args.seed, 4]), tok,
                                      args.batch_size, seq_len, fixed_offset=False)
  for step in range(1, args.steps + 1):
    batch = next(opening) if step <= args.induction_steps else next(train)
    state, metrics = step_fn(state, packed_batch(*batch))
    params, loss = state.params, metrics["loss"]
    if step % args.every == 0 or step == args.steps:
      print(f"step {step:5d} loss {float(loss):.3f} {score(params)} "
            f"({(time.time() - start) / 60:.1f} min)", flush=True)


if __name__ == "__main__":
  main()
