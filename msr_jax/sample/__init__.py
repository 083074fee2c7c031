"""Sampling: jitted prefill and `lax.while_loop` decode over a KV cache."""

from msr_jax.sample.generation import GenerateOutput, generate
from msr_jax.sample.prompts import DEFAULT_BUCKETS, bucket_length, pad_prompts
from msr_jax.sample.sampling import Choice, choose, filter_logits

__all__ = ["GenerateOutput", "generate", "DEFAULT_BUCKETS", "bucket_length", "pad_prompts",
           "Choice", "choose", "filter_logits"]
