"""Key maps between our parameter paths and external checkpoint tensor names, as data.

A key map is a tuple of rows (our path template, external name template, transform).
Templates use `{i}` for the layer index. A transform names a pair of numpy functions in
`TRANSFORMS`: `to_ours` turns an external tensor into our layout and `to_theirs` undoes it.
Adding an architecture or a file format means adding rows, not code branches.
"""

from __future__ import annotations

import re
from typing import Callable, NamedTuple

import numpy as np

from msr_jax.model.config import ModelConfig


class Row(NamedTuple):
  ours: str
  theirs: str
  transform: str


class Transform(NamedTuple):
  to_ours: Callable[[np.ndarray, ModelConfig], np.ndarray]
  to_theirs: Callable[[np.ndarray, ModelConfig], np.ndarray]


def _identity(x, config):
  del config
  return x


def _transpose(x, config):
  """torch.nn.Linear stores (out, in); Flax kernels are (in, out)."""
  del config
  return x.T


def _rope_unpermute(x, num_heads):
  """Undoes llama.cpp's convert_hf_to_gguf `permute` of Q/K rows.

  The converter interleaves each head's two rotary halves (GGML's RoPE pairs adjacent
  features, HF's "rotate half" pairs i with i + H/2): rows (N, 2, H/2) became (N, H/2, 2).
  The same reshape with the two axes swapped back restores the HF order. Works for a
  weight (N*H, D) and a bias (N*H,).
  """
  rest = x.shape[1:]
  return x.reshape(num_heads, -1, 2, *rest).swapaxes(1, 2).reshape(x.shape)


def _rope_permute(x, num_heads):
  rest = x.shape[1:]
  return x.reshape(num_heads, 2, -1, *rest).swapaxes(1, 2).reshape(x.shape)


TRANSFORMS: dict[str, Transform] = {
    "identity": Transform(_identity, _identity),
    "transpose": Transform(_transpose, _transpose),
    # GGUF query/key weights: un-permute rows (HF layout), then transpose to Flax layout.
    "gguf_q": Transform(lambda x, c: _rope_unpermute(x, c.num_heads).T,
                        lambda x, c: _rope_permute(x.T, c.num_heads)),
    "gguf_k": Transform(lambda x, c: _rope_unpermute(x, c.num_kv_heads).T,
                        lambda x, c: _rope_permute(x.T, c.num_kv_heads)),
    "gguf_q_bias": Transform(lambda x, c: _rope_unpermute(x, c.num_heads),
                             lambda x, c: _rope_permute(x, c.num_heads)),
    "gguf_k_bias": Transform(lambda x, c: _rope_unpermute(x, c.num_kv_heads),
                             lambda x, c: _rope_permute(x, c.num_kv_heads)),
}

