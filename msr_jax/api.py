"""The public entry points: `load` any supported checkpoint, `forward_logits` on it.

    import msr_jax
    loaded = msr_jax.load("smollm2-135m-instruct-q4_1")      # or an HF folder, a .gguf
    logits = msr_jax.forward_logits(loaded, [[1, 2, 3]])      # (1, 3, vocab) float32
"""

from __future__ import annotations

import functools

import numpy as np

from msr_jax.checkpoints.loader import LoadedModel, detect_format, load

__all__ = ["LoadedModel", "detect_format", "forward_logits", "generate_greedy", "load"]


def _jitted_forward(loaded: "LoadedModel"):
  """`forward` jitted with this model's graph definition bound in (once per graphdef).

  Binding beats `static_argnums`: jit hashes static arguments on every call, and hashing
  a 30-layer GraphDef costs milliseconds, more than a small forward pass.
  """
  cached = loaded._jitted
  if cached is None or cached[0] is not loaded.graphdef:
    import jax

    from msr_jax.model import forward
    cached = (loaded.graphdef, jax.jit(functools.partial(forward, loaded.graphdef)))
    loaded._jitted = cached
  return cached[1]


def _as_batch(token_ids, vocab_size: int) -> np.ndarray:
  try:
    tokens = np.asarray(token_ids)
  except ValueError as e:
    raise ValueError(f"token_ids: rows must have equal lengths ({e})") from e
  if tokens.ndim == 1:
    tokens = tokens[None]
  if tokens.ndim != 2 or tokens.shape[1] == 0 or not np.issubdtype(tokens.dtype, np.integer):
    raise ValueError(f"token_ids: expected a non-empty (batch, length) array of ints, got "
                     f"shape {tokens.shape} dtype {tokens.dtype}")
  if tokens.min() < 0 or tokens.max() >= vocab_size:
    raise ValueError(f"token_ids: ids must be in [0, {vocab_size}), got "
                     f"[{tokens.min()}, {tokens.max()}]")
  return tokens.astype(np.int32)


def forward_logits(loaded: LoadedModel, token_ids) -> np.ndarray:
  """Float32 logits of shape (batch, length, vocab) for a (batch, length) or (length,)
  array of token ids (a causal forward from position 0, no cache)."""
  tokens_BxT = _as_batch(token_ids, loaded.config.vocab_size)
  logits_BxTxV, _ = _jitted_forward(loaded)(loaded.params, tokens_BxT)
  return np.asarray(logits_BxTxV, dtype=np.float32)


def generate_greedy(loaded: LoadedModel, prompt_ids, max_new_tokens: int) -> list[int]:
  """Greedy continuation of one prompt (stops after an EOS of the config, included)."""
  from msr_jax.sample import generate
  prompt = _as_batch(prompt_ids, loaded.config.vocab_size)
  if prompt.shape[0] != 1:
    raise ValueError(f"generate_greedy: one prompt expected, got {prompt.shape[0]}")
  out = generate(loaded.graphdef, loaded.params, [prompt[0].tolist()], int(max_new_tokens),
                 temperature=0.0, eos_ids=loaded.config.eos_ids)
  length = int(out.lengths_B[0])
  return np.asarray(out.tokens_BxN[0, :length]).tolist()
