"""`msr export`: a run folder (its newest or a chosen step) or a checkpoint to an HF folder
that transformers loads with the same logits, tokenizer and chat template, and to this
project's folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from msr_jax import cli
from msr_jax.api import forward_logits, load
from msr_jax.checkpoints.params import named_arrays
from msr_jax.model import forward
from msr_jax.train import export
from msr_jax.train.loop import train_loop
from test_train_from_checkpoint import _config, _hf_folder

TOKENS_BxT = np.random.default_rng(0).integers(0, 200, (2, 24)).astype(np.int32)


def _torch_logits(folder) -> np.ndarray:
  model = transformers.AutoModelForCausalLM.from_pretrained(
      folder, local_files_only=True, torch_dtype=torch.float32).eval()
  with torch.inference_mode():
    return model(torch.from_numpy(TOKENS_BxT).long()).logits.float().numpy()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  """A 4-step run from a tiny Llama folder, checkpointed at steps 2 and 4."""
  tmp = tmp_path_factory.mktemp("run")
  folder = _hf_folder(tmp / "hf", "llama")
  config = _config(tmp, str(folder))
  config.train.steps, config.checkpoint.every, config.checkpoint.keep = 4, 2, 2
  result = train_loop(config)
  return tmp, folder, config.run_dir, result


def test_a_run_exports_to_an_hf_folder_with_the_same_logits(trained_run, tmp_path):
  _, source, run_dir, result = trained_run
  out = tmp_path / "hf"
  assert cli.main(["export", run_dir, "--out", str(out)]) == 0
  ours, _ = forward(result.graphdef, result.state.params, TOKENS_BxT)
  theirs = _torch_logits(out)
  assert np.abs(np.asarray(ours) - theirs).max() <= 1e-4
  # The tokenizer and its chat template travel with it.
  tokenizer = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
  original = transformers.AutoTokenizer.from_pretrained(source, local_files_only=True)
  assert tokenizer.chat_template == original.chat_template
  assert tokenizer("lend because it is sunny").input_ids == original(
      "lend because it is sunny").input_ids
  # The weights are the trained ones, not the starting checkpoint's.
  assert np.abs(theirs - _torch_logits(source)).max() > 1e-3


def test_a_chosen_step_and_the_native_folder(trained_run, tmp_path):
  _, _, run_dir, result = trained_run
  at_two = export.restore_run(run_dir, step=2)
  newest = export.restore_run(run_dir)
  assert (at_two.step, newest.step) == (2, 4)
  native = tmp_path / "native"
  assert cli.main(["export", run_dir, "--out", str(native), "--format", "native"]) == 0
  reloaded = load(str(native))
  assert reloaded.format == "native" and reloaded.tokenizer is not None
  trained, written = named_arrays(result.state.params), named_arrays(reloaded.params)
  assert trained.keys() == written.keys()
  for name in trained:  # the native folder holds the trained parameters exactly
    np.testing.assert_array_equal(np.asarray(written[name]), np.asarray(trained[name]))
  ours, _ = forward(result.graphdef, result.state.params, TOKENS_BxT)
  early, _ = forward(at_two.graphdef, at_two.params, TOKENS_BxT)
  assert np.abs(np.asarray(early) - np.asarray(ours)).max() > 0
  with pytest.raises(export.ExportError, match=r"no checkpoint of step 3 \(have \[2, 4\]\)"):
    export.restore_run(run_dir, step=3)
  with pytest.raises(export.ExportError, match="exists and is not empty"):
    export.export(newest, str(native), "native")


@pytest.mark.parametrize("arch", ["qwen2", "qwen3"])
def test_a_checkpoint_converts_to_hf_with_the_same_logits(tmp_path, arch):
  source = _hf_folder(tmp_path / "src", arch)
  native = tmp_path / "native"
  assert cli.main(["export", str(source), "--out", str(native), "--format", "native"]) == 0
  out = tmp_path / "hf"
  assert cli.main(["export", str(native), "--out", str(out)]) == 0
  loaded = load(str(native))
  assert np.abs(forward_logits(loaded, TOKENS_BxT) - _torch_logits(out)).max() <= 1e-4
  assert np.abs(_torch_logits(source) - _torch_logits(out)).max() <= 1e-4
