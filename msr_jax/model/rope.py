"""Rotary position embeddings (the HF "rotate half" layout), with Llama-3 scaling.

`rope_theta` and `rope_scaling` come from the config on every call path: a forgotten
theta is a classic silent bug, so there is no default here.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from msr_jax.model.config import ModelConfig


def inverse_frequencies(config: ModelConfig) -> np.ndarray:
  """Per-pair inverse frequencies, shape (head_dim // 2,), float64 numpy (static)."""
  dim = config.head_dim
  inv_freq = 1.0 / (config.rope_theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
  scaling = config.rope_scaling_dict
  if scaling is None:
    return inv_freq
  # Llama 3.1: long wavelengths are divided by `factor`, short ones kept, and the band
  # between is interpolated smoothly.
  factor = scaling["factor"]
  low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
  original = scaling["original_max_position_embeddings"]
  low_freq_wavelen = original / low
  high_freq_wavelen = original / high
  wavelen = 2 * math.pi / inv_freq
  scaled = np.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
  smooth = (original / wavelen - low) / (high - low)
  smoothed = (1 - smooth) * scaled / factor + smooth * scaled
  medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
  return np.where(medium, smoothed, scaled)


def tables(positions_BxT, config: ModelConfig) -> tuple:
  """(cos_BxTxH, sin_BxTxH) float32: the rotation of every position, shared by every layer.

  Positions known when tracing (a numpy array: the default `arange` of a forward without a
  cache, as in training, scoring and prefill) give numpy tables, which XLA embeds as
  constants. Computed inside the program instead, XLA fuses the cosine and sine into each
  layer's rotation and recomputes them for every head: 7% of a SmolLM2 prefill on one core.
  """
  xp = np if isinstance(positions_BxT, np.ndarray) else jnp
  inv_freq = inverse_frequencies(config).astype(np.float32)
  angles_BxTxF = positions_BxT.astype(np.float32)[..., None] * inv_freq
  angles_BxTxH = xp.concatenate([angles_BxTxF, angles_BxTxF], axis=-1)
  return xp.cos(angles_BxTxH), xp.sin(angles_BxTxH)


def rotate(x_BxTxNxH: jnp.ndarray, cos_BxTxH, sin_BxTxH) -> jnp.ndarray:
  """Rotates queries or keys by `tables`; computed in float32."""
  x = x_BxTxNxH.astype(jnp.float32)
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  return (x * cos_BxTxH[:, :, None, :] + rotated * sin_BxTxH[:, :, None, :]).astype(
      x_BxTxNxH.dtype)


def apply_rope(x_BxTxNxH: jnp.ndarray, positions_BxT, config: ModelConfig) -> jnp.ndarray:
  """Rotates queries or keys by their positions; computed in float32."""
  return rotate(x_BxTxNxH, *tables(positions_BxT, config))
