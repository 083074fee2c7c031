"""Optimizers by name, built from a config.

A factory is `factory(learning_rate, **kwargs) -> optax.GradientTransformation`, where
`learning_rate` may be a float, a scalar array or a schedule. `make_optimizer(config)`
reads these fields (a dict or an `ml_collections.ConfigDict`):

  name            registered optimizer name (required)
  learning_rate   peak learning rate, float > 0 (required)
  schedule        "constant" (default) | "cosine" | "linear"
  warmup_steps    linear warm-up from 0 (default 0)
  total_steps     length of the decay, warm-up included (cosine and linear)
  final_lr_ratio  the decay ends at learning_rate * final_lr_ratio (default 0.0)
  weight_decay    passed to factories that take it (default 0.0)
  clip_norm       if set, `optax.clip_by_global_norm(clip_norm)` runs first
  state_dtype     "float32" (default): for bf16/f16 parameters the optimizer computes and
                  keeps its moments in float32 (`optim/precision.py`); "" keeps them in the
                  parameters' dtype
  kwargs          a dict of optimizer-specific arguments

Any other field is also an optimizer-specific argument (`config.rank = 128` works like
`config.kwargs.rank = 128`). The result is wrapped in `optax.inject_hyperparams`, so
`learning_rate.get_learning_rate` / `set_learning_rate` / `scale_learning_rate` work on
its state.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import jax.numpy as jnp
import ml_collections
import optax

from msr_jax.errors import UserError
from msr_jax.optim import alias
from msr_jax.optim import learning_rate as lr_lib
from msr_jax.optim import precision

OptimizerFactory = Callable[..., optax.GradientTransformation]

_COMMON_FIELDS = ("name", "learning_rate", "schedule", "warmup_steps", "total_steps",
                  "final_lr_ratio", "weight_decay", "clip_norm", "state_dtype", "kwargs")
SCHEDULES = ("constant", "cosine", "linear")


class OptimizerConfigError(UserError, ValueError):
  """An optimizer config that cannot be built; the message names the field."""


def _sgd(learning_rate, momentum: float = 0.0, nesterov: bool = False,
         weight_decay: float = 0.0) -> optax.GradientTransformation:
  """SGD with coupled (L2, torch-style) weight decay added to the gradient."""
  return optax.chain(
      optax.add_decayed_weights(weight_decay),
      optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov))


_REGISTRY: dict[str, OptimizerFactory] = {
    "adamw": optax.adamw,
    "adam": optax.adam,
    "sgd": _sgd,
    "lion": optax.lion,
    "apollo": alias.apollo,
    "apollo_mini": alias.apollo_mini,
}


def register_optimizer(name: str, factory: OptimizerFactory, *, overwrite: bool = False):
  """Makes `factory` available to every config as `name`."""
  if not isinstance(name, str) or not name:
    raise ValueError(f"register_optimizer: name must be a non-empty str, got {name!r}")
  if name in _REGISTRY and not overwrite:
    raise ValueError(f"register_optimizer: {name!r} is already registered "
                     "(pass overwrite=True to replace it)")
  if not callable(factory):
    raise ValueError(f"register_optimizer: factory for {name!r} is not callable")
  _REGISTRY[name] = factory


def registered_optimizers() -> tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


def _field(cfg: Mapping[str, Any], name: str, kind, default=None, required=False):
  if name not in cfg or cfg[name] is None:
    if required:
      raise OptimizerConfigError(f"optimizer config: missing field {name!r}")
    return default
  value = cfg[name]
  if kind is float and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  if not isinstance(value, kind) or isinstance(value, bool):
    raise OptimizerConfigError(f"optimizer config field {name!r}: expected "
                               f"{kind.__name__}, got {value!r}")
  return value


def make_schedule(cfg: Mapping[str, Any]) -> optax.ScalarOrSchedule:
  """The learning rate or schedule that the config's schedule fields describe."""
  peak = _field(cfg, "learning_rate", float, required=True)
  if peak <= 0:
    raise OptimizerConfigError(f"optimizer config field 'learning_rate': must be > 0, "
                               f"got {peak}")
  kind = _field(cfg, "schedule", str, "constant")
  if kind not in SCHEDULES:
    raise OptimizerConfigError(f"optimizer config field 'schedule': expected one of "
                               f"{SCHEDULES}, got {kind!r}")
  warmup = _field(cfg, "warmup_steps", int, 0)
  if warmup < 0:
    raise OptimizerConfigError(f"optimizer config field 'warmup_steps': must be >= 0, "
                               f"got {warmup}")
  if kind == "constant":
    if warmup == 0:
      return peak
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak, warmup), optax.constant_schedule(peak)], [warmup])
  total = _field(cfg, "total_steps", int, required=True)
  if total <= warmup:
    raise OptimizerConfigError(f"optimizer config field 'total_steps': must exceed "
                               f"warmup_steps={warmup}, got {total}")
  end = peak * _field(cfg, "final_lr_ratio", float, 0.0)
  if kind == "cosine":
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, total, end_value=end)
  return optax.join_schedules(
      [optax.linear_schedule(0.0, peak, warmup),
       optax.linear_schedule(peak, end, total - warmup)], [warmup])


