"""Evaluating a Townworld checkpoint on every probe, and the base checkpoint's card.

`evaluate(directory)` scores the full probe set (or the reduced `SUBSET_SIZES` subset,
which the shipped-checkpoint test re-scores) and returns a JSON-ready summary. The card
(`card.json`) records the training config, seed, steps, tokens, wall time, the full and
subset probe scores, and whether each pre-registered goal was met.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Callable

from msr_jax import atomic
from msr_jax.checkpoints.errors import CheckpointError
from msr_jax.eval import probes_score
from msr_jax.world import probes
from msr_jax.world import checkpoint, corpus, tokenizer
from msr_jax.world.pretrain import WORLD_FILE
from msr_jax.world.world import World

SUBSET_SIZES = {name: 8 for name in probes.DEFAULT_SIZES}
# Pre-registered goals of the base model: (probe, field, minimum).
GOALS = (("K1", "acc", 0.95), ("K2", "acc", 0.80), ("C1_trained", "acc", 0.95),
         ("C2", "acc", 0.90), ("R0", "acc", 0.95), ("rule", "acc", 0.90))


def world_settings(directory: str) -> dict:
  """The checkpoint's world settings, or the defaults of configs/townworld.py."""
  path = os.path.join(directory, WORLD_FILE)
  settings = {"world_seed": 0, "num_people": 240, "probe_seed": 1234,
              "note_facts": list(corpus.Mixture().note_facts)}
  if os.path.exists(path):
    stored = checkpoint.read_json(path, "no world settings")
    if not isinstance(stored, dict) or set(stored) - set(settings):
      raise CheckpointError(f"{path}: expected an object with the fields {sorted(settings)}")
    settings.update(stored)
  return settings


def evaluate(directory: str, subset: bool = False) -> dict:
  """{"probes": {...}, "items": N, "wall_s": seconds} for the checkpoint in `directory`."""
  start = time.time()
  settings = world_settings(directory)
  _, graphdef, params = checkpoint.load(directory)
  tok = tokenizer.load(os.path.join(directory, checkpoint.TOKENIZER))
  world = World.build(settings["world_seed"], num_people=settings["num_people"])
  items = probes.build(world, settings["probe_seed"], tokenizer.adapter(tok),
                       SUBSET_SIZES if subset else None)
  logprob, exact = probes_score.score_items(graphdef, params, items,
                                            pad_id=tok.token_to_id(tokenizer.PAD))
  summary = probes.summarize(items, logprob, exact)
  summary = probes.add_aggregates(summary, tuple(settings["note_facts"]))
  return {"probes": summary, "items": len(items), "wall_s": time.time() - start,
          "subset": subset}


def goals(summary: dict) -> dict:
  return {probe: {"min": low, "value": summary[probe][field],
                  "met": bool(summary[probe][field] >= low)}
          for probe, field, low in GOALS if probe in summary}


def format_table(summary: dict) -> str:
  lines = [f"{'probe':<12} {'acc':>7} {'logprob':>9} {'n':>5}  extra"]
  for probe in sorted(summary):
    entry = summary[probe]
    acc = f"{entry['acc']:.3f}" if "acc" in entry else "-"
    lp = f"{entry['logprob']:.3f}" if "logprob" in entry else "-"
    extra = ", ".join(f"{k}={v:.3f}" for k, v in entry.items()
                      if k in ("ce", "memorization_ratio"))
    lines.append(f"{probe:<12} {acc:>7} {lp:>9} {entry.get('n', ''):>5}  {extra}")
  return "\n".join(lines)


def write_card(directory: str, cfg, stats: dict, log: Callable[[str], None] = print,
               machine_note: str = "") -> dict:
  """Scores the checkpoint (full and subset) and writes `card.json` atomically."""
  full = evaluate(directory)
  sub = evaluate(directory, subset=True)
  log(format_table(full["probes"]))
  card = {
      "model": cfg.model.preset,
      "model_config": checkpoint.read_json(os.path.join(directory, checkpoint.CONFIG),
                                           "no model config"),
      "config": cfg.to_dict(), "seed": cfg.seed, "world": world_settings(directory),
      "steps": stats["steps"], "tokens": stats["tokens"],
      "trained_tokens": stats["trained_tokens"], "wall_s": round(stats["wall_s"], 1),
      "machine": f"{platform.machine()} {os.cpu_count()} CPU cores. {machine_note}".strip(),
      "probes": full["probes"], "eval_wall_s": round(full["wall_s"], 1),
      "probes_subset": sub["probes"], "goals": goals(full["probes"]),
  }
  atomic.write_json(os.path.join(directory, checkpoint.CARD), card)
  log(f"card -> {os.path.join(directory, checkpoint.CARD)}")
  return card
