"""Fixtures shared by the dream tests: a world, its tokenizer, a tiny random decoder."""

from __future__ import annotations

import dataclasses

import pytest
from flax import nnx

from msr_jax.model import Decoder, ModelConfig
from msr_jax.world import behaviour, tokenizer
from msr_jax.world.world import World


@pytest.fixture(scope="session")
def world():
  return World.build(0)


@pytest.fixture(scope="session")
def tok():
  return tokenizer.build()


@pytest.fixture(scope="session")
def real_records(world):
  return behaviour.training_records(world, seed=0, count=60)


def tiny_townworld_model(tok, seed: int = 0):
  """A random 2-layer, width-32 decoder over the Townworld vocabulary."""
  config = dataclasses.replace(
      ModelConfig.preset("townworld_tiny", vocab_size=tok.get_vocab_size()),
      hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, num_kv_heads=2,
      head_dim=16, bos_token_id=tok.token_to_id(tokenizer.BOS),
      eos_token_id=tok.token_to_id(tokenizer.EOT), pad_token_id=tok.token_to_id(tokenizer.PAD))
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(seed)), nnx.Param)
  return config, graphdef, nnx.to_pure_dict(params)


@pytest.fixture(scope="session")
def tiny_model(tok):
  return tiny_townworld_model(tok)
