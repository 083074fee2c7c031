"""One arm x seed of a Townworld experiment: sequential behaviour updates from the base
model, scored on every probe before, during and after training.

Entry point for experiment files: `entry = "msr_jax.runner.townworld_arm:run"`, with the
arm config of `configs/townworld_arms.py` (experiment files start from its `arm` section
through `msr_jax.runner.arms` and change fields). Output (JSON):

  scores[probe] = {"base": [0/1 per item], "final": [...]}   exact match, fixed item order
  clusters[probe] each item's cluster (behaviour probes: its cell, N1 its person, N3 its
                template), where the probe has them
  stages        R[stage][group] means (stage 0 = base) over GROUPS, and ACC/BWT/forgetting
  during        [{"step", "knowledge", "context", "behaviour"}] every eval.every steps
  stability_gap min of each group during training, and the dip below its starting value
  kl_to_base, context_cka, sharpness, composite, train (per stage loop summaries; with
                the gate on, each says gate_reached / gate_step / gate_efficacy)
  learned       with the gate on: whether every stage reached its target within the cap

The guard's probe and the gate score items of another probe seed, none equal to a scored
item (`decision_items`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from msr_jax.eval import metrics as cl_metrics
from msr_jax.eval import probes_score, similarity
from msr_jax.world import probes
from msr_jax.runner import arm_data
from msr_jax.runner.config import set_dotted
from msr_jax.train import config as train_config
from msr_jax.train.loop import train_loop
from msr_jax.train.setup import examples_from_records
from msr_jax.world import checkpoint, tokenizer
from msr_jax.world.world import World

KNOWLEDGE = ("K1", "K2")
CONTEXT_PREFIX = ("C1_", "C2")
NOVEL = ("N1", "N2", "N3")

@dataclasses.dataclass
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
            "behaviour": [n for n in names if n == "B_train"]}
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
    items += [dataclasses.replace(i, probe=f"B_train_s{k}") for i in stage if i.probe == "B_train"]
  return items


# Items for the arm's own decisions (the guard's probe, the efficacy gate) come from
# another probe seed and never equal a scored item: a guard that probes the very items the
# final test scores would make the temporal defence look better than it is.
HELD_OUT_SEED = 7919


def _disjoint(candidates, scored) -> list:
  seen = {(i.tokens.tobytes(), i.start, i.end) for i in scored}
  return [i for i in candidates if (i.tokens.tobytes(), i.start, i.end) not in seen]


def decision_items(base: Base, rules, sizes: dict, scored) -> tuple[list, dict]:
  """(guard items: knowledge and context, validation items per stage: that stage's
  behaviour), all disjoint from the scored `items`."""
  seed = base.probe_seed + HELD_OUT_SEED
  held = build_items(dataclasses.replace(base, probe_seed=seed), rules, sizes)
  held = _disjoint(held, scored)
  guard = [i for i in held if i.probe in KNOWLEDGE or i.probe.startswith(CONTEXT_PREFIX)]
  validation = {1: [i for i in held if i.probe == "B_train"]}
  for k in range(2, len(rules) + 1):
    validation[k] = [i for i in held if i.probe == f"B_train_s{k}"]
  return guard, validation


def _exact(base: Base, params, items) -> np.ndarray:
  _, exact = probes_score.score_items(base.graphdef, params, items, pad_id=base.pad_id)
  return exact.astype(np.float64)


def _by_probe(items, exact) -> dict[str, np.ndarray]:
  out: dict[str, list] = {}
  for item, e in zip(items, exact):
    out.setdefault(item.probe, []).append(e)
  return {k: np.asarray(v) for k, v in out.items()}


def _group_means(by_probe: dict, groups: dict) -> dict[str, float]:
  return {g: float(np.mean(np.concatenate([by_probe[n] for n in names])))
          for g, names in groups.items() if names}


def _train_config(cfg, run_dir: str, seed: int, sources: dict) -> ml_collections.ConfigDict:
  """The trainer's schema and defaults (msr_jax/train/config.py) with the arm's `optim`
  (whole), its `train`, `guard` (and, where present, `lora` and `regularizer`) fields by
  the trainer's names, and the data settings of every arm."""
  config = train_config.get_config()
  config.seed = seed
  config.run_dir = run_dir
  config.resume = False
  config.progress = False
  config.optim = ml_collections.ConfigDict(cfg.optim.to_dict())
  # `lora` and `regularizer` (the literature's baselines, docs/baselines.md) only where the
  # arm config has them.
  for section in ("train", "guard", "lora", "regularizer"):
    if section not in cfg:
      continue
    for field, value in cfg[section].items():
      set_dotted(config, f"{section}.{field}", value, f"arm config: {section}.{field}")
  config.checkpoint.every = 0  # A temporary run folder: nothing to resume from.
  config.checkpoint.keep = 1
  data = config.data
  data.seed = seed
  data.max_context_tokens = 256
  # Few buckets: each one is a compiled step shape, and at smoke scale tracing and
  # compiling a step costs more than the 40 steps it runs (Townworld contexts are
  # 10-90 tokens, decisions about 8, replayed biographies about 40).
  data.context_buckets = (128, 256)
  data.decision_buckets = (16, 64, 128)
  weights = {arm_data.BEHAVIOUR: 1.0, arm_data.REPLAY: float(cfg.data.replay_weight),
             "dream": float(cfg.data.dream_weight)}
  present = {k: v for k, v in weights.items() if k in sources and v > 0}
  if len(present) > 1:
    data.mixture = "diverse"
    data.weights = ml_collections.ConfigDict(present)
  else:
    data.mixture, data.narrow_source = "narrow", arm_data.BEHAVIOUR
  return config


