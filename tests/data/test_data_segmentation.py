from __future__ import annotations

import logging

import numpy as np
import pytest

from msr_jax.data.plain_template import PlainTemplateAdapter
from msr_jax.data.segmentation import SegmentStats, segment, segment_all
from msr_jax.data.tokenize import tokenize_record
from data_testlib import conversation


@pytest.fixture
def tokenized(word_tok):
  return tokenize_record(conversation(weight=0.5), PlainTemplateAdapter(word_tok, bos="<bos>"))


def test_one_example_per_decision_with_everything_before_as_context(tokenized):
  examples = segment(tokenized, max_context_tokens=1000)
  assert [e.turn for e in examples] == [2, 4]
  for example, span in zip(examples, tokenized.spans):
    np.testing.assert_array_equal(example.context_tokens, tokenized.tokens[:span.start])
    np.testing.assert_array_equal(example.decision_tokens, tokenized.tokens[span.start:span.end])
    np.testing.assert_array_equal(example.loss_mask, np.ones(span.end - span.start, np.float32))
    assert example.weight == 0.5 and example.source == "conversation"
    assert example.context_tokens.dtype == example.decision_tokens.dtype == np.int32
    assert example.context_tokens_dropped == 0
  # The second decision's context holds the first decision (as context, not trained).
  first = examples[0]
  joined = np.concatenate([first.context_tokens, first.decision_tokens])
  np.testing.assert_array_equal(examples[1].context_tokens[:len(joined)], joined)


def test_long_contexts_are_cut_from_the_left_and_counted(tokenized, caplog):
  full = segment(tokenized, max_context_tokens=1000)
  limit = len(full[0].context_tokens) - 3  # cuts both examples
  stats = SegmentStats()
  with caplog.at_level(logging.DEBUG, logger="msr_jax.data.segmentation"):
    cut = segment(tokenized, max_context_tokens=limit, stats=stats)
  for before, after in zip(full, cut):
    dropped = len(before.context_tokens) - limit
    np.testing.assert_array_equal(after.context_tokens, before.context_tokens[dropped:])
    np.testing.assert_array_equal(after.decision_tokens, before.decision_tokens)
    assert after.context_tokens_dropped == dropped
  assert stats == SegmentStats(records=1, examples=2, examples_cut=2,
                               tokens_dropped=sum(len(e.context_tokens) - limit for e in full))
  assert sum("context cut from" in r.message for r in caplog.records) == 2


def test_keep_first_keeps_the_bos(tokenized):
  (_, cut) = segment(tokenized, max_context_tokens=4, keep_first=1)
  full = segment(tokenized, max_context_tokens=1000)[1].context_tokens
  np.testing.assert_array_equal(cut.context_tokens, np.concatenate([full[:1], full[-3:]]))
  assert cut.context_tokens_dropped == len(full) - 4


def test_segment_all_accumulates_and_logs_a_summary(tokenized, caplog):
  with caplog.at_level(logging.INFO, logger="msr_jax.data.segmentation"):
    examples, stats = segment_all([tokenized, tokenized], max_context_tokens=5)
  assert len(examples) == stats.examples == 4 and stats.records == 2
  assert stats.examples_cut == 4
  assert any("cut 4 of 4 contexts to 5 tokens" in r.message for r in caplog.records)
  merged = SegmentStats().merge(stats).merge(stats)
  assert merged.tokens_dropped == 2 * stats.tokens_dropped


@pytest.mark.parametrize("kwargs", [{"max_context_tokens": 0},
                                    {"max_context_tokens": 4, "keep_first": 4}])
def test_bad_limits(tokenized, kwargs):
  with pytest.raises(ValueError):
    segment(tokenized, **kwargs)
