"""A tiny random Townworld 'base checkpoint' so arm tests never need the shipped one."""

import dataclasses
import json
import os

from flax import nnx

from msr_jax.model import Decoder, ModelConfig
from msr_jax.world import checkpoint, tokenizer
from msr_jax.world.pretrain import WORLD_FILE


def tiny_base(directory: str) -> str:
  tok = tokenizer.build()
  config = dataclasses.replace(
      ModelConfig.preset("townworld_tiny", vocab_size=tok.get_vocab_size()),
      hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, num_kv_heads=2,
      head_dim=None)
  _, params = nnx.split(Decoder(config, rngs=nnx.Rngs(0)), nnx.Param)
  os.makedirs(directory, exist_ok=True)
  checkpoint.save(directory, config, params)
  tokenizer.save(tok, os.path.join(directory, checkpoint.TOKENIZER))
  with open(os.path.join(directory, WORLD_FILE), "w") as f:
    json.dump({"world_seed": 0, "num_people": 240, "probe_seed": 7, "note_facts": [2, 6]}, f)
  return directory


SMALL_SIZES = {"K1": 8, "K2": 8, "qa_trained": 2, "K4": 2, "C1": 3, "C2": 6, "R0": 6,
               "rule": 4, "rule_novel": 4, "r1_note": 4, "behaviour": 8, "N4": 3}
