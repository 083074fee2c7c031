"""Fixtures shared by the data tests."""

from __future__ import annotations

import pytest

from data_testlib import word_level_tokenizer


@pytest.fixture
def word_tok():
  return word_level_tokenizer()