def _stage_sources(cfg, base: Base, rule, stage: int, seed: int, params,
                   earlier=()) -> dict[str, list]:
  records = arm_data.behaviour_records(base.world, rule, 1000 * seed + stage,
                                       int(cfg.data.behaviour_records), cfg.data.regime,
                                       earlier)
  records = arm_data.corrupt(records, float(cfg.stress.bad_batch_fraction), 1000 * seed + stage)
  if cfg.memory.self_targets:
    from msr_jax.runner import arm_dreams
    records = arm_dreams.self_targets(base, params, records, rule, seed)
  if cfg.data.mixture == "diverse":
    records += arm_data.replay_records(base.world, 1000 * seed + stage,
                                       int(cfg.data.replay_records))
  elif cfg.data.mixture != "narrow":
    raise ValueError(f"data.mixture: unknown {cfg.data.mixture!r} (diverse | narrow)")
  if cfg.dream.mode != "none":
    from msr_jax.runner import arm_dreams
    records += arm_dreams.dream_records(cfg, base, params, rule, stage, seed, earlier)
  return records


def _similarity(base: Base, params, items) -> tuple[float, float]:
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


def _sharpness(base: Base, params, items, seed: int, max_iters: int) -> dict:
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


def run(config: dict, seed: int) -> dict:
  cfg = ml_collections.ConfigDict(config)
  base = load_base(cfg.base_checkpoint)
  rules = arm_data.stage_rules(base.world, int(cfg.stages))
  items = build_items(base, rules, dict(cfg.eval.sizes))
  names = sorted({i.probe for i in items})
  groups = groups_of(names)
  base_exact = _exact(base, base.params, items)
  stage_rows = [_group_means(_by_probe(items, base_exact), groups)]
  # A fixed small subset for the curves during training (the stability gap).
  rng = np.random.default_rng(0)
  during_items = []
  for group in ("knowledge", "context", "behaviour"):
    pool = [i for i in items if i.probe in groups[group]]
    take = rng.permutation(len(pool))[:int(cfg.eval.during_items)]
    during_items += [dataclasses.replace(pool[j], probe=group) for j in sorted(take)]
  during, summaries = [], []
  params = base.params
  offset = 0

  def record_during(step, params_now):
    exact = _by_probe(during_items, _exact(base, params_now, during_items))
    during.append({"step": offset + step, **{g: float(v.mean()) for g, v in exact.items()}})

  record_during(0, params)
  gate_cfg = cfg.get("gate", None)
  gating = gate_cfg is not None and int(gate_cfg.every) > 0
  guard_items, validation = ([], {})
  if cfg.guard.every or gating:
    guard_pool, validation = decision_items(base, rules, dict(cfg.eval.sizes), items)
    # As many per group as the curves use, drawn from the disjoint pool.
    draw = np.random.default_rng(1)
    for group in ("knowledge", "context"):
      pool = [i for i in guard_pool if i.probe in groups_of({i.probe for i in guard_pool})[group]]
      take = draw.permutation(len(pool))[:int(cfg.eval.during_items)]
      guard_items += [pool[j] for j in sorted(take)]
  probe_fn = (lambda p: float(_exact(base, p, guard_items).mean())) if cfg.guard.every else None
  every = int(cfg.eval.every)
  for stage, rule in enumerate(rules, start=1):
    records = _stage_sources(cfg, base, rule, stage, seed, params, rules[:stage - 1])
    with tempfile.TemporaryDirectory(prefix="msr-arm-") as tmp:
      train_cfg = _train_config(cfg, tmp, seed, {r.source for r in records})
      sources = examples_from_records(records, base.adapter, train_cfg.data)
      callback = lambda step, _m, state: (record_during(step, state.params)
                                          if every and step % every == 0 else None)
      # A copy: the trainer may donate its buffers, and the base parameters are needed
      # after training (KL, CKA and sharpness are measured against them).
      start_params = jax.tree.map(jnp.array, params)
      gate_fn = None
      if gating:  # train until this stage's behaviour is learned on its validation split
        stage_items = validation[stage][:int(gate_cfg.validation_items)]
        gate_fn = (lambda chosen: lambda p: float(_exact(base, p, chosen).mean()))(stage_items)
        train_cfg.gate.every, train_cfg.gate.target = int(gate_cfg.every), float(
            gate_cfg.target)
      result = train_loop(train_cfg, sources, graphdef=base.graphdef, params=start_params,
                          model_config=base.model_config, probe_fn=probe_fn,
                          callbacks=[callback], gate_fn=gate_fn, adapter=base.adapter)
    params = jax.device_get(result.merged()[1])  # LoRA arms: the adapters merged
    summary = {k: v for k, v in result.summary.items() if k != "run_dir"}  # a temp folder
    summaries.append(summary | {"records": {s: len(v) for s, v in sources.items()}})
    offset += int(result.summary["step"])
    final_exact = _exact(base, params, items)  # The last stage's scores are the final ones.
    stage_rows.append(_group_means(_by_probe(items, final_exact), groups))
  base_by, final_by = _by_probe(items, base_exact), _by_probe(items, final_exact)
  task_cols = ["behaviour"] + [f"behaviour_{k}" for k in range(2, len(rules) + 1)]
  columns = task_cols + ["knowledge", "context"]
  matrix = np.asarray([[row[c] for c in columns] for row in stage_rows])
  kl, cka = _similarity(base, params, items)
  ratio = lambda g: min(1.0, stage_rows[-1][g] / max(stage_rows[0][g], 1e-9))
  novel = float(np.mean([final_by[n].mean() for n in NOVEL]))
  specificity = (min(1.0, final_by["spec"].mean() / max(base_by["spec"].mean(), 1e-9))
                 if "spec" in final_by else 1.0)
  by_name: dict[str, list[str]] = {}
  for item in items:
    by_name.setdefault(item.probe, []).append(item.cluster)
  output = {
      "scores": {n: {"base": base_by[n].tolist(), "final": final_by[n].tolist()} for n in names},
      # Per probe, each item's cluster (behaviour probes: cell, template or person), in item
      # order: what the analysis resamples for claims about generalisation.
      "clusters": {n: c for n, c in by_name.items() if all(c)},
      "stages": {"columns": columns, "R": matrix.tolist(),
                 "acc": cl_metrics.acc(matrix),
                 "bwt": cl_metrics.bwt(matrix, list(range(len(task_cols)))) if len(rules) > 1 else None,
                 "forgetting": float(np.mean(cl_metrics.forgetting_per_probe(matrix)))},
      "during": during,
      "stability_gap": {g: {"min": min(d[g] for d in during), "start": during[0][g]}
                        for g in ("knowledge", "context", "behaviour")},
      "kl_to_base": kl, "context_cka": cka,
      # Behaviour on novel situations x what was kept of knowledge, context, and of the
      # base policy where R1 must not fire (specificity: an arm that fires everywhere
      # scores well on novel situations, and must not score well here).
      "composite": novel * ratio("knowledge") * ratio("context") * specificity,
      "train": summaries,
      "rules": [r.text() for r in rules],
  }
  if gating:
    output["learned"] = all(bool(x.get("gate_reached")) for x in summaries)
  if cfg.eval.sharpness:
    output["sharpness"] = _sharpness(base, params, items, seed, int(cfg.eval.sharpness_iters))
  return output
