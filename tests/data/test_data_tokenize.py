from __future__ import annotations

import numpy as np
import pytest

from msr_jax.data.chat_template import ChatTemplateAdapter
from msr_jax.data.plain_template import PlainTemplateAdapter
from msr_jax.data.records import Message, Record
from msr_jax.data.tokenize import TokenizationError, tokenize_record
from data_testlib import (CHATML, LLAMA3, SMOLLM2, TRIMMING, byte_bpe_tokenizer,
                          conversation, hf_tokenizer, word_level_tokenizer)


def _masked_runs(mask_T):
  """[start, end) of each run of True in a bool mask."""
  edges = np.flatnonzero(np.diff(np.concatenate([[0], mask_T.astype(int), [0]])))
  return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


# ----- plain template (testbed) -----

def test_plain_layout_is_exact(word_tok):
  adapter = PlainTemplateAdapter(word_tok, bos="<bos>")
  record = Record("r", (Message("user", "may i borrow the ladder ?"), Message("assistant", "lend")),
                  source="townworld")
  out = tokenize_record(record, adapter)
  ids = lambda text: word_tok.encode(text, add_special_tokens=False).ids
  tid = word_tok.token_to_id
  expected = ([tid("<bos>"), tid("<user>")] + ids("may i borrow the ladder ?") + [tid("<eot>")]
              + [tid("<assistant>"), tid("lend"), tid("<eot>")])
  assert out.tokens.tolist() == expected and out.tokens.dtype == np.int32
  assert out.decision_mask.tolist() == [False] * (len(expected) - 2) + [True, True]


@pytest.mark.parametrize("decisions", [None, (2,), (4,), (2, 4)])
@pytest.mark.parametrize("make_tok", [word_level_tokenizer, byte_bpe_tokenizer])
def test_plain_mask_covers_exactly_the_chosen_assistant_content(make_tok, decisions):
  tok = make_tok()
  record = conversation(decisions)
  out = tokenize_record(record, PlainTemplateAdapter(tok))
  chosen = decisions or (2, 4)
  assert out.decision_turns == chosen
  eot = tok.token_to_id("<eot>")
  runs = _masked_runs(out.decision_mask)
  assert len(runs) == len(chosen)
  for (start, end), turn, span in zip(runs, chosen, out.spans):
    content = record.messages[turn].content
    content_ids = tok.encode(content, add_special_tokens=False).ids
    assert out.tokens[start:end].tolist() == content_ids + [eot]
    assert (span.start, span.content_end, span.end) == (start, end - 1, end)
    assert out.tokens[start - 1] == tok.token_to_id("<assistant>")


def test_plain_rejects_markers_outside_the_vocabulary(word_tok):
  with pytest.raises(ValueError, match=r"role_markers\['user'\]: '<human>'"):
    PlainTemplateAdapter(word_tok, role_markers={"system": "<system>", "user": "<human>",
                                                 "assistant": "<assistant>"})
  with pytest.raises(ValueError, match="end_of_turn"):
    PlainTemplateAdapter(word_tok, end_of_turn="</s>")
  with pytest.raises(ValueError, match=r"no marker for roles \['system'\]"):
    PlainTemplateAdapter(word_tok, role_markers={"user": "<user>", "assistant": "<assistant>"})


# ----- transformers chat templates (real models) -----

def _check_chat_spans(out, record, adapter, eot_text):
  """Each span's content tokens decode to the content and the mask is exactly the spans."""
  tokenizer = adapter.tokenizer
  expected_mask = np.zeros_like(out.decision_mask)
  for span in out.spans:
    content = record.messages[span.turn].content
    decoded = tokenizer.decode(out.tokens[span.start:span.content_end].tolist())
    assert decoded.strip() == content.strip()
    if eot_text is None:
      assert span.end == span.content_end
    else:
      assert span.end == span.content_end + 1
      assert tokenizer.convert_ids_to_tokens(int(out.tokens[span.content_end])) == eot_text
    expected_mask[span.start:span.end] = True
  np.testing.assert_array_equal(out.decision_mask, expected_mask)
  # The context of every decision ends with the template's assistant header.
  for span in out.spans:
    context = tokenizer.decode(out.tokens[:span.start].tolist()).rstrip()
    assert context.removesuffix("<|end_header_id|>").endswith("assistant"), context


@pytest.mark.parametrize("decisions", [None, (2,), (4,)])
def test_chatml_word_level_mask_is_content_plus_im_end(decisions):
  tok = word_level_tokenizer()
  adapter = ChatTemplateAdapter(hf_tokenizer(tok, CHATML))
  record = conversation(decisions)
  out = tokenize_record(record, adapter)
  assert out.decision_turns == (decisions or (2, 4))
  end = tok.token_to_id("<|im_end|>")
  for (start, stop), turn in zip(_masked_runs(out.decision_mask), out.decision_turns):
    content_ids = tok.encode(record.messages[turn].content, add_special_tokens=False).ids
    assert out.tokens[start:stop].tolist() == content_ids + [end]
  _check_chat_spans(out, record, adapter, "<|im_end|>")


