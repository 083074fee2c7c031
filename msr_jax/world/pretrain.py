"""Pre-training the Townworld base model: a full-sequence masked LM step and its loop.

The step is minimal on purpose (forward + masked cross-entropy + one optax update, with the
parameters and optimizer state passed into `jax.jit` as arguments): `msr_jax.train` owns
the general step (full or context-frozen); this one only needs packed rows with a loss
mask, and can be unified with it later without changing the checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

import jax
import ml_collections
import numpy as np
import optax
from flax import nnx

from msr_jax import atomic
from msr_jax.model import Decoder, ModelConfig, forward
from msr_jax.train.losses import masked_cross_entropy
from msr_jax.world import binding_tasks, checkpoint, corpus, tokenizer
from msr_jax.world.world import World

WORLD_FILE = "townworld.json"  # read back by msr_jax.eval.probes_card
STATS_FILE = "train_stats.json"


def make_train_step(graphdef, tx: optax.GradientTransformation,
                    document_mask: bool = False) -> Callable:
  """(params, opt_state, tokens_BxL, mask_BxL, segments_BxL) -> (params, opt_state, loss),
  jitted.

  `mask_BxL[:, t]` is 1 where `tokens_BxL[:, t + 1]` is a trained target. With
  `document_mask`, each packed record (`segments_BxL`, from `corpus.pack`) attends only
  within itself from position 0, as the probes and every later stage see a record;
  without it, a record also sees the records packed before it in its row.
  """
  def loss_fn(params, tokens_BxL, mask_BxL, segments_BxL):
    logits_BxLxV, _ = forward(graphdef, params, tokens_BxL,
                              segment_ids_BxT=segments_BxL if document_mask else None)
    return masked_cross_entropy(logits_BxLxV[:, :-1], tokens_BxL[:, 1:], mask_BxL[:, :-1])

  def step(params, opt_state, tokens_BxL, mask_BxL, segments_BxL):
    loss, grads = jax.value_and_grad(loss_fn)(params, tokens_BxL, mask_BxL, segments_BxL)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return jax.jit(step, donate_argnums=(0, 1))


def optimizer(stage: ml_collections.ConfigDict, clip_norm: float,
              weight_decay: float) -> optax.GradientTransformation:
  """AdamW with warm-up and cosine decay over the stage's steps."""
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, stage.lr, stage.warmup_steps, stage.steps,
      end_value=stage.lr * stage.final_lr_fraction)
  return optax.chain(optax.clip_by_global_norm(clip_norm),
                     optax.adamw(schedule, b1=0.9, b2=0.98, weight_decay=weight_decay))


