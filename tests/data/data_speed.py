"""Throughput of the data stage (not a test: run `python tests/data/data_speed.py`).

Prints records/s of `load_examples` for the plain and the chat-template adapter (the chat
one as a ratio of the plain one, measured in the same run) and examples/s of `make_batch`.
"""

from __future__ import annotations

import os
import tempfile
import time

from msr_jax.data import (ChatTemplateAdapter, PlainTemplateAdapter, iterate_batches,
                          load_examples, pow2_buckets, write_records)
from data_testlib import (CHATML, byte_bpe_tokenizer, conversation, hf_tokenizer,
                          word_level_tokenizer)

N = 2000


def main() -> None:
  path = os.path.join(tempfile.mkdtemp(), "d.jsonl")
  write_records(path, [conversation(rid=f"c{i}") for i in range(N)])
  rates = {}
  adapters = {
      "plain/word-level": PlainTemplateAdapter(word_level_tokenizer()),
      "chatml/byte-BPE": ChatTemplateAdapter(hf_tokenizer(byte_bpe_tokenizer(), CHATML)),
  }
  for name, adapter in adapters.items():
    start = time.perf_counter()
    by_source, _ = load_examples([path], adapter, 512)
    rates[name] = N / (time.perf_counter() - start)
  base = rates["plain/word-level"]
  for name, rate in rates.items():
    print(f"load_examples {name:<18} {rate:8.0f} records/s  ({rate / base:.2f}x plain)")
  examples = by_source["conversation"]
  start = time.perf_counter()
  batches = sum(1 for _ in iterate_batches(iter(examples), 32, pow2_buckets(16, 512),
                                           pow2_buckets(8, 128), pad_id=0))
  print(f"make_batch {batches * 32 / (time.perf_counter() - start):8.0f} examples/s (B=32)")


if __name__ == "__main__":
  main()
