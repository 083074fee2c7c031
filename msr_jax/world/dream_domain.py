"""Townworld's dream domain (`msr_jax.dream.domain.DreamDomain`) and the setup of a
Townworld dream run.

Collisions. A decision situation has three parts, each taken whole from one memory:
  person   the requester (and the request's phrasing, `template`)
  context  the item's condition, the requester's relation and the distractor clauses
  cell     the (item, weather) cell
(`split_cell=True` splits the cell into `item` and `weather`, so that cells no memory
held can appear.) Parts are dealt to the memories by `collide.deal_parts` (a seeded
shuffle of `arange(num_parts) % num_memories`, so every memory gives at least one part
and, with three memories and three parts, each gives exactly one). Distractors that would
contradict the new situation (a clause about its item or its requester) are dropped.

The fast store is the behaviour's rule note as the system message; the judges are the
format and oracle judges (`world.dream_judges`), the reference is the oracle; a
situation's key is (person, item, weather, condition, relation) and its coverage key the
(item, weather) cell, against the N2 split's held-out cells; the probes are grouped fast,
slow, knowledge and context (`GROUPS`).

Setup (`townworld_setup`):
config.model.init = "checkpoint": the base checkpoint in `config.model.checkpoint` (the
  folder `msr pretrain` writes: parameters, model config, tokenizer, and the world's
  settings in `townworld.json`), so the world is the one the model was trained on.
config.model.init = "random": `config.model.preset` with the non-zero size fields of
  `config.model` applied, random weights (`config.seed`), the world `config.world.seed`;
  for smoke runs and tests (such a model cannot follow the rule note).
The real data is R1's fine-tuning records (`behaviour.training_records`); the memory graph
holds them as memories (requester and item as entities).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np
from flax import nnx

from msr_jax.data.records import Message, Record
from msr_jax.dream.collide import Scenario, deal_parts
from msr_jax.dream.consolidate import DreamSetup
from msr_jax.eval import probes_score
from msr_jax.memory import MemoryGraph
from msr_jax.model import Decoder, ModelConfig
from msr_jax.train.state import pure_params
from msr_jax.world import behaviour, checkpoint, corpus, episodes, policy, probes, situations
from msr_jax.world import tokenizer
from msr_jax.world.dream_judges import FormatJudge, OracleJudge
from msr_jax.world.probes_card import world_settings
from msr_jax.world.world import World

PARTS = ("person", "context", "cell")
SPLIT_CELL_PARTS = ("person", "context", "item", "weather")
REAL_SOURCE = "townworld"  # the source of `behaviour.training_records`

GROUPS = {
    "fast": ("r1_note",),
    "slow": ("B_train", "N1", "N2", "N3", "spec"),
    "knowledge": ("K1", "K2"),
    "context": ("C1_trained", "C2"),
}
# Every probe the groups do not use is built with size 0.
SMALL_SIZES = {**{name: 0 for name in probes.DEFAULT_SIZES},
               "K1": 48, "K2": 48, "C1": 8, "C2": 48, "r1_note": 64, "behaviour": 48}


def _compatible(distractor: str, item: str, requester: str) -> bool:
  """False for a clause about the scenario's own item or requester (a contradiction)."""
  words = distractor.split()
  return not (distractor.startswith(f"the {item} is ") or words[0] == requester)


def recombine(parts: Sequence[policy.Situation], donors: dict) -> policy.Situation:
  """The situation built from `donors` (part -> index into `parts`)."""
  person = parts[donors["person"]]
  context = parts[donors["context"]]
  if "cell" in donors:
    item, weather = parts[donors["cell"]].cell
  else:
    item, weather = parts[donors["item"]].item, parts[donors["weather"]].weather
  distractors = tuple(d for d in context.distractors
                      if _compatible(d, item, person.requester))
  return policy.Situation(weather=weather, item=item, condition=context.condition,
                          requester=person.requester, relation=context.relation,
                          template=person.template, distractors=distractors)


def scenario_messages(situation: policy.Situation, rng: np.random.Generator) -> tuple:
  """The user turn, rendered (clause order shuffled) exactly as the world renders it."""
  record = episodes.decision(rng, situation, "scenario")
  return tuple(m for m in record.messages if m.role == "user")


def collide(memories: Sequence[Record], rng: np.random.Generator, uid: str,
            parents: Sequence[int] = (), split_cell: bool = False) -> Scenario:
  """One scenario from 2-3 Townworld decision memories (`NotADecisionError` otherwise)."""
  if not 2 <= len(memories) <= 3:
    raise ValueError(f"a collision takes 2 or 3 memories, got {len(memories)}")
  parsed = [situations.parse_situation(m) for m in memories]
  donors = deal_parts(len(memories), SPLIT_CELL_PARTS if split_cell else PARTS, rng)
  situation = recombine(parsed, donors)
  return Scenario(id=uid, messages=scenario_messages(situation, rng), situation=situation,
                  parents=tuple(parents), donors=donors)


def render_rule_note(rule: policy.Rule) -> tuple[Message, ...]:
  """The fast store for a behaviour: its rule note as the system message, exactly as
  `episodes.decision(..., told_rule=rule)` renders a told rule."""
  return (Message("system", rule.text()),)


