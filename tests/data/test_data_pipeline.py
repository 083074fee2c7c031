from __future__ import annotations

import dataclasses

import ml_collections
import pytest

from msr_jax.data import (PlainTemplateAdapter, RecordError, TokenizationError, build_mixture,
                          load_examples, make_batch, write_records)
from msr_jax.data.config import get_data_config
from msr_jax.runner.config import apply_overrides
from data_testlib import conversation


class FailsOnBoom(PlainTemplateAdapter):
  """The plain adapter, except that a message saying "boom" cannot be tokenized."""

  def encode(self, messages, turns):
    if any(m.content == "boom" for m in messages):
      raise TokenizationError("turn 2: boom")
    return super().encode(messages, turns)


def _boom(rid):
  record = conversation(rid=rid)
  return dataclasses.replace(record, messages=record.messages[:1] + (
      dataclasses.replace(record.messages[1], content="boom"),) + record.messages[2:])


def test_load_examples_groups_by_source_and_reports_every_skip(tmp_path, word_tok):
  adapter = FailsOnBoom(word_tok)
  a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
  dream = dataclasses.replace(conversation(rid="d0"), source="dream")
  write_records(a, [conversation(rid="c0"), dream])
  with open(a, "a") as f:
    f.write('{"id": "x"\n')
  write_records(b, [conversation(rid="c0"), _boom("e0"), conversation(rid="c1")])
  by_source, report = load_examples([a, b], adapter, max_context_tokens=8, on_error="skip")
  assert sorted(by_source) == ["conversation", "dream"]
  assert [(e.record_id, e.turn) for e in by_source["conversation"]] == [
      ("c0", 2), ("c0", 4), ("c1", 2), ("c1", 4)]
  assert [(s.path, s.line) for s in report.skipped] == [(str(a), 3), (str(b), 1), (str(b), 2)]
  assert report.skipped[1].reason == f"id: duplicate id 'c0' (first at {a}:1)"
  assert report.skipped[2].reason == "record 'e0': turn 2: boom"
  assert report.segments.examples == 6 and report.segments.examples_cut == 6
  assert f"{b}:2: record 'e0'" in report.summary()


def test_raise_mode_names_file_and_line(tmp_path, word_tok):
  a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
  write_records(a, [conversation(rid="c0")])
  write_records(b, [conversation(rid="c1"), _boom("e0")])
  adapter = FailsOnBoom(word_tok)
  with pytest.raises(RecordError, match=rf"^{a}:1: id: duplicate id 'c0' \(first at {a}:1\)$"):
    load_examples([a, a], adapter, 100)
  with pytest.raises(TokenizationError, match=rf"^{b}:2: record 'e0': turn 2: boom$"):
    load_examples([b], adapter, 100)


def test_data_config_drives_the_mixture_and_batches(tmp_path, word_tok):
  config = ml_collections.ConfigDict({"data": get_data_config()})
  apply_overrides(config, ["--config.data.mixture=narrow",
                           "--config.data.narrow_source=conversation",
                           "--config.data.max_context_tokens=16"])
  path = tmp_path / "a.jsonl"
  write_records(path, [conversation(rid=f"c{i}") for i in range(3)])
  by_source, _ = load_examples([path], PlainTemplateAdapter(word_tok),
                               config.data.max_context_tokens)
  sampler = build_mixture(config, by_source)
  batch = make_batch(sampler.take(4), config.data.context_buckets, config.data.decision_buckets,
                     pad_id=word_tok.token_to_id("<pad>"))
  assert batch.context_BxC.shape == (4, 32) and sampler.counts == {"conversation": 4}
  config.data.mixture = "diverse"  # the default (empty) weights: every source found
  assert build_mixture(config, by_source).names == ["conversation"]
  with config.unlocked():
    config.data.weights = ml_collections.ConfigDict({"townworld": 1.0, "conversation": 1.0})
  with pytest.raises(ValueError, match=r"no examples: \['townworld'\]"):
    build_mixture(config, by_source)
