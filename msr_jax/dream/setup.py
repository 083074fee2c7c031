"""Building a Townworld dream run from its config: model, tokenizer, world, real data.

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

from flax import nnx

from msr_jax.dream.consolidate import DreamSetup
from msr_jax.eval.probes_card import world_settings
from msr_jax.memory import MemoryGraph
from msr_jax.model import Decoder, ModelConfig
from msr_jax.train.state import pure_params
from msr_jax.world import behaviour, checkpoint, tokenizer
from msr_jax.world.world import World

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
      world=world, graphdef=graphdef, model_config=model_config,
      adapter=tokenizer.adapter(tok),
      decode=lambda ids: tok.decode(ids, skip_special_tokens=True),
      pad_id=tok.token_to_id(tokenizer.PAD), eos_ids=(tok.token_to_id(tokenizer.EOT),),
      graph=graph, real_records=real)
  return setup, params
