"""The Townworld arm end to end on a tiny random base checkpoint."""

import json
import pathlib

import numpy as np
import pytest

from arm_fixtures import SMALL_SIZES, tiny_base
from msr_jax.runner import analysis, townworld_arm
from msr_jax.runner.arms import arm_grid

GRID = arm_grid(pathlib.Path(__file__).resolve().parents[2] / "configs" / "townworld_arms.py",
                "smoke")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
  return tiny_base(str(tmp_path_factory.mktemp("base")))


def _config(base_dir, **changes):
  return GRID.base(**{
      "base_checkpoint": base_dir, "stages": 2, "train.steps": 3, "train.batch_size": 4,
      "data.behaviour_records": 24, "data.replay_records": 24, "eval.every": 2,
      "eval.sizes": SMALL_SIZES, "eval.during_items": 6, "dream.count": 8,
      "dream.mode": "oracle", "memory.self_targets": True, "guard.every": 2,
      "eval.sharpness": True, "stress.bad_batch_fraction": 0.3, **changes})


def test_arm_output_is_complete_and_deterministic(base_dir):
  config = _config(base_dir)
  first = townworld_arm.run(config, 0)
  second = townworld_arm.run(config, 0)
  assert json.dumps(first, sort_keys=True, default=str) == json.dumps(second, sort_keys=True, default=str)
  scores = first["scores"]
  for probe in ("K1", "K2", "C2", "R0", "B_train", "B_train_s2", "N1", "N2", "N3", "spec"):
    assert len(scores[probe]["base"]) == len(scores[probe]["final"]) > 0
  assert first["stages"]["columns"] == ["behaviour", "behaviour_2", "knowledge", "context"]
  assert np.shape(first["stages"]["R"]) == (3, 4)
  assert [d["step"] for d in first["during"]] == [0, 2, 5]  # every 2 steps, across stages
  assert set(first["sharpness"]) == {"quadratic_prediction", "observed_increase",
                                     "directional", "lambda_max"}
  assert first["train"][0]["records"]["dream"] > 0 and "replay" in first["train"][0]["records"]
  # Every metric the experiments use can be read from the output.
  for metric in ("forgetting:K1+K2+C1_*+C2", "score:B_train+B_train_s*", "value:composite",
                 "value:kl_to_base", "value:context_cka", "transfer_ratio:N1+N2+N3/B_train"):
    if metric.startswith("transfer_ratio"):
      continue
    assert np.all(np.isfinite(analysis.metric_items(first, metric)))


def test_narrow_data_has_no_replay_and_bad_config_is_named(base_dir):
  out = townworld_arm.run(_config(base_dir, stages=1, **{
      "data.mixture": "narrow", "dream.mode": "none", "memory.self_targets": False,
      "guard.every": 0, "eval.sharpness": False, "eval.every": 0}), 1)
  assert out["train"][0]["records"] == {"behaviour": 24}
  with pytest.raises(KeyError, match="arm config: 'train.nope': no such field"):
    GRID.base(**{"train.nope": 1})
