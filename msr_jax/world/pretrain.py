"""Pre-training the Townworld base model on `msr_jax.train`'s loop.

Each stage is one `train_loop` run (full backprop on packed rows, `data.batch.packed_batch`)
with `msr_jax.optim`'s registry: the stage's optimizer is `cfg.optim` (the fields of every
training config: learning_rate, schedule, warmup_steps, final_lr_ratio, ...) with the
stage's own `optim` overrides and its steps as the schedule's length. Stage N's run folder
is `out/runs/stageN` (orbax checkpoints every `cfg.checkpoint.every` steps, metrics.jsonl),
so a killed `msr pretrain` continues where it stopped; what this module adds is the
Townworld data (the corpus, its phases and streams) and the stage plan.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from typing import Callable

import ml_collections
import numpy as np
from flax import nnx

from msr_jax import atomic
from msr_jax.data.batch import Batch, packed_batch
from msr_jax.model import Decoder, ModelConfig
from msr_jax.train import config as train_config
from msr_jax.train import metrics_log
from msr_jax.train.loop import train_loop
from msr_jax.world import binding_tasks, checkpoint, corpus, tokenizer
from msr_jax.world.world import World

WORLD_FILE = "townworld.json"  # read back by msr_jax.world.probes_card
STATS_FILE = "train_stats.json"
RUNS = "runs"  # out/runs/stageN: each stage's training run folder


def stage_optim(cfg: ml_collections.ConfigDict, overrides, steps: int) -> dict:
  """`cfg.optim` with a stage's overrides, its schedule running over the stage's steps."""
  return {**cfg.optim.to_dict(), **dict(overrides or {}), "total_steps": int(steps)}


def stages(cfg: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
  """Stage 1 from scratch; each later stage (`cfg.stage2`, `cfg.stage3`, ..., in order while
  present with steps > 0) restarts the schedule and optimizer state from the stage before.

  A second cosine cycle is what lets a run that ended at a decayed learning rate keep
  learning; it is part of the recipe, so one `msr pretrain` reproduces every stage. A
  stage's `phases` ([steps, overrides of its mixture], in order) open it; its mixture runs
  to its end. Each stage's `optim` is a full optimizer config (`stage_optim`).
  """
  first = ml_collections.ConfigDict({
      "steps": cfg.train.steps, "optim": stage_optim(cfg, {}, cfg.train.steps),
      "phases": [[cfg.warmup_recall_steps, cfg.warmup_mixture.to_dict()]],
      "stream_seed": cfg.seed * 2, "induction_steps": cfg.get("induction_steps", 0)})
  out = [first]
  if cfg.stage2.steps > 0:
    out.append(ml_collections.ConfigDict({
        "steps": cfg.stage2.steps,
        "optim": stage_optim(cfg, cfg.stage2.get("optim"), cfg.stage2.steps),
        "phases": [[cfg.stage2.get("focus_steps", 0),
                    dict(cfg.stage2.get("focus_mixture", {}))]],
        "stream_seed": cfg.seed * 2 + 2, "mixture": cfg.stage2.mixture.to_dict()}))
  number = 3
  while len(out) == number - 1 and cfg.get(f"stage{number}") is not None:
    later = cfg[f"stage{number}"]
    if later.steps <= 0:
      break
    # Stage n's streams are seeded apart from the first two stages' (seed * 2 + 0..3) and
    # from each other's: seed * 2 + 10 * (n - 2), and + 1 + k for its phase k.
    out.append(ml_collections.ConfigDict({
        "steps": later.steps, "optim": stage_optim(cfg, later.get("optim"), later.steps),
        "phases": [[int(n), dict(over)] for n, over in later.get("phases", [])],
        "stream_seed": cfg.seed * 2 + 10 * (number - 2), "mixture": later.mixture.to_dict()}))
    number += 1
  for number, stage in enumerate(out, start=1):
    if sum(n for n, _ in stage.phases) + stage.get("induction_steps", 0) > stage.steps:
      raise ValueError(f"stage {number}: its opening phases run past its {stage.steps} steps")
  return out


def model_config(cfg: ml_collections.ConfigDict, vocab_size: int) -> ModelConfig:
  """The preset in `cfg.model.preset`, with any other `cfg.model` keys as overrides of its
  fields (e.g. num_heads and head_dim, which the preset would otherwise keep)."""
  tok = tokenizer.build()
  overrides = {k: v for k, v in cfg.model.items() if k != "preset"}
  unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(ModelConfig)})
  if unknown:
    raise ValueError(f"config.model: unknown ModelConfig field(s) {unknown}")
  return dataclasses.replace(
      ModelConfig.preset(cfg.model.preset, vocab_size=vocab_size, **overrides),
      bos_token_id=tok.token_to_id(tokenizer.BOS), eos_token_id=tok.token_to_id(tokenizer.EOT),
      pad_token_id=tok.token_to_id(tokenizer.PAD))


def batches(cfg: ml_collections.ConfigDict, stage: ml_collections.ConfigDict, world: World,
            tok):
  """The stage's induction batches, its opening phases' batches, then its main mixture.

  Stage 1 may start with `induction_steps` batches of content copies
  (`binding_tasks.copy_rows`: a random string, random filler, the string again), where the
  induction-head circuit forms that binding a note's value to its subject is built on.

  Each of a stage's `phases` is [steps, overrides of the main mixture]: notes only in
  stage 1 (associative recall), the focus mixture in stage 2 (decisions and told rules,
  whose copy circuits form only under focused data), the distractor curriculum of stage 3
  (the told rule's weather compared with the note's). Phase k reads its own stream, seeded
  `stream_seed + 1 + k`.
  """
  adapter, pad = tokenizer.adapter(tok), tok.token_to_id(tokenizer.PAD)
  main = corpus.Mixture(**{**cfg.mixture.to_dict(), **stage.get("mixture", {})})
  rows, seq_len = cfg.train.batch_size, cfg.train.seq_len
  main_stream = corpus.pack(corpus.records(world, stage.stream_seed, main), adapter, rows,
                            seq_len, pad)
  copies = binding_tasks.copy_stream(np.random.default_rng([stage.stream_seed, 3]), tok,
                                     rows, seq_len, fixed_offset=False)
  for _ in range(stage.get("induction_steps", 0)):
    yield next(copies)
  for k, (steps, overrides) in enumerate(stage.phases):
    mixture = dataclasses.replace(main, **overrides)
    phase_stream = corpus.pack(corpus.records(world, stage.stream_seed + 1 + k, mixture),
                               adapter, rows, seq_len, pad)
    for _ in range(steps):
      yield next(phase_stream)
  yield from main_stream


class PackedStream:
  """A stage's batches (`batches`) as the train loop's stream of `Batch`es, with a
  resumable position: the number drawn. Every stream is seeded, so rebuilding it and
  drawing that many again is exact."""

  def __init__(self, cfg, stage, world: World, tok):
    self.cfg, self.stage, self.world, self.tok = cfg, stage, world, tok
    self.document_mask = bool(cfg.train.document_mask)
    self.set_state({"drawn": 0})

  def next_batch(self) -> Batch:
    tokens_BxL, mask_BxL, segments_BxL = next(self._batches)
    self.drawn += 1
    return packed_batch(tokens_BxL, mask_BxL, segments_BxL if self.document_mask else None)

  def get_state(self) -> dict:
    return {"drawn": self.drawn}

  def set_state(self, state: dict) -> None:
    self._batches = batches(self.cfg, self.stage, self.world, self.tok)
    for _ in range(int(state["drawn"])):
      next(self._batches)
    self.drawn = int(state["drawn"])


def trainer_config(cfg: ml_collections.ConfigDict, stage: ml_collections.ConfigDict,
                   run_dir: str, init_digest: str) -> ml_collections.ConfigDict:
  """The stage's training config: `msr_jax.train.config`'s schema and defaults with what
  pre-training sets. `init_digest` (of the stage's starting weights) is part of it, so a
  stage whose earlier stage was re-run with other weights refuses to resume."""
  config = train_config.get_config()
  config.seed = cfg.seed
  config.run_dir = run_dir
  config.progress = False  # the log lines below say where it is
  config.tensorboard = True  # out/runs/stageN/tensorboard
  config.optim = ml_collections.ConfigDict(stage.optim.to_dict())
  config.train.mode = "full"
  config.train.steps = int(stage.steps)
  config.train.batch_size = int(cfg.train.batch_size)
  config.train.monitor_drift = False
  config.checkpoint.every = int(cfg.checkpoint.every)
  config.checkpoint.keep = int(cfg.checkpoint.keep)
  config.guard.every = 0
  config.init_digest = init_digest
  return config


def params_digest(params) -> str:
  """sha256 over the parameters' names, dtypes, shapes and bytes."""
  digest = hashlib.sha256()
  for name, array in sorted(checkpoint.flat_params(params).items()):
    array = np.ascontiguousarray(array)
    digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def make_step(graphdef, model_config: ModelConfig, optim_config):
  """(optimizer, jitted step(state, batch) -> (state, metrics)): the stage's train step
  on packed rows, for scripts that drive it themselves (`init_state(params, tx)`)."""
  from msr_jax import optim
  from msr_jax.train.step import jit_train_step, make_train_step
  tx = optim.make_optimizer(optim_config)
  step = make_train_step(graphdef, model_config, tx, "full", monitor_drift=False)
  return tx, jit_train_step(step, None)[0]


def world_settings(cfg: ml_collections.ConfigDict) -> dict:
  """What an evaluation needs to rebuild the checkpoint's world and probe items."""
  return {"world_seed": cfg.world.seed, "num_people": cfg.world.num_people,
          "probe_seed": cfg.probe_seed, "note_facts": list(cfg.mixture.get(
              "note_facts", corpus.Mixture().note_facts))}


def run(cfg: ml_collections.ConfigDict, out_dir: str, log: Callable[[str], None] = print,
        start_stage: int = 1, max_steps: int | None = None) -> dict:
  """Pre-trains every stage; writes the final weights (safetensors + config + tokenizer)
  to `out_dir` and returns cumulative training stats.

  Each stage but the last keeps its weights, stats, tokenizer and world settings in
  `out_dir/stageN` (a folder that loads as the final one does); with `start_stage=N`,
  stage N starts from `out_dir/stage{N-1}`, so a changed later stage can be re-run alone
  and gives what a run of every stage with the same config gives. A run that stopped
  (killed, or `max_steps`: stop after this many steps in all, for tests) continues from
  its stages' checkpoints when run again.
  """
  world, tok = World.build(cfg.world.seed, num_people=cfg.world.num_people), tokenizer.build()
  config = model_config(cfg, tok.get_vocab_size())
  _write_side_files(out_dir, tok, cfg)
  plan = stages(cfg)
  if start_stage == 1:
    graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(cfg.seed)), nnx.Param)
    params = nnx.to_pure_dict(params)
    stats = {"steps": 0, "tokens": 0, "trained_tokens": 0, "wall_s": 0.0, "losses": []}
  elif 2 <= start_stage <= len(plan):
    before = os.path.join(out_dir, f"stage{start_stage - 1}")
    stats_path = os.path.join(before, STATS_FILE)
    stats = checkpoint.read_json(stats_path, f"no finished stage {start_stage - 1} to "
                                 "continue from")
    done = sum(stage.steps for stage in plan[:start_stage - 1])
    if stats["steps"] != done:
      raise ValueError(f"{stats_path}: steps={stats['steps']}, but stages 1-"
                       f"{start_stage - 1} have {done}: stage {start_stage - 1} is not finished")
    _, graphdef, params = checkpoint.load(before)
    params = nnx.to_pure_dict(params)
  else:
    raise ValueError(f"start_stage={start_stage}, but the config has {len(plan)} stage(s)")
  offset = sum(stage.steps for stage in plan[:start_stage - 1])
  for number, stage in enumerate(plan[start_stage - 1:], start=start_stage):
    budget = None if max_steps is None else max_steps - offset
    params, finished = _run_stage(cfg, number, stage, world, tok, config, graphdef, params,
                                  out_dir, offset, stats, log, budget)
    if not finished:
      return stats
    offset += stage.steps
    if number < len(plan):
      stage_dir = os.path.join(out_dir, f"stage{number}")
      checkpoint.save(stage_dir, config, params)
      _write_side_files(stage_dir, tok, cfg)  # a stage folder loads like the final one
      atomic.write_json(os.path.join(stage_dir, STATS_FILE), stats)
  checkpoint.save(out_dir, config, params)
  atomic.write_json(os.path.join(out_dir, STATS_FILE), stats)
  log(f"weights -> {out_dir}")
  return stats


