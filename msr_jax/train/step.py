"""The pure train step: `step(state, batch) -> (state, metrics)`, full or context-frozen.

Gradient accumulation is a `lax.scan` over micro-batches (a leading axis A on every batch
array) that adds the weighted loss sums, the weight totals and the gradients of the sums,
then divides once (with one micro-batch, the gradient of the mean itself): the result
equals one step on the concatenated batch (optax.MultiSteps
would average per-micro-batch means, which weighs a micro-batch with 3 decision tokens as
much as one with 300, and would spread one update over A calls of the step).

A non-finite loss or gradient norm skips the update: parameters and optimizer state come
back unchanged, `num_skipped` grows by one and `metrics["skipped"]` is 1.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from msr_jax import optim
from msr_jax.model.config import ModelConfig
from msr_jax.model.sharding import DATA, tree_shardings
from msr_jax.train import distributed, drift
from msr_jax.train import regularizers as reg_lib
from msr_jax.train import trainable as trainable_lib
from msr_jax.train.batch import Batch
from msr_jax.train.objectives import MODES, loss_sums
from msr_jax.train.state import TrainState


def _denominator(weight):
  """The weight total a mean divides by (never 0: a batch without weight has loss 0)."""
  return jnp.maximum(weight, jnp.finfo(jnp.float32).tiny)


def _learning_rate(opt_state):
  """The effective learning rate when the optimizer came from `make_optimizer`."""
  try:
    return optim.get_learning_rate(opt_state)
  except ValueError:
    return None


def make_train_step(graphdef, model_config: ModelConfig, tx: optax.GradientTransformation,
                    mode: str = "context_frozen", micro_batches: int = 1,
                    prefill_chunk: int = 0, monitor_drift: bool = True,
                    trainable: tuple[str, ...] | None = None,
                    regularizer: reg_lib.Regularizer | None = None) -> Callable:
  """Returns the (unjitted) step function; see `jit_train_step`.

  `trainable`: the parameter paths that train (`train/trainable.py`; None: all). The
  others are frozen: no gradient is computed for them and the optimizer state (built by
  `init_state` with the same paths) covers the trainable ones only.
  `regularizer`: loss terms toward the starting weights (`train/regularizers.py`), added
  to the gradient once per step; `state.aux` holds what they read. "loss" stays the task
  loss; each term is a metric of its own ("reg_l2_sp", ...).
  """
  if regularizer is not None and not regularizer.active:
    regularizer = None
  if mode not in MODES:
    raise ValueError(f"train mode: unknown {mode!r}, expected one of {MODES}")

  def sums_and_grads(full_of, params, batch: Batch):
    def objective(p):
      total, weight = loss_sums(mode, graphdef, full_of(p), batch, model_config,
                                prefill_chunk)
      return total, weight
    (total, weight), grads = jax.value_and_grad(objective, has_aux=True)(params)
    return total, weight, grads

  def accumulate(full_of, params, batch: Batch):
    """(loss sum, weight sum, gradient of the weighted mean loss) w.r.t. `params`, the
    trainable leaves; `full_of(params)` is the whole tree the model runs on."""
    if micro_batches == 1:
      # The gradient of the mean itself, rounded as `jax.grad` of the plain mean loss
      # rounds it (dividing the summed gradient afterwards differs in the last bit), so
      # pre-training on this step rebuilds the base checkpoint bit for bit.
      def mean(p):
        total, weight = loss_sums(mode, graphdef, full_of(p), batch, model_config,
                                  prefill_chunk)
        return total / _denominator(weight), (total, weight)
      (_, (total, weight)), grads = jax.value_and_grad(mean, has_aux=True)(params)
      return total, weight, grads
    zeros = jax.tree_util.tree_map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
    init = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32), zeros)

    def body(carry, micro: Batch):
      total, weight, grads = sums_and_grads(full_of, params, micro)
      acc_total, acc_weight, acc_grads = carry
      acc_grads = jax.tree_util.tree_map(lambda a, g: a + g.astype(jnp.float32),
                                         acc_grads, grads)
      return (acc_total + total, acc_weight + weight, acc_grads), None

    (total, weight, grad_sums), _ = jax.lax.scan(body, init, batch)
    denom = _denominator(weight)
    grads = jax.tree_util.tree_map(lambda g, p: (g / denom).astype(p.dtype), grad_sums,
                                   params)
    return total, weight, grads

  def step(state: TrainState, batch: Batch):
    train_params = trainable_lib.take(state.params, trainable)
    full_of = lambda p: trainable_lib.put(state.params, p, trainable)
    total, weight, grads = accumulate(full_of, train_params, batch)
    loss = total / _denominator(weight)
    terms = {}
    if regularizer is not None:
      ref_sub = trainable_lib.take(state.ref_params, trainable)
      def penalty(p):
        return reg_lib.penalty(regularizer, graphdef, p, full_of(p), ref_sub,
                               state.ref_params, state.aux, state.step)
      (_, terms), penalty_grads = jax.value_and_grad(penalty, has_aux=True)(train_params)
      grads = jax.tree_util.tree_map(lambda g, r: g + r.astype(g.dtype), grads,
                                     penalty_grads)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    # A non-finite gradient makes a non-finite update, discarded below. (Zeroing the
    # gradients first changes how XLA fuses the backward pass, and so its rounding: the
    # pre-training stages would no longer rebuild the base checkpoint bit for bit.)
    updates, new_opt_state = tx.update(grads, state.opt_state, train_params)
    new_params = full_of(optax.apply_updates(train_params, updates))
    keep = lambda new, old: jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o),
                                                   new, old)
    new_params = keep(new_params, state.params)
    new_opt_state = keep(new_opt_state, state.opt_state)
    rng, _ = jax.random.split(jax.random.wrap_key_data(state.rng))
    skipped = (~finite).astype(jnp.int32)
    new_state = TrainState(step=state.step + 1, params=new_params, opt_state=new_opt_state,
                           rng=jax.random.key_data(rng), ref_params=state.ref_params,
                           num_skipped=state.num_skipped + skipped, aux=state.aux)
    metrics = {"loss": loss, "weight": weight, "grad_norm": grad_norm, "skipped": skipped,
               "num_skipped": new_state.num_skipped}
    metrics.update({f"reg_{name}": value for name, value in terms.items()})
    lr = _learning_rate(new_opt_state)
    if lr is not None:
      metrics["learning_rate"] = lr
    if monitor_drift:
      metrics.update(drift.drift_metrics(new_params, state.ref_params, state.params))
    return new_state, metrics

  return step


def batch_shardings(batch: Batch, mesh: Mesh, micro_batches: int = 1) -> Batch:
  """Rows split over the mesh's "data" axis (after the micro-batch axis, if any)."""
  lead = (None,) if micro_batches > 1 else ()
  def one(x):
    rest = [None] * (jnp.ndim(x) - len(lead) - 1)
    return NamedSharding(mesh, PartitionSpec(*lead, DATA, *rest))
  return jax.tree_util.tree_map(one, batch)


