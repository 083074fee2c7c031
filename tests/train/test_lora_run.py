"""`config.lora`: a run from an HF checkpoint trains the adapters alone (both modes, any
optimizer of the registry), resumes, and `msr export` merges them into the weights that
transformers then loads with our logits."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from msr_jax import cli
from msr_jax.model import forward
from msr_jax.train import setup
from msr_jax.train.loop import train_loop
from test_export import TOKENS_BxT, _torch_logits
from test_train_from_checkpoint import _config, _hf_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return _hf_folder(tmp_path_factory.mktemp("hf") / "m", "qwen2")


def _lora_config(tmp_path, folder, **changes):
  return _config(tmp_path, str(folder), **{"lora.rank": 4, "lora.alpha": 8.0, **changes})


@pytest.mark.parametrize("mode,optimizer", [("context_frozen", "adamw"),
                                            ("full", "apollo_mini")])
def test_lora_trains_the_adapters_alone(tmp_path, folder, mode, optimizer):
  config = _lora_config(tmp_path, folder, **{"train.mode": mode, "optim.name": optimizer})
  _, _, base, _ = setup.load_checkpoint(config.model)
  result = train_loop(config)
  assert np.isfinite(result.summary["final_loss"])
  flat = lambda tree: {jax.tree_util.keystr(p): np.asarray(x)
                       for p, x in jax.tree_util.tree_leaves_with_path(tree)}
  after, before = flat(result.state.params), flat(base)
  lora_keys = [k for k in after if "lora" in k]
  assert lora_keys and set(after) == set(before) | set(lora_keys)
  for key, value in before.items():  # the base is frozen, bit for bit
    np.testing.assert_array_equal(after[key], value, err_msg=key)
  assert any(np.abs(after[k]).max() > 0 for k in lora_keys if "lora_b" in k)


def test_a_lora_run_exports_merged_with_the_same_logits(tmp_path, folder):
  config = _lora_config(tmp_path, folder, **{"checkpoint.every": 3})
  result = train_loop(config)
  out = tmp_path / "hf"
  assert cli.main(["export", config.run_dir, "--out", str(out)]) == 0
  ours, _ = forward(result.graphdef, result.state.params, TOKENS_BxT)  # unmerged
  theirs = _torch_logits(out)
  assert np.abs(np.asarray(ours) - theirs).max() <= 1e-4
  assert np.abs(theirs - _torch_logits(folder)).max() > 1e-4  # the adapters count
  # Resuming the finished run restores the adapters (the same graph and state).
  config.resume = True
  again = train_loop(config)
  for a, b in zip(jax.tree.leaves(again.state.params), jax.tree.leaves(result.state.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bad_lora_settings_name_the_field(tmp_path, folder):
  from msr_jax.errors import ConfigError
  with pytest.raises(ConfigError, match="config.lora"):
    train_loop(_lora_config(tmp_path, folder, **{"lora.targets": "nowhere"}))
  with pytest.raises(ConfigError, match="config.train.trainable"):
    train_loop(_config(tmp_path, str(folder), **{"train.trainable": "nowhere"}))
