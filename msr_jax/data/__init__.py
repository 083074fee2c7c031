"""Conversation data: records, tokenization with decision masks, segmentation into
(context, decision) examples, mixtures and replay, and batches for the trainer.
See docs/data.md."""

from msr_jax.data.batch import bucket_length, iterate_batches, make_batch, pow2_buckets
from msr_jax.data.chat_template import ChatTemplateAdapter
from msr_jax.data.jsonl import ReadReport, RecordError, read_records, write_records
from msr_jax.data.mixture import (MixtureSampler, ReplayBuffer, build_mixture,
                                  group_by_source, interleave)
from msr_jax.data.pipeline import PrepareReport, load_examples
from msr_jax.data.plain_template import PlainTemplateAdapter
from msr_jax.data.records import Message, Record
from msr_jax.data.segmentation import Example, SegmentStats, segment, segment_all
from msr_jax.data.tokenize import (TokenizationError, TokenizedRecord, TokenizerAdapter,
                                   TurnSpan, tokenize_record)
