"""The dream loop on a chat model: SmolLM2-135M-Instruct and the shipped example's
behaviour ("Forecast:" answers to weather questions, `configs/smollm2_forecast.py`).

  msr dream --config configs/dream_real.py            # 2 cycles on this CPU
  msr dream --config configs/dream_real.py:smoke      # 1 short cycle

Memories: the example's 48 conversations (`examples/forecast/train.jsonl`). Collisions:
the base model writes a new request from 2-3 linked memories (few-shot, echoes and
duplicates dropped: `msr_jax/chat/dream_domain.py`). Answers: the current model with the
fast store in context (the instruction and 4 of the real conversations). Judges: the
verifier (`regex:^Forecast:`, the training signal) and self-consistency, each reported;
set `--config.judges.llm=CHECKPOINT` to add an LLM judge. Training: real + accepted dream
conversations, the fast store stripped, under the guard on the real-model retention
probes. Probes: held-out prompts with and without the fast store, facts, context recall.
"""

from __future__ import annotations

import ml_collections

from msr_jax.dream.config import dream_defaults
from msr_jax.train.config import get_config as trainer_defaults

EXAMPLE = "examples/forecast"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.domain = "chat"
  c.seed = 0
  c.out_dir = "runs/dream_real"
  c.model = ml_collections.ConfigDict({"checkpoint": "smollm2-135m-instruct-q4_1"})
  c.memory = ml_collections.ConfigDict({"paths": (f"{EXAMPLE}/train.jsonl",)})
  # Few-shot collisions written for this repository, about cities in no training or
  # held-out prompt (Bergen, Cork, Porto, Krakow).
  c.collide = ml_collections.ConfigDict({"max_new_tokens": 48, "max_overlap": 0.8,
                                         "examples": (
      {"memories": ("Is it going to rain in Bergen tomorrow?",
                    "How warm will it be in Porto today?"),
       "request": "I'm flying from Bergen to Porto tomorrow - will it be warm and dry "
                  "when I land?"},
      {"memories": ("Will it be cold in Cork tonight?",
                    "Should I take an umbrella in Krakow today?",
                    "What will the weather be like in Cork on Friday?"),
       "request": "I'm walking around Krakow this evening - do I need a coat or an "
                  "umbrella?"})})
  c.fast_store = ml_collections.ConfigDict({
      "instruction": "Answer every question about the weather with one line that starts "
                     "with 'Forecast:', then the sky, the temperature and the wind.",
      "demonstrations": 4})
  c.judges = ml_collections.ConfigDict({"verify": r"^Forecast:", "llm": "",
                                        "rubric": "starts with 'Forecast:' and gives a "
                                                  "short weather forecast"})
  c.probes = ml_collections.ConfigDict({"seed": 0, "sizes": ml_collections.ConfigDict(),
                                        "prompts": f"{EXAMPLE}/heldout_prompts.jsonl",
                                        "prefix": "Forecast:"})
  c.dream = dream_defaults()
  c.dream.update({"cycles": 2, "walks_per_cycle": 16, "judges": ("verify", "self"),
                  "judge": "verify", "max_new_tokens": 32, "generate_batch_size": 8,
                  "dream_weight": 0.5})
  c.dream.temperature.initial = 0.3
  c.trainer = trainer_defaults()
  t = c.trainer
  t.seed, t.resume, t.progress = 0, False, False
  t.model.checkpoint = "smollm2-135m-instruct-q4_1"
  t.data.tokenizer = ""
  t.data.max_context_tokens = 512
  t.data.context_buckets = (96, 256, 512)     # the fast store is stripped from training
  t.data.decision_buckets = (32, 64)
  t.data.long_decisions = "cut"               # a dream that ran to its token budget
  t.train.update({"mode": "context_frozen", "steps": 15, "batch_size": 4})
  t.optim.update({"name": "adamw", "learning_rate": 1e-4})
  t.guard.update({"every": 15, "threshold": 0.1, "action": "halve_lr", "max_rollbacks": 3})
  t.checkpoint.update({"every": 15, "keep": 1})
  if arg == "smoke":
    c.out_dir = "runs/dream_real_smoke"
    c.dream.update({"cycles": 1, "walks_per_cycle": 4})
    t.train.steps = 2
    t.guard.every = 2
    t.checkpoint.every = 2
  elif arg not in (None, ""):
    raise ValueError(f"configs/dream_real.py: unknown argument {arg!r} (expected none or "
                     "smoke)")
  return c
