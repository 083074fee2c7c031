"""`config.regularizer` in a run from an HF checkpoint: the terms are logged, the KL term
keeps the model closer to the base on the retention set, a regularised run resumes and
exports."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from msr_jax import cli
from msr_jax.checkpoints import loader
from msr_jax.train import metrics_log, regularizers, setup
from msr_jax.train.loop import train_loop
from msr_jax.train.state import pure_params
from test_train_from_checkpoint import _config, _hf_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return _hf_folder(tmp_path_factory.mktemp("hf") / "m", "llama")


def _retain_kl(folder, params, config):
  """The mean KL to the base over the whole retention set."""
  loaded = loader.load(str(folder))
  adapter, _, pad = setup.make_adapter("", loaded.tokenizer, loaded.config, str(folder))
  _, aux = setup.regularizer(config, loaded.graphdef, pure_params(loaded.params), None,
                             adapter, pad)
  retain = aux["retain"]
  return float(regularizers.kl_to_base(loaded.graphdef, params, pure_params(loaded.params),
                                       retain.tokens_NxT, retain.weights_NxT))


def test_every_term_is_logged_and_the_kl_term_holds_the_model_near_the_base(tmp_path, folder):
  changes = {"train.steps": 6, "regularizer.retain_rows": 4,
             "regularizer.retain_max_tokens": 48}
  free = train_loop(_config(tmp_path / "a", str(folder), **changes))
  held = train_loop(_config(tmp_path / "b", str(folder), **changes,
                            **{"regularizer.kl_to_base": 20.0, "regularizer.ewc": 1.0,
                               "regularizer.l2_sp": 0.1}))
  lines = [m for m in metrics_log.read(tmp_path / "b" / "run" / "metrics.jsonl")
           if m["type"] == "train"]
  assert len(lines) == 6 and all({"reg_l2_sp", "reg_ewc", "reg_kl_to_base"} <= set(m)
                                 for m in lines)
  assert lines[0]["reg_kl_to_base"] == pytest.approx(0.0, abs=1e-6)  # at the base
  assert lines[-1]["reg_l2_sp"] > 0 and lines[-1]["reg_ewc"] > 0
  config = _config(tmp_path / "c", str(folder), **{"regularizer.kl_to_base": 1.0, **changes})
  kl_free = _retain_kl(folder, free.state.params, config)
  kl_held = _retain_kl(folder, held.state.params, config)
  assert kl_free > 1e-3 and kl_held < 0.5 * kl_free, (kl_free, kl_held)


def test_a_regularised_run_resumes_to_the_same_weights_and_exports(tmp_path, folder):
  changes = {"train.steps": 4, "checkpoint.every": 2, "regularizer.ewc": 1.0,
             "regularizer.kl_to_base": 1.0, "regularizer.retain_max_tokens": 48}
  whole = train_loop(_config(tmp_path / "whole", str(folder), **changes))
  config = _config(tmp_path / "split", str(folder), **changes)
  train_loop(config, max_steps=2)
  config.resume = True
  resumed = train_loop(config)
  for a, b in zip(jax.tree.leaves(whole.state.params), jax.tree.leaves(resumed.state.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert cli.main(["export", config.run_dir, "--out", str(tmp_path / "hf")]) == 0


def test_bad_regulariser_settings_name_the_field(tmp_path, folder):
  from msr_jax.errors import ConfigError
  with pytest.raises(ConfigError, match="config.regularizer.ewc"):
    train_loop(_config(tmp_path, str(folder), **{"regularizer.ewc": -1.0}))
  from msr_jax.data.jsonl import RecordError
  bad = tmp_path / "bad.jsonl"
  bad.write_text('{"id": "x", "messages": [{"role": "user", "content": "hi"}]}\n')
  with pytest.raises(RecordError, match="bad.jsonl:1: source"):  # the file and the line
    train_loop(_config(tmp_path, str(folder), **{"regularizer.kl_to_base": 1.0,
                                                 "regularizer.retain_paths": (str(bad),)}))
  bad.write_text('{"id": "x", "source": "s", "messages": [{"role": "user", "content": "hi"}]}'
                 '\n')
  with pytest.raises(RecordError, match="bad.jsonl:1: decisions"):
    train_loop(_config(tmp_path, str(folder), **{"regularizer.kl_to_base": 1.0,
                                                 "regularizer.retain_paths": (str(bad),)}))
