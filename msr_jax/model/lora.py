"""LoRA adapters on the projections a parameter-path pattern chooses (Flax NNX's `nnx.LoRA`).

`add_lora(graphdef, params, LoRASpec(rank, alpha, targets), seed)` attaches an `nnx.LoRA`
of `rank` to every `layers.Linear` whose path (`layers.0.attn.q_proj`) matches the regex
`targets`, and returns the new (graphdef, params): the base weights are untouched, A is
drawn as `nnx.LoRA` draws it (He-uniform, from `seed`) and B is zero, so the adapted model
starts as the base model, logit for logit. `merge_lora` folds every adapter into its
kernel (W + alpha / rank * A B) and removes it: the result is the base architecture again,
which `msr export` writes as any checkpoint. `LORA_PARAMS` is the pattern of the adapters'
parameter paths: what trains when the base is frozen (`config.train.trainable`).
"""

from __future__ import annotations

import dataclasses
import re

import jax.numpy as jnp
from flax import nnx

from msr_jax.model.layers import Linear

# Every projection inside the blocks (attention q/k/v/o, the MLP's gate/up/down).
DEFAULT_TARGETS = r"^layers\.\d+\.(attn|mlp)\.\w+_proj$"
LORA_PARAMS = r"\.lora\.lora_[ab]$"


@dataclasses.dataclass(frozen=True)
class LoRASpec:
  rank: int
  alpha: float = 0.0                 # 0: alpha = rank (scale 1, as nnx.LoRA alone)
  targets: str = DEFAULT_TARGETS

  @property
  def scale(self) -> float:
    return float(self.alpha or self.rank) / self.rank


def _linears(model) -> list[tuple[str, Linear]]:
  return [(".".join(map(str, path)), module) for path, module in nnx.iter_graph(model)
          if isinstance(module, Linear)]


def add_lora(graphdef, params, spec: LoRASpec, seed: int = 0):
  """(graphdef, params) with an adapter on every matching projection; see the module doc."""
  if spec.rank < 1:
    raise ValueError(f"LoRA rank must be >= 1, got {spec.rank}")
  model = nnx.merge(graphdef, params)
  pattern = re.compile(spec.targets)
  chosen = [(path, m) for path, m in _linears(model) if pattern.search(path)]
  if not chosen:
    names = [path for path, _ in _linears(model)][:8]
    raise ValueError(f"LoRA targets {spec.targets!r} match no projection (the model's "
                     f"projections: {names} ...)")
  rngs = nnx.Rngs(seed)
  for path, module in chosen:
    if module.lora is not None:
      raise ValueError(f"{path}: has a LoRA adapter already")
    din, dout = module.kernel.shape
    module.lora = nnx.LoRA(din, spec.rank, dout, dtype=module.dtype,
                           param_dtype=module.param_dtype, rngs=rngs)
    module.lora_scale = spec.scale
  graphdef, state = nnx.split(model, nnx.Param)
  return graphdef, nnx.to_pure_dict(state)


def has_lora(graphdef, params) -> bool:
  return any(m.lora is not None for _, m in _linears(nnx.merge(graphdef, params)))


def _adapter_leaves(params) -> bool:
  """Whether a pure-dict tree holds adapter factors (a look at the keys, no merge)."""
  if isinstance(params, dict):
    return "lora" in params or any(_adapter_leaves(v) for v in params.values())
  return False


def merge_lora(graphdef, params):
  """(graphdef, params) with every adapter folded into its kernel and removed; a model
  without adapters comes back as given."""
  if isinstance(params, dict) and not _adapter_leaves(params):
    return graphdef, params
  model = nnx.merge(graphdef, params)
  for _, module in _linears(model):
    if module.lora is None:
      continue
    kernel = module.kernel[...]
    delta = (module.lora.lora_a[...].astype(jnp.float32)
             @ module.lora.lora_b[...].astype(jnp.float32)) * module.lora_scale
    module.kernel[...] = (kernel.astype(jnp.float32) + delta).astype(kernel.dtype)
    module.lora = None
    module.lora_scale = 1.0
  graphdef, state = nnx.split(model, nnx.Param)
  return graphdef, nnx.to_pure_dict(state)
