"""Tiny offline tokenizers, templates and records for the data tests (no downloads).

Imported as `data_testlib`: pytest puts this folder on sys.path for its test modules.
"""

from __future__ import annotations

import tokenizers
from tokenizers import models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from msr_jax.data.records import Message, Record

SPECIAL = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "<system>", "<user>",
           "<assistant>", "<eot>", "<bos>", "<|begin_of_text|>", "<|start_header_id|>",
           "<|end_header_id|>", "<|eot_id|>"]
WORDS = ["system", "user", "assistant", "you", "are", "kind", "may", "i", "borrow", "the",
         "ladder", "lend", "refuse", "wait", "because", "storm", "is", "coming", "thanks",
         "and", "umbrella", "a", "?", ".", ",", "it", "sunny"]
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
# Llama 3 style: trims every content, end-of-turn token directly after it.
TRIMMING = ("<bos>{% for m in messages %}<|im_start|>{{ m['role'] }}\n\n"
            "{{ m['content'] | trim }}<eot>{% endfor %}")


# Verbatim from real checkpoints: SmolLM2-Instruct (ChatML that injects a default system
# prompt) and Meta-Llama-3-Instruct (bos, headers, trimmed content, <|eot_id|>).
SMOLLM2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
           "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
           "Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
           "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
           "{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
          "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] "
          "| trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
          "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
          "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")


def word_level_tokenizer() -> tokenizers.Tokenizer:
  vocab = {w: i for i, w in enumerate(SPECIAL + WORDS)}
  tok = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  tok.add_special_tokens(SPECIAL)
  return tok


def byte_bpe_tokenizer(extra_corpus=()) -> tokenizers.Tokenizer:
  """A byte-level BPE trained in memory on a few sentences: merges cross word starts."""
  tok = tokenizers.Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = tokenizers.decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIAL,
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  corpus = ["may i borrow the ladder? lend because it is sunny.",
            "wait because a storm is coming. thanks!", "you are kind and helpful"] * 20
  corpus += list(extra_corpus)
  tok.train_from_iterator(corpus, trainer)
  return tok


def hf_tokenizer(tok: tokenizers.Tokenizer, template: str) -> PreTrainedTokenizerFast:
  hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                               bos_token="<|begin_of_text|>")
  hf.chat_template = template
  return hf


def conversation(decisions=None, weight=1.0, rid="c0") -> Record:
  return Record(
      id=rid, source="conversation", decisions=decisions, weight=weight,
      messages=(Message("system", "you are kind"),
                Message("user", "may i borrow the ladder ?"),
                Message("assistant", "lend because it is sunny ."),
                Message("user", "thanks , and the umbrella ?"),
                Message("assistant", "  wait because a storm is coming .\n")))
