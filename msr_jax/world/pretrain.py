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
import optax
from flax import nnx

from msr_jax.model import Decoder, ModelConfig, forward
from msr_jax.train.losses import masked_cross_entropy
from msr_jax.world import checkpoint, corpus, tokenizer
from msr_jax.world.world import World

WORLD_FILE = "townworld.json"  # read back by msr_jax.eval.probes_card


def make_train_step(graphdef, tx: optax.GradientTransformation) -> Callable:
  """(params, opt_state, tokens_BxL, mask_BxL) -> (params, opt_state, loss), jitted.

  `mask_BxL[:, t]` is 1 where `tokens_BxL[:, t + 1]` is a trained target.
  """
  def loss_fn(params, tokens_BxL, mask_BxL):
    logits_BxLxV, _ = forward(graphdef, params, tokens_BxL)
    return masked_cross_entropy(logits_BxLxV[:, :-1], tokens_BxL[:, 1:], mask_BxL[:, :-1])

  def step(params, opt_state, tokens_BxL, mask_BxL):
    loss, grads = jax.value_and_grad(loss_fn)(params, tokens_BxL, mask_BxL)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return jax.jit(step, donate_argnums=(0, 1))


def optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, cfg.lr, cfg.warmup_steps, cfg.steps, end_value=cfg.lr * cfg.final_lr_fraction)
  return optax.chain(optax.clip_by_global_norm(cfg.clip_norm),
                     optax.adamw(schedule, b1=0.9, b2=0.98, weight_decay=cfg.weight_decay))


def model_config(cfg: ml_collections.ConfigDict, vocab_size: int) -> ModelConfig:
  tok = tokenizer.build()
  return dataclasses.replace(
      ModelConfig.preset(cfg.model.preset, vocab_size=vocab_size),
      bos_token_id=tok.token_to_id(tokenizer.BOS), eos_token_id=tok.token_to_id(tokenizer.EOT),
      pad_token_id=tok.token_to_id(tokenizer.PAD))


def batches(cfg: ml_collections.ConfigDict, world: World, tok):
  """Warm-up batches (note-heavy mixture) for `warmup_recall_steps`, then the main mixture."""
  adapter, pad = tokenizer.adapter(tok), tok.token_to_id(tokenizer.PAD)
  main = corpus.Mixture(**cfg.mixture.to_dict())
  warm = dataclasses.replace(main, **cfg.warmup_mixture.to_dict())
  warm_stream = corpus.pack(corpus.records(world, cfg.seed * 2 + 1, warm), adapter,
                            cfg.batch_size, cfg.seq_len, pad)
  main_stream = corpus.pack(corpus.records(world, cfg.seed * 2, main), adapter,
                            cfg.batch_size, cfg.seq_len, pad)
  for _ in range(cfg.warmup_recall_steps):
    yield next(warm_stream)
  yield from main_stream


def world_settings(cfg: ml_collections.ConfigDict) -> dict:
  """What an evaluation needs to rebuild the checkpoint's world and probe items."""
  return {"world_seed": cfg.world.seed, "num_people": cfg.world.num_people,
          "probe_seed": cfg.probe_seed, "note_facts": list(cfg.mixture.get(
              "note_facts", corpus.Mixture().note_facts))}


def run(cfg: ml_collections.ConfigDict, out_dir: str, log: Callable[[str], None] = print,
        evaluate: Callable | None = None) -> dict:
  """Pre-trains from scratch; checkpoints to `out_dir` every `checkpoint_every` steps.

  `evaluate(out_dir)` (optional) is called after each checkpoint. Returns training stats.
  """
  world, tok = World.build(cfg.world.seed, num_people=cfg.world.num_people), tokenizer.build()
  config = model_config(cfg, tok.get_vocab_size())
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(cfg.seed)), nnx.Param)
  tx = optimizer(cfg)
  opt_state = tx.init(params)
  step_fn = make_train_step(graphdef, tx)
  tokenizer.save(tok, os.path.join(out_dir, checkpoint.TOKENIZER))
  checkpoint.write_json(os.path.join(out_dir, WORLD_FILE), world_settings(cfg))
  stats = {"steps": 0, "tokens": 0, "trained_tokens": 0, "wall_s": 0.0, "losses": []}
  start = time.time()
  data = batches(cfg, world, tok)
  for step in range(1, cfg.steps + 1):
    tokens_BxL, mask_BxL = next(data)
    params, opt_state, loss = step_fn(params, opt_state, tokens_BxL, mask_BxL)
    stats["tokens"] += int(tokens_BxL.size)
    stats["trained_tokens"] += int(mask_BxL.sum())
    if step % cfg.log_every == 0 or step == cfg.steps:
      loss = float(loss)
      elapsed = time.time() - start
      stats["losses"].append([step, loss])
      log(f"step {step:5d} loss {loss:.4f} tokens/s {stats['tokens'] / elapsed:,.0f} "
          f"elapsed {elapsed / 60:.1f} min")
    if step % cfg.checkpoint_every == 0 or step == cfg.steps:
      stats.update(steps=step, wall_s=time.time() - start)
      checkpoint.save(out_dir, config, params)
      checkpoint.write_json(os.path.join(out_dir, "train_stats.json"), stats)
      log(f"checkpoint at step {step} -> {out_dir}")
      if evaluate is not None:
        evaluate(out_dir)
  stats.update(steps=cfg.steps, wall_s=time.time() - start)
  return stats

