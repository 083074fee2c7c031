"""RMSNorm and the SwiGLU MLP."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from msr_jax.model.config import ModelConfig

INIT = nnx.initializers.normal(stddev=0.02)


class RMSNorm(nnx.Module):
  """RMSNorm computed in float32, then scaled in the input dtype (as HF Llama does)."""

  def __init__(self, dim: int, eps: float, param_dtype: str):
    self.scale = nnx.Param(jnp.ones((dim,), jnp.dtype(param_dtype)))
    self.eps = eps

  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return self.scale[...].astype(x.dtype) * normed.astype(x.dtype)


class Linear(nnx.Linear):
  """`nnx.Linear` with an optional LoRA adapter: `y = x W (+ b) + scale * x A B`.

  The adapter is Flax NNX's own `nnx.LoRA` (its `lora_a` / `lora_b` are `nnx.LoRAParam`),
  attached by `msr_jax.model.lora.add_lora` as the attribute `lora`, so the base kernel
  keeps its path (`...q_proj.kernel`: checkpoints, export and sharding rules see the same
  names) and the factors sit beside it (`...q_proj.lora.lora_a`). `scale` is LoRA's
  alpha / rank (`nnx.LoRA` itself has none). Without an adapter the computation is
  `nnx.Linear`'s, bit for bit.
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.lora = nnx.data(None)
    self.lora_scale = 1.0

  def _adapted(self, inputs: jnp.ndarray, out: jnp.ndarray) -> jnp.ndarray:
    if self.lora is None:
      return out
    return out + (self.lora_scale * self.lora(inputs)).astype(out.dtype)

  def __call__(self, inputs: jnp.ndarray) -> jnp.ndarray:
    return self._adapted(inputs, super().__call__(inputs))


class FlatLinear(Linear):
  """`Linear` applied to the tokens as one (B*T) x D matrix, reshaped back after.

  The same parameters and values as `nnx.Linear`, and faster to train on the CPU: there
  XLA computes the weight gradient of a dot batched over two dimensions (B, T) through a
  transposed copy of the output gradient, and a SwiGLU MLP's forward and backward took
  2.0x as long as over (B*T) x D, and a pre-training step 1.16x (`python
  benchmarks/flat_linear.py`).
  """

  def __call__(self, inputs: jnp.ndarray) -> jnp.ndarray:
    flat = inputs.reshape(-1, inputs.shape[-1])
    out = self._adapted(flat, nnx.Linear.__call__(self, flat))
    return out.reshape(*inputs.shape[:-1], out.shape[-1])


def linear(din: int, dout: int, config: ModelConfig, rngs: nnx.Rngs,
           use_bias: bool = False, flat: bool = True) -> Linear:
  """A projection; `flat=False` keeps `nnx.Linear`'s batched dot (see `FlatLinear`)."""
  cls = FlatLinear if flat else Linear
  return cls(din, dout, use_bias=use_bias, dtype=jnp.dtype(config.dtype),
             param_dtype=jnp.dtype(config.param_dtype), kernel_init=INIT, rngs=rngs)


class MLP(nnx.Module):
  """SwiGLU: down(silu(gate(x)) * up(x))."""

  def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
    d, f = config.hidden_size, config.intermediate_size
    self.gate_proj = linear(d, f, config, rngs)
    self.up_proj = linear(d, f, config, rngs)
    self.down_proj = linear(f, d, config, rngs)

  def __call__(self, x_BxTxD: jnp.ndarray) -> jnp.ndarray:
    return self.down_proj(jax.nn.silu(self.gate_proj(x_BxTxD)) * self.up_proj(x_BxTxD))