def _write_side_files(directory: str, tok, cfg: ml_collections.ConfigDict) -> None:
  """The tokenizer and world settings that evaluating the folder's weights needs."""
  tokenizer.save(tok, os.path.join(directory, checkpoint.TOKENIZER))
  atomic.write_json(os.path.join(directory, WORLD_FILE), world_settings(cfg))


def _run_stage(cfg, number, stage, world, tok, config, graphdef, params, out_dir, offset,
               stats, log, budget):
  """Trains one stage (or resumes it); adds its steps to `stats` from its metrics.jsonl.
  Returns (params, whether the stage ran to its end)."""
  run_dir = os.path.join(out_dir, RUNS, f"stage{number}")
  began = last_line = time.time()
  log_every = int(cfg.log_every)

  def log_progress(step: int, metrics: dict, _state) -> None:
    nonlocal last_line
    if step % log_every == 0 or step == stage.steps:
      now = time.time()
      tokens = int(cfg.train.batch_size) * int(cfg.train.seq_len)
      log(f"stage {number} step {offset + step:5d} loss {metrics['loss']:.4f} tokens/s "
          f"{tokens * log_every / max(now - last_line, 1e-9):,.0f} "
          f"elapsed {(now - began) / 60:.1f} min")
      last_line = now

  budget = None if budget is None else max(budget, 0)
  result = train_loop(trainer_config(cfg, stage, run_dir, params_digest(params)),
                      graphdef=graphdef, params=params, model_config=config,
                      stream=PackedStream(cfg, stage, world, tok), callbacks=[log_progress],
                      run_dir=run_dir, max_steps=budget)
  lines = [m for m in metrics_log.read(os.path.join(run_dir, "metrics.jsonl"))
           if m["type"] == "train"]
  stats["steps"] = offset + (lines[-1]["step"] if lines else 0)
  stats["tokens"] += sum(m["tokens"] for m in lines)
  stats["trained_tokens"] += int(round(sum(m["weight"] for m in lines)))
  # The steps' own wall time (`step_s`), kept by metrics.jsonl across a resume.
  stats["wall_s"] += sum(m.get("step_s", 0.0) for m in lines)
  stats["losses"] += [[offset + m["step"], m["loss"]] for m in lines
                      if m["step"] % log_every == 0 or m["step"] == stage.steps]
  finished = bool(lines) and lines[-1]["step"] == stage.steps
  if finished:
    log(f"stage {number} done at step {stats['steps']} -> {run_dir}")
  return result.state.params, finished
