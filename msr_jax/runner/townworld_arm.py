"""One arm x seed of a Townworld experiment: sequential behaviour updates from the base
model, scored on every probe before, during and after training.

Entry point for experiment files: `entry = "msr_jax.runner.townworld_arm:run"`, with the
arm config of `configs/townworld_arms.py` (experiment files start from its `arm` section
through `msr_jax.runner.arms` and change fields). Output (JSON):

  scores[probe] = {"base", "final": [0/1 per item], "base_logp", "final_logp": [the
                answer's mean log-probability per token]}, a fixed item order
  clusters[probe] each item's cluster (behaviour probes: its cell, N1 its person, N3 its
                template), where the probe has them
  seed_items    probes whose items depend on the seed (with `splits.rotate`, each seed
                holds out other N2 cells and N3 templates: every behaviour probe)
  stages        R[stage][group] means (stage 0 = base) over GROUPS, and ACC/BWT/forgetting
  during        [{"step", "knowledge", "context", "behaviour", "specificity"}] every
                eval.every steps
  stability_gap min of each group during training, and the dip below its starting value
  kl_to_base, context_cka, sharpness, composite, train (per stage loop summaries; with
                the gate on, each says gate_reached / gate_step / gate_efficacy), steps
  dreams        per stage, where dreams are on: scenarios, each judge's acceptance and
                validity, what the filter and the N2 hold-out removed
  learned       with the gate on: whether every stage reached its target within the cap

Randomness: the run's seed picks the held-out splits (with `splits.rotate`); the training
randomness (data, order, dreams) follows seed + `reseed`, so two arms that differ only in
`reseed` differ only in training noise: the null controls' inert switch. The guard's
probe and the gate score items of another probe seed, none equal to a scored item
(`arm_probes.decision_items`).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from msr_jax.data.jsonl import write_records
from msr_jax.eval import metrics as cl_metrics
from msr_jax.runner import arm_data, arm_probes
from msr_jax.runner.arm_probes import Base, by_probe, group_means, groups_of
from msr_jax.runner.config import set_dotted
from msr_jax.train import config as train_config
from msr_jax.train.loop import train_loop
from msr_jax.train.setup import examples_from_records


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
  # Extra real records take the dreams' share of a batch: P4 compares the two at equal
  # weight and count.
  weights = {arm_data.BEHAVIOUR: 1.0, arm_data.REPLAY: float(cfg.data.replay_weight),
             "dream": float(cfg.data.dream_weight), arm_data.EXTRA: float(cfg.data.dream_weight)}
  present = {k: v for k, v in weights.items() if k in sources and v > 0}
  if len(present) > 1:
    data.mixture = "diverse"
    data.weights = ml_collections.ConfigDict(present)
  else:
    data.mixture, data.narrow_source = "narrow", arm_data.BEHAVIOUR
  return config


def _stage_sources(cfg, base: Base, rule, stage: int, seed: int, params,
                   earlier=()) -> tuple[list, dict | None]:
  """(the stage's training records, its dream statistics or None)."""
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
    # Interleaved replay of the earlier updates' own records (half of each): without it a
    # later update overwrites an earlier behaviour whatever else defends it.
    for j, old in enumerate(earlier, start=1):
      kept = arm_data.behaviour_records(base.world, old, 1000 * seed + j,
                                        int(cfg.data.behaviour_records), cfg.data.regime,
                                        earlier[:j - 1])
      records += [dataclasses.replace(r, source=arm_data.REPLAY)
                  for r in kept[:int(cfg.data.behaviour_records) // 2]]
  elif cfg.data.mixture != "narrow":
    raise ValueError(f"data.mixture: unknown {cfg.data.mixture!r} (diverse | narrow)")
  if int(cfg.data.extra_real):
    records += arm_data.extra_records(base.world, rule, 1000 * seed + stage,
                                      int(cfg.data.extra_real), cfg.data.extra_cells, earlier)
  dreams = None
  if cfg.dream.mode != "none":
    from msr_jax.runner import arm_dreams
    dreamt, dreams = arm_dreams.dream_records(cfg, base, params, rule, stage, seed, earlier)
    records += dreamt
  return records, dreams


def _own_retain_set(cfg) -> bool:
  """EWC's Fisher and the KL term read a retention set; an arm that names none gets
  Townworld's pre-training-style records (the replay distribution, a fixed draw)."""
  reg = cfg.get("regularizer")
  return (reg is not None and bool(float(reg.get("ewc", 0)) or float(reg.get("kl_to_base", 0)))
          and not list(reg.get("retain_paths", ())))


def _write_retain_set(cfg, base: Base, stage: int, folder: str) -> None:
  path = os.path.join(folder, "retain.jsonl")
  write_records(path, arm_data.replay_records(base.world, 900_000 + stage, 64))
  with cfg.regularizer.ignore_type():
    cfg.regularizer.retain_paths = (path,)


BEHAVIOUR_PROBES = ("B_train", "N1", "N2", "N3", "N4_", "spec")

# A worker serves many arms of one base checkpoint and seed: the base model, the world of
# the seed's rotation, the probe items, the base's scores on them and the items of the
# guard and the gate are the same for all of them, so a process makes each once (the same
# objects each run would make: no number changes). Keyed by the checkpoint folder and its
# files' modification times, the rotation, the stages and the probe sizes.
_CACHE: dict = {}
_CACHE_SIZE = 8


def _cached(key, make):
  if key not in _CACHE:
    while len(_CACHE) >= _CACHE_SIZE:
      _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = make()
  return _CACHE[key]


def clear_cache() -> None:
  _CACHE.clear()


def _start_key(cfg, seed: int) -> tuple:
  path = os.path.realpath(cfg.base_checkpoint)
  stamp = max((os.stat(os.path.join(path, f)).st_mtime_ns for f in os.listdir(path)),
              default=0)
  rotation = seed if cfg.splits.rotate else None
  return (path, stamp, rotation, int(cfg.stages), tuple(sorted(dict(cfg.eval.sizes).items())))


def _start(cfg, seed: int):
  """(base with the seed's world, the stages' rules, the scored items, the base's exact
  match and log-probability on them)."""
  def make():
    base = arm_probes.load_base(cfg.base_checkpoint)
    rules = arm_data.stage_rules(base.world, int(cfg.stages))
    seed_items = []
    if cfg.splits.rotate:  # this seed's held-out N2 cells and N3 templates
      plain = arm_probes.build_items(base, rules, dict(cfg.eval.sizes))
      base = dataclasses.replace(base, world=base.world.rotated(seed))
    items = arm_probes.build_items(base, rules, dict(cfg.eval.sizes))
    if cfg.splits.rotate:
      # Every behaviour probe, and any other whose items the splits move (R0 draws its
      # cells from a list the held-out cells order).
      moved = {i.probe for i, j in zip(items, plain)
               if (i.probe, i.tokens.tobytes()) != (j.probe, j.tokens.tobytes())}
      seed_items = sorted({i.probe for i in items
                           if i.probe.startswith(BEHAVIOUR_PROBES) or i.probe in moved})
    exact, logp = arm_probes.score(base, base.params, items)
    for scores in (exact, logp):  # shared by every run of this start: never written
      scores.setflags(write=False)
    return base, rules, items, exact, logp, seed_items
  return _cached(("start",) + _start_key(cfg, seed), make)


def run(config: dict, seed: int) -> dict:
  cfg = ml_collections.ConfigDict(config)
  base, rules, items, base_exact, base_logp, seed_items = _start(cfg, seed)
  train_seed = seed + int(cfg.reseed)
  names = sorted({i.probe for i in items})
  groups = groups_of(names)
  stage_rows = [group_means(by_probe(items, base_exact), groups)]
  # A fixed small subset for the curves during training (the stability gap).
  rng = np.random.default_rng(0)
  during_items = []
  for group in ("knowledge", "context", "behaviour", "specificity"):
    pool = [i for i in items if i.probe in groups[group]]
    take = rng.permutation(len(pool))[:int(cfg.eval.during_items)]
    during_items += [dataclasses.replace(pool[j], probe=group) for j in sorted(take)]
  during, summaries, dream_stats = [], [], []
  params = base.params
  offset = 0

  def record_during(step, params_now):
    exact = by_probe(during_items, arm_probes.exact(base, params_now, during_items))
    during.append({"step": offset + step, **{g: float(v.mean()) for g, v in exact.items()}})

  record_during(0, params)
  gate_cfg = cfg.get("gate", None)
  gating = gate_cfg is not None and int(gate_cfg.every) > 0
  guard_items, validation = ([], {})
  if cfg.guard.every or gating:
    guard_pool, validation = _cached(
        ("decisions",) + _start_key(cfg, seed),
        lambda: arm_probes.decision_items(base, rules, dict(cfg.eval.sizes), items))
    # As many per group as the curves use, drawn from the disjoint pool.
    draw = np.random.default_rng(1)
    for group in ("knowledge", "context"):
      pool = [i for i in guard_pool if i.probe in groups_of({i.probe for i in guard_pool})[group]]
      take = draw.permutation(len(pool))[:int(cfg.eval.during_items)]
      guard_items += [pool[j] for j in sorted(take)]
  probe_fn = ((lambda p: float(arm_probes.exact(base, p, guard_items).mean()))
              if cfg.guard.every else None)
  every = int(cfg.eval.every)
  own_retain = _own_retain_set(cfg)
  final_exact, final_logp = base_exact, base_logp
  for stage, rule in enumerate(rules, start=1):
    if int(cfg.train.steps) == 0:  # the untrained control: the base through the same probes
      summaries.append({"step": 0, "records": {}})
      stage_rows.append(stage_rows[0])
      continue
    records, dreams = _stage_sources(cfg, base, rule, stage, train_seed, params,
                                     rules[:stage - 1])
    if dreams is not None:
      dream_stats.append(dreams)
    with tempfile.TemporaryDirectory(prefix="msr-arm-") as tmp:
      if own_retain:
        _write_retain_set(cfg, base, stage, tmp)
      train_cfg = _train_config(cfg, tmp, train_seed, {r.source for r in records})
      sources = examples_from_records(records, base.adapter, train_cfg.data)
      callback = lambda step, _m, state: (record_during(step, state.params)
                                          if every and step % every == 0 else None)
      # A copy: the trainer may donate its buffers, and the base parameters are needed
      # after training (KL, CKA and sharpness are measured against them).
      start_params = jax.tree.map(jnp.array, params)
      gate_fn = None
      if gating:  # train until this stage's behaviour is learned on its validation split
        parts = ("fire",) if cfg.data.regime == "note_ignored" else ("fire", "hold")
        gate_fn = (lambda split, count: lambda p: arm_probes.behaviour_learned(
            base, p, split, count, parts))(validation[stage], int(gate_cfg.validation_items))
        train_cfg.gate.every, train_cfg.gate.target = int(gate_cfg.every), float(
            gate_cfg.target)
      result = train_loop(train_cfg, sources, graphdef=base.graphdef, params=start_params,
                          model_config=base.model_config, probe_fn=probe_fn,
                          callbacks=[callback], gate_fn=gate_fn, adapter=base.adapter)
    params = jax.device_get(result.merged()[1])  # LoRA arms: the adapters merged
    summary = {k: v for k, v in result.summary.items() if k != "run_dir"}  # a temp folder
    summaries.append(summary | {"records": {s: len(v) for s, v in sources.items()}})
    offset += int(result.summary["step"])
    # The last stage's scores are the final ones.
    final_exact, final_logp = arm_probes.score(base, params, items)
    stage_rows.append(group_means(by_probe(items, final_exact), groups))
  base_by, final_by = by_probe(items, base_exact), by_probe(items, final_exact)
  base_lp, final_lp = by_probe(items, base_logp), by_probe(items, final_logp)
  task_cols = ["behaviour"] + [f"behaviour_{k}" for k in range(2, len(rules) + 1)]
  columns = task_cols + ["knowledge", "context"]
  matrix = np.asarray([[row[c] for c in columns] for row in stage_rows])
  kl, cka = arm_probes.similarity_to_base(base, params, items)
  ratio = lambda g: min(1.0, stage_rows[-1][g] / max(stage_rows[0][g], 1e-9))
  novel = float(np.mean([final_by[n].mean() for n in arm_probes.NOVEL]))
  specificity = (min(1.0, final_by["spec"].mean() / max(base_by["spec"].mean(), 1e-9))
                 if "spec" in final_by else 1.0)
  later = [final_by[f"B_train_s{k}"].mean() for k in range(2, len(rules) + 1)]
  by_name: dict[str, list[str]] = {}
  for item in items:
    by_name.setdefault(item.probe, []).append(item.cluster)
  output = {
      "scores": {n: {"base": base_by[n].tolist(), "final": final_by[n].tolist(),
                     "base_logp": base_lp[n].tolist(), "final_logp": final_lp[n].tolist()}
                 for n in names},
      # Per probe, each item's cluster (behaviour probes: cell, template or person), in item
      # order: what the analysis resamples for claims about generalisation.
      "clusters": {n: c for n, c in by_name.items() if all(c)},
      "seed_items": seed_items,
      "stages": {"columns": columns, "R": matrix.tolist(),
                 "acc": cl_metrics.acc(matrix),
                 "bwt": cl_metrics.bwt(matrix, list(range(len(task_cols)))) if len(rules) > 1 else None,
                 "forgetting": float(np.mean(cl_metrics.forgetting_per_probe(matrix)))},
      "during": during,
      "stability_gap": {g: {"min": min(d[g] for d in during), "start": during[0][g]}
                        for g in ("knowledge", "context", "behaviour", "specificity")
                        if g in during[0]},
      "kl_to_base": kl, "context_cka": cka,
      # Behaviour on novel situations x what was kept of knowledge, context, and of the
      # base policy where R1 must not fire (specificity: an arm that fires everywhere
      # scores well on novel situations, and must not score well here) x, with sequential
      # updates, what the later updates learned (declining to learn them is no defence).
      "composite": (novel * ratio("knowledge") * ratio("context") * specificity
                    * (float(np.mean(later)) if later else 1.0)),
      "train": summaries, "steps": offset,
      "rules": [r.text() for r in rules],
  }
  if dream_stats:
    output["dreams"] = dream_stats
  if gating:
    output["learned"] = all(bool(x.get("gate_reached")) for x in summaries)
  if cfg.eval.sharpness and offset:  # no update, no direction to measure along
    output["sharpness"] = arm_probes.curvature(base, params, items, train_seed,
                                               int(cfg.eval.sharpness_iters))
  return output
