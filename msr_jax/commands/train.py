"""`msr train --config configs/train.py[:smoke] [--config.a.b=value ...]`: fine-tune.

Trains on JSONL records (config.data.kind="jsonl", config.data.paths) or records a function
makes (config.data.kind="module:function"; Townworld episodes in configs/train.py:smoke),
full or context-frozen (config.train.mode),
writing metrics.jsonl and orbax checkpoints to the run folder; a run folder that holds
checkpoints is resumed from the newest one, with the config it was started with (a changed
field that changes the run is refused unless --allow-config-change, which records it).
Started as several processes (a Slurm job step, Open MPI, or MSR_COORDINATOR /
MSR_NUM_PROCESSES / MSR_PROCESS_ID), it joins them with `jax.distributed` first
(`msr_jax/train/distributed.py`) and trains on a mesh over every process's devices.
"""

from __future__ import annotations

import json


def register(subparsers) -> None:
  parser = subparsers.add_parser("train", help="fine-tune (full or context-frozen) with "
                                 "drift monitoring, quality guard and resumable checkpoints")
  parser.add_argument("--config", default="configs/train.py",
                      help="config file, optionally with :arg (e.g. configs/train.py:smoke)")
  parser.add_argument("--run-dir", default=None, help="run folder (default: config.run_dir)")
  parser.add_argument("--max-steps", type=int, default=None,
                      help="stop after this step without changing config.train.steps "
                      "(the run can be resumed)")
  parser.add_argument("--allow-config-change", action="store_true",
                      help="resume even though the config changes the run (recorded in "
                      "the run folder's config_changes.jsonl)")
  parser.set_defaults(func=run, accepts_overrides=True)


def run(args) -> int:
  from msr_jax.train import distributed
  distributed.initialize_from_env()  # several processes of a cluster job: join them first
  from msr_jax.runner.config import load_config
  from msr_jax.train.loop import train_loop

  config = load_config(args.config, args.overrides)
  if args.allow_config_change:
    with config.unlocked():
      config.allow_config_change = True
  result = train_loop(config, run_dir=args.run_dir, max_steps=args.max_steps)
  print(json.dumps(result.summary, indent=2, sort_keys=True))
  return 0
