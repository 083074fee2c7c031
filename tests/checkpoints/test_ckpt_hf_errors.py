"""Bad Hugging Face folders: every failure names the file and the tensor or field."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import ckpt_fixtures as fx
from msr_jax.checkpoints import safetensors_io
from msr_jax.checkpoints.errors import CheckpointError
from msr_jax.checkpoints.hf import export_hf, import_hf


@pytest.fixture
def folder(tmp_path):
  _, params = fx.random_params()
  export_hf(tmp_path, fx.TINY, params)
  return tmp_path


def _rewrite_weights(folder, edit):
  path = folder / "model.safetensors"
  f = safetensors_io.SafetensorsFile(path)
  tensors = {k: np.array(f.get(k)) for k in f.keys()}
  del f
  edit(tensors)
  safetensors_io.save(path, tensors, metadata={"format": "pt"})


def test_clean_folder_loads(folder):
  config, _, params, tokenizer = import_hf(folder)
  assert config == fx.TINY and tokenizer is None


def test_missing_config(folder):
  os.remove(folder / "config.json")
  with pytest.raises(CheckpointError, match=r"config\.json: missing"):
    import_hf(folder)


def test_malformed_config_names_the_line(folder):
  (folder / "config.json").write_text('{\n  "model_type": "llama",\n  "hidden_size": ,\n}')
  with pytest.raises(CheckpointError, match=r"config\.json: line 3: malformed JSON"):
    import_hf(folder)


def test_config_missing_field(folder):
  hf = json.loads((folder / "config.json").read_text())
  del hf["num_hidden_layers"]
  (folder / "config.json").write_text(json.dumps(hf))
  with pytest.raises(CheckpointError, match=r"config\.json: missing field 'num_hidden_layers'"):
    import_hf(folder)


def test_unknown_architecture(folder):
  hf = json.loads((folder / "config.json").read_text())
  hf["model_type"] = "gpt_neox"
  (folder / "config.json").write_text(json.dumps(hf))
  with pytest.raises(CheckpointError, match=r"config\.json: field 'model_type'.*'gpt_neox'"):
    import_hf(folder)


@pytest.mark.parametrize("field,value", [("hidden_act", "gelu"), ("use_sliding_window", True),
                                         ("mlp_bias", True)])
def test_unsupported_variant_is_refused(folder, field, value):
  hf = json.loads((folder / "config.json").read_text())
  hf[field] = value
  (folder / "config.json").write_text(json.dumps(hf))
  with pytest.raises(CheckpointError, match=rf"config\.json: field '{field}'"):
    import_hf(folder)


def test_unrepresentable_export_is_refused(tmp_path):
  _, params = fx.random_params()
  with pytest.raises(CheckpointError, match=r"cannot export architecture 'qwen2' without"):
    export_hf(tmp_path, fx.TINY.replace(architecture="qwen2"), params)
  assert not (tmp_path / "model.safetensors").exists()


def test_missing_tensor(folder):
  _rewrite_weights(folder, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
  with pytest.raises(CheckpointError,
                     match=r"missing tensor 'model\.layers\.1\.mlp\.up_proj\.weight'"):
    import_hf(folder)


def test_misshaped_tensor(folder):
  def edit(t):
    t["model.layers.0.self_attn.k_proj.weight"] = t["model.layers.0.self_attn.k_proj.weight"][:16]
  _rewrite_weights(folder, edit)
  with pytest.raises(CheckpointError, match=r"layers\.0\.attn\.k_proj\.kernel: shape \(64, 16\)"):
    import_hf(folder)


def test_unexpected_tensor(folder):
  def edit(t):
    t["model.layers.0.mlp.experts.0.weight"] = np.zeros((2, 2), np.float32)
  _rewrite_weights(folder, edit)
  with pytest.raises(CheckpointError, match=r"unexpected tensors.*experts"):
    import_hf(folder)


@pytest.mark.parametrize("keep", [4, 100, -1])
def test_truncated_safetensors(folder, keep):
  path = folder / "model.safetensors"
  data = path.read_bytes()
  path.write_bytes(data[:keep])
  with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated"):
    import_hf(folder)


def test_corrupt_header(folder):
  path = folder / "model.safetensors"
  data = bytearray(path.read_bytes())
  data[8] = ord("x")  # The JSON header starts at byte 8.
  path.write_bytes(bytes(data))
  with pytest.raises(CheckpointError, match=r"model\.safetensors: corrupt safetensors header"):
    import_hf(folder)


def test_pickle_weights_are_not_loaded(folder):
  os.rename(folder / "model.safetensors", folder / "pytorch_model.bin")
  with pytest.raises(CheckpointError, match=r"no model\.safetensors.*pickle"):
    import_hf(folder)


def test_index_pointing_to_a_missing_shard(folder):
  index = {"metadata": {}, "weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors"}}
  (folder / "model.safetensors.index.json").write_text(json.dumps(index))
  with pytest.raises(CheckpointError, match=r"index\.json: tensor 'model\.norm\.weight' is in "
                                            r"'model-00002-of-00002\.safetensors'"):
    import_hf(folder)


def test_remote_code_is_never_executed(folder):
  """A tokenizer folder that asks for its own code: refused, and the code never runs."""
  marker = folder / "EXECUTED"
  (folder / "evil_tokenizer.py").write_text(
      f"open({str(marker)!r}, 'w').write('x')\n"
      "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n")
  from tokenizers import Tokenizer, models
  Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")).save(
      str(folder / "tokenizer.json"))
  (folder / "tokenizer_config.json").write_text(json.dumps(
      {"tokenizer_class": "EvilTokenizer",
       "auto_map": {"AutoTokenizer": [None, "evil_tokenizer.EvilTokenizer"]}}))
  with pytest.raises(CheckpointError,
                     match=r"tokenizer\.json: cannot load the tokenizer.*custom code"):
    import_hf(folder)
  assert not marker.exists()
