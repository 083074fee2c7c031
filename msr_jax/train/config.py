"""The training config's schema with neutral defaults: every field the loop reads.

`configs/train.py` is this plus the testbed's choices (Townworld's tokenizer and
episodes); package code that trains (pre-training, the experiment runner's arms, the dream
loop's consolidation) starts from `get_config()` here and overrides what it sets, so no
caller copies fields one by one and none reads a file of the repository checkout.
Nothing here names a testbed: `data.tokenizer` and `data.kind` are the config's to set.
"""

from __future__ import annotations

import ml_collections

from msr_jax.data.config import get_data_config
from msr_jax.model.lora import DEFAULT_TARGETS


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.run_dir = "runs/train"
  config.resume = True          # continue from the run folder's last checkpoint
  # A resume with a config that changes the run is refused unless this is set; the change
  # is then recorded in the run folder's config_changes.jsonl.
  config.allow_config_change = False
  config.progress = True        # tqdm bar (loss, tokens/s)
  config.tensorboard = False    # metrics.jsonl's lines also as TensorBoard event files

  config.model = ml_collections.ConfigDict()
  config.model.checkpoint = ""  # a checkpoint folder, or "" for a random init of preset
  config.model.preset = "townworld_tiny"
  for field in ("hidden_size", "intermediate_size", "num_layers", "num_heads",
                "num_kv_heads", "head_dim"):
    config.model[field] = 0     # 0: the preset's value
  config.model.dtype = ""
  config.model.param_dtype = ""

  config.data = get_data_config()
  config.data.kind = "jsonl"    # "jsonl" | "module:function" returning records
  # A tokenizer JSON file, an HF tokenizer folder, or "module:function" returning
  # (adapter, vocab_size, pad_id).
  config.data.tokenizer = ""

  config.optim = ml_collections.ConfigDict()   # fields: msr_jax/optim/registry.py
  config.optim.name = "adamw"
  config.optim.learning_rate = 1e-4
  config.optim.weight_decay = 0.0
  config.optim.schedule = "constant"
  config.optim.warmup_steps = 0

  config.train = ml_collections.ConfigDict()
  config.train.mode = "context_frozen"   # "context_frozen" | "full"
  config.train.steps = 1000
  config.train.batch_size = 8
  config.train.micro_batches = 1         # gradient accumulation (scan inside the step)
  config.train.prefill_chunk = 1024      # prefill long contexts this many tokens at a time (0: at once)
  config.train.monitor_drift = True
  # A regex over parameter paths ("layers.0.mlp.up_proj.kernel"): only these train, the
  # rest is frozen (no gradient, no optimizer state). "": everything, or with LoRA on,
  # the adapters alone (msr_jax/train/trainable.py).
  config.train.trainable = ""

  # LoRA (msr_jax/model/lora.py, Flax NNX's nnx.LoRA): an adapter of `rank` on every
  # projection whose path matches `targets`; alpha 0 means alpha = rank (scale 1).
  # rank 0: off. `msr export` merges the adapters into the weights.
  config.lora = ml_collections.ConfigDict({"rank": 0, "alpha": 0.0,
                                           "targets": DEFAULT_TARGETS})

  # Loss terms toward the starting weights (msr_jax/train/regularizers.py); 0: off.
  # EWC's Fisher and the KL term read the retention set: records (JSONL) encoded with the
  # run's tokenizer; () is the shipped general conversations
  # (msr_jax/eval/probe_sets/retain_conversations.jsonl, disjoint from every probe).
  config.regularizer = ml_collections.ConfigDict({
      "l2_sp": 0.0, "ewc": 0.0, "kl_to_base": 0.0, "retain_paths": (),
      "retain_rows": 8, "retain_max_tokens": 128})

  config.checkpoint = ml_collections.ConfigDict({"every": 100, "keep": 3})

  config.guard = ml_collections.ConfigDict()
  config.guard.every = 50               # probe every N steps (0: no guard)
  config.guard.threshold = 0.1          # rollback when score < best - threshold
  config.guard.action = "halve_lr"      # "halve_lr" | "stop"
  config.guard.max_rollbacks = 3
  config.guard.anchor = None            # a score from outside the run (None: none);
                                        # drops then count from max(best, anchor)
  # The default probe: "auto" (retention on the real-model probes for a run from a chat
  # model's checkpoint, else held-out loss) | "retention" | "heldout_loss".
  config.guard.probe = "auto"
  config.guard.holdout_examples = 32    # held out of training for "heldout_loss"
  config.guard.batch_size = 8

  # The efficacy gate (msr_jax/train/gate.py): stop at the first check, every `every`
  # steps (0: off), where the held-out behaviour reaches `target`; train.steps is the cap.
  # A chat model's run reads `prompts` (JSONL of {"prompt": ...}) judged by `judge`
  # (regex:PATTERN or llm:CHECKPOINT with `rubric`); other runs pass a gate_fn.
  config.gate = ml_collections.ConfigDict({"every": 0, "target": 1.0, "prompts": "",
                                           "judge": "", "rubric": ""})

  # The device mesh (model/sharding.py); an axis of 0 takes every device the other leaves.
  config.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": 1})
  return config
