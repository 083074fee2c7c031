"""Does the comparison of a told rule's weather with the note's form? Continues training a
checkpoint on a mixture (with optional opening phases, as a `configs/townworld.py` stage
has) and prints, as it trains, probe scores and the rule comparison
(`msr_jax.world.rule_comparison`) on short and long notes.

  python scripts/rule_comparison_formation.py [--checkpoint assets/townworld_base]
      [--mixture "dict(rule=1.0, rule_any_item=1.0, bio=0, ...)"]
      [--phases "600:dict(max_distractors=0);400:dict(max_distractors=1)"]
      [--steps 1500] [--lr 1e-3] [--every 250] [--seed 5] [--save DIR]

`--mixture` is keyword overrides of `corpus.Mixture()` (its defaults, not the recipe's);
each phase is STEPS:overrides of that mixture, run in order before the mixture itself,
all under one warm-up + cosine schedule of `--steps` (AdamW, clipping and weight decay as
the recipe's). The comparison columns are the share of decisions that are the rule's with
the item matching and R0 lending: `f` where the rule fires, `w` where only the weather
differs, on notes of 0-1 and of 4-5 distractor clauses (rules for any item) and of 0-5
(rules naming one item). Figures from this script are in docs/townworld.md ("Stage 3").
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from msr_jax.data.batch import packed_batch
from msr_jax.train.state import init_state
from msr_jax.data.tokenize import tokenize_record
from msr_jax.eval import probes_score
from msr_jax.world import probes, rule_comparison
from msr_jax.model import forward
from msr_jax.runner.config import load_config_file
from msr_jax.runner.arm_probes import load_base
from msr_jax.world import checkpoint, corpus, pretrain, tokenizer

PROBE_SIZES = {"K1": 100, "K2": 100, "qa_trained": 0, "K4": 0, "C1": 20, "C2": 60, "R0": 200,
               "rule": 200, "rule_novel": 200, "r1_note": 0, "behaviour": 0, "N4": 0}
SHOWN = ("K1", "K2", "C2", "R0", "rule", "rule_novel")
COMPARISON_SETS = (("any 0-1", True, (0, 2)), ("any 4-5", True, (4, 6)), ("one 0-5", False, (0, 6)))


def _overrides(text: str) -> dict:
  return eval(text, {"__builtins__": {}}, {"dict": dict})  # A dict of literals.


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--checkpoint", default="assets/townworld_base")
  parser.add_argument("--mixture", default="dict()")
  parser.add_argument("--phases", default="")
  parser.add_argument("--steps", type=int, default=1500)
  parser.add_argument("--lr", type=float, default=1e-3)
  parser.add_argument("--warmup-steps", type=int, default=50)
  parser.add_argument("--every", type=int, default=250)
  parser.add_argument("--seed", type=int, default=5)
  parser.add_argument("--save", default="", help="write the final weights here")
  args = parser.parse_args()
  recipe = load_config_file("configs/townworld.py")
  base = load_base(args.checkpoint)
  graphdef, params = base.graphdef, base.params
  mixture = corpus.Mixture(**_overrides(args.mixture))
  phases = [(int(n), _overrides(o)) for n, o in
            (p.split(":", 1) for p in args.phases.split(";") if p)]
  if sum(n for n, _ in phases) > args.steps:
    raise ValueError(f"--phases run {sum(n for n, _ in phases)} steps, past --steps {args.steps}")
  optim_config = pretrain.stage_optim(
      recipe, {"learning_rate": args.lr, "warmup_steps": args.warmup_steps}, args.steps)
  tx, step_fn = pretrain.make_step(graphdef, base.model_config, optim_config)
  state = init_state(params, tx, seed=args.seed)

  def batches():
    for k, (n, over) in enumerate([*phases, (args.steps, {})]):
      stream = corpus.pack(corpus.records(base.world, args.seed + 100 * k,
                                          dataclasses.replace(mixture, **over)),
                           base.adapter, recipe.train.batch_size, recipe.train.seq_len,
                           base.pad_id)
      for _ in range(n):
        yield next(stream)

  items = probes.build(base.world, base.probe_seed, base.adapter, PROBE_SIZES)
  logits_fn = jax.jit(lambda p, t: forward(graphdef, p, t)[0])
  tok = tokenizer.load(os.path.join(args.checkpoint, checkpoint.TOKENIZER))
  rng = np.random.default_rng([99, 9])
  comparison = {}  # (set name, fires) -> (tokens_NxL, first answer position_N, rule's id_N)
  for name, any_item, distractors in COMPARISON_SETS:
    for fires in (True, False):
      pairs = rule_comparison.episodes_for(base.world, rng, 60, any_item, fires, distractors)
      encoded = [tokenize_record(record, base.adapter) for record, _ in pairs]
      tokens_NxL = np.full((len(encoded), 160), base.pad_id, np.int32)
      for i, e in enumerate(encoded):
        tokens_NxL[i, :len(e.tokens)] = e.tokens
      comparison[(name, fires)] = (
          tokens_NxL, np.array([e.spans[-1].start - 1 for e in encoded]),
          np.array([tok.token_to_id(rule.decision) for _, rule in pairs]))

  def rule_share(p, tokens_NxL, first_N, wanted_N) -> float:
    """The share of first answer words that are the rule's decision."""
    predicted_NxL = np.asarray(jnp.argmax(logits_fn(p, tokens_NxL), -1))
    return float(np.mean(predicted_NxL[np.arange(len(first_N)), first_N] == wanted_N))

  def report(p) -> str:
    logprob, exact = probes_score.score_items(graphdef, p, items, pad_id=base.pad_id)
    summary = probes.summarize(items, logprob, exact)
    scores = " ".join(f"{k} {summary[k]['acc']:.3f}" for k in SHOWN)
    shares = " ".join(f"{name} {'f' if fires else 'w'} {rule_share(p, *data):.2f}"
                      for (name, fires), data in comparison.items())
    return f"{scores} | {shares}"

  print(f"{mixture}\nphases {phases}\nstart {report(params)}", flush=True)
  start, data = time.time(), batches()
  for step in range(1, args.steps + 1):
    state, metrics = step_fn(state, packed_batch(*next(data)))
    params, loss = state.params, metrics["loss"]
    if step % args.every == 0 or step == args.steps:
      print(f"step {step:5d} loss {float(loss):.3f} {report(params)} "
            f"({(time.time() - start) / 60:.1f} min)", flush=True)
  if args.save:
    checkpoint.save(args.save, base.model_config, params)


if __name__ == "__main__":
  main()
