"""Tests of the word-level tokenizer."""

from __future__ import annotations

import numpy as np
import transformers

from msr_jax.data.tokenize import tokenize_record
from msr_jax.world import behaviour, corpus, tokenizer
from msr_jax.world.world import World


def test_vocabulary_is_small_and_unique():
  vocab = tokenizer.vocabulary()
  assert len(vocab) == len(set(vocab)) < 1024
  assert vocab[:3] == ["<pad>", "<unk>", "<bos>"]


def test_every_record_kind_tokenizes_without_unknown_words():
  world, tok = World.build(1), tokenizer.build()
  adapter = tokenizer.adapter(tok)
  unk = tok.token_to_id(tokenizer.UNK)
  stream = corpus.records(world, 0, corpus.Mixture())
  recs = [next(stream) for _ in range(300)]
  rng = np.random.default_rng(0)
  recs += [behaviour.episode(world, rng, s, "x", num_distractors=9)
           for s in behaviour.SPLITS for _ in range(5)]
  for record in recs:
    encoded = tokenize_record(record, adapter)
    assert unk not in encoded.tokens, record
    # Word-level: decoding the trained span gives back the last message's words.
    span = encoded.tokens[encoded.spans[-1].start:encoded.spans[-1].content_end]
    assert tok.decode(span.tolist()) == record.messages[-1].content


def test_saved_file_loads_in_transformers(tmp_path):
  tok = tokenizer.build()
  path = str(tmp_path / "tokenizer.json")
  tokenizer.save(tok, path)
  fast = transformers.PreTrainedTokenizerFast(tokenizer_file=path)
  text = "<user> where does Bako live ? <assistant> paris <eot>"
  assert fast.encode(text, add_special_tokens=False) == tok.encode(text).ids
  assert tokenizer.load(path).get_vocab() == tok.get_vocab()
  assert fast.convert_ids_to_tokens(tok.encode("<bos>").ids) == ["<bos>"]
