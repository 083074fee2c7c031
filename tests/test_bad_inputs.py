"""Every reader against the corpus of bad inputs in tests/bad_inputs/ (see its README).

Each case in cases.json names a reader, an input (a corpus file, an override, or a
damage done here to a freshly written good file) and what the error must say. A case
passes when the reader raises a `UserError` (the `msr` command prints it as one line),
its message names the file (or the override's field) and matches `expect`, which holds
the line or the field, and a damaged file is left as it was.
"""

from __future__ import annotations

import json
import pathlib
import re
import sqlite3

import numpy as np
import pytest

from msr_jax.errors import UserError

CORPUS = pathlib.Path(__file__).parent / "bad_inputs"
CASES = json.loads((CORPUS / "cases.json").read_text())


def _id(case):
  return f"{case['reader']}:{pathlib.Path(case['input']).name}"


# -- damaged copies of good files, made in the test's folder ---------------------------------

def _truncate(path, fraction=0.5):
  data = path.read_bytes()
  path.write_bytes(data[:int(len(data) * fraction)])


def _overwrite(path, offset, data):
  raw = bytearray(path.read_bytes())
  raw[offset:offset + len(data)] = data
  path.write_bytes(bytes(raw))


def _edit_json(path, change):
  obj = json.loads(path.read_text())
  change(obj)
  path.write_text(json.dumps(obj))


def _damage_folder(folder: pathlib.Path, damage: str, config_file: str):
  """Applies one named damage to a checkpoint folder; returns the file it touched."""
  params, config, tokenizer = (folder / "params.safetensors", folder / config_file,
                               folder / "tokenizer.json")
  fields = (lambda o: o["config"]) if config_file == "msr_config.json" else (lambda o: o)
  if damage == "params_truncated":
    _truncate(params)
  elif damage == "params_missing":
    params.unlink()
    return params
  elif damage == "params_header_garbage":
    _overwrite(params, 8, b"\x00\xff" * 16)
  elif damage == "config_malformed":
    config.write_text('{"config": {"vocab_size": 260,')
  elif damage == "config_missing":
    config.unlink()
    return config
  elif damage == "config_num_layers_string":
    _edit_json(config, lambda o: fields(o).update(num_layers="3"))
  elif damage == "config_unknown_field":
    _edit_json(config, lambda o: fields(o).update(colour="red"))
  elif damage == "tokenizer_truncated":
    _truncate(tokenizer, 0.3)
    return tokenizer
  elif damage == "world_malformed":
    (folder / "townworld.json").write_text('{"world_seed": ')
    return folder / "townworld.json"
  else:
    raise AssertionError(f"unknown damage {damage!r}")
  return params if damage.startswith("params") else config


@pytest.fixture(scope="module")
def good_native(tmp_path_factory):
  """A tiny checkpoint in this project's format, with a tokenizer."""
  from msr_jax.checkpoints import native
  from msr_jax.world import tokenizer as world_tokenizer
  from checkpoints import ckpt_fixtures as fx
  folder = tmp_path_factory.mktemp("native")
  tok = world_tokenizer.build()
  config = fx.TINY.replace(vocab_size=tok.get_vocab_size())
  native.save(str(folder), config, fx.random_params(config)[1], tokenizer=tok)
  return folder


@pytest.fixture(scope="module")
def good_townworld(tmp_path_factory):
  """A tiny Townworld-style checkpoint: model_config.json, tokenizer.json, townworld.json."""
  from msr_jax import atomic
  from msr_jax.world import checkpoint, tokenizer as world_tokenizer
  from msr_jax.world.pretrain import WORLD_FILE
  from checkpoints import ckpt_fixtures as fx
  folder = tmp_path_factory.mktemp("townworld")
  tok = world_tokenizer.build()
  config = fx.TINY.replace(vocab_size=tok.get_vocab_size())
  checkpoint.save(str(folder), config, fx.random_params(config)[1])
  world_tokenizer.save(tok, str(folder / checkpoint.TOKENIZER))
  atomic.write_json(str(folder / WORLD_FILE), {"world_seed": 0, "num_people": 240,
                                                  "probe_seed": 1, "note_facts": [2, 6]})
  return folder


