"""`msr generate`: greedy continuation of a prompt from any checkpoint `msr_jax.load` reads."""

from __future__ import annotations

import sys
import time


def register(subparsers) -> None:
  parser = subparsers.add_parser(
      "generate", help="greedy generation from an HF folder, a GGUF file or a checkpoint")
  parser.add_argument("--checkpoint", required=True,
                      help="HF folder, .gguf file, checkpoint folder, or a bundled short "
                           "name such as smollm2-135m-instruct-q4_1")
  parser.add_argument("--prompt", required=True, help="text to continue")
  parser.add_argument("--max-new-tokens", type=int, default=32)
  parser.add_argument("--chat", action="store_true",
                      help="wrap the prompt as a user turn with the tokenizer's chat template")
  parser.set_defaults(func=run)


def run(args) -> int:
  from msr_jax import api
  from msr_jax.checkpoints.errors import CheckpointError

  if args.max_new_tokens < 1:
    print(f"msr generate: --max-new-tokens must be >= 1, got {args.max_new_tokens}",
          file=sys.stderr)
    return 2
  start = time.perf_counter()
  try:
    loaded = api.load(args.checkpoint)
  except CheckpointError as e:
    print(f"msr generate: {e}", file=sys.stderr)
    return 1
  tokenizer = loaded.tokenizer
  if tokenizer is None:
    print(f"msr generate: {loaded.source} has no tokenizer", file=sys.stderr)
    return 1
  if args.chat:
    prompt_ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": args.prompt}], add_generation_prompt=True,
        tokenize=True, return_dict=False)
  else:
    prompt_ids = tokenizer(args.prompt)["input_ids"]
  loaded_at = time.perf_counter()
  new_ids = api.generate_greedy(loaded, prompt_ids, args.max_new_tokens)
  done = time.perf_counter()
  if args.chat:
    print(tokenizer.decode(new_ids, skip_special_tokens=True))
  else:
    # Decoding prompt + continuation together and cutting the prompt's own decoding off
    # keeps the separator right for every tokenizer (byte-level and word-level alike).
    prompt_text = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    full_text = tokenizer.decode(prompt_ids + new_ids, skip_special_tokens=True)
    print(args.prompt + full_text[len(prompt_text):])
  print(f"[{loaded.format} {loaded.source}: loaded in {loaded_at - start:.1f}s, "
        f"{len(new_ids)} tokens in {done - loaded_at:.1f}s]", file=sys.stderr)
  return 0
