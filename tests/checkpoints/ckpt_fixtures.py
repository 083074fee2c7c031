"""Builders for the checkpoint tests: tiny random models, HF folders and GGUF files.

The GGUF writer follows llama.cpp's convert_hf_to_gguf.py independently of the importer
(its own copy of the converter's Q/K `permute`), so a mistake in our inverse shows up.
"""

from __future__ import annotations

import numpy as np
from flax import nnx

from msr_jax.model import Decoder, ModelConfig

TINY = ModelConfig(vocab_size=260, hidden_size=64, intermediate_size=128, num_layers=2,
                   num_heads=4, num_kv_heads=2, rope_theta=10000.0, rms_norm_eps=1e-5,
                   max_position_embeddings=512, bos_token_id=259, eos_token_id=259)
END_TOKEN = "<|end|>"


def random_params(config: ModelConfig = TINY, seed: int = 0):
  """(graphdef, params) of a freshly initialised model; norms randomised too, so a
  swapped norm is visible."""
  model = Decoder(config, rngs=nnx.Rngs(seed))
  rng = np.random.default_rng(seed)
  for _, var in nnx.iter_graph(model):
    if isinstance(var, nnx.Param) and var[...].ndim == 1:
      var[...] = 1.0 + 0.1 * rng.standard_normal(var[...].shape).astype(np.float32)
  return nnx.split(model, nnx.Param)


def bytes_to_unicode() -> dict[int, str]:
  """GPT-2's byte -> printable character table (byte-level BPE alphabet)."""
  keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
      list(range(ord("®"), ord("ÿ") + 1))
  chars, extra = {}, 0
  for b in range(256):
    if b in keep:
      chars[b] = chr(b)
    else:
      chars[b] = chr(256 + extra)
      extra += 1
  return chars


def tiny_bpe_vocab() -> tuple[list[str], list[str], list[int]]:
  """260 tokens: the 256 byte symbols, 3 merges (" t", "he", " the"), one control token."""
  byte_tokens = [bytes_to_unicode()[b] for b in range(256)]
  merges = ["Ġ t", "h e", "Ġt he"]
  tokens = byte_tokens + ["Ġt", "he", "Ġthe", END_TOKEN]
  types = [1] * 259 + [3]
  return tokens, merges, types


def llama_cpp_permute(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
  """Copied from llama.cpp's convert_hf_to_gguf.py (LlamaModel.permute)."""
  if n_head_kv is not None and n_head != n_head_kv:
    n_head = n_head_kv
  return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
          .swapaxes(1, 2)
          .reshape(weights.shape))


def gguf_tensors(state: dict[str, np.ndarray], config: ModelConfig,
                 arch: str = "llama") -> dict[str, np.ndarray]:
  """HF-named float tensors -> GGUF-named float tensors, as llama.cpp's converter names
  them (Q/K rows permuted for the llama architecture only)."""
  out = {"token_embd.weight": state["model.embed_tokens.weight"],
         "output_norm.weight": state["model.norm.weight"]}
  if "lm_head.weight" in state and not config.tie_embeddings:
    out["output.weight"] = state["lm_head.weight"]
  names = {"input_layernorm.weight": "attn_norm.weight",
           "post_attention_layernorm.weight": "ffn_norm.weight",
           "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
           "self_attn.v_proj.weight": "attn_v.weight",
           "self_attn.o_proj.weight": "attn_output.weight",
           "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
           "self_attn.v_proj.bias": "attn_v.bias",
           "self_attn.q_norm.weight": "attn_q_norm.weight",
           "self_attn.k_norm.weight": "attn_k_norm.weight",
           "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
           "mlp.down_proj.weight": "ffn_down.weight"}
  for i in range(config.num_layers):
    for hf, gg in names.items():
      if f"model.layers.{i}.{hf}" not in state:
        continue
      x = state[f"model.layers.{i}.{hf}"]
      if arch == "llama" and gg.startswith("attn_q."):
        x = llama_cpp_permute(x, config.num_heads, config.num_heads)
      elif arch == "llama" and gg.startswith("attn_k."):
        x = llama_cpp_permute(x, config.num_heads, config.num_kv_heads)
      out[f"blk.{i}.{gg}"] = x
  return out


def write_gguf(path, tensors: dict[str, np.ndarray], config: ModelConfig, qtype_name: str,
               arch: str = "llama", tokenizer: str | None = "gpt2",
               skip_fields: tuple[str, ...] = ()) -> None:
  """Writes a GGUF file; 2-D tensors in `qtype_name` (F32, F16, Q8_0, Q4_0, Q4_1), 1-D in F32
  as the converter does. `skip_fields` leaves metadata keys out (for error tests)."""
  import gguf
  from gguf import quants
  qtype = gguf.GGMLQuantizationType[qtype_name]
  writer = gguf.GGUFWriter(str(path), arch)
  fields = {
      f"{arch}.block_count": ("uint32", config.num_layers),
      f"{arch}.context_length": ("uint32", config.max_position_embeddings),
      f"{arch}.embedding_length": ("uint32", config.hidden_size),
      f"{arch}.feed_forward_length": ("uint32", config.intermediate_size),
      f"{arch}.attention.head_count": ("uint32", config.num_heads),
      f"{arch}.attention.head_count_kv": ("uint32", config.num_kv_heads),
      f"{arch}.rope.freq_base": ("float32", config.rope_theta),
      f"{arch}.attention.layer_norm_rms_epsilon": ("float32", config.rms_norm_eps),
      f"{arch}.rope.dimension_count": ("uint32", config.head_dim),
      f"{arch}.attention.key_length": ("uint32", config.head_dim),
      f"{arch}.attention.value_length": ("uint32", config.head_dim),
      f"{arch}.vocab_size": ("uint32", config.vocab_size),
  }
  for key, (kind, value) in fields.items():
    if key not in skip_fields:
      getattr(writer, f"add_{kind}")(key, value)
  if tokenizer is not None:
    tokens, merges, types = tiny_bpe_vocab()
    writer.add_tokenizer_model(tokenizer)
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(259)
    writer.add_eos_token_id(259)
    writer.add_chat_template("{% for m in messages %}{{ m['content'] }}<|end|>{% endfor %}")
  for name, x in tensors.items():
    x = np.ascontiguousarray(x, np.float32)
    if x.ndim == 1 or qtype_name == "F32":
      writer.add_tensor(name, x)
    elif qtype_name == "F16":
      writer.add_tensor(name, x.astype(np.float16))
    else:
      writer.add_tensor(name, quants.quantize(x, qtype), raw_dtype=qtype)
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
