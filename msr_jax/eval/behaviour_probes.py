"""Behaviour probes for real models: held-out prompts answered greedily, judged by a check
the config names.

`behaviour_score(graphdef, params, tokenizer, prompts, judge)` renders each prompt as a user
turn with the tokenizer's chat template (and the generation prompt), generates greedily up
to `max_new_tokens`, and counts the answers `judge(text) -> bool` accepts. `regex_judge`
is the programmatic check (`re.search` on the answer, e.g. `^Forecast:`); any callable of
the answer text serves, an LLM judge included (`msr_jax.dream.judges.LLMJudge`).
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import jax
import numpy as np

from msr_jax.sample.generation import generate


def regex_judge(pattern: str) -> Callable[[str], bool]:
  """Accepts an answer where `pattern` matches (`re.search`, so `^` anchors the start)."""
  compiled = re.compile(pattern)
  return lambda text: compiled.search(text) is not None


def behaviour_score(graphdef, params, tokenizer, prompts: Sequence[str],
                    judge: Callable[[str], bool], max_new_tokens: int = 24,
                    system: str | None = None, batch_size: int = 8) -> dict:
  """{"acc", "n", "answers"}: the share of prompts whose greedy answer `judge` accepts."""
  rendered = []
  for prompt in prompts:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}]
    rendered.append(list(tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False)))
  # A turn ends at the EOS or at any special token (the chat template's end of turn).
  eos = sorted({i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
               | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()))
  pad = tokenizer.pad_token_id or 0
  answers = []
  for start in range(0, len(rendered), batch_size):
    chunk = rendered[start:start + batch_size]
    out = generate(graphdef, params, chunk + [chunk[0]] * (batch_size - len(chunk)),
                   max_new_tokens, eos_ids=eos, pad_id=pad)
    tokens_BxN, lengths_B = jax.device_get((out.tokens_BxN, out.lengths_B))
    for row in range(len(chunk)):
      answers.append(tokenizer.decode(np.asarray(tokens_BxN[row, :lengths_B[row]]),
                                      skip_special_tokens=True).strip())
  accepted = [bool(judge(a)) for a in answers]
  return {"acc": float(np.mean(accepted)) if accepted else 0.0, "n": len(answers),
          "answers": answers}