def _optimizer_kwargs(cfg: Mapping[str, Any], name: str,
                      factory: OptimizerFactory) -> dict[str, Any]:
  nested = cfg.get("kwargs") or {}
  if not isinstance(nested, Mapping):
    raise OptimizerConfigError(f"optimizer config field 'kwargs': expected a dict, "
                               f"got {nested!r}")
  direct = {k: v for k, v in cfg.items() if k not in _COMMON_FIELDS}
  both = sorted(set(direct) & set(nested))
  if both:
    raise OptimizerConfigError(f"optimizer config: field(s) {both} given both directly "
                               "and under 'kwargs'")
  kwargs = {**direct, **nested}
  parameters = inspect.signature(factory).parameters
  takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
  weight_decay = _field(cfg, "weight_decay", float, 0.0)
  if "weight_decay" in parameters or takes_any:
    kwargs["weight_decay"] = weight_decay
  elif weight_decay != 0.0:
    raise OptimizerConfigError(f"optimizer config field 'weight_decay': optimizer "
                               f"{name!r} takes no weight decay")
  if not takes_any:
    accepted = sorted(k for k in parameters if k != "learning_rate")
    for key in kwargs:
      if key not in parameters or key == "learning_rate":
        raise OptimizerConfigError(f"optimizer config field {key!r}: not an argument of "
                                   f"optimizer {name!r} (accepted: {accepted})")
  return kwargs


def make_optimizer(config: ml_collections.ConfigDict | Mapping[str, Any]
                   ) -> optax.GradientTransformationExtraArgs:
  """Builds the optimizer a config names (see the module docstring for the fields)."""
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  if not isinstance(config, Mapping):
    raise OptimizerConfigError(f"optimizer config: expected a dict or ConfigDict, "
                               f"got {type(config).__name__}")
  name = _field(config, "name", str, required=True)
  if name not in _REGISTRY:
    raise OptimizerConfigError(f"optimizer config field 'name': unknown optimizer {name!r} "
                               f"(registered: {list(registered_optimizers())})")
  factory = _REGISTRY[name]
  schedule = make_schedule(config)
  kwargs = _optimizer_kwargs(config, name, factory)
  clip_norm = _field(config, "clip_norm", float)
  if clip_norm is not None and clip_norm <= 0:
    raise OptimizerConfigError(f"optimizer config field 'clip_norm': must be > 0, "
                               f"got {clip_norm}")

  state_dtype = _field(config, "state_dtype", str, "float32")
  if state_dtype not in ("", "float32"):
    raise OptimizerConfigError(f"optimizer config field 'state_dtype': expected 'float32' "
                               f"or '' (the parameters' dtype), got {state_dtype!r}")

  def build(learning_rate, learning_rate_multiplier):
    tx = factory(learning_rate=learning_rate * learning_rate_multiplier, **kwargs)
    if clip_norm is not None:
      tx = optax.chain(optax.clip_by_global_norm(clip_norm), tx)
    return precision.with_state_dtype(tx, jnp.float32) if state_dtype else tx

  # float32 hyperparameters even for bf16 parameters (a bf16 lr is off by up to 0.4%).
  return optax.inject_hyperparams(build, hyperparam_dtype=jnp.float32)(
      **{lr_lib.LR: schedule, lr_lib.LR_MULTIPLIER: 1.0})