@pytest.fixture(scope="module")
def good_gguf(tmp_path_factory):
  """GGUF-named tensors of a tiny random model (through an HF export, as llama.cpp's
  converter would see it)."""
  import safetensors.numpy
  from checkpoints import ckpt_fixtures as fx
  from msr_jax.checkpoints.hf import WEIGHTS_FILE, export_hf
  folder = tmp_path_factory.mktemp("gguf")
  export_hf(str(folder), fx.TINY, fx.random_params()[1])
  state = safetensors.numpy.load_file(str(folder / WEIGHTS_FILE))
  return fx.gguf_tensors(state, fx.TINY)


def _copy_folder(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
  dst.mkdir()
  for path in src.iterdir():
    (dst / path.name).write_bytes(path.read_bytes())
  return dst


def _memory_graph_case(tmp_path, damage):
  """(callable that fails, the file it must name)."""
  from msr_jax.data.records import Message, Record
  from msr_jax.memory.graph import MemoryGraph
  path = tmp_path / "memory.sqlite"
  record = Record(id="x", messages=(Message("user", "hello"),))
  if damage == "text_file":
    path.write_text("nodes: 1, 2, 3\n" * 100)
  else:
    with MemoryGraph.open(path) as graph:
      for i in range(40):
        graph.add_node(Record(id=f"r{i}", messages=(Message("user", "x" * 300),)), [f"e{i % 3}"],
                       created=i, connect=True)
    if damage == "truncated":
      _truncate(path, 0.4)
    elif damage.startswith("node_record"):
      text = "{bad" if damage == "node_record_not_json" else "[" * 5000 + "]" * 5000
      with sqlite3.connect(path) as conn:
        conn.execute("UPDATE nodes SET record = ? WHERE id = 1", (text,))
      conn.close()
    elif damage == "add_node_surrogate_entity":
      return lambda: _with_graph(path, lambda g: g.add_node(record, ["\ud800"])), path
    elif damage == "add_node_surrogate_content":
      bad = Record(id="x", messages=(Message("user", "a\udc00b"),))
      return lambda: _with_graph(path, lambda g: g.add_node(bad)), path
  return lambda: _with_graph(path, lambda g: g.nodes()), path


def _with_graph(path, action):
  from msr_jax.memory.graph import MemoryGraph
  with MemoryGraph.open(path) as graph:
    return action(graph)


def _case(case, tmp_path, request):
  """(callable that must fail, the name its message must hold, the file left untouched)."""
  import msr_jax
  from msr_jax.runner.config import load_config
  reader, given = case["reader"], case["input"]
  corpus_file = CORPUS / given
  if reader == "records":
    from msr_jax.data.jsonl import read_records
    return lambda: read_records(corpus_file), str(corpus_file), corpus_file
  if reader == "config":
    return lambda: load_config(str(corpus_file)), str(corpus_file), corpus_file
  if reader == "override":
    field = given.split("=")[0]
    return lambda: load_config("configs/train.py", [given]), field, None
  if reader == "train_config":
    from msr_jax.train.loop import train_loop
    config = load_config("configs/train.py:smoke", [given])
    field = given.split("=")[0][len("--config."):]
    return lambda: train_loop(config, run_dir=str(tmp_path / "run")), field, None
  if reader in ("checkpoint", "eval_checkpoint"):
    good = request.getfixturevalue("good_native" if reader == "checkpoint" else "good_townworld")
    folder = _copy_folder(good, tmp_path / "ckpt")
    touched = _damage_folder(folder, given, "msr_config.json" if reader == "checkpoint"
                             else "model_config.json")
    if reader == "checkpoint":
      return lambda: msr_jax.load(folder), str(touched), touched
    from msr_jax.world import probes_card
    return lambda: probes_card.evaluate(str(folder), subset=True), str(touched), touched
  if reader == "gguf":
    from checkpoints import ckpt_fixtures as fx
    tensors = request.getfixturevalue("good_gguf")
    path = tmp_path / "model.gguf"
    fx.write_gguf(path, tensors, fx.TINY, "F32",
                  skip_fields=("llama.block_count",) if given == "missing_block_count" else ())
    if given == "truncated_half":
      _truncate(path)
    elif given == "magic_only":
      path.write_bytes(path.read_bytes()[:8])
    elif given == "header_garbage":
      _overwrite(path, 8, np.random.default_rng(0).bytes(64))
    return lambda: msr_jax.load(path), str(path), path
  if reader == "memory_graph":
    fail, path = _memory_graph_case(tmp_path, given)
    return fail, str(path), None
  if reader == "result_store":
    from msr_jax.runner.store import ResultStore
    store = ResultStore(tmp_path)
    path = store.path("case")
    path.write_bytes(corpus_file.read_bytes())
    return lambda: store.get("case"), str(path), path
  if reader == "metrics_log":  # a copy: a reader that stopped refusing would rewrite it
    from msr_jax.train import metrics_log
    path = tmp_path / corpus_file.name
    path.write_bytes(corpus_file.read_bytes())
    return lambda: metrics_log.truncate_after(path, 10), str(path), path
  raise AssertionError(f"unknown reader {reader!r}")


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_each_bad_input_gets_an_error_naming_its_file_and_line_or_field(case, tmp_path,
                                                                       request):
  fail, name, untouched = _case(case, tmp_path, request)
  before = untouched.read_bytes() if untouched is not None and untouched.is_file() else None
  with pytest.raises(UserError) as info:
    fail()
  message = str(info.value)
  assert name in message, f"{message!r} does not name {name}"
  after_name = message[message.index(name) + len(name):]
  assert re.search(case["expect"], after_name if case["expect"].startswith(":")
                   else message), f"{message!r} !~ {case['expect']!r}"
  assert "\n" not in message.strip(), "one line, so the CLI shows it whole"
  message.encode("utf-8")  # printable, even when the input held a lone surrogate
  if before is not None:
    assert untouched.read_bytes() == before, "a bad input is never modified"


def test_nesting_is_bounded_whatever_the_json_parser_accepts():
  """Python 3.13's parser takes thousands of levels; the validators refuse them without
  recursing, so the error does not depend on the Python version."""
  from msr_jax.data.validate import MAX_NESTING, check_record_json
  from msr_jax.memory.record_json import record_from_json
  deep = []
  for _ in range(5000):
    deep = [deep]
  record = {"id": "d", "source": "s", "meta": {"x": deep},
            "messages": [{"role": "assistant", "content": "a"}]}
  assert [(p.field, p.reason) for p in check_record_json(record)] == [
      ("<json>", f"nested too deeply (more than {MAX_NESTING} levels)")]
  with pytest.raises(ValueError, match="node 3: record is nested too deeply"):
    record_from_json(record, where="node 3")


def test_skipping_lists_each_bad_record_with_its_line():
  from msr_jax.data.jsonl import read_records
  for case in (c for c in CASES if c["reader"] == "records"):
    line = int(re.match(r":(\d+):", case["expect"]).group(1))
    _, report = read_records(CORPUS / case["input"], on_error="skip")
    assert line in [s.line for s in report.skipped], case["input"]


def test_the_corpus_covers_every_reader():
  readers = {c["reader"] for c in CASES}
  assert readers == {"records", "config", "override", "train_config", "checkpoint",
                     "eval_checkpoint", "gguf", "memory_graph", "result_store", "metrics_log"}
  listed = {c["input"] for c in CASES}
  files = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*")
           if p.is_file() and p.name not in ("cases.json", "README.md")}
  assert files <= listed, f"corpus files without a case: {sorted(files - listed)}"