def stages(cfg: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
  """Stage 1 from scratch; each later stage (`cfg.stage2`, `cfg.stage3`, ..., in order while
  present with steps > 0) restarts the schedule and optimizer state from the stage before.

  A second cosine cycle is what lets a run that ended at a decayed learning rate keep
  learning; it is part of the recipe, so one `msr pretrain` reproduces every stage. A
  stage's `phases` ([steps, overrides of its mixture], in order) open it; its mixture runs
  to its end.
  """
  first = ml_collections.ConfigDict({
      "lr": cfg.lr, "warmup_steps": cfg.warmup_steps, "steps": cfg.steps,
      "final_lr_fraction": cfg.final_lr_fraction,
      "phases": [[cfg.warmup_recall_steps, cfg.warmup_mixture.to_dict()]],
      "stream_seed": cfg.seed * 2, "induction_steps": cfg.get("induction_steps", 0)})
  out = [first]
  if cfg.stage2.steps > 0:
    out.append(ml_collections.ConfigDict({
        "lr": cfg.stage2.lr, "warmup_steps": cfg.stage2.warmup_steps,
        "steps": cfg.stage2.steps, "final_lr_fraction": cfg.final_lr_fraction,
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
        "lr": later.lr, "warmup_steps": later.warmup_steps, "steps": later.steps,
        "final_lr_fraction": cfg.final_lr_fraction,
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
  main_stream = corpus.pack(corpus.records(world, stage.stream_seed, main), adapter,
                            cfg.batch_size, cfg.seq_len, pad)
  copies = binding_tasks.copy_stream(np.random.default_rng([stage.stream_seed, 3]), tok,
                                     cfg.batch_size, cfg.seq_len, fixed_offset=False)
  for _ in range(stage.get("induction_steps", 0)):
    yield next(copies)
  for k, (steps, overrides) in enumerate(stage.phases):
    mixture = dataclasses.replace(main, **overrides)
    phase_stream = corpus.pack(corpus.records(world, stage.stream_seed + 1 + k, mixture),
                               adapter, cfg.batch_size, cfg.seq_len, pad)
    for _ in range(steps):
      yield next(phase_stream)
  yield from main_stream


def world_settings(cfg: ml_collections.ConfigDict) -> dict:
  """What an evaluation needs to rebuild the checkpoint's world and probe items."""
  return {"world_seed": cfg.world.seed, "num_people": cfg.world.num_people,
          "probe_seed": cfg.probe_seed, "note_facts": list(cfg.mixture.get(
              "note_facts", corpus.Mixture().note_facts))}


def run(cfg: ml_collections.ConfigDict, out_dir: str, log: Callable[[str], None] = print,
        start_stage: int = 1) -> dict:
  """Pre-trains; checkpoints to `out_dir` every `checkpoint_every` steps.

  Each stage but the last keeps its weights, stats, tokenizer and world settings in
  `out_dir/stageN` (a folder that loads as the final one does); with
  `start_stage=N`, stage N starts from `out_dir/stage{N-1}`, so a changed later stage can
  be re-run alone and gives what a run of every stage with the same config gives. Returns
  cumulative training stats.
  """
  world, tok = World.build(cfg.world.seed, num_people=cfg.world.num_people), tokenizer.build()
  config = model_config(cfg, tok.get_vocab_size())
  _write_side_files(out_dir, tok, cfg)
  plan = stages(cfg)
  if start_stage == 1:
    graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(cfg.seed)), nnx.Param)
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
  else:
    raise ValueError(f"start_stage={start_stage}, but the config has {len(plan)} stage(s)")
  offset = sum(stage.steps for stage in plan[:start_stage - 1])
  for number, stage in enumerate(plan[start_stage - 1:], start=start_stage):
    params = _run_stage(cfg, stage, world, tok, config, graphdef, params, out_dir, offset,
                        stats, log)
    offset += stage.steps
    if number < len(plan):
      stage_dir = os.path.join(out_dir, f"stage{number}")
      checkpoint.save(stage_dir, config, params)
      _write_side_files(stage_dir, tok, cfg)  # a stage folder loads like the final one
      atomic.write_json(os.path.join(stage_dir, STATS_FILE), stats)
  return stats


def _write_side_files(directory: str, tok, cfg: ml_collections.ConfigDict) -> None:
  """The tokenizer and world settings that evaluating the folder's weights needs."""
  tokenizer.save(tok, os.path.join(directory, checkpoint.TOKENIZER))
  atomic.write_json(os.path.join(directory, WORLD_FILE), world_settings(cfg))


def _run_stage(cfg, stage, world, tok, config, graphdef, params, out_dir, offset, stats,
               log):
  tx = optimizer(stage, cfg.clip_norm, cfg.weight_decay)
  opt_state = tx.init(params)
  # A config without the key predates the mask: its cards were built without it.
  step_fn = make_train_step(graphdef, tx, cfg.get("document_mask", False))
  data = batches(cfg, stage, world, tok)
  start, wall_before, tokens_before = time.time(), stats["wall_s"], stats["tokens"]
  last = offset + stage.steps
  for step in range(offset + 1, last + 1):
    tokens_BxL, mask_BxL, segments_BxL = next(data)
    params, opt_state, loss = step_fn(params, opt_state, tokens_BxL, mask_BxL, segments_BxL)
    stats["tokens"] += int(tokens_BxL.size)
    stats["trained_tokens"] += int(mask_BxL.sum())
    if step % cfg.log_every == 0 or step == last:
      elapsed = time.time() - start
      stats["losses"].append([step, float(loss)])
      log(f"step {step:5d} loss {float(loss):.4f} tokens/s "
          f"{(stats['tokens'] - tokens_before) / elapsed:,.0f} elapsed {elapsed / 60:.1f} min")
    if step % cfg.checkpoint_every == 0 or step == last:
      stats.update(steps=step, wall_s=wall_before + time.time() - start)
      checkpoint.save(out_dir, config, params)
      atomic.write_json(os.path.join(out_dir, STATS_FILE), stats)
      log(f"checkpoint at step {step} -> {out_dir}")
  return params
