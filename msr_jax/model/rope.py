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


def apply_rope(x_BxTxNxH: jnp.ndarray, positions_BxT: jnp.ndarray,
               config: ModelConfig) -> jnp.ndarray:
  """Rotates queries or keys by their positions; computed in float32."""
  inv_freq = jnp.asarray(inverse_frequencies(config), jnp.float32)
  angles_BxTxF = positions_BxT.astype(jnp.float32)[..., None] * inv_freq
  angles_BxTxH = jnp.concatenate([angles_BxTxF, angles_BxTxF], axis=-1)
  cos = jnp.cos(angles_BxTxH)[:, :, None, :]
  sin = jnp.sin(angles_BxTxH)[:, :, None, :]
  x = x_BxTxNxH.astype(jnp.float32)
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  return (x * cos + rotated * sin).astype(x_BxTxNxH.dtype)
