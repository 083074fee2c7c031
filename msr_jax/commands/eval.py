"""`msr eval --checkpoint PATH`: score a checkpoint on its probes.

A Townworld checkpoint (a folder with `townworld.json`) is scored on every Townworld probe
(`--subset`: the reduced subset stored in the card); anything else `msr_jax.load` reads (an
HF folder, a GGUF file, a bundled name) on the real-model probes of
`msr_jax/eval/real_probes.py` (facts, perplexity, context recall; `--base` adds the KL to
that checkpoint; `--behaviour PROMPTS.jsonl --judge JUDGE` adds the behaviour probe: the
prompts' greedy answers, judged by `regex:PATTERN` (or a bare PATTERN) or by
`llm:CHECKPOINT` with `--rubric`, see `msr_jax/eval/behaviour_probes.py`). Prints a table and writes the scores as JSON (atomically) to `--out`
(default PATH/eval.json for a folder, PATH.eval.json otherwise).
"""

from __future__ import annotations

import os
import time


def register(subparsers) -> None:
  parser = subparsers.add_parser("eval", help="score a checkpoint on its probes")
  parser.add_argument("--checkpoint", required=True, help="a checkpoint msr_jax.load reads")
  parser.add_argument("--out", default=None, help="JSON output (default PATH/eval.json)")
  parser.add_argument("--subset", action="store_true",
                      help="Townworld: the reduced probe subset only")
  parser.add_argument("--base", default=None,
                      help="real models: the checkpoint to measure the KL from")
  parser.add_argument("--behaviour", default=None,
                      help="real models: a JSONL of held-out prompts ({'prompt': ...})")
  parser.add_argument("--judge", default=None,
                      help="real models: the behaviour judge, regex:PATTERN (or PATTERN) or "
                           "llm:CHECKPOINT")
  parser.add_argument("--rubric", default="",
                      help="with --judge llm:...: what an accepted answer does, e.g. "
                           "\"opens with 'Forecast:' and gives a weather forecast\"")
  parser.set_defaults(func=run)


def _is_townworld(path: str) -> bool:
  from msr_jax.world.pretrain import WORLD_FILE
  return os.path.isdir(path) and os.path.exists(os.path.join(path, WORLD_FILE))


def run(args) -> int:
  from msr_jax import atomic

  if _is_townworld(args.checkpoint):
    from msr_jax.world import probes_card
    result = probes_card.evaluate(args.checkpoint, subset=args.subset)
    result["goals"] = probes_card.goals(result["probes"])
    print(probes_card.format_table(result["probes"]))
  else:
    if (args.behaviour is None) != (args.judge is None):
      from msr_jax.errors import UserError
      raise UserError("msr eval: --behaviour and --judge go together")
    result = evaluate_real(args.checkpoint, args.base, args.behaviour, args.judge,
                           args.rubric)
    for group, scores in result["probes"].items():
      print(f"{group:<10} " + "  ".join(f"{k}={v:.3f}" for k, v in scores.items()
                                        if isinstance(v, float)))
  result["checkpoint"] = os.path.abspath(args.checkpoint)
  out = args.out or (os.path.join(args.checkpoint, "eval.json")
                     if os.path.isdir(args.checkpoint) else args.checkpoint + ".eval.json")
  atomic.write_json(out, result)
  print(f"{result['items']} items in {result['wall_s']:.1f} s -> {out}")
  return 0


def evaluate_real(path: str, base: str | None = None, behaviour: str | None = None,
                  judge: str | None = None, rubric: str = "") -> dict:
  from msr_jax.checkpoints import loader
  from msr_jax.errors import UserError
  from msr_jax.eval import real_probes
  from msr_jax.train.state import pure_params

  start = time.time()
  loaded = loader.load(path)
  if loaded.tokenizer is None:
    raise UserError(f"{path}: has no tokenizer; the real-model probes need one")
  pad_id = loaded.tokenizer.pad_token_id or 0
  probes = real_probes.build(loaded.tokenizer, pad_id=pad_id)
  base_params = pure_params(loader.load(base).params) if base else None
  params = pure_params(loaded.params)
  summary = real_probes.score(loaded.graphdef, params, probes, pad_id, base_params)
  if behaviour:
    from msr_jax.eval import behaviour_probes
    judge_fn = behaviour_probes.judge_from_spec(judge, rubric)  # fails before generating
    prompts = [row["prompt"] for row in real_probes.read_set(behaviour, ("prompt",))]
    summary["behaviour"] = behaviour_probes.behaviour_score(
        loaded.graphdef, params, loaded.tokenizer, prompts, judge_fn)
    summary["behaviour"]["judge"] = judge
  return {"probes": summary, "retention_score": real_probes.retention_score(summary),
          "items": len(probes.items) + len(probes.kl_tokens_BxT),
          "wall_s": time.time() - start}
