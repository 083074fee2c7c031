"""Tests of the pre-training step and the base checkpoint's file format."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil

import numpy as np
import pytest
from flax import nnx

from msr_jax.data.batch import packed_batch
from msr_jax.model import Decoder, ModelConfig, forward
from msr_jax.train.state import init_state
from msr_jax.world import checkpoint, corpus, pretrain, tokenizer
from msr_jax.world.world import World

TOK = tokenizer.build()


def _tiny_config() -> ModelConfig:
  return dataclasses.replace(
      ModelConfig.preset("townworld_tiny", vocab_size=TOK.get_vocab_size()), hidden_size=32,
      intermediate_size=64, num_layers=1, num_heads=2, num_kv_heads=2, head_dim=16)


@pytest.mark.parametrize("document_mask", [False, True])
def test_train_step_lowers_the_masked_loss_on_a_fixed_batch(document_mask):
  config = _tiny_config()
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(0)), nnx.Param)
  stream = corpus.records(World.build(0), 0, corpus.Mixture())
  tokens, mask, segments = next(corpus.pack(stream, tokenizer.adapter(TOK), 4, 128, 0))
  batch = packed_batch(tokens, mask, segments if document_mask else None)
  tx, step = pretrain.make_step(graphdef, config, {"name": "adam", "learning_rate": 1e-2})
  state, losses = init_state(params, tx), []
  for _ in range(8):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  assert np.isfinite(losses).all() and losses[-1] < losses[0] - 0.5


@pytest.mark.parametrize("document_mask", [False, True])
def test_packed_rows_train_the_plain_masked_language_model_loss(document_mask):
  """The train step's loss and gradient on packed rows equal those of the plain
  formulation: one forward over the rows, cross-entropy of logits[:, t] against
  tokens[:, t + 1] where mask[:, t] is 1, averaged (`jax.grad` of it)."""
  import jax
  from msr_jax.train.losses import masked_cross_entropy
  from msr_jax.train.objectives import loss_sums
  config = _tiny_config()
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(2)), nnx.Param)
  params = nnx.to_pure_dict(params)
  stream = corpus.records(World.build(0), 2, corpus.Mixture())
  tokens, mask, segments = next(corpus.pack(stream, tokenizer.adapter(TOK), 3, 128, 0))
  segment_ids = segments if document_mask else None
  batch = packed_batch(tokens, mask, segment_ids)

  def plain(p):
    logits, _ = forward(graphdef, p, tokens, segment_ids_BxT=segment_ids)
    return masked_cross_entropy(logits[:, :-1], tokens[:, 1:], mask[:, :-1])

  def ours(p):
    total, weight = loss_sums("full", graphdef, p, batch, config)
    return total / weight

  want, want_grads = jax.value_and_grad(plain)(params)
  got, got_grads = jax.value_and_grad(ours)(params)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7),
                         got_grads, want_grads)
  with pytest.raises(ValueError, match="full backprop only"):
    loss_sums("context_frozen", graphdef, params, packed_batch(tokens, mask, segments), config)


def test_document_mask_computes_each_packed_record_as_if_alone():
  """With the document mask, every packed record's logits equal those of a plain causal
  forward of that record alone, from position 0; without it, later records differ."""
  graphdef, params = nnx.split(Decoder(_tiny_config(), rngs=nnx.Rngs(3)), nnx.Param)
  stream = corpus.records(World.build(0), 1, corpus.Mixture())
  tokens_BxL, mask_BxL, segments_BxL = next(
      corpus.pack(stream, tokenizer.adapter(TOK), 3, 128, 0))
  assert (segments_BxL.max(1) >= 2).all()  # every row packs several records
  packed_BxLxV, _ = forward(graphdef, params, tokens_BxL, segment_ids_BxT=segments_BxL)
  plain_BxLxV, _ = forward(graphdef, params, tokens_BxL)
  for b in range(tokens_BxL.shape[0]):
    for segment in range(1, segments_BxL[b].max() + 1):
      where = np.flatnonzero(segments_BxL[b] == segment)
      alone_1xTxV, _ = forward(graphdef, params, tokens_BxL[b:b + 1, where])
      np.testing.assert_allclose(packed_BxLxV[b, where], alone_1xTxV[0], atol=2e-5)
      if segment > 1:  # without the mask a later record sees the ones before it
        assert np.abs(plain_BxLxV[b, where] - alone_1xTxV[0]).max() > 1e-3


def test_checkpoint_round_trip(tmp_path):
  config = _tiny_config()
  _, params = nnx.split(Decoder(config, rngs=nnx.Rngs(1)), nnx.Param)
  checkpoint.save(str(tmp_path), config, params)
  loaded_config, _, loaded = checkpoint.load(str(tmp_path))
  assert loaded_config == config
  a, b = checkpoint.flat_params(params), checkpoint.flat_params(loaded)
  assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
  assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temp files left
  # The pure dict that experiments train (`nnx.to_pure_dict`) saves the same file.
  checkpoint.save(str(tmp_path / "pure"), config, nnx.to_pure_dict(params))
  c = checkpoint.flat_params(checkpoint.load(str(tmp_path / "pure"))[2])
  assert c.keys() == a.keys() and all(np.array_equal(a[k], c[k]) for k in a)


def test_checkpoint_errors_name_the_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="model_config.json"):
    checkpoint.load(str(tmp_path))
  config = _tiny_config()
  _, params = nnx.split(Decoder(config, rngs=nnx.Rngs(1)), nnx.Param)
  checkpoint.save(str(tmp_path), config, params)
  fields = dataclasses.asdict(dataclasses.replace(config, hidden_size=48, head_dim=24))
  with open(tmp_path / checkpoint.CONFIG, "w") as f:
    json.dump(fields, f)
  with pytest.raises(ValueError, match="params.safetensors: parameter .*: shape .* does not "
                                       "match the config's"):
    checkpoint.load(str(tmp_path))
  fields["not_a_field"] = 1
  with open(tmp_path / checkpoint.CONFIG, "w") as f:
    json.dump(fields, f)
  with pytest.raises(ValueError, match="model_config.json: unknown config fields"):
    checkpoint.load(str(tmp_path))


def test_recipe_has_four_stages_with_their_own_data_streams():
  from msr_jax.runner.config import load_config
  path = str(pathlib.Path(__file__).resolve().parents[2] / "configs" / "townworld.py")
  cfg = load_config(path)
  plan = pretrain.stages(cfg)
  assert [stage.steps for stage in plan] == [cfg.train.steps, cfg.stage2.steps, cfg.stage3.steps,
                                             cfg.stage4.steps]
  seeds = [stage.stream_seed + k for stage in plan for k in range(len(stage.phases) + 1)]
  assert len(set(seeds)) == len(seeds)  # every stage's and phase's stream is its own
  assert (plan[0].phases[0][0], plan[1].phases[0][0]) == (
      cfg.warmup_recall_steps, cfg.stage2.get("focus_steps", 0))
  assert len(pretrain.stages(load_config(path, ["--config.stage3.steps=0"]))) == 2
  assert len(pretrain.stages(load_config(path, ["--config.stage2.steps=0"]))) == 1
  with pytest.raises(ValueError, match="stage 3: its opening phases run past"):
    pretrain.stages(load_config(path, ["--config.stage3.steps=1000"]))


def test_a_later_stage_alone_equals_every_stage(tmp_path):
  from msr_jax.runner.config import load_config
  from msr_jax.runner.arm_probes import load_base
  path = str(pathlib.Path(__file__).resolve().parents[2] / "configs" / "townworld.py")
  cfg = load_config(path + ":smoke")
  both = str(tmp_path / "both")
  stats_both = pretrain.run(cfg, both, log=lambda _: None)
  _, _, params_both = checkpoint.load(both)
  flat_both = checkpoint.flat_params(params_both)
  for number in (1, 2, 3):  # every stage folder loads as a base, as the final one does
    assert load_base(str(tmp_path / "both" / f"stage{number}")).world.seed == cfg.world.seed
  for start_stage in (4, 3, 2):  # Each run alone rewrites the stages after it, unchanged.
    with pytest.raises(FileNotFoundError, match=f"no finished stage {start_stage - 1}"):
      pretrain.run(cfg, str(tmp_path / "empty"), log=lambda _: None, start_stage=start_stage)
    stats_again = pretrain.run(cfg, both, log=lambda _: None, start_stage=start_stage)
    _, _, params_again = checkpoint.load(both)
    for key in ("steps", "tokens", "trained_tokens", "losses"):
      assert stats_again[key] == stats_both[key], (start_stage, key)
    flat_again = checkpoint.flat_params(params_again)
    assert flat_both.keys() == flat_again.keys()
    for name in flat_both:
      np.testing.assert_array_equal(flat_both[name], flat_again[name],
                                    err_msg=f"stage {start_stage}: {name}")


def test_a_stopped_run_continues_to_the_same_weights(tmp_path):
  """Stopped mid-stage (stage 2 of 4) and run again, pre-training resumes from the stage's
  checkpoint and the data stream's position and ends bit for bit where an uninterrupted
  run does; a stage whose starting weights changed refuses to resume."""
  from msr_jax.runner.config import load_config
  from msr_jax.train.run_folder import RunFolderError
  path = str(pathlib.Path(__file__).resolve().parents[2] / "configs" / "townworld.py")
  cfg = load_config(path + ":smoke", ["--config.checkpoint.every=1"])
  whole = pretrain.run(cfg, str(tmp_path / "whole"), log=lambda _: None)
  stopped = pretrain.run(cfg, str(tmp_path / "again"), log=lambda _: None, max_steps=4)
  assert stopped["steps"] == 4 and not (tmp_path / "again" / "stage2").exists()
  again = pretrain.run(cfg, str(tmp_path / "again"), log=lambda _: None)
  for key in ("steps", "tokens", "trained_tokens", "losses"):
    assert again[key] == whole[key], key
  a = checkpoint.flat_params(checkpoint.load(str(tmp_path / "whole"))[2])
  b = checkpoint.flat_params(checkpoint.load(str(tmp_path / "again"))[2])
  assert a.keys() == b.keys()
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  # Stage 1 re-run with another learning rate (its folder deleted) gives other weights:
  # stage 2, whose own config is unchanged, refuses to continue from them.
  changed = load_config(path + ":smoke", ["--config.checkpoint.every=1",
                                          "--config.optim.learning_rate=0.002"])
  shutil.rmtree(tmp_path / "again" / pretrain.RUNS / "stage1")
  with pytest.raises(RunFolderError, match="init_digest"):
    pretrain.run(changed, str(tmp_path / "again"), log=lambda _: None)


def test_stage_three_grows_the_notes_of_rules_for_any_item():
  """Stage 3's phases: told rules for any item only, on notes of at most 0, 1, 2, 3, then
  5 distractor clauses; stage 4 tells every kind of rule again."""
  from msr_jax.runner.config import load_config
  path = str(pathlib.Path(__file__).resolve().parents[2] / "configs" / "townworld.py")
  cfg = load_config(path)
  third, fourth = pretrain.stages(cfg)[2:]
  main = corpus.Mixture(**{**cfg.mixture.to_dict(), **third.mixture})
  assert main.rule_any_item == 1.0 and main.max_distractors == 5
  assert [over["max_distractors"] for _, over in third.phases] == [0, 1, 2, 3]
  last = corpus.Mixture(**{**cfg.mixture.to_dict(), **fourth.mixture})
  assert last.rule_any_item is None and last.rule_weather_miss == 0.5
  world = World.build(cfg.world.seed, num_people=cfg.world.num_people)
  rng = np.random.default_rng(0)
  for _, over in third.phases:
    mixture = dataclasses.replace(main, **over)
    for _ in range(20):
      record = corpus.sample_record(world, rng, "rule", "r", mixture)
      assert record.meta["rule"].startswith("rule : if the weather is ")
      assert " and the item is " not in record.meta["rule"]
      assert record.meta["num_distractors"] <= over["max_distractors"]


def test_each_stage_opens_with_its_own_mixture():
  """Stage 1 opens with notes only, stage 2 with its focus mixture (decisions and rules):
  told apart by their headers, "question :" for notes, "request :" for decision episodes."""
  from msr_jax.runner.config import load_config
  path = str(pathlib.Path(__file__).resolve().parents[2] / "configs" / "townworld.py")
  cfg = load_config(path + ":smoke", [
      "--config.warmup_recall_steps=2", "--config.stage2.focus_steps=2",
      "--config.stage2.focus_mixture.decision=0.5", "--config.stage2.focus_mixture.rule=0.5",
      *[f"--config.stage2.focus_mixture.{kind}=0.0"
        for kind in ("bio", "qa", "note", "counterfactual", "items", "situation")]])
  first, second = pretrain.stages(cfg)[:2]
  world = World.build(cfg.world.seed, num_people=cfg.world.num_people)
  question, request = TOK.token_to_id("question"), TOK.token_to_id("request")

  def kinds(stage, n):
    data = pretrain.batches(cfg, stage, world, TOK)
    return [({question, request} & set(next(data)[0].ravel().tolist())) for _ in range(n)]

  assert kinds(first, 2) == [{question}, {question}]  # notes only
  assert kinds(second, 2) == [{request}, {request}]  # decisions and rules only
  assert any(question in k for k in kinds(second, 8)[2:])  # then the main mixture


def test_stage_one_can_open_with_content_copies_before_the_notes():
  from msr_jax.runner.config import load_config
  path = str(pathlib.Path(__file__).resolve().parents[2] / "configs" / "townworld.py")
  cfg = load_config(path + ":smoke", ["--config.induction_steps=2",
                                      "--config.warmup_recall_steps=1"])
  first, second = pretrain.stages(cfg)[:2]
  assert (first.induction_steps, second.get("induction_steps", 0)) == (2, 0)
  world = World.build(cfg.world.seed, num_people=cfg.world.num_people)
  data = pretrain.batches(cfg, first, world, TOK)
  question = TOK.token_to_id("question")
  for _ in range(2):
    tokens, mask, segments = next(data)
    assert question not in tokens  # random strings, not records
    for row, mask_row in zip(tokens, mask):  # the masked targets repeat the row's string
      marked = np.flatnonzero(mask_row)
      n, second_copy = len(marked) + 1, marked[0]
      np.testing.assert_array_equal(row[second_copy:second_copy + n], row[1:1 + n])
    np.testing.assert_array_equal(segments, tokens != 0)
  assert question in next(data)[0]  # then the notes warm-up


def test_recipe_opens_with_copies_then_one_attribute_notes():
  from msr_jax.runner.config import load_config
  path = str(pathlib.Path(__file__).resolve().parents[2] / "configs" / "townworld.py")
  cfg = load_config(path)
  first = pretrain.stages(cfg)[0]
  assert (first.induction_steps, first.phases[0][0], first.steps) == (2000, 1500, 5300)
  assert first.phases[0][1]["situation"] == 0.5
  assert pretrain.model_config(cfg, TOK.get_vocab_size()).num_layers == 3
  world = World.build(cfg.world.seed, num_people=cfg.world.num_people)
  first.induction_steps, first.phases[0][0] = 0, 1
  notes = pretrain.batches(cfg, first, world, TOK)
  opening = next(notes)[0]
  verbs = {TOK.token_to_id(w) for w in ("lives", "works", "enjoys", "owns", "likes")}
  records = [record for row in opening
             for record in np.split(row, np.flatnonzero(row == TOK.token_to_id(tokenizer.BOS))[1:])]
  assert len(records) > 16
  # Every note of the opening states one attribute (one clause verb per record); the rest
  # are situation questions, which state none and always carry the note's weather clause.
  counts = [len(verbs & set(r.tolist())) for r in records]
  assert set(counts) == {0, 1}
  assert all(TOK.token_to_id("weather") in r for r, c in zip(records, counts) if c == 0)


def test_model_config_takes_overrides_of_the_preset():
  import ml_collections
  cfg = ml_collections.ConfigDict({"model": {"preset": "townworld_tiny", "num_heads": 8,
                                             "num_kv_heads": 8, "head_dim": 16}})
  config = pretrain.model_config(cfg, TOK.get_vocab_size())
  assert (config.num_heads, config.num_kv_heads, config.head_dim) == (8, 8, 16)
  assert config.hidden_size == ModelConfig.preset("townworld_tiny", vocab_size=1).hidden_size
  cfg.model.num_head = 4
  with pytest.raises(ValueError, match=r"config.model: unknown .*num_head"):
    pretrain.model_config(cfg, TOK.get_vocab_size())


def test_the_recipe_file_holds_the_shipped_recipe_and_smoke_only():
  from msr_jax.runner.config import ConfigError, load_config
  path = str(pathlib.Path(__file__).resolve().parents[2] / "configs" / "townworld.py")
  assert len(pretrain.stages(load_config(path))) == 4
  with pytest.raises(ConfigError, match="unknown argument 'four_layers'.*commit b7dc92b"):
    load_config(f"{path}:four_layers")


def test_the_stage_step_equals_the_plain_formulation_bit_for_bit():
  """The train step on packed rows gives exactly the parameters of `jax.grad` of the mean
  masked loss + optax's AdamW with the stage's schedule: the formulation that built the
  shipped base, so pre-training on the train loop keeps its numerics."""
  import jax
  import jax.numpy as jnp
  import optax
  from msr_jax.runner.config import load_config
  from msr_jax.train.losses import masked_cross_entropy
  path = str(pathlib.Path(__file__).resolve().parents[2] / "configs" / "townworld.py")
  cfg = load_config(path)
  stage = pretrain.stages(cfg)[1]
  o = stage.optim
  config = _tiny_config()
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(4)), nnx.Param)
  params = nnx.to_pure_dict(params)
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, o.learning_rate, o.warmup_steps, o.total_steps,
      end_value=o.learning_rate * o.final_lr_ratio)
  plain_tx = optax.chain(optax.clip_by_global_norm(o.clip_norm),
                         optax.adamw(schedule, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay))

  @jax.jit
  def plain_step(p, opt_state, tokens, mask, segments):
    def loss(q):
      logits, _ = forward(graphdef, q, tokens, segment_ids_BxT=segments)
      return masked_cross_entropy(logits[:, :-1], tokens[:, 1:], mask[:, :-1])
    grads = jax.grad(loss)(p)
    updates, opt_state = plain_tx.update(grads, opt_state, p)
    return optax.apply_updates(p, updates), opt_state

  tx, step = pretrain.make_step(graphdef, config, stage.optim)
  state = init_state(params, tx)
  plain = (jax.tree.map(jnp.array, params), plain_tx.init(params))
  stream = corpus.records(World.build(0), 5, corpus.Mixture())
  rows = corpus.pack(stream, tokenizer.adapter(TOK), 4, 128, 0)
  for _ in range(6):
    tokens, mask, segments = next(rows)
    plain = plain_step(*plain, tokens, mask, segments)
    state, _ = step(state, packed_batch(tokens, mask, segments))
  jax.tree.map(np.testing.assert_array_equal, state.params, plain[0])
