"""Shared fixtures for the train tests: a tiny random decoder and ragged batches."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from msr_jax.model import Decoder, ModelConfig
from msr_jax.train.batch import Batch


def tiny_config(**overrides) -> ModelConfig:
  base = ModelConfig.preset("townworld_tiny", vocab_size=48)
  fields = dict(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                num_kv_heads=2, head_dim=8)
  fields.update(overrides)
  return dataclasses.replace(base, **fields)


def tiny_model(seed: int = 0, **overrides):
  config = tiny_config(**overrides)
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(seed)), nnx.Param)
  return config, graphdef, nnx.to_pure_dict(params)


def random_batch(seed: int, batch_size: int = 2, context: int = 8, decision: int = 4,
                 vocab: int = 48, lengths=None, low: int = 0) -> Batch:
  """Ragged contexts (right-padded with a token that must never matter) and decisions
  whose last row has a padded tail (weight 0)."""
  rng = np.random.default_rng(seed)
  if lengths is None:
    lengths = rng.integers(context // 2, context + 1, size=batch_size)
  lengths = np.asarray(lengths, np.int32)
  context_BxC = rng.integers(low, vocab, size=(batch_size, context)).astype(np.int32)
  for b, n in enumerate(lengths):
    context_BxC[b, n:] = vocab - 1
  inputs = rng.integers(low, vocab, size=(batch_size, decision)).astype(np.int32)
  targets = rng.integers(low, vocab, size=(batch_size, decision)).astype(np.int32)
  weights = np.ones((batch_size, decision), np.float32)
  weights[-1, decision - 1:] = 0.0
  return Batch(jnp.asarray(context_BxC), jnp.asarray(lengths), jnp.asarray(inputs),
               jnp.asarray(targets), jnp.asarray(weights))


@pytest.fixture
def model():
  return tiny_model()


def assert_trees_close(a, b, rtol: float, atol: float = 1e-6) -> None:
  """Every leaf of `a` close to the leaf of `b` (the tolerance is the caller's)."""
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol),
                         a, b)