def score_probes(graphdef, params, items, pad_id: int,
                 note_facts: tuple[int, int] = corpus.Mixture().note_facts) -> dict:
  """{group: {probe: accuracy}}, plus `memorization_ratio` under context (from C2)."""
  logprob, exact = probes_score.score_items(graphdef, params, items, pad_id=pad_id)
  summary = probes.add_aggregates(probes.summarize(items, logprob, exact), tuple(note_facts))
  out = {group: {p: summary[p]["acc"] for p in names if p in summary}
         for group, names in GROUPS.items()}
  if "C2" in summary:
    out["context"]["memorization_ratio"] = summary["C2"]["memorization_ratio"]
  return out


@dataclasses.dataclass(frozen=True)
class TownworldDomain:
  """The dream domain of a world and the rule being consolidated (R1 by default)."""
  world: World
  rule: policy.Rule | None = None
  real_source: str = REAL_SOURCE

  @property
  def target(self) -> policy.Rule:
    return self.rule if self.rule is not None else self.world.r1

  @property
  def held_out_cells(self) -> frozenset:
    return self.world.n2_cells

  def memory_entities(self, record: Record) -> frozenset[str] | None:
    situation = situations.try_parse(record)
    return None if situation is None else situations.entities(situation)

  def collide(self, memories, rng, uid, parents=(), split_cell=False) -> Scenario:
    return collide(memories, rng, uid, parents, split_cell)

  def fast_store(self) -> tuple[Message, ...]:
    return render_rule_note(self.target)

  def judge(self, name: str):
    if name == "format":
      return FormatJudge()
    if name == "oracle":
      return OracleJudge(self.target)
    raise ValueError(f"config.dream.judges: unknown judge {name!r} for Townworld "
                     "(format, self, oracle; the LLM judge needs a yes/no vocabulary)")

  def reference(self) -> OracleJudge:
    return OracleJudge(self.target)

  def scenario_key(self, scenario: Scenario):
    return None if scenario.situation is None else situations.situation_key(
        scenario.situation)

  def record_key(self, record: Record):
    situation = situations.try_parse(record)
    return None if situation is None else situations.situation_key(situation)

  def coverage_key(self, scenario: Scenario):
    return None if scenario.situation is None else tuple(scenario.situation.cell)

  def probe_items(self, seed: int, adapter, sizes: dict | None = None) -> list:
    return probes.build(self.world, seed, adapter, {**SMALL_SIZES, **(sizes or {})})

  def score_probes(self, graphdef, params, items, pad_id: int) -> dict:
    return score_probes(graphdef, params, items, pad_id)


SIZE_FIELDS = ("hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads",
               "head_dim")


def random_model(model_cfg, tok, seed: int):
  """(ModelConfig, graphdef, params) of a random decoder over the Townworld vocabulary."""
  changes = {k: int(model_cfg[k]) for k in SIZE_FIELDS if model_cfg.get(k)}
  config = dataclasses.replace(
      ModelConfig.preset(model_cfg.preset, vocab_size=tok.get_vocab_size()), **changes,
      bos_token_id=tok.token_to_id(tokenizer.BOS), eos_token_id=tok.token_to_id(tokenizer.EOT),
      pad_token_id=tok.token_to_id(tokenizer.PAD))
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(seed)), nnx.Param)
  return config, graphdef, pure_params(params)


def load_model(config):
  """(ModelConfig, graphdef, params, tokenizer, world seed, num people, probe seed)."""
  m = config.model
  if m.init == "checkpoint":
    directory = m.checkpoint
    if not os.path.exists(os.path.join(directory, checkpoint.CONFIG)):
      raise FileNotFoundError(f"config.model.checkpoint: {directory!r} holds no "
                              f"{checkpoint.CONFIG}; run `msr pretrain` first or set "
                              "config.model.init='random'")
    model_config, graphdef, params = checkpoint.load(directory)
    tok = tokenizer.load(os.path.join(directory, checkpoint.TOKENIZER))
    s = world_settings(directory)
    return (model_config, graphdef, pure_params(params), tok, int(s["world_seed"]),
            int(s["num_people"]), int(s["probe_seed"]))
  if m.init == "random":
    tok = tokenizer.build()
    model_config, graphdef, params = random_model(m, tok, int(config.seed))
    return (model_config, graphdef, params, tok, int(config.world.seed),
            int(config.world.num_people), int(config.probes.seed))
  raise ValueError(f"config.model.init: unknown {m.init!r}, expected 'checkpoint' or 'random'")


def townworld_setup(config, graph: MemoryGraph) -> tuple[DreamSetup, dict]:
  """(DreamSetup, base params) for `run_consolidation`; probe seed written into config."""
  model_config, graphdef, params, tok, world_seed, num_people, probe_seed = load_model(config)
  world = World.build(world_seed, num_people=num_people)
  real = behaviour.training_records(world, int(config.memory.seed),
                                    int(config.memory.num_real))
  with config.unlocked():
    config.probes.seed = probe_seed
  setup = DreamSetup(
      domain=TownworldDomain(world), graphdef=graphdef, model_config=model_config,
      adapter=tokenizer.adapter(tok),
      decode=lambda ids: tok.decode(ids, skip_special_tokens=True),
      pad_id=tok.token_to_id(tokenizer.PAD), eos_ids=(tok.token_to_id(tokenizer.EOT),),
      graph=graph, real_records=real)
  return setup, params
