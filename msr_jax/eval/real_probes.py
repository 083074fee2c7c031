"""Probes for real models, shipped as files written for this repository (`probe_sets/`).

Retention (what fine-tuning must not destroy):
  facts        closed-book facts ("The capital of France is" -> " Paris"), 36 items:
               exact match (every answer token is the argmax, teacher-forced) and the
               answer's log-probability
  perplexity   of 20 held-out paragraphs of general text (every token after the first)
  kl_to_base   KL(base || model) per token over 16 fixed prompts (when a base is given)
Context understanding (as Townworld's C1): a note of three people's facts, then a question
  about one of them, 24 items: exact match and log-probability of the answer.

Text is tokenized without a chat template (plain continuation, the way a base model is
probed); the tokenizer's own special tokens (a BOS) open the prompt. `retention_score` is
the quality guard's default score for a run from a checkpoint: the mean of facts and
context accuracy, never the training data.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import numpy as np

from msr_jax.eval import similarity
from msr_jax.eval.probes_score import ProbeItem, score_items

PROBE_SETS = pathlib.Path(__file__).resolve().parent / "probe_sets"
FILES = {"facts": "facts.jsonl", "text": "general_text.jsonl", "context": "context.jsonl",
         "kl": "kl_prompts.jsonl"}


class ProbeSetError(ValueError):
  """A probe file that cannot be read; the message names the file and the line."""


def read_set(path: str | os.PathLike, fields: tuple[str, ...]) -> list[dict]:
  """The JSONL lines of a probe file, each with every one of `fields` as a string."""
  rows = []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise ProbeSetError(f"{path}:{number}: not a JSON line ({e.msg})") from None
      for field in fields:
        if not isinstance(row.get(field), str) or not row[field]:
          raise ProbeSetError(f"{path}:{number}: field {field!r}: missing or not a string")
      rows.append(row)
  return rows


@dataclasses.dataclass
class RealProbes:
  items: list[ProbeItem]          # facts, context and text items, tagged by `probe`
  kl_tokens_BxT: np.ndarray       # the KL prompts, right-padded
  kl_mask_BxT: np.ndarray         # their real tokens


def _ids(tokenizer, text: str, special: bool) -> list[int]:
  return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def build(tokenizer, sets_dir: str | os.PathLike = PROBE_SETS, pad_id: int = 0) -> RealProbes:
  """The probe items of every set in `sets_dir`, tokenized with `tokenizer`."""
  sets_dir = pathlib.Path(sets_dir)
  items = []
  for row in read_set(sets_dir / FILES["facts"], ("prompt", "answer")):
    prompt, answer = _ids(tokenizer, row["prompt"], True), _ids(tokenizer, row["answer"], False)
    items.append(ProbeItem("facts", np.asarray(prompt + answer, np.int32), len(prompt),
                           len(prompt) + len(answer)))
  for row in read_set(sets_dir / FILES["context"], ("note", "question", "answer")):
    prompt = _ids(tokenizer, f"{row['note']}\n{row['question']}", True)
    answer = _ids(tokenizer, row["answer"], False)
    items.append(ProbeItem("context", np.asarray(prompt + answer, np.int32), len(prompt),
                           len(prompt) + len(answer)))
  for row in read_set(sets_dir / FILES["text"], ("text",)):
    tokens = _ids(tokenizer, row["text"], True)
    items.append(ProbeItem("text", np.asarray(tokens, np.int32), 1, len(tokens)))
  prompts = [_ids(tokenizer, row["prompt"], True)
             for row in read_set(sets_dir / FILES["kl"], ("prompt",))]
  length = max(len(p) for p in prompts)
  tokens_BxT = np.full((len(prompts), length), pad_id, np.int32)
  mask_BxT = np.zeros((len(prompts), length), bool)
  for row, prompt in enumerate(prompts):
    tokens_BxT[row, :len(prompt)], mask_BxT[row, :len(prompt)] = prompt, True
  return RealProbes(items, tokens_BxT, mask_BxT)


def score(graphdef, params, probes: RealProbes, pad_id: int = 0, base_params=None) -> dict:
  """{"retention": {...}, "context": {...}} (see the module doc)."""
  logprob, exact = score_items(graphdef, params, probes.items, pad_id=pad_id)
  kinds = np.asarray([item.probe for item in probes.items])
  lengths = np.asarray([item.end - item.start for item in probes.items])
  facts, context, text = (kinds == "facts"), (kinds == "context"), (kinds == "text")
  retention = {"facts_acc": float(exact[facts].mean()),
               "facts_logprob": float(logprob[facts].mean()),
               "perplexity": float(np.exp(-logprob[text].sum() / lengths[text].sum()))}
  if base_params is not None:
    retention["kl_to_base"] = float(similarity.model_kl_to_base(
        graphdef, base_params, params, probes.kl_tokens_BxT, probes.kl_mask_BxT))
  return {"retention": retention,
          "context": {"recall_acc": float(exact[context].mean()),
                      "recall_logprob": float(logprob[context].mean())}}


def retention_score(summary: dict) -> float:
  """The guard's score: the mean of facts and context accuracy (higher is better)."""
  return 0.5 * (summary["retention"]["facts_acc"] + summary["context"]["recall_acc"])
