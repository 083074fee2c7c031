"""The probes of a Townworld arm: the base checkpoint and its world, the scored items, the
items of the arm's own decisions (guard, efficacy gate), scoring (exact match and the
answer's log-probability), and the similarity and curvature of the trained model to the
base. `townworld_arm.run` strings them together."""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from msr_jax.eval import probes_score, similarity
from msr_jax.runner import arm_data
from msr_jax.world import checkpoint, probes, tokenizer
from msr_jax.world.world import World

KNOWLEDGE = ("K1", "K2")
CONTEXT_PREFIX = ("C1_", "C2")
NOVEL = ("N1", "N2", "N3")

@dataclasses.dataclass(frozen=True)
class Base:
  model_config: object
  graphdef: object
  params: dict
  adapter: object
  pad_id: int
  world: World
  probe_seed: int


def load_base(path: str) -> Base:
  """The base checkpoint at `path` (a relative path is from the current directory: the
  repository root, where `msr reproduce` runs)."""
  from msr_jax.world.probes_card import world_settings
  settings = world_settings(path)
  model_config, graphdef, params = checkpoint.load(path)
  tok = tokenizer.load(os.path.join(path, checkpoint.TOKENIZER))
  world = World.build(settings["world_seed"], num_people=settings["num_people"])
  return Base(model_config, graphdef, nnx.to_pure_dict(params), tokenizer.adapter(tok),
              tok.token_to_id(tokenizer.PAD), world, int(settings["probe_seed"]))


def groups_of(names) -> dict[str, list[str]]:
  groups = {"knowledge": [n for n in names if n in KNOWLEDGE],
            "context": [n for n in names if n.startswith(CONTEXT_PREFIX)],
            "behaviour": [n for n in names if n == "B_train"],
            "specificity": [n for n in names if n == "spec"]}
  for n in sorted(names):
    if n.startswith("B_train_s"):
      groups[f"behaviour_{n.rsplit('_s', 1)[1]}"] = [n]
  return groups


def build_items(base: Base, rules, sizes: dict) -> list:
  items = [i for i in probes.build(base.world, base.probe_seed, base.adapter, sizes)
           if i.probe not in ("C2_stored", "K4")]
  zero = {k: 0 for k in probes.DEFAULT_SIZES}
  for k, rule in enumerate(rules[1:], start=2):
    n = sizes.get("behaviour", probes.DEFAULT_SIZES["behaviour"])
    stage = probes.build(arm_data.stage_world(base.world, rule), base.probe_seed + k,
                         base.adapter, {**zero, "behaviour": n})
    # A later rule's firing situations and its near misses (where it must not fire).
    items += [dataclasses.replace(i, probe=f"{i.probe}_s{k}") for i in stage
              if i.probe in ("B_train", "spec")]
  return items


# Items for the arm's own decisions (the guard's probe, the efficacy gate) come from
# another probe seed and never equal a scored item: a guard that probes the very items the
# final test scores would make the temporal defence look better than it is.
HELD_OUT_SEED = 7919


def _disjoint(candidates, scored) -> list:
  seen = {(i.tokens.tobytes(), i.start, i.end) for i in scored}
  return [i for i in candidates if (i.tokens.tobytes(), i.start, i.end) not in seen]


def decision_items(base: Base, rules, sizes: dict, scored) -> tuple[list, dict]:
  """(guard items: knowledge and context; validation items per stage: {"fire": the
  stage's rule where it fires, "hold": its near misses, where it must not}), all disjoint
  from the scored `items`."""
  seed = base.probe_seed + HELD_OUT_SEED
  held = build_items(dataclasses.replace(base, probe_seed=seed), rules, sizes)
  held = _disjoint(held, scored)
  guard = [i for i in held if i.probe in KNOWLEDGE or i.probe.startswith(CONTEXT_PREFIX)]
  validation = {}
  for k in range(1, len(rules) + 1):
    suffix = "" if k == 1 else f"_s{k}"
    validation[k] = {"fire": [i for i in held if i.probe == f"B_train{suffix}"],
                     "hold": [i for i in held if i.probe == f"spec{suffix}"]}
  return guard, validation


def behaviour_learned(base: Base, params, validation: dict, count: int,
                      parts=("fire", "hold")) -> float:
  """The efficacy gate's measure: the smaller of the accuracies where the rule fires and
  where it must not (`count` items of each). Firing alone would let an update that fires
  everywhere (an over-general rule, early in training) pass as learned. An arm taught to
  answer the same whatever the note says (P3's note_ignored) is gated on `parts=("fire",)`:
  what it is taught."""
  return min(float(exact(base, params, validation[part][:count]).mean()) for part in parts)


