"""Loss terms against forgetting, chosen in the config (`config.regularizer`).

All three pull toward the run's starting weights theta0 (`TrainState.ref_params`: the
base model, or with LoRA the base with zero adapters), over the trainable parameters:

  l2_sp       lambda/2 * sum_i (theta_i - theta0_i)^2                 (Li et al., 2018)
  ewc         lambda/2 * sum_i F_i (theta_i - theta0_i)^2             (Kirkpatrick et al.,
              2017), F the diagonal empirical Fisher at theta0 on the retention set: the
              mean over its rows of the squared gradient of the row's mean token NLL
  kl_to_base  lambda * mean over the retention set's weighted positions of
              KL(p_theta0 || p_theta), the next-token distributions of the base and of the
              model (the base's side under stop_gradient); each step takes the next
              `retain_rows` rows of the set, in turn

The retention set (`RetainSet`: token rows and per-position weights) is records from
`config.regularizer.retain_paths`, encoded with the run's tokenizer; a position counts where
the next token is a decision token of its record (what the model says, not what it reads).
The loss the loop reports stays the task loss; each term is logged as its own metric.
Terms are added to the gradient once per step, outside the micro-batch accumulation.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from msr_jax.model.forward import forward
from msr_jax.train import trainable
from msr_jax.train.losses import weighted_nll_sums

TERMS = ("l2_sp", "ewc", "kl_to_base")


@dataclasses.dataclass(frozen=True)
class Regularizer:
  """The lambdas (0: off) and how many retention rows the KL term reads per step."""
  l2_sp: float = 0.0
  ewc: float = 0.0
  kl_to_base: float = 0.0
  retain_rows: int = 8

  @property
  def active(self) -> bool:
    return any(getattr(self, t) for t in TERMS)

  @property
  def needs_retain_set(self) -> bool:
    return bool(self.ewc or self.kl_to_base)


class RetainSet(NamedTuple):
  """Rows of the retention set: tokens_NxT and the weights_NxT of positions 0..T-2
  (position t predicts token t+1; the last position's weight is 0)."""
  tokens_NxT: jnp.ndarray
  weights_NxT: jnp.ndarray


def retain_set(tokenized, max_tokens: int, pad_id: int = 0) -> RetainSet:
  """Rows from `data.tokenize.TokenizedRecord`s: each record's last `max_tokens` tokens
  (its decisions sit at the end), right-padded with weight 0."""
  if not tokenized:
    raise ValueError("the retention set is empty")
  tokens = np.full((len(tokenized), max_tokens), pad_id, np.int32)
  weights = np.zeros((len(tokenized), max_tokens), np.float32)
  for row, record in enumerate(tokenized):
    ids, mask = record.tokens[-max_tokens:], record.decision_mask[-max_tokens:]
    tokens[row, :len(ids)] = ids
    weights[row, :len(ids) - 1] = mask[1:] * record.weight
  if not weights.any():
    raise ValueError("the retention set has no decision token within its rows' "
                     f"last {max_tokens} tokens")
  return RetainSet(jnp.asarray(tokens), jnp.asarray(weights))


def _row_nll_mean(graphdef, params, tokens_1xT, weights_1xT):
  logits_1xTxV, _ = forward(graphdef, params, tokens_1xT)
  total, weight = weighted_nll_sums(logits_1xTxV[:, :-1], tokens_1xT[:, 1:],
                                    weights_1xT[:, :-1])
  return total / jnp.maximum(weight, jnp.finfo(jnp.float32).tiny)


def diagonal_fisher(graphdef, params, retain: RetainSet,
                    trainable_paths: tuple[str, ...] | None = None):
  """The diagonal empirical Fisher of the trainable leaves at `params`: the mean over the
  retention rows of the squared per-row gradient (rows without weight are not counted).
  Shaped like `trainable.take(params, trainable_paths)`."""

  @jax.jit
  def squared_grads(params, tokens_NxT, weights_NxT):
    sub = trainable.take(params, trainable_paths)

    def one(row):
      tokens_T, weights_T = row
      loss = lambda p: _row_nll_mean(graphdef, trainable.put(params, p, trainable_paths),
                                     tokens_T[None], weights_T[None])
      return jax.tree.map(lambda g: jnp.square(g.astype(jnp.float32)), jax.grad(loss)(sub))

    # A running sum (a scan), never the N per-row squares at once: N copies of a 135M
    # model's gradient would not fit.
    def body(total, row):
      counted = (row[1].sum() > 0).astype(jnp.float32)
      return jax.tree.map(lambda t, s: t + counted * s, total, one(row)), None

    zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), sub)
    total, _ = jax.lax.scan(body, zeros, (tokens_NxT, weights_NxT))
    n = jnp.maximum((weights_NxT.sum(axis=1) > 0).sum().astype(jnp.float32), 1.0)
    return jax.tree.map(lambda t: t / n, total)

  return squared_grads(params, retain.tokens_NxT, retain.weights_NxT)


def kl_to_base(graphdef, params, base_params, tokens_BxT, weights_BxT) -> jnp.ndarray:
  """Weighted mean over positions of KL(p_base || p_params) of the next-token
  distributions; the base's logits carry no gradient."""
  base_BxTxV, _ = forward(graphdef, jax.lax.stop_gradient(base_params), tokens_BxT)
  logits_BxTxV, _ = forward(graphdef, params, tokens_BxT)
  log_base = jax.nn.log_softmax(jax.lax.stop_gradient(base_BxTxV).astype(jnp.float32), -1)
  log_model = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32), -1)
  kl_BxT = jnp.sum(jnp.exp(log_base) * (log_base - log_model), axis=-1)
  weights_BxT = weights_BxT.astype(jnp.float32)
  return jnp.sum(jnp.where(weights_BxT != 0, weights_BxT * kl_BxT, 0.0)) / jnp.maximum(
      jnp.sum(weights_BxT), jnp.finfo(jnp.float32).tiny)


def _squared_distance(sub, ref, scale=None):
  def one(p, r, f=None):
    d = p.astype(jnp.float32) - r.astype(jnp.float32)
    return jnp.sum(d * d if f is None else f * d * d)
  leaves = (jax.tree.map(one, sub, ref) if scale is None
            else jax.tree.map(one, sub, ref, scale))
  return sum(jax.tree.leaves(leaves), jnp.zeros((), jnp.float32))


def penalty(reg: Regularizer, graphdef, sub, full, ref_sub, ref_full, aux, step):
  """(total penalty, {term: value}) for the trainable leaves `sub` (inside `full`, the
  tree the model runs on), against the starting weights (`ref_sub` / `ref_full`).
  `aux`: {"fisher": like `sub`, "retain": a RetainSet} as the terms need them."""
  terms = {}
  if reg.l2_sp:
    terms["l2_sp"] = 0.5 * reg.l2_sp * _squared_distance(sub, ref_sub)
  if reg.ewc:
    terms["ewc"] = 0.5 * reg.ewc * _squared_distance(sub, ref_sub, aux["fisher"])
  if reg.kl_to_base:
    retain: RetainSet = aux["retain"]
    n = retain.tokens_NxT.shape[0]
    rows = min(reg.retain_rows, n)
    start = (step % (n // rows)) * rows
    take_rows = lambda x: jax.lax.dynamic_slice_in_dim(x, start, rows, axis=0)
    terms["kl_to_base"] = reg.kl_to_base * kl_to_base(
        graphdef, full, ref_full, take_rows(retain.tokens_NxT),
        take_rows(retain.weights_NxT))
  return sum(terms.values(), jnp.zeros((), jnp.float32)), terms