# Hugging Face Llama / Qwen2 / Qwen3 (`*ForCausalLM`) safetensors names.
HF_KEYMAP: tuple[Row, ...] = (
    Row("embed.embedding", "model.embed_tokens.weight", "identity"),
    Row("layers.{i}.input_norm.scale", "model.layers.{i}.input_layernorm.weight", "identity"),
    Row("layers.{i}.attn.q_proj.kernel", "model.layers.{i}.self_attn.q_proj.weight", "transpose"),
    Row("layers.{i}.attn.k_proj.kernel", "model.layers.{i}.self_attn.k_proj.weight", "transpose"),
    Row("layers.{i}.attn.v_proj.kernel", "model.layers.{i}.self_attn.v_proj.weight", "transpose"),
    Row("layers.{i}.attn.o_proj.kernel", "model.layers.{i}.self_attn.o_proj.weight", "transpose"),
    Row("layers.{i}.attn.q_proj.bias", "model.layers.{i}.self_attn.q_proj.bias", "identity"),
    Row("layers.{i}.attn.k_proj.bias", "model.layers.{i}.self_attn.k_proj.bias", "identity"),
    Row("layers.{i}.attn.v_proj.bias", "model.layers.{i}.self_attn.v_proj.bias", "identity"),
    Row("layers.{i}.attn.q_norm.scale", "model.layers.{i}.self_attn.q_norm.weight", "identity"),
    Row("layers.{i}.attn.k_norm.scale", "model.layers.{i}.self_attn.k_norm.weight", "identity"),
    Row("layers.{i}.post_attn_norm.scale", "model.layers.{i}.post_attention_layernorm.weight",
        "identity"),
    Row("layers.{i}.mlp.gate_proj.kernel", "model.layers.{i}.mlp.gate_proj.weight", "transpose"),
    Row("layers.{i}.mlp.up_proj.kernel", "model.layers.{i}.mlp.up_proj.weight", "transpose"),
    Row("layers.{i}.mlp.down_proj.kernel", "model.layers.{i}.mlp.down_proj.weight", "transpose"),
    Row("final_norm.scale", "model.norm.weight", "identity"),
    Row("lm_head.kernel", "lm_head.weight", "transpose"),
)
# Tensors an HF file may hold that we do not load: buffers older exports saved, and the
# head of a tied model (a copy of the embedding).
HF_IGNORED: tuple[str, ...] = (r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq",)
HF_IGNORED_WHEN_TIED: tuple[str, ...] = (r"lm_head\.weight",)

# llama.cpp GGUF names, from gguf-py's tensor name tables. Rows every family shares:
_GGUF_COMMON: tuple[Row, ...] = (
    Row("embed.embedding", "token_embd.weight", "identity"),
    Row("layers.{i}.input_norm.scale", "blk.{i}.attn_norm.weight", "identity"),
    Row("layers.{i}.attn.v_proj.kernel", "blk.{i}.attn_v.weight", "transpose"),
    Row("layers.{i}.attn.o_proj.kernel", "blk.{i}.attn_output.weight", "transpose"),
    Row("layers.{i}.attn.v_proj.bias", "blk.{i}.attn_v.bias", "identity"),
    Row("layers.{i}.post_attn_norm.scale", "blk.{i}.ffn_norm.weight", "identity"),
    Row("layers.{i}.mlp.gate_proj.kernel", "blk.{i}.ffn_gate.weight", "transpose"),
    Row("layers.{i}.mlp.up_proj.kernel", "blk.{i}.ffn_up.weight", "transpose"),
    Row("layers.{i}.mlp.down_proj.kernel", "blk.{i}.ffn_down.weight", "transpose"),
    Row("final_norm.scale", "output_norm.weight", "identity"),
    Row("lm_head.kernel", "output.weight", "transpose"),
)
# The llama converter permutes Q/K rows (GGML's llama RoPE pairs adjacent features)...
_GGUF_LLAMA_QK: tuple[Row, ...] = (
    Row("layers.{i}.attn.q_proj.kernel", "blk.{i}.attn_q.weight", "gguf_q"),
    Row("layers.{i}.attn.k_proj.kernel", "blk.{i}.attn_k.weight", "gguf_k"),
    Row("layers.{i}.attn.q_proj.bias", "blk.{i}.attn_q.bias", "gguf_q_bias"),
    Row("layers.{i}.attn.k_proj.bias", "blk.{i}.attn_k.bias", "gguf_k_bias"),
)
# ...the Qwen converters do not (llama.cpp runs Qwen with the NEOX, rotate-half RoPE).
_GGUF_QWEN_QK: tuple[Row, ...] = (
    Row("layers.{i}.attn.q_proj.kernel", "blk.{i}.attn_q.weight", "transpose"),
    Row("layers.{i}.attn.k_proj.kernel", "blk.{i}.attn_k.weight", "transpose"),
    Row("layers.{i}.attn.q_proj.bias", "blk.{i}.attn_q.bias", "identity"),
    Row("layers.{i}.attn.k_proj.bias", "blk.{i}.attn_k.bias", "identity"),
    Row("layers.{i}.attn.q_norm.scale", "blk.{i}.attn_q_norm.weight", "identity"),
    Row("layers.{i}.attn.k_norm.scale", "blk.{i}.attn_k_norm.weight", "identity"),
)
# general.architecture -> key map.
GGUF_KEYMAPS: dict[str, tuple[Row, ...]] = {
    "llama": _GGUF_COMMON + _GGUF_LLAMA_QK,
    "qwen2": _GGUF_COMMON + _GGUF_QWEN_QK,
    "qwen3": _GGUF_COMMON + _GGUF_QWEN_QK,
}
GGUF_IGNORED: tuple[str, ...] = ()


def _pattern(template: str) -> re.Pattern:
  return re.compile(re.escape(template).replace(re.escape("{i}"), r"(?P<i>\d+)") + "$")


class KeyMap:
  """Looks rows up in either direction."""

  def __init__(self, rows: tuple[Row, ...]):
    self.rows = rows
    self._ours = [(_pattern(r.ours), r) for r in rows]
    self._theirs = [(_pattern(r.theirs), r) for r in rows]

  def to_theirs(self, path: str) -> tuple[str, Transform]:
    """External name and transform for one of our paths; KeyError if no row matches."""
    for pattern, row in self._ours:
      m = pattern.match(path)
      if m:
        return row.theirs.format(**m.groupdict()), TRANSFORMS[row.transform]
    raise KeyError(f"no key-map row for parameter {path!r}")

  def to_ours(self, name: str) -> str | None:
    """Our path for an external name, or None if no row matches."""
    for pattern, row in self._theirs:
      m = pattern.match(name)
      if m:
        return row.ours.format(**m.groupdict())
    return None
