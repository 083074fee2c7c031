"""A trained model out of a run folder (or any checkpoint) into a folder others load.

`restore_run(run_dir, step=None)` rebuilds what `train_loop` trained from the run's stored
config (`config.json`): the starting model and tokenizer (`setup`), the optimizer, and the
state restored from the orbax checkpoint of `step` (default: the newest). `export` writes
a Hugging Face folder (`model.safetensors` in torch layout, `config.json`, the tokenizer
and its chat template: `checkpoints.hf.export_hf`) or this project's folder
(`checkpoints.native`). Runs trained on a stream of batches (pre-training stages) are not
restorable from their config alone; they write their folders themselves.
"""

from __future__ import annotations

import dataclasses
import os

from msr_jax import optim
from msr_jax.checkpoints.orbax_state import StateCheckpointer
from msr_jax.errors import UserError
from msr_jax.model import lora
from msr_jax.train import run_folder, setup
from msr_jax.train.state import init_state, pure_params

FORMATS = ("hf", "native")


class ExportError(UserError, ValueError):
  """A run or checkpoint that cannot be exported as asked; the message names it."""


@dataclasses.dataclass
class Trained:
  model_config: object
  graphdef: object
  params: dict
  tokenizer: object | None   # a transformers tokenizer, or None (none to export)
  step: int | None           # the run's step, or None for a checkpoint


def restore_run(run_dir: str, step: int | None = None) -> Trained:
  """The parameters of a `msr train` run folder at `step` (default: its newest), with any
  LoRA adapters merged into the weights."""
  path = os.path.join(run_dir, run_folder.CONFIG_FILE)
  if not os.path.exists(path):
    raise ExportError(f"{path}: missing; is {run_dir} a training run folder?")
  config = run_folder.stored_config(run_dir)
  if config.get("init_digest"):
    raise ExportError(f"{run_dir}: a pre-training stage's run; its weights are in the "
                      "stage folder `msr pretrain` writes beside it")
  checkpointer = StateCheckpointer(os.path.join(run_dir, "checkpoints"), 1)
  try:
    steps = checkpointer.all_steps()
    if not steps:
      raise ExportError(f"{run_dir}/checkpoints: no checkpoint to export")
    step = steps[-1] if step is None else int(step)
    if step not in steps:
      raise ExportError(f"{run_dir}: no checkpoint of step {step} (have {steps})")
    # The run's starting point, made as `train_loop` makes it.
    checkpoint_tokenizer = model_config = None
    if config.model.checkpoint:
      model_config, graphdef, params, checkpoint_tokenizer = setup.load_checkpoint(
          config.model)
    adapter, vocab_size, pad_id = setup.make_adapter(
        config.data.tokenizer, checkpoint_tokenizer, model_config, config.model.checkpoint)
    if not config.model.checkpoint:
      model_config, graphdef, params = setup.build_model(config.model, vocab_size,
                                                         int(config.seed))
    tokenizer = setup.named_tokenizer(config.data.tokenizer) or checkpoint_tokenizer
    graphdef, params, trainable = setup.adapt_model(config, graphdef, params)
    _, aux = setup.regularizer(config, graphdef, params, trainable, adapter, pad_id,
                               abstract=True)
    tx = optim.make_optimizer(config.optim)
    state = init_state(params, tx, seed=int(config.seed), trainable=trainable, aux=aux)
    target = {"train": state}
    if int(config.guard.every) > 0:
      target["good"] = (state.params, state.opt_state)
    restored, _ = checkpointer.restore(step, target)
  finally:
    checkpointer.close()
  # LoRA adapters folded into the weights: the export is the base architecture.
  graphdef, params = lora.merge_lora(graphdef, restored["train"].params)
  return Trained(model_config, graphdef, params, tokenizer, step)


def load_checkpoint(path: str) -> Trained:
  """Any checkpoint `msr_jax.load` reads, to be written in another format."""
  from msr_jax.checkpoints import loader
  loaded = loader.load(path)
  return Trained(loaded.config, loaded.graphdef, pure_params(loaded.params),
                 loaded.tokenizer, None)


def export(trained: Trained, out_dir: str, fmt: str = "hf", dtype: str | None = None) -> str:
  """Writes `trained` to `out_dir` as `fmt` ("hf" | "native"); returns the folder."""
  from msr_jax.checkpoints import hf, native
  if fmt not in FORMATS:
    raise ExportError(f"export format: unknown {fmt!r}, expected one of {FORMATS}")
  if os.path.exists(out_dir) and os.listdir(out_dir):
    raise ExportError(f"{out_dir}: exists and is not empty; choose another folder")
  os.makedirs(out_dir, exist_ok=True)
  if fmt == "hf":
    hf.export_hf(out_dir, trained.model_config, trained.params, trained.tokenizer, dtype)
  else:
    native.save(out_dir, trained.model_config, trained.params, trained.tokenizer)
  return out_dir