EOT_OF = {CHATML: "<|im_end|>", TRIMMING: "<eot>", SMOLLM2: "<|im_end|>", LLAMA3: "<|eot_id|>"}


@pytest.mark.parametrize("template", list(EOT_OF), ids=["chatml", "trim", "smollm2", "llama3"])
@pytest.mark.parametrize("end_of_turn", ["auto", None])
@pytest.mark.parametrize("with_system", [True, False])
def test_byte_bpe_with_real_templates(template, end_of_turn, with_system):
  adapter = ChatTemplateAdapter(hf_tokenizer(byte_bpe_tokenizer(), template),
                                end_of_turn=end_of_turn)
  record = conversation()
  if not with_system:  # SmolLM2 then prints its own system prompt
    record = Record(record.id, record.messages[1:], source=record.source)
  out = tokenize_record(record, adapter)
  _check_chat_spans(out, record, adapter, EOT_OF[template] if end_of_turn else None)


def test_end_of_turn_only_when_it_follows_the_content_directly():
  template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}\n"
              "<|im_end|>{% endfor %}")
  adapter = ChatTemplateAdapter(hf_tokenizer(word_level_tokenizer(), template))
  record = conversation()
  out = tokenize_record(record, adapter)
  _check_chat_spans(out, record, adapter, None)


def test_named_end_of_turn_token():
  tok = hf_tokenizer(word_level_tokenizer(), CHATML)
  out = tokenize_record(conversation(), ChatTemplateAdapter(tok, end_of_turn="<eot>"))
  assert all(s.end == s.content_end for s in out.spans)  # <|im_end|> is not the named one
  with pytest.raises(ValueError, match="end_of_turn"):
    ChatTemplateAdapter(tok, end_of_turn="<nope>")


def test_straddling_token_is_included():
  # "assistant: " + content: byte-level BPE glues the space to the content's first word.
  template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}<eot>{% endfor %}"
  adapter = ChatTemplateAdapter(hf_tokenizer(byte_bpe_tokenizer(), template))
  record = Record("s", (Message("user", "may i"), Message("assistant", "lend because")), source="x")
  out = tokenize_record(record, adapter)
  (span,) = out.spans
  decode = adapter.tokenizer.decode
  assert decode(out.tokens[span.start:span.content_end].tolist()) == " lend because"
  assert adapter.tokenizer.decode(out.tokens[:span.start].tolist()) == "user: may i<eot>assistant:"


@pytest.mark.parametrize("template,match", [
    ("{% for m in messages %}<|im_start|>{{ m['content'] | upper }}<|im_end|>{% endfor %}",
     "rewrites"),
    ("{% for m in messages %}{% if m['role'] != 'assistant' %}{{ m['content'] }}{% endif %}"
     "{% endfor %}", "does not print"),
    ("{{ raise_exception('System role not supported') }}", "System role not supported"),
])
def test_unusable_templates_name_record_and_turn(template, match):
  adapter = ChatTemplateAdapter(hf_tokenizer(word_level_tokenizer(), template))
  with pytest.raises(TokenizationError, match=match) as info:
    tokenize_record(conversation(rid="bad-1"), adapter)
  assert str(info.value).startswith("record 'bad-1': ")


def test_content_that_matches_template_text_is_located_by_structure():
  # The content "assistant" also appears in the header; the span must be the content's.
  adapter = ChatTemplateAdapter(hf_tokenizer(word_level_tokenizer(), CHATML))
  record = Record("t", (Message("user", "assistant"), Message("assistant", "assistant")),
                  source="x")
  out = tokenize_record(record, adapter)
  (span,) = out.spans
  assert span.start == len(out.tokens) - 2 and span.end == len(out.tokens)


def test_missing_template_is_an_error():
  with pytest.raises(ValueError, match="chat_template"):
    ChatTemplateAdapter(hf_tokenizer(word_level_tokenizer(), None))


@pytest.mark.parametrize("record,match", [
    (Record("v", (Message("user", "may i"), Message("assistant", "lend")), source="x",
            decisions=(0,)),
     r"decisions\[0\]: index 0 points at a 'user' turn"),
    (Record("v", (Message("user", "may i"),), source="x"), "no turn to train on"),
    (Record("v", (Message("assistant", "lend"),), source="x", weight=float("inf")), "weight"),
])
def test_records_built_in_code_are_validated(word_tok, record, match):
  with pytest.raises(TokenizationError, match=rf"^record 'v': invalid: .*{match}"):
    tokenize_record(record, PlainTemplateAdapter(word_tok))
