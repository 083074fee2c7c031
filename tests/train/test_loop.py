"""The loop: exact resume after a kill, guard rollback / lr halving / stop, NaN skipping."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from msr_jax.data.jsonl import write_records
from msr_jax.runner.config import load_config
from msr_jax.train import metrics_log, setup
from msr_jax.train.loop import train_loop
from msr_jax.world import behaviour
from msr_jax.world.world import World


def small_config(tmp_path, **train):
  config = load_config("configs/train.py:smoke", [
      "--config.model.hidden_size=32", "--config.model.intermediate_size=64",
      "--config.progress=False", "--config.checkpoint.every=2", "--config.guard.every=3",
      "--config.guard.holdout_examples=2", "--config.guard.batch_size=2",
      "--config.data.townworld.count=24"])
  for key, value in train.items():
    section, field = key.split("__")
    config[section][field] = value
  return config


@pytest.fixture(scope="module")
def jsonl_path(tmp_path_factory):
  path = tmp_path_factory.mktemp("data") / "records.jsonl"
  write_records(path, behaviour.training_records(World.build(0), seed=1, count=24))
  return str(path)


def jsonl_config(tmp_path, jsonl_path, **train):
  config = small_config(tmp_path, **train)
  config.data.kind = "jsonl"
  config.data.paths = (jsonl_path,)
  return config


def test_killed_run_resumes_to_identical_metrics(tmp_path, jsonl_path):
  config = jsonl_config(tmp_path, jsonl_path, train__steps=6)
  straight = train_loop(config, run_dir=str(tmp_path / "a"))
  assert straight.summary["step"] == 6

  def kill_at_5(step, metrics, state):
    if step == 5:
      raise RuntimeError("simulated kill")
  with pytest.raises(RuntimeError, match="simulated kill"):
    train_loop(config, run_dir=str(tmp_path / "b"), callbacks=[kill_at_5])
  lines_killed = metrics_log.read(tmp_path / "b" / "metrics.jsonl")
  assert lines_killed[-1]["step"] == 5  # step 5 ran, after the checkpoint at 4
  resumed = train_loop(config, run_dir=str(tmp_path / "b"))
  assert resumed.summary["step"] == 6
  lines_a = metrics_log.read(tmp_path / "a" / "metrics.jsonl")
  lines_b = metrics_log.read(tmp_path / "b" / "metrics.jsonl")
  assert len(lines_a) == len(lines_b) > 6
  for line_a, line_b in zip(lines_a, lines_b):  # equal in all but the wall-clock fields
    assert metrics_log.computed(line_a) == metrics_log.computed(line_b)
  train_lines = [line for line in lines_b if line["type"] == "train"]
  assert all(line["step_s"] > 0 and line["tokens_per_s"] > 0 for line in train_lines)
  jax.tree_util.tree_map(np.testing.assert_array_equal, straight.state, resumed.state)
  kinds = {m["type"] for m in metrics_log.read(tmp_path / "a" / "metrics.jsonl")}
  assert kinds == {"train", "guard", "checkpoint"}


def scripted_probe(scores):
  calls = []
  def probe(params):
    calls.append(1)
    return scores[len(calls) - 1]
  return probe


def record_params():
  seen = {}
  def callback(step, metrics, state):
    seen[step] = (jax.device_get(state.params), metrics)
  return seen, callback


def test_guard_rolls_back_exactly_and_halves_lr(tmp_path):
  config = small_config(tmp_path, train__steps=7, guard__every=2, guard__threshold=0.1)
  seen, callback = record_params()
  # Probes at steps 0, 2, 4, 6: baseline, new best (good copy at step 2), a drop of 0.5
  # (rollback), within threshold.
  result = train_loop(config, run_dir=str(tmp_path / "g"), callbacks=[callback],
                      probe_fn=scripted_probe([0.0, 1.0, 0.5, 0.95]))
  jax.tree_util.tree_map(np.testing.assert_array_equal, seen[4][0], seen[2][0])
  assert not jax.tree_util.tree_all(jax.tree_util.tree_map(
      lambda a, b: np.array_equal(a, b), seen[3][0], seen[2][0]))
  base = config.optim.learning_rate
  assert [seen[s][1]["learning_rate"] for s in (1, 4)] == pytest.approx([base, base])
  assert [seen[s][1]["learning_rate"] for s in (5, 7)] == pytest.approx([base / 2] * 2)
  events = [m for m in metrics_log.read(tmp_path / "g" / "metrics.jsonl")
            if m["type"] == "guard"]
  assert [e["event"] for e in events] == ["baseline", "best", "rollback", "ok"]
  rollback = events[2]
  assert rollback["step"] == 4 and rollback["rollback_to_step"] == 2
  assert rollback["drop"] == pytest.approx(0.5) and rollback["lr_factor"] == 0.5
  assert result.summary["num_rollbacks"] == 1 and not result.summary["stopped_by_guard"]


def test_guard_stop_ends_run_on_good_params(tmp_path):
  config = small_config(tmp_path, train__steps=8, guard__every=2, guard__action="stop")
  seen, callback = record_params()
  result = train_loop(config, run_dir=str(tmp_path / "s"), callbacks=[callback],
                      probe_fn=scripted_probe([0.0, -1.0]))
  assert result.summary["step"] == 2 and result.summary["stopped_by_guard"]
  assert sorted(seen) == [1, 2]  # no step after the stop
  # Rolled back to the baseline: the initial weights, exactly.
  _, _, initial = setup.build_model(config.model, result.model_config.vocab_size, config.seed)
  jax.tree_util.tree_map(np.testing.assert_array_equal, jax.device_get(result.state.params),
                         initial)


def test_nonfinite_example_is_skipped_and_counted(tmp_path):
  config = small_config(tmp_path, train__steps=4, guard__every=0)
  adapter, vocab_size, _ = setup.make_adapter("msr_jax.world.tokenizer:training_adapter")
  sources = setup.load_sources(config, adapter)
  bad = dataclasses.replace(sources["townworld"][0], weight=float("nan"))
  sources = {"townworld": [bad] * 2}
  model_config, graphdef, params = setup.build_model(config.model, vocab_size, config.seed)
  result = train_loop(config, sources, graphdef=graphdef, params=params,
                      model_config=model_config, run_dir=str(tmp_path / "n"))
  # The step donates its state; the caller's parameters must survive it.
  jax.tree_util.tree_map(np.asarray, params)
  lines = [m for m in metrics_log.read(tmp_path / "n" / "metrics.jsonl") if m["type"] == "train"]
  assert all(m["skipped"] == 1 for m in lines) and result.summary["num_skipped"] == 4
  assert result.summary["step"] == 4


def test_a_second_run_reuses_the_step_and_gets_the_same_numbers(tmp_path, jsonl_path):
  from msr_jax.train import loop
  config = jsonl_config(tmp_path, jsonl_path, train__steps=3)
  config.checkpoint.every = 0  # Never checkpoint: a throw-away run.
  loop._STEP_CACHE.clear()
  first = train_loop(config, run_dir=str(tmp_path / "a"))
  assert len(loop._STEP_CACHE) == 1
  (_, jitted), = loop._STEP_CACHE.values()
  second = train_loop(config, run_dir=str(tmp_path / "b"))
  assert len(loop._STEP_CACHE) == 1 and next(iter(loop._STEP_CACHE.values()))[1] is jitted
  jax.tree_util.tree_map(np.testing.assert_array_equal, first.state, second.state)
  assert not (tmp_path / "a" / "checkpoints").exists() or not any(
      (tmp_path / "a" / "checkpoints").iterdir())
  # A different optimizer setting is a different step.
  config.optim.learning_rate = float(config.optim.learning_rate) * 2
  train_loop(config, run_dir=str(tmp_path / "c"))
  assert len(loop._STEP_CACHE) == 2


def _event_scalars(folder) -> dict[str, list[tuple[int, float]]]:
  """{tag: [(step, value)]} read from TensorBoard event files (TFRecord framing: length,
  its CRC, the Event proto, its CRC)."""
  import pathlib
  import struct
  from tensorboardX.proto import event_pb2
  out: dict = {}
  for path in sorted(pathlib.Path(folder).glob("events.out.tfevents.*")):
    data, at = path.read_bytes(), 0
    while at < len(data):
      (length,) = struct.unpack("<Q", data[at:at + 8])
      event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
      at += 12 + length + 4
      for value in event.summary.value:
        out.setdefault(value.tag, []).append((event.step, value.simple_value))
  return out


def test_metrics_also_go_to_tensorboard(tmp_path, jsonl_path):
  config = jsonl_config(tmp_path, jsonl_path, train__steps=4)
  config.tensorboard = True
  train_loop(config, run_dir=str(tmp_path / "tb"))
  scalars = _event_scalars(tmp_path / "tb" / "tensorboard")
  lines = [m for m in metrics_log.read(tmp_path / "tb" / "metrics.jsonl")
           if m["type"] == "train"]
  assert [step for step, _ in scalars["train/loss"]] == [1, 2, 3, 4]
  np.testing.assert_allclose([v for _, v in scalars["train/loss"]],
                             [m["loss"] for m in lines], rtol=1e-6)
  assert "train/tokens_per_s" in scalars and "train/grad_norm" in scalars
  assert [step for step, _ in scalars["guard/score"]] == [
      m["step"] for m in metrics_log.read(tmp_path / "tb" / "metrics.jsonl")
      if m["type"] == "guard"]