def jit_train_step(step: Callable, state: TrainState, mesh: Mesh | None = None,
                   batch: Batch | None = None, micro_batches: int = 1, donate: bool = True):
  """jits `step`; with a mesh, the state is sharded by the path rules (parameters and
  optimizer state over "fsdp") and the batch rows over "data". Returns (jitted, state
  placed on the mesh)."""
  donate_argnums = (0,) if donate else ()
  if mesh is None:
    return jax.jit(step, donate_argnums=donate_argnums), state
  if batch is None:
    raise ValueError("jit_train_step: pass an example batch with a mesh (for its shardings)")
  state_shardings = tree_shardings(state, mesh)
  batch_sharding = batch_shardings(batch, mesh, micro_batches)
  replicated = NamedSharding(mesh, PartitionSpec())
  jitted = jax.jit(step, donate_argnums=donate_argnums,
                   in_shardings=(state_shardings, batch_sharding),
                   out_shardings=(state_shardings, replicated))
  if not distributed.is_multi_process():
    return jitted, jax.device_put(state, state_shardings)
  # Across hosts (`train/distributed.py`): every process holds the same host values and
  # builds only its own shards of the state and of each batch.
  state = distributed.global_tree(state, state_shardings)
  return (lambda s, b: jitted(s, distributed.global_tree(b, batch_sharding))), state
