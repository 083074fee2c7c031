"""The decoder model: config, NNX module, KV cache, pure forward, sharding."""

from msr_jax.model.cache import KVCache, check_capacity, init_cache
from msr_jax.model.config import PRESETS, ModelConfig
from msr_jax.model.decoder import Decoder
from msr_jax.model.forward import forward, prefill
from msr_jax.model.sharding import make_mesh, shard_params, tree_shardings

__all__ = ["KVCache", "check_capacity", "init_cache", "PRESETS", "ModelConfig", "Decoder",
           "forward", "prefill", "make_mesh", "shard_params", "tree_shardings"]
