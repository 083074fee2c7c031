"""Reading and changing the learning rate inside a state built by `make_optimizer`.

`make_optimizer` wraps the optimizer in `optax.inject_hyperparams` with two
hyperparameters: `learning_rate` (the constant or the schedule's value) and
`learning_rate_multiplier` (1.0 until changed). The effective learning rate is their
product, so a trainer can halve it after a rollback whether or not a schedule runs:
the schedule then continues, halved.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

LR = "learning_rate"
LR_MULTIPLIER = "learning_rate_multiplier"
_INJECT_STATES = (optax.InjectStatefulHyperparamsState, optax.InjectHyperparamsState)


def _is_lr_state(node: Any) -> bool:
  return isinstance(node, _INJECT_STATES) and LR_MULTIPLIER in node.hyperparams


def _find(state: Any) -> Any:
  if _is_lr_state(state):
    return state
  if isinstance(state, tuple):  # Chains, NamedTuple states (MultiStepsState...).
    for child in state:
      found = _find(child)
      if found is not None:
        return found
  return None


def _replace(state: Any, new: Any) -> Any:
  if _is_lr_state(state):
    return new
  if isinstance(state, tuple):
    children = [_replace(child, new) for child in state]
    return type(state)(*children) if hasattr(state, "_fields") else type(state)(children)
  return state


def _lr_state(opt_state: Any) -> Any:
  found = _find(opt_state)
  if found is None:
    raise ValueError("no learning-rate hyperparameters in this optimizer state: build the "
                     "optimizer with msr_jax.optim.make_optimizer")
  return found


def get_learning_rate(opt_state: Any) -> jax.Array:
  """The effective learning rate: of the last step taken, or of the first after init."""
  hyperparams = _lr_state(opt_state).hyperparams
  return hyperparams[LR] * hyperparams[LR_MULTIPLIER]


def _with_multiplier(opt_state: Any, multiplier_fn) -> Any:
  inject = _lr_state(opt_state)
  hyperparams = dict(inject.hyperparams)
  old = hyperparams[LR_MULTIPLIER]
  hyperparams[LR_MULTIPLIER] = jnp.asarray(multiplier_fn(hyperparams), old.dtype)
  return _replace(opt_state, inject._replace(hyperparams=hyperparams))


def scale_learning_rate(opt_state: Any, factor: float | jax.Array) -> Any:
  """Multiplies the effective learning rate, now and for every later step, by `factor`."""
  return _with_multiplier(opt_state, lambda hp: hp[LR_MULTIPLIER] * factor)


def set_learning_rate(opt_state: Any, lr: float | jax.Array) -> Any:
  """Makes the effective learning rate `lr`, by setting the multiplier to lr / base.

  `base` is the constant learning rate, or the schedule's value at the last step;
  with a schedule, every later value is rescaled by the same multiplier. When `base`
  is 0 (the first step of a warm-up) no multiplier can do it: a ValueError if the
  state is concrete; use `scale_learning_rate` then.
  """
  base = _lr_state(opt_state).hyperparams[LR]
  if not isinstance(base, jax.core.Tracer) and float(base) == 0.0:
    raise ValueError("set_learning_rate: the schedule's current learning rate is 0, so no "
                     "multiplier reaches the requested value; use scale_learning_rate")
  return _with_multiplier(opt_state, lambda hp: lr / hp[LR])


def refresh_hyperparams(opt_state: Any, fresh_state: Any) -> Any:
  """`opt_state` with the injected hyperparameters (all but the multiplier) of
  `fresh_state`, a state that `tx.init` just built from a changed config: a constant
  learning rate lives in the state, so a resumed run would otherwise keep the old one.
  The multiplier (a guard's halvings) is kept."""
  inject, fresh = _lr_state(opt_state), _lr_state(fresh_state)
  hyperparams = dict(inject.hyperparams)
  for name, value in fresh.hyperparams.items():
    if name != LR_MULTIPLIER:
      hyperparams[name] = jnp.asarray(value, jnp.asarray(hyperparams[name]).dtype)
  return _replace(opt_state, inject._replace(hyperparams=hyperparams))
