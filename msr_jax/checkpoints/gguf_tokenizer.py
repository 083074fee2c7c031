"""Rebuilding a Hugging Face fast tokenizer from a GGUF file's `tokenizer.ggml.*` metadata.

Only the GPT-2 style byte-level BPE (`tokenizer.ggml.model == "gpt2"`: Llama 3, Qwen2,
SmolLM, StarCoder...) is supported. The file stores the vocabulary, merges and token
types but not the pre-tokenizer's regex: `tokenizer.ggml.pre` names it, and
`PRE_TOKENIZERS` maps those names to the `tokenizer.json` pre-tokenizer that the original
Hugging Face tokenizer used (the same table llama.cpp keeps in llama-vocab.cpp).
"""

from __future__ import annotations

import json

from msr_jax.checkpoints.errors import CheckpointError

# Byte-level with GPT-2's regex, as the original GPT-2 tokenizer.json.
_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
               "use_regex": True}
_BYTE_LEVEL_NO_REGEX = dict(_BYTE_LEVEL, use_regex=False)
_LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _split(regex: str) -> dict:
  return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated",
          "invert": False}


_DIGITS_THEN_BYTE_LEVEL = [{"type": "Digits", "individual_digits": True}, _BYTE_LEVEL]
# tokenizer.ggml.pre -> (pre-tokenizer sequence, BPE ignore_merges).
PRE_TOKENIZERS: dict[str, tuple[list[dict], bool]] = {
    "default": ([_BYTE_LEVEL], False),
    "gpt2": ([_BYTE_LEVEL], False),
    "smollm": (_DIGITS_THEN_BYTE_LEVEL, False),
    "starcoder": (_DIGITS_THEN_BYTE_LEVEL, False),
    "refact": (_DIGITS_THEN_BYTE_LEVEL, False),
    "llama-bpe": ([_split(_LLAMA3_REGEX), _BYTE_LEVEL_NO_REGEX], True),
    "llama3": ([_split(_LLAMA3_REGEX), _BYTE_LEVEL_NO_REGEX], True),
    "qwen2": ([_split(_QWEN2_REGEX), _BYTE_LEVEL_NO_REGEX], False),
}
# llama.cpp token types (gguf.TokenType): 3 = control (special), 4 = user-defined.
_CONTROL, _USER_DEFINED = 3, 4


def build_tokenizer(fields: dict, source: str):
  """A `transformers.PreTrainedTokenizerFast` from GGUF metadata ({key: value})."""
  model = fields.get("tokenizer.ggml.model")
  if model != "gpt2":
    raise CheckpointError(f"{source}: field 'tokenizer.ggml.model': unsupported tokenizer "
                          f"{model!r} (only 'gpt2' byte-level BPE is supported)")
  pre = fields.get("tokenizer.ggml.pre", "default")
  if pre not in PRE_TOKENIZERS:
    raise CheckpointError(f"{source}: field 'tokenizer.ggml.pre': unknown pre-tokenizer "
                          f"{pre!r}; known: {sorted(PRE_TOKENIZERS)}")
  tokens = fields.get("tokenizer.ggml.tokens")
  merges = fields.get("tokenizer.ggml.merges")
  if not tokens or merges is None:
    raise CheckpointError(f"{source}: fields 'tokenizer.ggml.tokens' and "
                          f"'tokenizer.ggml.merges' are required for a BPE tokenizer")
  types = fields.get("tokenizer.ggml.token_type") or [1] * len(tokens)
  if len(types) != len(tokens):
    raise CheckpointError(f"{source}: field 'tokenizer.ggml.token_type' has {len(types)} "
                          f"entries for {len(tokens)} tokens")
  pre_tokenizers, ignore_merges = PRE_TOKENIZERS[pre]
  added = [{"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": t == _USER_DEFINED, "special": t == _CONTROL}
           for i, (tok, t) in enumerate(zip(tokens, types)) if t in (_CONTROL, _USER_DEFINED)]
  spec = {
      "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
      "normalizer": None,
      "pre_tokenizer": {"type": "Sequence", "pretokenizers": pre_tokenizers},
      "post_processor": _post_processor(fields, tokens, source),
      "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                  "use_regex": True},
      "model": {"type": "BPE", "dropout": None, "unk_token": None,
                "continuing_subword_prefix": None, "end_of_word_suffix": None,
                "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
                "vocab": {tok: i for i, tok in enumerate(tokens)},
                "merges": [m.split(" ", 1) for m in merges]},
  }
  from tokenizers import Tokenizer
  from transformers import PreTrainedTokenizerFast
  try:
    backend = Tokenizer.from_str(json.dumps(spec))
  except Exception as e:  # tokenizers raises a bare Exception on malformed specs.
    raise CheckpointError(f"{source}: cannot build the tokenizer from tokenizer.ggml.*: "
                          f"{e}") from e
  special = {}
  for name in ("bos", "eos", "unknown", "padding"):
    token_id = fields.get(f"tokenizer.ggml.{name}_token_id")
    if token_id is not None:
      if not 0 <= token_id < len(tokens):
        raise CheckpointError(f"{source}: field 'tokenizer.ggml.{name}_token_id': id "
                              f"{token_id} is outside the vocabulary of {len(tokens)}")
      key = {"unknown": "unk_token", "padding": "pad_token"}.get(name, f"{name}_token")
      special[key] = tokens[token_id]
  tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **special)
  template = fields.get("tokenizer.chat_template")
  if template:
    tokenizer.chat_template = template
  return tokenizer


def _post_processor(fields: dict, tokens: list[str], source: str) -> dict:
  """Adds BOS in front when the file says so (`tokenizer.ggml.add_bos_token`)."""
  if not fields.get("tokenizer.ggml.add_bos_token", False):
    return {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
            "use_regex": True}
  bos_id = fields.get("tokenizer.ggml.bos_token_id")
  if bos_id is None or not 0 <= bos_id < len(tokens):
    raise CheckpointError(f"{source}: field 'tokenizer.ggml.bos_token_id' is missing or "
                          f"out of range but 'tokenizer.ggml.add_bos_token' is set")
  bos = tokens[bos_id]
  return {"type": "TemplateProcessing",
          "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}}],
          "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": bos, "type_id": 1}},
                   {"Sequence": {"id": "B", "type_id": 1}}],
          "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}}
