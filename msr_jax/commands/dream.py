"""`msr dream --config configs/dream.py[:smoke]`: consolidate a behaviour by dreaming.

Runs `msr_jax.dream.consolidate.run_consolidation` on Townworld (or, with
`config.domain = "chat"`, on a chat model: `configs/dream_real.py`,
`msr_jax/chat/dream_domain.py`): per cycle, walks over the
memory graph, collisions, answers with the rule note in context, judges, filtered
behavioural cloning and context-frozen training; writes `dream_cycles.jsonl`, the dream
records of every cycle and the memory graph into `config.out_dir` (or `--out`).
"""

from __future__ import annotations

import os


def register(subparsers) -> None:
  parser = subparsers.add_parser("dream", help="the dream loop: walk, dream, judge, train")
  parser.add_argument("--config", default="configs/dream.py",
                      help="config file, optionally with :arg (e.g. configs/dream.py:smoke)")
  parser.add_argument("--out", default=None, help="run folder (default: config.out_dir)")
  parser.set_defaults(func=run, accepts_overrides=True)


def run(args) -> int:
  from msr_jax import atomic
  from msr_jax.dream.consolidate import run_consolidation
  from msr_jax.memory import MemoryGraph
  from msr_jax.runner.config import load_config

  config = load_config(args.config, args.overrides)
  out_dir = args.out or config.out_dir
  os.makedirs(out_dir, exist_ok=True)
  graph_path = os.path.join(out_dir, "memory.sqlite")
  if os.path.exists(graph_path):
    raise SystemExit(f"{graph_path} exists: a dream run starts from a new memory graph; "
                     "choose another --out or remove the old run")
  with MemoryGraph.open(graph_path) as graph:
    if config.get("domain", "townworld") == "chat":
      from msr_jax.chat.dream_domain import chat_setup
      setup, params = chat_setup(config, graph)
    else:
      from msr_jax.world.dream_domain import townworld_setup
      setup, params = townworld_setup(config, graph)
    atomic.write_json(os.path.join(out_dir, "config.json"), config.to_dict())
    run_consolidation(config, params, setup, run_dir=out_dir)
  print(f"per-cycle log -> {os.path.join(out_dir, 'dream_cycles.jsonl')}")
  return 0
