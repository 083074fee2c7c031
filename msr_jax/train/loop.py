"""The training loop: a reusable function the CLI, the experiment runner and the dream loop
call in-process.

Per step: draw a batch -> jitted step (loss, skip of non-finite updates, drift monitor) ->
one "train" line in metrics.jsonl -> quality guard every `guard.every` steps (probe,
maybe rollback and halve the lr or stop; a "guard" line) -> callbacks -> an orbax
checkpoint every `checkpoint.every` steps and at the end (state, last good copy, data
position, guard state; `checkpoint.every = 0`: never, for throw-away runs). A run folder
with checkpoints is resumed from the newest one, and metrics.jsonl is cut back to that
step, so a killed and restarted run writes the same file as one that was
never interrupted (in every field but the wall-clock ones, `metrics_log.TIMING`). With
`config.tensorboard`, the same lines also go to TensorBoard event files in
`<run_dir>/tensorboard` (`train/tensorboard.py`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from typing import Callable, Mapping, Sequence

import jax
import numpy as np
import tqdm

from msr_jax import optim
from msr_jax.checkpoints.orbax_state import StateCheckpointer
from msr_jax.errors import (RESUME_ADVICE, ConfigError, DiskFullError, describe_disk_full,
                            disk_full_cause)
from msr_jax.model import lora, make_mesh
from msr_jax.model.config import ModelConfig
from msr_jax.train import distributed, metrics_log, run_folder, setup, tensorboard
from msr_jax.train.data_stream import BatchStream
from msr_jax.train.gate import gate_from_config
from msr_jax.train.guard import QualityGuard
from msr_jax.train.probes import PROBES, heldout_loss_probe, retention_probe
from msr_jax.train.state import TrainState, init_state
from msr_jax.train.step import jit_train_step, make_train_step

log = logging.getLogger(__name__)

# A callback sees (step, host metrics, state) after every step; raising StopTraining ends
# the run cleanly (final checkpoint written), any other exception propagates.
Callback = Callable[[int, dict, TrainState], None]


# Jitted steps (with their optimizer) by everything that defines them. Several runs in one
# process (the sweep's workers serve many arms; an arm trains stage after stage) reuse the
# traced and compiled step instead of tracing it again; the step is a pure function of
# this key, so reuse changes no number. Oldest entries go first beyond the limit.
_STEP_CACHE: dict = {}
_STEP_CACHE_SIZE = 16


def _jitted_step(graphdef, model_config, optim_config, mode, micro, chunk, drift, trainable,
                 regularizer):
  """(tx, jitted step) for a run without a mesh, built once per process per key."""
  optim_dict = optim_config.to_dict() if hasattr(optim_config, "to_dict") else dict(optim_config)
  key = (graphdef, model_config, json.dumps(optim_dict, sort_keys=True, default=repr), mode,
         micro, chunk, drift, trainable, regularizer)
  if key not in _STEP_CACHE:
    if len(_STEP_CACHE) >= _STEP_CACHE_SIZE:
      _STEP_CACHE.pop(next(iter(_STEP_CACHE)))
    tx = optim.make_optimizer(optim_dict)
    step_fn = make_train_step(graphdef, model_config, tx, mode, micro, chunk, drift,
                              trainable, regularizer)
    _STEP_CACHE[key] = (tx, jit_train_step(step_fn, None)[0])
  return _STEP_CACHE[key]


class StopTraining(Exception):
  """Raised by a callback to end the run after the current step."""


@dataclasses.dataclass
class TrainResult:
  summary: dict
  state: TrainState
  graphdef: object   # with LoRA adapters where the run attached them
  model_config: ModelConfig

  def merged(self):
    """(graphdef, params) of the base architecture: LoRA adapters folded into the weights
    (the state's own, for any other run)."""
    return lora.merge_lora(self.graphdef, self.state.params)


def _host_metrics(metrics: dict) -> dict:
  return {k: (int(v) if np.issubdtype(np.asarray(v).dtype, np.integer) else float(v))
          for k, v in jax.device_get(metrics).items()}


def _restore_good(state: TrainState, good, guard: QualityGuard) -> TrainState:
  """The last good parameters and optimizer state, on the state's devices, with the
  learning rate the guard now asks for."""
  params, opt_state = jax.device_put(good, jax.tree_util.tree_map(
      lambda x: x.sharding, (state.params, state.opt_state)))
  factor = guard.state.lr_factor / guard.state.good_lr_factor
  if factor != 1.0:
    opt_state = optim.scale_learning_rate(opt_state, factor)
  return state._replace(params=params, opt_state=opt_state)


def train_loop(config, sources: Mapping[str, Sequence] | None = None, *, graphdef=None,
               params=None, model_config: ModelConfig | None = None,
               probe_fn: Callable | None = None, callbacks: Sequence[Callback] = (),
               run_dir: str | None = None, max_steps: int | None = None,
               stream=None, gate_fn: Callable | None = None, adapter=None) -> TrainResult:
  """Trains as `config` says (see configs/train.py) and returns the final state.

  sources: examples (`msr_jax.data.segmentation.Example`) by source name; default: loaded
    from config.data. graphdef/params/model_config: the model to start from; default:
    built from config.model. probe_fn: params -> score for the guard; default
    (`config.guard.probe`, `train/probes.py`): the real-model probes' retention score for
    a run from a checkpoint with its own tokenizer, else the negative loss on
    `config.guard.holdout_examples` examples held out of training. max_steps:
    stop after this step (as if killed, but cleanly) without changing config.train.steps.
  stream: the step batches instead of a `BatchStream` over `sources` (pre-training's packed
    rows): `next_batch() -> Batch` and a JSON position (`get_state()` / `set_state(state)`)
    that a resume restores exactly. It needs `params` (nothing is loaded then) and, with
    the guard on, `probe_fn`.
  gate_fn: params -> efficacy in [0, 1] for the efficacy gate (`config.gate`,
    `train/gate.py`); default: the behaviour probe config.gate names, for a chat model.
  adapter: the tokenizer adapter of caller-made `sources` (what EWC's Fisher and the KL
    term encode their retention set with); default: made from config.data.tokenizer.

  The config is checked before anything is written (`setup.check_config`); the run folder
  is locked while the run trains, and a resume refuses a config that changes the run
  (`run_folder`).
  """
  setup.check_config(config)
  run_dir = os.path.abspath(run_dir or config.run_dir)
  checkpoint_dir = os.path.join(run_dir, "checkpoints")
  if distributed.is_multi_process():
    setup.check_multi_host(config)
    if jax.process_index() > 0:
      # Every process writes the shared checkpoints (orbax coordinates them); the lock,
      # the config and the logs of process N live in a folder of its own.
      run_dir = os.path.join(run_dir, f"process_{jax.process_index()}")
  os.makedirs(run_dir, exist_ok=True)
  with run_folder.RunLock(run_dir):
    return _train(config, sources, graphdef, params, model_config, probe_fn, callbacks,
                  run_dir, max_steps, stream, gate_fn, checkpoint_dir, adapter)


def _train(config, sources, graphdef, params, model_config, probe_fn, callbacks, run_dir,
           max_steps, stream, gate_fn, checkpoint_dir, adapter) -> TrainResult:
  pad_id = None
  if stream is not None:
    if params is None:
      raise ValueError("train_loop: a stream of batches needs the model (params)")
    if probe_fn is None and int(config.guard.every) > 0:
      raise ValueError("train_loop: a stream of batches needs a probe_fn for the guard")
    sources = {}
  checkpoint_tokenizer = None
  if params is None and config.model.checkpoint:
    model_config, graphdef, params, checkpoint_tokenizer = setup.load_checkpoint(config.model)
  if sources is None or params is None:
    adapter, vocab_size, pad_id = setup.make_adapter(
        config.data.tokenizer, checkpoint_tokenizer,
        model_config if config.model.checkpoint else None, config.model.checkpoint)
  if sources is None:
    sources = setup.load_sources(config, adapter)
  else:  # made by the caller: held to the same long-decision policy before step 1
    sources = setup.limit_sources(sources, config.data)
  if params is None:
    model_config, graphdef, params = setup.build_model(config.model, vocab_size, config.seed)
  if pad_id is None:
    pad_id = model_config.pad_token_id or 0
  caller_graphdef = graphdef
  graphdef, params, trainable = setup.adapt_model(config, graphdef, params)
  if graphdef != caller_graphdef:
    # The run attached LoRA adapters: the caller's functions (guard probe, gate, callbacks)
    # see the parameters of the architecture they were given, the adapters merged.
    to_caller = jax.jit(lambda p: lora.merge_lora(graphdef, p)[1])
    if probe_fn is not None:
      probe_fn = (lambda fn: lambda p: fn(to_caller(p)))(probe_fn)
    if gate_fn is not None:
      gate_fn = (lambda fn: lambda p: fn(to_caller(p)))(gate_fn)
    callbacks = [(lambda cb: lambda step, m, s: cb(step, m, s._replace(
        params=to_caller(s.params))))(cb) for cb in callbacks]
  regularizer, aux = setup.regularizer(config, graphdef, params, trainable, adapter, pad_id)
  gate, gate_fn = gate_from_config(config, graphdef, checkpoint_tokenizer, gate_fn)
  guard = QualityGuard(int(config.guard.every), float(config.guard.threshold),
                       config.guard.action, int(config.guard.max_rollbacks),
                       config.guard.get("anchor", None))
  if probe_fn is None and guard.every > 0:
    kind = config.guard.get("probe", "auto")
    if kind not in PROBES:
      raise ConfigError(f"config.guard.probe: unknown {kind!r}, expected one of {PROBES}")
    if kind == "auto":
      # A chat model's tokenizer reads English; the testbed's word tokenizer does not.
      kind = ("retention" if getattr(checkpoint_tokenizer, "chat_template", None)
              else "heldout_loss")
    if kind == "retention":
      if checkpoint_tokenizer is None:
        raise ConfigError("config.guard.probe='retention' needs a run from a checkpoint "
                          "with its own tokenizer (config.model.checkpoint)")
      probe_fn = retention_probe(graphdef, checkpoint_tokenizer, pad_id)
    else:
      sources, held = setup.split_holdout(sources, int(config.guard.holdout_examples),
                                          int(config.seed))
      probe_fn = heldout_loss_probe(graphdef, model_config, held,
                                    int(config.guard.batch_size),
                                    config.data.context_buckets,
                                    config.data.decision_buckets, pad_id)

  t = config.train
  micro = int(t.micro_batches)
  if stream is None:
    stream = BatchStream(config, sources, int(t.batch_size), micro, pad_id)
  step_args = (graphdef, model_config, t.mode, micro, int(t.prefill_chunk),
               bool(t.monitor_drift), trainable, regularizer)
  data, fsdp = setup.mesh_shape(config)
  if data * fsdp > 1:
    mesh = make_mesh(data, fsdp)
    tx = optim.make_optimizer(config.optim)
    state = init_state(params, tx, seed=int(config.seed), trainable=trainable, aux=aux)
    step_fn = make_train_step(step_args[0], step_args[1], tx, *step_args[2:])
    # An example batch fixes the batch shardings (its shapes do not matter); the stream
    # goes back to where it was.
    position = stream.get_state()
    example_batch = stream.next_batch()
    stream.set_state(position)
    jitted, state = jit_train_step(step_fn, state, mesh, example_batch, micro)
  else:
    tx, jitted = _jitted_step(graphdef, model_config, config.optim, *step_args[2:])
    state = init_state(params, tx, seed=int(config.seed), trainable=trainable, aux=aux)
  # The guard's last good copy (host memory); checkpointed only when the guard is on.
  use_guard = guard.every > 0
  good = jax.device_get((state.params, state.opt_state)) if use_guard else None

  with contextlib.ExitStack() as cleanup:
    checkpointer = StateCheckpointer(checkpoint_dir,
                                     int(config.checkpoint.keep))
    cleanup.callback(checkpointer.close)  # on every way out, early errors included
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    start = 0
    latest = checkpointer.latest_step() if config.resume else None
    if latest is not None:
      changed = run_folder.check_resume_config(run_dir, config, latest,
                                               bool(config.get("allow_config_change", False)))
      target = {"train": state}
      if use_guard:
        target["good"] = (state.params, state.opt_state)
      restored, meta = checkpointer.restore(latest, target)
      if changed:  # the new config's injected learning rate, not the stored one, here and
        # in the guard's good copy (a rollback must not bring the old one back)
        fresh = state.opt_state
        restored["train"] = restored["train"]._replace(
            opt_state=optim.refresh_hyperparams(restored["train"].opt_state, fresh))
        if use_guard:
          good_params, good_opt = restored["good"]
          restored["good"] = (good_params, optim.refresh_hyperparams(good_opt, fresh))
        run_folder.record_config_changes(run_dir, config, latest, changed)
      state = restored["train"]
      good = jax.device_get(restored["good"]) if use_guard else None
      stream.set_state(meta["data"])
      guard.set_state(meta["guard"])
      if "gate" in meta:
        gate.set_state(meta["gate"])
      start = latest
      metrics_log.truncate_after(metrics_path, latest)
    else:  # a fresh run (resume off, or nothing saved yet)
      if checkpointer.all_steps():  # an earlier run's: a later resume would pick them up
        raise run_folder.RunFolderError(
            f"{run_dir}: holds the checkpoints of an earlier run (steps "
            f"{checkpointer.all_steps()}) and resume is off; starting afresh here would mix "
            "the two runs: use another run folder, delete the checkpoints, or resume")
      for stale in (metrics_path, os.path.join(run_dir, run_folder.CHANGES_FILE)):
        if os.path.exists(stale):
          os.remove(stale)
      run_folder.store_config(run_dir, config)
    if int(config.checkpoint.every) == 0 and config.resume:  # asked to be resumable
      log.warning("%s: checkpoint.every=0: this run writes no checkpoint and cannot be "
                   "resumed", run_dir)
    events = metrics_log.MetricsLog(metrics_path)
    cleanup.callback(events.close)
    board = None
    if config.get("tensorboard", False):
      board = tensorboard.Board(os.path.join(run_dir, tensorboard.FOLDER))
      cleanup.callback(board.close)

    def save(step: int) -> None:
      events.write({"type": "checkpoint", "step": step})
      items = {"train": state, "good": good} if use_guard else {"train": state}
      try:
        checkpointer.save(step, items, {"data": stream.get_state(), "guard": guard.get_state(),
                                        "gate": gate.get_state()})
      except Exception as e:
        if disk_full_cause(e) is None:
          raise
        raise DiskFullError(describe_disk_full(
            e, f"{checkpointer.directory}: saving the checkpoint of step {step}",
            RESUME_ADVICE)) from None

    def run_guard(step: int) -> bool:
      """Probes, logs, rolls back; returns True when the run must stop."""
      nonlocal state, good
      event = guard.observe(step, float(probe_fn(state.params)))
      if event["event"] in ("baseline", "best"):
        good = jax.device_get((state.params, state.opt_state))
      elif event["event"] == "rollback":
        state = _restore_good(state, good, guard)
      if event.get("non_finite"):
        log.warning("%s: step %d: the guard's probe score is %s (the model diverged?); "
                    "rolled back to step %s", run_dir, step, event["score"],
                    event.get("rollback_to_step"))
      events.write(event)
      if board is not None:
        board.write(event)
      return guard.state.stopped

    def run_gate(step: int) -> bool:
      """Measures the efficacy, logs it; returns True when the target is reached."""
      event = gate.observe(step, float(gate_fn(state.params)))
      events.write(event)
      if board is not None:
        board.write(event)
      return event["reached"]

    total_steps = int(t.steps)
    last = total_steps if max_steps is None else min(total_steps, int(max_steps))
    # A run the guard stopped, or whose gate was reached, stays stopped when resumed.
    stopped = guard.state.stopped or gate.state.reached
    if start == 0 and use_guard:
      stopped = run_guard(0)
    if start == 0 and gate.every and not stopped:
      stopped = run_gate(0)
    metrics = {}
    bar = tqdm.tqdm(total=total_steps, initial=start, disable=not config.progress,
                    desc=f"train {t.mode}", dynamic_ncols=True)
    step = start
    try:
      while step < last and not stopped:
        batch = stream.next_batch()
        began = time.perf_counter()
        state, device_metrics = jitted(state, batch)
        metrics = _host_metrics(device_metrics)  # waits for the step
        step_s = time.perf_counter() - began
        step += 1
        tokens = batch.num_tokens
        line = {"type": "train", "step": step, "tokens": tokens, **metrics,
                "step_s": step_s, "tokens_per_s": tokens / max(step_s, 1e-9)}
        events.write(line)
        if board is not None:
          board.write(line)
        bar.update(1)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", tok_s=f"{line['tokens_per_s']:.0f}")
        if guard.due(step):
          stopped = run_guard(step)
        if gate.due(step) and not stopped:
          stopped = run_gate(step)
        try:
          for callback in callbacks:
            callback(step, metrics, state)
        except StopTraining:
          stopped = True
        every = int(config.checkpoint.every)
        if every > 0 and (step % every == 0 or step == total_steps or stopped):
          save(step)
    finally:
      bar.close()
  summary = {"run_dir": run_dir, "step": step, "mode": t.mode,
             "final_loss": metrics.get("loss"), "num_skipped": int(state.num_skipped),
             "num_rollbacks": guard.state.num_rollbacks, "stopped_by_guard": guard.state.stopped,
             "best_score": guard.state.best_score, "lr_factor": guard.state.lr_factor,
             **(gate.summary() if gate.every else {})}
  return TrainResult(summary, state, graphdef, model_config)
