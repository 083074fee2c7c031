"""The decoder model: config, NNX module, KV cache, pure forward, sharding."""

from msr_jax.model.cache import KVCache, check_capacity, init_cache
from msr_jax.model.config import PRESETS, ModelConfig
from msr_jax.model.decoder import Decoder, DecoderOutput
from msr_jax.model.forward import forward, hidden_states, prefill
from msr_jax.model.sharding import make_mesh, shard_params, tree_shardings

__all__ = ["KVCache", "check_capacity", "init_cache", "PRESETS", "ModelConfig", "Decoder",
           "DecoderOutput", "forward", "hidden_states", "prefill", "make_mesh", "shard_params", "tree_shardings"]
