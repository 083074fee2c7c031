"""`ModelConfig`: every architectural choice of the decoder, with presets and HF interop.

One frozen dataclass covers the Llama, Qwen2 and Qwen3 families (and SmolLM, a Llama).
The Hugging Face `config.json` maps to it field by field (`from_hf_config` / `to_hf_config`);
the field tables are data, so a new alias is one line.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

ARCHITECTURES = ("llama", "qwen2", "qwen3")

# HF `model_type` -> our architecture; HF `architectures[0]` is written back on export.
_HF_MODEL_TYPES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}
_HF_CLASSES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
               "qwen3": "Qwen3ForCausalLM"}
# Our field name -> HF config key (same meaning in all three families).
_HF_FIELDS = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "intermediate_size": "intermediate_size",
    "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "num_kv_heads": "num_key_value_heads",
    "rope_theta": "rope_theta",
    "rms_norm_eps": "rms_norm_eps",
    "tie_embeddings": "tie_word_embeddings",
    "max_position_embeddings": "max_position_embeddings",
    "bos_token_id": "bos_token_id",
    "eos_token_id": "eos_token_id",
    "pad_token_id": "pad_token_id",
}


def _is_int(x) -> bool:
  return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x) -> bool:
  return isinstance(x, numbers.Real) and not isinstance(x, bool)


# What each field may hold; a config file with "num_layers": "3" must fail here, naming
# the field, not deep inside the model with a TypeError.
_FIELD_CHECKS = {
    "vocab_size": (_is_int, "a positive integer"),
    "hidden_size": (_is_int, "a positive integer"),
    "intermediate_size": (_is_int, "a positive integer"),
    "num_layers": (_is_int, "a positive integer"),
    "num_heads": (_is_int, "a positive integer"),
    "num_kv_heads": (_is_int, "a positive integer"),
    "head_dim": (lambda x: x is None or _is_int(x), "a positive integer or null"),
    "rope_theta": (_is_real, "a number"),
    "rms_norm_eps": (_is_real, "a number"),
    "tie_embeddings": (lambda x: isinstance(x, bool), "true or false"),
    "qkv_bias": (lambda x: isinstance(x, bool), "true or false"),
    "qk_norm": (lambda x: isinstance(x, bool), "true or false"),
    "max_position_embeddings": (_is_int, "a positive integer"),
    "dtype": (lambda x: isinstance(x, str), "a dtype name"),
    "param_dtype": (lambda x: isinstance(x, str), "a dtype name"),
    "architecture": (lambda x: isinstance(x, str), "a string"),
    "bos_token_id": (lambda x: x is None or _is_int(x), "an integer or null"),
    "eos_token_id": (lambda x: x is None or _is_int(x) or (
        isinstance(x, (list, tuple)) and all(map(_is_int, x))), "an integer, a list of them or null"),
    "pad_token_id": (lambda x: x is None or _is_int(x), "an integer or null"),
}
_POSITIVE = ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads",
             "num_kv_heads", "head_dim", "max_position_embeddings")


def _check_field_types(config) -> None:
  for name, (ok, expected) in _FIELD_CHECKS.items():
    value = getattr(config, name)
    if not ok(value):
      raise ValueError(f"ModelConfig.{name}: expected {expected}, got {value!r}")
    if name in _POSITIVE and value is not None and value < 1:
      raise ValueError(f"ModelConfig.{name}: expected {expected}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  vocab_size: int
  hidden_size: int
  intermediate_size: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int | None = None  # None: hidden_size // num_heads.
  rope_theta: float = 10000.0
  # Llama-3 style scaling as sorted (key, value) pairs so the config stays hashable:
  # rope_type="llama3", factor, low_freq_factor, high_freq_factor,
  # original_max_position_embeddings. None: plain RoPE.
  rope_scaling: tuple[tuple[str, Any], ...] | None = None
  rms_norm_eps: float = 1e-6
  tie_embeddings: bool = False
  qkv_bias: bool = False
  qk_norm: bool = False
  max_position_embeddings: int = 4096
  dtype: str = "float32"  # Compute dtype.
  param_dtype: str = "float32"
  architecture: str = "llama"
  bos_token_id: int | None = None
  eos_token_id: int | tuple[int, ...] | None = None
  pad_token_id: int | None = None

  def __post_init__(self):
    _check_field_types(self)
    if self.architecture not in ARCHITECTURES:
      raise ValueError(f"ModelConfig.architecture: unknown {self.architecture!r}, "
                       f"expected one of {ARCHITECTURES}")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"ModelConfig.num_heads ({self.num_heads}) must be a multiple of "
                       f"num_kv_heads ({self.num_kv_heads})")
    if self.head_dim is None:
      if self.hidden_size % self.num_heads:
        raise ValueError("ModelConfig.hidden_size must be divisible by num_heads "
                         "when head_dim is not given")
      object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
    if isinstance(self.rope_scaling, dict):
      object.__setattr__(self, "rope_scaling", tuple(sorted(self.rope_scaling.items())))
    if isinstance(self.eos_token_id, list):
      object.__setattr__(self, "eos_token_id", tuple(self.eos_token_id))

  @property
  def rope_scaling_dict(self) -> dict | None:
    return None if self.rope_scaling is None else dict(self.rope_scaling)

  @property
  def eos_ids(self) -> tuple[int, ...]:
    if self.eos_token_id is None:
      return ()
    if isinstance(self.eos_token_id, int):
      return (self.eos_token_id,)
    return tuple(self.eos_token_id)

  def replace(self, **changes) -> "ModelConfig":
    return dataclasses.replace(self, **changes)

  @classmethod
  def preset(cls, name: str, **changes) -> "ModelConfig":
    if name not in PRESETS:
      raise KeyError(f"unknown model preset {name!r}; known: {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **changes)

  def num_params(self) -> int:
    d, f, h = self.hidden_size, self.intermediate_size, self.head_dim
    attn = d * h * (2 * self.num_heads + 2 * self.num_kv_heads)
    if self.qkv_bias:
      attn += h * (self.num_heads + 2 * self.num_kv_heads)
    if self.qk_norm:
      attn += 2 * h
    layer = attn + 3 * d * f + 2 * d
    embed = self.vocab_size * d * (1 if self.tie_embeddings else 2)
    return self.num_layers * layer + embed + d

  # --- Hugging Face interop -----------------------------------------------------------
  @classmethod
  def from_hf_config(cls, hf: dict, source: str = "config.json", **changes) -> "ModelConfig":
    """Builds a config from a parsed HF config.json; errors name `source` and the field."""
    model_type = hf.get("model_type")
    if model_type not in _HF_MODEL_TYPES:
      raise ValueError(f"{source}: field 'model_type': unsupported architecture "
                       f"{model_type!r}; supported: {sorted(_HF_MODEL_TYPES)}")
    kwargs: dict[str, Any] = {}
    for ours, theirs in _HF_FIELDS.items():
      if theirs in hf and hf[theirs] is not None:
        kwargs[ours] = hf[theirs]
    for required in ("vocab_size", "hidden_size", "intermediate_size", "num_layers",
                     "num_heads"):
      if required not in kwargs:
        raise ValueError(f"{source}: missing field {_HF_FIELDS[required]!r}")
    kwargs.setdefault("num_kv_heads", kwargs["num_heads"])
    arch = _HF_MODEL_TYPES[model_type]
    # Variants the decoder does not implement: refuse rather than load a different model.
    if hf.get("hidden_act", "silu") != "silu":
      raise ValueError(f"{source}: field 'hidden_act': unsupported {hf['hidden_act']!r} "
                       f"(only 'silu')")
    if hf.get("use_sliding_window"):
      raise ValueError(f"{source}: field 'use_sliding_window': sliding-window attention is "
                       f"not supported")
    if hf.get("mlp_bias"):
      raise ValueError(f"{source}: field 'mlp_bias': MLP biases are not supported")
    # transformers 5 may nest theta/scaling under rope_parameters.
    rope = hf.get("rope_parameters") or {}
    if "rope_theta" not in kwargs and "rope_theta" in rope:
      kwargs["rope_theta"] = rope["rope_theta"]
    scaling = hf.get("rope_scaling") or (rope if rope.get("rope_type") not in (None, "default") else None)
    if scaling:
      rope_type = scaling.get("rope_type", scaling.get("type"))
      if rope_type != "llama3":
        raise ValueError(f"{source}: field 'rope_scaling': unsupported rope_type {rope_type!r}")
      keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
      for key in keys:
        if key not in scaling:
          raise ValueError(f"{source}: field 'rope_scaling.{key}' missing")
      kwargs["rope_scaling"] = tuple(sorted([("rope_type", "llama3")] +
                                            [(k, scaling[k]) for k in keys]))
    if hf.get("head_dim") is not None:
      kwargs["head_dim"] = hf["head_dim"]
    kwargs["qkv_bias"] = bool(hf.get("attention_bias", arch == "qwen2"))
    kwargs["qk_norm"] = arch == "qwen3"
    kwargs["tie_embeddings"] = bool(hf.get("tie_word_embeddings", False))
    kwargs["architecture"] = arch
    kwargs.update(changes)
    try:
      return cls(**kwargs)
    except (TypeError, ValueError) as e:
      raise ValueError(f"{source}: {e}") from e

  def to_hf_config(self) -> dict:
    """A config.json dict that transformers' AutoConfig/AutoModelForCausalLM accept."""
    hf: dict[str, Any] = {"model_type": _HF_MODEL_TYPES[self.architecture],
                          "architectures": [_HF_CLASSES[self.architecture]]}
    for ours, theirs in _HF_FIELDS.items():
      value = getattr(self, ours)
      if value is not None:
        hf[theirs] = list(value) if isinstance(value, tuple) else value
    hf["head_dim"] = self.head_dim
    hf["hidden_act"] = "silu"
    hf["torch_dtype"] = self.param_dtype
    if self.architecture in ("llama", "qwen3"):
      hf["attention_bias"] = self.qkv_bias
    hf["rope_scaling"] = self.rope_scaling_dict
    return hf


