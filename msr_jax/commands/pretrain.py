"""`msr pretrain --config configs/townworld.py`: pre-train the Townworld base model.

Trains each stage on `msr_jax.train`'s loop (run folders `OUT/runs/stageN`, checkpointed
every `checkpoint.every` steps, so running the command again continues a killed run),
writes the weights (safetensors + JSON config + tokenizer) to `config.out_dir`, then scores
every probe and writes the card (`card.json`).
"""

from __future__ import annotations

import os


def register(subparsers) -> None:
  parser = subparsers.add_parser("pretrain", help="pre-train the Townworld base model")
  parser.add_argument("--config", default="configs/townworld.py",
                      help="config file, optionally with :arg (e.g. configs/townworld.py:smoke)")
  parser.add_argument("--out", default=None, help="output folder (default: config.out_dir)")
  parser.add_argument("--no-card", action="store_true", help="skip the final probe card")
  parser.add_argument("--start-stage", type=int, default=1,
                      help="2: continue from the finished stage-1 checkpoint in the output")
  parser.set_defaults(func=run, accepts_overrides=True)


def run(args) -> int:
  from msr_jax.runner.config import load_config
  from msr_jax.world import pretrain

  cfg = load_config(args.config, args.overrides)
  out_dir = args.out or cfg.out_dir
  os.makedirs(out_dir, exist_ok=True)
  log_path = os.path.join(out_dir, "pretrain.log")

  def log(line: str) -> None:
    print(line, flush=True)
    with open(log_path, "a") as f:
      f.write(line + "\n")

  stats = pretrain.run(cfg, out_dir, log=log, start_stage=args.start_stage)
  if not args.no_card:
    from msr_jax.world import probes_card
    probes_card.write_card(out_dir, cfg, stats, log=log)
  return 0
