"""Fine-tuning a 0.5B-1B model from a Hugging Face folder on GPUs: bf16, an fsdp mesh.

  msr train --config configs/hf_finetune.py:qwen2.5-0.5b \\
      --config.model.checkpoint=/models/Qwen2.5-0.5B-Instruct \\
      --config.data.paths="('chats.jsonl',)"
  msr train --config configs/hf_finetune.py:llama-3.2-1b \\
      --config.model.checkpoint=/models/Llama-3.2-1B-Instruct --config.data.paths=...

The folder is any transformers checkpoint of the family (config.json, safetensors,
tokenizer with a chat template); nothing is downloaded. Parameters and compute are bf16,
the optimizer's moments f32 (`config.optim.state_dtype`); every device of every process
is on the "fsdp" axis (`config.mesh.fsdp = 0`: all the devices `mesh.data` leaves;
several hosts join through `jax.distributed`, docs/training.md "Past one machine"). The
guard probes retention on the shipped real-model probes, the quality guard being a
single-host feature for now (set `--config.guard.every=0` for a multi-host run).
"""

from __future__ import annotations

import ml_collections

from msr_jax.train.config import get_config as trainer_defaults

# Per class of model: batch, learning rate (AdamW, a common fine-tuning choice for the
# size), how many tokens of context a decision may see.
CLASSES = {
    "qwen2.5-0.5b": {"batch_size": 16, "learning_rate": 2e-5, "max_context_tokens": 1024},
    "llama-3.2-1b": {"batch_size": 16, "learning_rate": 1e-5, "max_context_tokens": 2048},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  name = arg or "qwen2.5-0.5b"
  if name not in CLASSES:
    raise ValueError(f"configs/hf_finetune.py: unknown model class {name!r} (expected one of "
                     f"{sorted(CLASSES)})")
  chosen = CLASSES[name]
  c = trainer_defaults()
  c.run_dir = f"runs/{name}"
  c.tensorboard = True
  c.model.checkpoint = ""                  # the HF folder: --config.model.checkpoint=...
  c.model.dtype = "bfloat16"
  c.model.param_dtype = "bfloat16"
  c.optim.state_dtype = "float32"
  c.data.tokenizer = ""                    # the checkpoint's own, with its chat template
  c.data.max_context_tokens = chosen["max_context_tokens"]
  c.data.context_buckets = (256, 512, 1024, 2048)
  c.data.decision_buckets = (64, 128, 256, 512)
  c.train.mode = "context_frozen"
  c.train.steps = 1000
  c.train.batch_size = chosen["batch_size"]
  c.train.prefill_chunk = 1024
  c.optim.name = "adamw"
  c.optim.learning_rate = chosen["learning_rate"]
  c.optim.schedule = "cosine"
  c.optim.warmup_steps = 50
  c.optim.total_steps = 1000
  c.checkpoint.every = 200
  c.checkpoint.keep = 2
  c.guard.every = 100
  c.mesh.data, c.mesh.fsdp = 1, 0          # fsdp over every device of every process
  return c
