"""The efficacy gate (`config.gate`, `train/gate.py`): a run stops at the first check that
reaches the target, runs to the cap when it never does, logs every check, and a resumed
run keeps what the gate decided."""

from __future__ import annotations

import json

import pytest

from msr_jax.train import metrics_log
from msr_jax.train.gate import EfficacyGate
from msr_jax.train.loop import train_loop
from test_train_from_checkpoint import _config, _hf_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return _hf_folder(tmp_path_factory.mktemp("hf") / "m", "llama")


def _gate_lines(run_dir):
  return [m for m in metrics_log.read(f"{run_dir}/metrics.jsonl") if m["type"] == "gate"]


def test_the_gate_rules():
  gate = EfficacyGate(every=5, target=0.5)
  assert gate.due(0) and gate.due(10) and not gate.due(3)
  assert not gate.observe(0, 0.1)["reached"]
  assert gate.observe(5, 0.5)["reached"] and gate.state.step == 5
  assert gate.observe(10, 0.2)["reached"] and gate.state.step == 5  # reached stays reached
  with pytest.raises(ValueError):
    EfficacyGate(every=5, target=0.0)
  with pytest.raises(ValueError):
    gate.observe(15, float("nan"))


def test_a_run_stops_where_the_gate_is_reached_and_resumes_stopped(tmp_path, folder):
  checks = []
  def rising(params):  # 0.0, 0.3, 0.6, 0.9, ...: reaches 0.8 at the fourth check (step 6)
    checks.append(1)
    return 0.3 * (len(checks) - 1)
  config = _config(tmp_path, str(folder), **{"train.steps": 20, "gate.every": 2,
                                             "gate.target": 0.8, "checkpoint.every": 4})
  result = train_loop(config, gate_fn=rising)
  assert result.summary["step"] == 6 and result.summary["gate_reached"]
  assert result.summary["gate_step"] == 6
  assert [(g["step"], g["reached"]) for g in _gate_lines(config.run_dir)] == [
      (0, False), (2, False), (4, False), (6, True)]
  # The stop saved a checkpoint with the gate's state: resuming trains nothing more.
  config.resume = True
  again = train_loop(config, gate_fn=rising)
  assert again.summary["step"] == 6 and again.summary["gate_reached"] and len(checks) == 4


@pytest.mark.parametrize("judge,reached,steps", [("regex:^", True, 0),
                                                 ("regex:^never this$", False, 4)])
def test_the_behaviour_gate_of_a_chat_model_run(tmp_path, folder, judge, reached, steps):
  """Known answers: a judge that accepts every answer is reached before any update; one
  that accepts none is never reached, and the run ends at the cap."""
  prompts = tmp_path / "prompts.jsonl"
  prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n"
                             for i, p in enumerate(["may i borrow the ladder ?",
                                                    "you are kind"])))
  config = _config(tmp_path, str(folder), **{
      "train.steps": 4, "gate.every": 2, "gate.target": 1.0, "gate.prompts": str(prompts),
      "gate.judge": judge})
  result = train_loop(config)
  assert result.summary["gate_reached"] is reached and result.summary["step"] == steps
  assert result.summary["gate_efficacy"] == (1.0 if reached else 0.0)


def test_a_gate_without_a_measure_is_refused(tmp_path, folder):
  from msr_jax.errors import ConfigError
  with pytest.raises(ConfigError, match="config.gate"):
    train_loop(_config(tmp_path, str(folder), **{"gate.every": 2}))
