"""`apollo` and `apollo_mini`: APOLLO on the projection matrices, AdamW on the rest."""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import optax

from msr_jax.optim import apollo_scaling as apollo_lib
from msr_jax.optim import labels
from msr_jax.optim import layout


def apollo(
    learning_rate: optax.ScalarOrSchedule,
    rank: int = 256,
    scale: float | jax.Array = 1.0,
    scale_type: str = "channel",
    update_proj_gap: int = 200,
    b1: float | jax.Array = 0.9,
    b2: float | jax.Array = 0.999,
    eps: float | jax.Array = 1e-6,
    limiter_gamma: Optional[float | jax.Array] = 1.01,
    bias_correction: bool = True,
    seed: int = 0,
    projection_fn: Optional[apollo_lib.ProjectionFn] = None,
    mu_dtype: Optional[Any] = None,
    num_input_axes: layout.NumInputAxes = None,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    weight_decay_mask: Optional[Any | Callable[[Any], Any]] = None,
    label_fn: Optional[labels.LabelFn] = None,
) -> optax.GradientTransformation:
  """APOLLO (arXiv 2412.05270) as one optax optimizer.

  The leaves that `label_fn(params)` labels `labels.APOLLO` get `scale_by_apollo`;
  the others (`labels.ADAM`) get `optax.scale_by_adam` with the same b1, b2, eps.
  The default label function selects the attention and MLP projection kernels by path
  (`*.attn.{q,k,v,o}_proj.kernel`, `*.mlp.{gate,up,down}_proj.kernel`), so embeddings
  (tied or not: a tied matrix is one leaf with one label), the LM head, norms and
  biases get AdamW, as in the reference. Use `labels.path_label_fn(patterns)` for
  other models.

  Weight decay is decoupled and applied in the optax order: the update is
  `W - lr * (c_t S + wd * W)`, whereas the reference computes
  `(1 - lr * wd) * (W - lr * c_t S)`. They differ by `lr^2 * wd * c_t S`, second
  order in the learning rate. It applies to every leaf that `weight_decay_mask`
  selects (default: all, as `optax.adamw`).

  Args:
    learning_rate: a float or an optax schedule.
    rank, scale, scale_type, update_proj_gap, b1, b2, eps, limiter_gamma,
      bias_correction, seed, projection_fn, mu_dtype, num_input_axes: see
      `scale_by_apollo`. The reference's defaults: rank 256 (128 for 60M-class
      models), scale 1, channel scaling, gap 200.
    weight_decay: decoupled weight decay rate (or schedule).
    weight_decay_mask: a tree or function selecting the leaves to decay.
    label_fn: params -> tree of `labels.APOLLO` / `labels.ADAM`.

  Returns:
    An `optax.GradientTransformation`; `update` needs `params` (for weight decay).
  """
  matrices = apollo_lib.scale_by_apollo(
      rank=rank, scale_type=scale_type, scale=scale, update_proj_gap=update_proj_gap,
      b1=b1, b2=b2, eps=eps, limiter_gamma=limiter_gamma,
      bias_correction=bias_correction, seed=seed, projection_fn=projection_fn,
      mu_dtype=mu_dtype, num_input_axes=num_input_axes)
  others = optax.scale_by_adam(b1=b1, b2=b2, eps=eps, mu_dtype=mu_dtype)
  return optax.chain(
      optax.partition({labels.APOLLO: matrices, labels.ADAM: others},
                      label_fn or labels.default_label_fn),
      optax.add_decayed_weights(weight_decay, weight_decay_mask),
      optax.scale_by_learning_rate(learning_rate),
  )


def apollo_mini(
    learning_rate: optax.ScalarOrSchedule,
    rank: int = 1,
    scale: float | jax.Array = 128.0,
    scale_type: str = "tensor",
    **kwargs: Any,
) -> optax.GradientTransformation:
  """APOLLO-Mini: `apollo` with rank 1, tensor-wise scaling and scale 128.

  Its matrix state is 2 * max(m, n) + 1 elements per matrix. Other keyword
  arguments are those of `apollo`.
  """
  return apollo(learning_rate, rank=rank, scale=scale, scale_type=scale_type, **kwargs)