PRESETS: dict[str, ModelConfig] = {
    # The Townworld testbed model: about 0.8M parameters with a ~600-word vocabulary.
    "townworld_tiny": ModelConfig(
        vocab_size=1024, hidden_size=128, intermediate_size=320, num_layers=4,
        num_heads=4, num_kv_heads=4, rope_theta=10000.0, rms_norm_eps=1e-5,
        tie_embeddings=True, max_position_embeddings=2048),
    "smollm2_135m": ModelConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_layers=30,
        num_heads=9, num_kv_heads=3, rope_theta=100000.0, rms_norm_eps=1e-5,
        tie_embeddings=True, max_position_embeddings=8192, bos_token_id=1,
        eos_token_id=2),
    "qwen2_0p5b": ModelConfig(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_layers=24,
        num_heads=14, num_kv_heads=2, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_embeddings=True, qkv_bias=True, max_position_embeddings=32768,
        architecture="qwen2", eos_token_id=151643),
    "llama3_1b": ModelConfig(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_layers=16,
        num_heads=32, num_kv_heads=8, head_dim=64, rope_theta=500000.0,
        rope_scaling=(("factor", 32.0), ("high_freq_factor", 4.0),
                      ("low_freq_factor", 1.0),
                      ("original_max_position_embeddings", 8192),
                      ("rope_type", "llama3")),
        rms_norm_eps=1e-5, tie_embeddings=True, max_position_embeddings=131072,
        bos_token_id=128000, eos_token_id=128001),
}