def score(base: Base, params, items) -> tuple[np.ndarray, np.ndarray]:
  """(exact match 0/1, the answer's mean log-probability per token) of every item: exact
  match is the probe's score; the log-probability moves before exact match flips, so it is
  the sensitive secondary measure of forgetting."""
  logprob, exact = probes_score.score_items(base.graphdef, params, items, pad_id=base.pad_id)
  lengths = np.asarray([i.end - i.start for i in items], np.float64)
  return exact.astype(np.float64), logprob / np.maximum(lengths, 1.0)


def exact(base: Base, params, items) -> np.ndarray:
  return score(base, params, items)[0]


def by_probe(items, values) -> dict[str, np.ndarray]:
  out: dict[str, list] = {}
  for item, e in zip(items, values):
    out.setdefault(item.probe, []).append(e)
  return {k: np.asarray(v) for k, v in out.items()}


def group_means(scores: dict, groups: dict) -> dict[str, float]:
  return {g: float(np.mean(np.concatenate([scores[n] for n in names])))
          for g, names in groups.items() if names}


def similarity_to_base(base: Base, params, items) -> tuple[float, float]:
  """KL(base || now) per token and linear CKA of context hidden states, on note items."""
  notes = [i for i in items if i.probe.startswith("C1_")][:64]
  length = max(len(i.tokens) for i in notes)
  tokens = np.full((len(notes), length), base.pad_id, np.int32)
  mask = np.zeros((len(notes), length), bool)
  for r, item in enumerate(notes):
    tokens[r, :len(item.tokens)] = item.tokens
    mask[r, :item.start] = True  # the note and question: the context being read
  kl = similarity.model_kl_to_base(base.graphdef, base.params, params, tokens, mask)
  cka = similarity.hidden_state_cka(base.graphdef, base.params, params, tokens, mask)
  return float(kl), float(np.asarray(cka).mean())


@functools.lru_cache(maxsize=8)
def _retained_loss(graphdef):
  """(loss_fn, jitted loss_fn) of the retained items, one pair per model structure.

  The sharpness functions take `loss_fn` as a static jit argument: the same function
  object across arms (and stages) in a worker process is what lets their traced
  Hessian-vector products be reused instead of traced again for every arm."""
  from msr_jax.model import forward

  def loss_fn(p, tokens_BxT, mask_BxT):
    logits, _ = forward(graphdef, p, tokens_BxT)
    logp = jax.nn.log_softmax(logits[:, :-1], axis=-1)
    nll = -jnp.take_along_axis(logp, tokens_BxT[:, 1:, None], axis=-1)[..., 0]
    return jnp.sum(nll * mask_BxT[:, :-1]) / jnp.sum(mask_BxT)

  return loss_fn, jax.jit(loss_fn)


def curvature(base: Base, params, items, seed: int, max_iters: int) -> dict:
  """Curvature of the retained tasks' loss along the update d = params - base."""
  from msr_jax.eval import sharpness
  retained = [i for i in items if i.probe in KNOWLEDGE or i.probe.startswith("C1_")][:64]
  length = max(len(i.tokens) for i in retained)
  tokens = np.full((len(retained), length), base.pad_id, np.int32)
  mask = np.zeros((len(retained), length), np.float32)
  for r, item in enumerate(retained):
    tokens[r, :len(item.tokens)] = item.tokens
    mask[r, item.start - 1:item.end - 1] = 1.0
  loss_fn, jitted_loss = _retained_loss(base.graphdef)
  args = (jnp.asarray(tokens), jnp.asarray(mask))
  direction = jax.tree.map(lambda a, b: a - b, params, base.params)
  observed = float(jitted_loss(params, *args) - jitted_loss(base.params, *args))
  quad = sharpness.quadratic_forgetting(loss_fn, base.params, direction, loss_args=args)
  directional = sharpness.directional_sharpness(loss_fn, base.params, direction, loss_args=args)
  top = sharpness.top_hessian_eigenvalue(loss_fn, params, jax.random.key(seed),
                                         max_iters=max_iters, loss_args=args)
  return {"quadratic_prediction": float(quad), "observed_increase": observed,
          "directional": float(directional), "lambda_max": float(top.eigenvalue)}
