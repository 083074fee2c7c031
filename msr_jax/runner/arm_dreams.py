"""The generative and architectural defences inside a Townworld arm.

dream_records   walk -> collide -> answer with the stage's rule note in context -> judge
                -> keep (filtered | unfiltered | oracle), through `dream.consolidate.dream_cycle`.
                Dreams that land in a held-out N2 cell are dropped, so the N2 probe
                measures cells no dream covered (P4's requirement). The stress
                `bad_dream_fraction` corrupts that share of the kept dreams.
                mode "distill" is P4's control for the note: the same number of fresh
                *real* situations, answered and judged exactly as dreams are (rule note in
                context, same temperature and judges): distilling the note without dreaming.
self_targets    the fast store consolidated into weights: the training answers of the
                real situations are the model's own greedy answers with the rule note in
                context (context distillation), where the format judge accepts them; the
                given label is kept where it does not.
"""

from __future__ import annotations

import dataclasses
import tempfile

import jax
import ml_collections

from msr_jax.data.records import Message
from msr_jax.dream import collide
from msr_jax.dream.config import dream_defaults
from msr_jax.dream.consolidate import DreamSetup, answer_and_filter, dream_cycle, fill_memory
from msr_jax.dream.generate import answer_scenarios
from msr_jax.memory import MemoryGraph
from msr_jax.runner import arm_data
from msr_jax.world import situations, tokenizer
from msr_jax.world.dream_domain import TownworldDomain
from msr_jax.world.dream_judges import FormatJudge


def _setup(base, world, graph, real_records) -> DreamSetup:
  tok = tokenizer.build()
  return DreamSetup(domain=TownworldDomain(world), graphdef=base.graphdef,
                    model_config=base.model_config, adapter=base.adapter, decode=lambda ids: tok.decode(ids),
                    pad_id=base.pad_id, eos_ids=(tok.token_to_id(tokenizer.EOT),),
                    graph=graph, real_records=list(real_records))


def _dream_config(cfg, seed: int) -> ml_collections.ConfigDict:
  """The dream loop's defaults (msr_jax/dream/config.py) with the arm's mode, count and
  judges (`dream.judge` the training signal, "format+self" both; `dream.judges` the ones
  reported beside it; the oracle is never a training signal of a filtered arm)."""
  dream = dream_defaults()
  dream.update({"mode": cfg.dream.mode, "walks_per_cycle": int(cfg.dream.count),
                "judges": tuple(cfg.dream.judges), "judge": str(cfg.dream.judge),
                "self_threshold": float(cfg.dream.self_threshold)})
  return ml_collections.ConfigDict({"seed": seed, "dream": dream})


def dream_records(cfg, base, params, rule, stage: int, seed: int,
                  earlier=()) -> tuple[list, dict]:
  """(the stage's dream records, source "dream"; the dream statistics: scenarios, each
  judge's acceptance and validity, what the filter and the N2 hold-out removed)."""
  world = arm_data.stage_world(base.world, rule)
  real = arm_data.behaviour_records(base.world, rule, 1000 * seed + stage,
                                    int(cfg.data.behaviour_records), earlier=earlier)
  config = _dream_config(cfg, seed)
  key = jax.random.key(seed * 100 + stage)
  with tempfile.TemporaryDirectory(prefix="msr-dream-") as tmp:
    with MemoryGraph.open(f"{tmp}/memory.sqlite") as graph:
      setup = _setup(base, world, graph, real)
      fill_memory(graph, real, setup.domain)
      keys = collide.real_keys(real, setup.domain)
      if cfg.dream.mode == "distill":
        fresh = arm_data.behaviour_records(base.world, rule, 1000 * seed + stage + 500,
                                           int(cfg.dream.count), earlier=earlier)
        scenarios = [collide.Scenario(r.id, r.messages[:-1], situations.parse_situation(r))
                     for r in fresh]
        config.dream.mode = "filtered"
        records, stats = answer_and_filter(config, setup, params, scenarios, 0.7, keys, key)
        stats["scenarios"] = len(scenarios)
      else:
        records, stats = dream_cycle(config, setup, params, stage, 0.7, keys, key)
  kept = [r for r in records if tuple(r.meta.get("cell", ())) not in world.n2_cells]
  kept = arm_data.corrupt(kept, float(cfg.stress.bad_dream_fraction), 7000 + seed)
  summary = {k: stats.get(k) for k in ("scenarios", "acceptance", "validity",
                                       "answer_accuracy", "judges")}
  summary.update(kept=len(kept), removed_by_filter=int(stats.get("scenarios", 0)) - len(records),
                 removed_in_n2=len(records) - len(kept))
  return [dataclasses.replace(r, source="dream") for r in kept], summary


def self_targets(base, params, records, rule, seed: int) -> list:
  tok = tokenizer.build()
  scenarios = [collide.Scenario(r.id, r.messages[:-1], situations.parse_situation(r))
               for r in records]
  fast_store = (Message("system", rule.text()),)
  responses = answer_scenarios(
      base.graphdef, params, scenarios, adapter=base.adapter, decode=tok.decode,
      fast_store=fast_store, temperature=0.0, key=jax.random.key(seed),
      eos_ids=(tok.token_to_id(tokenizer.EOT),), max_new_tokens=12, batch_size=64,
      pad_id=base.pad_id)
  verdicts = FormatJudge().judge_batch(scenarios, responses)
  out = []
  for record, response, verdict in zip(records, responses, verdicts):
    if verdict.score >= 0.5 and response.text:
      messages = record.messages[:-1] + (Message("assistant", response.text),)
      record = dataclasses.replace(record, messages=messages,
                                   meta={**record.meta, "self_target": True})
    out.append(record)
  return out
