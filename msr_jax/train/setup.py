"""From a training config to the loop's ingredients: tokenizer adapter, examples, model.

config.data.kind = "jsonl": records from config.data.paths (msr_jax.data's reader); or
  "module:function", a function of config.data that returns records (a testbed's episodes:
  configs/train.py:smoke names Townworld's).
config.data.tokenizer = a path to a `tokenizers` JSON file (plain template, markers
  <system>/<user>/<assistant>/<eot>), a Hugging Face tokenizer folder or any checkpoint
  `msr_jax.load` reads (a GGUF file, a bundled short name: its tokenizer and chat
  template), "module:function" returning (adapter, vocab_size, pad_id) (Townworld's
  word-level tokenizer in configs/train.py), or "" for the checkpoint's own tokenizer.
  A tokenizer that does not fit the model (more tokens than its vocabulary, or another
  size than the checkpoint's own tokenizer) is an error. This module names no testbed:
  the config does.
config.model.checkpoint = "" for a random init of config.model.preset (with the non-zero
  size fields of config.model applied), or anything `msr_jax.load` reads: a Hugging Face
  folder, a GGUF file, a checkpoint folder of this project, a bundled short name.
  config.model.dtype / param_dtype apply to it too (e.g. "bfloat16").
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from typing import Mapping, Sequence

import jax
import numpy as np
from flax import nnx

from msr_jax.data import pipeline
from msr_jax.data.segmentation import (LONG_DECISIONS, Example, SegmentStats, limit_decisions,
                                       segment_all)
from msr_jax.data.tokenize import tokenize_record
from msr_jax.errors import ConfigError
from msr_jax.model import Decoder, ModelConfig

log = logging.getLogger(__name__)

# config.model fields that change the preset when non-zero / non-empty.
MODEL_CHANGES = ("hidden_size", "intermediate_size", "num_layers", "num_heads",
                 "num_kv_heads", "head_dim", "dtype", "param_dtype")


def _positive_ints(name: str, values) -> tuple[int, ...]:
  values = tuple(values)
  if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values) \
      or list(values) != sorted(set(values)):
    raise ConfigError(f"config.{name}: must be a non-empty ascending list of positive "
                      f"integers, got {values!r}")
  return values


def check_config(config) -> None:
  """Refuses, before anything runs or is written, a training config that could not run
  to its end or could never resume; each error names the field."""
  def at_least(name: str, minimum: int) -> int:
    section, _, field = name.partition(".")
    value = config[section][field]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
      raise ConfigError(f"config.{name}: must be an integer >= {minimum}, got {value!r}")
    return value

  at_least("train.steps", 1)
  at_least("train.batch_size", 1)
  at_least("train.micro_batches", 1)
  at_least("checkpoint.every", 0)
  at_least("checkpoint.keep", 1)
  if at_least("guard.every", 0):
    at_least("guard.batch_size", 1)
    at_least("guard.max_rollbacks", 0)
  for field, allowed in (("on_error", ("raise", "skip")),
                         ("long_decisions", ("",) + LONG_DECISIONS)):
    if config.data.get(field, "") not in allowed:
      raise ConfigError(f"config.data.{field}: unknown {config.data[field]!r}, expected one "
                        f"of {allowed}")
  context = _positive_ints("data.context_buckets", config.data.context_buckets)
  _positive_ints("data.decision_buckets", config.data.decision_buckets)
  # The context is prefilled without its last token, which starts the decision input.
  if int(config.data.max_context_tokens) - 1 > context[-1]:
    raise ConfigError(f"config.data.max_context_tokens={config.data.max_context_tokens}: a "
                      f"context that long does not fit the largest context bucket "
                      f"({context[-1]} + 1); lower it or add a bucket")


def mesh_shape(config) -> tuple[int, int]:
  """(data, fsdp) of config.mesh; an axis of 0 takes every device the other leaves."""
  data, fsdp = int(config.mesh.data), int(config.mesh.fsdp)
  if data < 0 or fsdp < 0 or (data == 0 and fsdp == 0):
    raise ConfigError(f"config.mesh: data={data}, fsdp={fsdp}: each >= 1, or one of them 0 "
                      "for every device the other leaves")
  devices = jax.device_count()
  if data == 0 or fsdp == 0:
    given = data or fsdp
    if devices % given:
      raise ConfigError(f"config.mesh: {given} does not divide the {devices} devices")
    data, fsdp = (devices // fsdp, fsdp) if data == 0 else (data, devices // data)
  return data, fsdp


def check_multi_host(config) -> None:
  """What a run across processes needs: a mesh over every global device, and no probe
  that runs on one host's copy of the parameters."""
  data, fsdp = mesh_shape(config)
  size = data * fsdp
  if size != jax.device_count():
    raise ConfigError(f"config.mesh: data x fsdp = {size}, but the {jax.process_count()} "
                      f"processes have {jax.device_count()} devices; a multi-host run's "
                      "mesh spans them all")
  for field in ("guard.every", "gate.every"):
    section, name = field.split(".")
    if config.get(section) is not None and int(config[section][name]):
      raise ConfigError(f"config.{field}: must be 0 in a multi-host run (its probes run on "
                        "one host's copy of the parameters; not supported yet)")


def _is_entry(spec: str) -> bool:
  module, sep, name = spec.partition(":")
  return bool(sep and module and name.isidentifier() and not os.path.exists(spec))


def _entry(spec: str, field: str):
  """The function that a "module:function" config value names."""
  module, _, name = spec.partition(":")
  try:
    return getattr(importlib.import_module(module), name)
  except (ImportError, AttributeError) as e:
    raise ConfigError(f"config.{field}: cannot load {spec!r}: {e}") from None


def _checkpoint_adapter(tokenizer, source: str):
  """(adapter, vocab_size, pad_id) of a checkpoint's `transformers` tokenizer."""
  from msr_jax.data.chat_template import ChatTemplateAdapter
  if not getattr(tokenizer, "chat_template", None):
    raise ConfigError(f"{source}: its tokenizer has no chat template; name a tokenizer "
                      "with one (or a tokenizer JSON file for the plain template) in "
                      "config.data.tokenizer")
  return ChatTemplateAdapter(tokenizer), len(tokenizer), tokenizer.pad_token_id or 0


def make_adapter(tokenizer_spec: str, checkpoint_tokenizer=None, model_config=None,
                 checkpoint: str = ""):
  """(adapter, vocab_size, pad_id) for config.data.tokenizer; "" is the checkpoint's own.

  With a model loaded from a checkpoint, the tokenizer must fit it: no more tokens than
  its vocabulary and, where the checkpoint has a tokenizer of its own, as many as that
  one (a tokenizer of another model would train on the wrong vocabulary, silently).
  """
  if not tokenizer_spec:
    if checkpoint_tokenizer is None:
      where = (f"config.model.checkpoint={checkpoint!r} has none" if checkpoint else
               "and no config.model.checkpoint brings one")
      raise ConfigError(f"config.data.tokenizer: empty (the checkpoint's own), but {where}; "
                        "name a tokenizer")
    return _checkpoint_adapter(checkpoint_tokenizer, checkpoint)
  made = _adapter_of(tokenizer_spec)
  vocab_size = made[1]
  if model_config is not None and vocab_size > model_config.vocab_size:
    raise ConfigError(f"config.data.tokenizer={tokenizer_spec!r}: {vocab_size} tokens do not "
                      f"fit the model's vocabulary of {model_config.vocab_size}")
  if checkpoint_tokenizer is not None and vocab_size != len(checkpoint_tokenizer):
    raise ConfigError(f"config.data.tokenizer={tokenizer_spec!r} has {vocab_size} tokens, "
                      f"but the tokenizer of config.model.checkpoint={checkpoint!r} has "
                      f"{len(checkpoint_tokenizer)}: it is another model's; set "
                      "config.data.tokenizer='' to use the checkpoint's own")
  return made


def _adapter_of(tokenizer_spec: str):
  if _is_entry(tokenizer_spec):
    return _entry(tokenizer_spec, "data.tokenizer")()
  from msr_jax.checkpoints import loader
  path = loader.resolve(tokenizer_spec)
  if _is_json_file(path):
    import tokenizers
    from msr_jax.data.plain_template import PlainTemplateAdapter
    tokenizer = tokenizers.Tokenizer.from_file(path)
    pad = tokenizer.token_to_id("<pad>")
    return PlainTemplateAdapter(tokenizer), tokenizer.get_vocab_size(), pad or 0
  if os.path.exists(path):
    tokenizer = named_tokenizer(tokenizer_spec)
    if tokenizer is None:
      raise ConfigError(f"config.data.tokenizer: {path} holds no tokenizer")
    return _checkpoint_adapter(tokenizer, path)
  raise ConfigError(f"config.data.tokenizer: {tokenizer_spec!r} is neither a tokenizer JSON "
                    "file, a tokenizer folder, a checkpoint nor a module:function")


def _is_json_file(path: str) -> bool:
  """A tokenizers JSON file (any other file is a checkpoint: a GGUF)."""
  from msr_jax.checkpoints import gguf_import
  return os.path.isfile(path) and not gguf_import.is_gguf(path)


def named_tokenizer(tokenizer_spec: str):
  """The `transformers` tokenizer that config.data.tokenizer names as a file, a folder or a
  checkpoint (a GGUF's from its metadata); None for "" or a module:function adapter."""
  if not tokenizer_spec or _is_entry(tokenizer_spec):
    return None
  from msr_jax.checkpoints import loader
  path = loader.resolve(tokenizer_spec)
  if _is_json_file(path):
    from transformers import PreTrainedTokenizerFast
    return PreTrainedTokenizerFast(tokenizer_file=path)
  return loader.load_tokenizer(path)


def long_decision_policy(data_config) -> str:
  """data.long_decisions, or data.on_error when it is "" (see segmentation.limit_decisions)."""
  return data_config.get("long_decisions", "") or data_config.on_error


def examples_from_records(records, adapter, data_config) -> dict[str, list[Example]]:
  """Examples of records made in memory, by source. Long decisions are `limit_sources`'
  work, done once where the examples reach the trainer."""
  examples, _ = segment_all((tokenize_record(r, adapter) for r in records),
                            int(data_config.max_context_tokens), int(data_config.keep_first))
  by_source: dict[str, list[Example]] = {}
  for example in examples:
    by_source.setdefault(example.source, []).append(example)
  return by_source


def limit_sources(sources: Mapping[str, Sequence[Example]], data_config
                  ) -> dict[str, list[Example]]:
  """Sources a caller made, with the long-decision policy applied (errors name the
  source and the record id)."""
  out, limit = {}, max(data_config.decision_buckets)
  for name, examples in sources.items():
    kept, reasons = limit_decisions(list(examples), limit, long_decision_policy(data_config),
                                    SegmentStats(), f"source {name!r}")
    for reason in reasons:
      log.warning("%s", reason)
    out[name] = kept
  return out


def load_sources(config, adapter) -> dict[str, list[Example]]:
  data = config.data
  if data.kind == "jsonl":
    if not data.paths:
      raise ValueError("config.data.paths: no JSONL files given (data.kind='jsonl')")
    sources, _ = pipeline.load_examples(list(data.paths), adapter,
                                        int(data.max_context_tokens), data.on_error,
                                        int(data.keep_first), max(data.decision_buckets),
                                        data.get("long_decisions", ""))
    return sources
  if _is_entry(data.kind):
    return limit_sources(examples_from_records(_entry(data.kind, "data.kind")(data), adapter,
                                               data), data)
  raise ConfigError(f"config.data.kind: unknown {data.kind!r}, expected 'jsonl' or "
                    "module:function")


def split_holdout(sources: Mapping[str, Sequence[Example]], count: int, seed: int
                  ) -> tuple[dict[str, list[Example]], list[Example]]:
  """Takes `count` examples (a seeded draw over all sources) out of training."""
  flat = [(name, i) for name in sorted(sources) for i in range(len(sources[name]))]
  if count >= len(flat):
    raise ValueError(f"config.guard.holdout_examples={count} leaves no training examples "
                     f"(have {len(flat)})")
  chosen = set(map(tuple, np.random.default_rng([seed, 7]).permutation(
      np.asarray(flat, dtype=object))[:count].tolist())) if count else set()
  held = [sources[n][i] for n, i in flat if (n, i) in chosen]
  train = {n: [x for i, x in enumerate(sources[n]) if (n, i) not in chosen] for n in sources}
  return train, held


def load_checkpoint(model_config_dict):
  """(ModelConfig, graphdef, params as a pure dict, its tokenizer or None) of
  config.model.checkpoint, with config.model.dtype / param_dtype applied."""
  from msr_jax.checkpoints import loader
  m = model_config_dict
  fixed = [k for k in MODEL_CHANGES if k not in ("dtype", "param_dtype") and m.get(k)]
  if fixed:
    raise ConfigError(f"config.model.{fixed[0]}={m[fixed[0]]!r}: a checkpoint "
                      f"({m.checkpoint!r}) fixes the architecture; set it to 0")
  changes = {k: m[k] for k in ("dtype", "param_dtype") if m.get(k)}
  loaded = loader.load(m.checkpoint, **changes)
  params = loaded.params
  return (loaded.config, loaded.graphdef,
          nnx.to_pure_dict(params) if isinstance(params, nnx.State) else params,
          loaded.tokenizer)


def adapt_model(config, graphdef, params):
  """(graphdef, params, trainable paths): LoRA attached as config.lora says (rank 0: none;
  a model that has adapters already keeps them, as a resumed or continued run's does),
  and the paths config.train.trainable chooses ("" with LoRA: the adapters alone)."""
  from msr_jax.model import lora
  from msr_jax.train import trainable
  spec = config.get("lora", None)
  rank = int(spec.rank) if spec is not None else 0
  if rank < 0:
    raise ConfigError(f"config.lora.rank: must be >= 0, got {rank}")
  if rank and not lora.has_lora(graphdef, params):
    try:
      graphdef, params = lora.add_lora(
          graphdef, params, lora.LoRASpec(rank, float(spec.alpha), spec.targets),
          seed=int(config.seed))
    except ValueError as e:
      raise ConfigError(f"config.lora: {e}") from None
  pattern = config.train.get("trainable", "") or (lora.LORA_PARAMS if rank else "")
  try:
    return graphdef, params, trainable.select(params, pattern)
  except ValueError as e:
    raise ConfigError(str(e)) from None


def regularizer(config, graphdef, params, trainable_paths, adapter, pad_id: int = 0,
                abstract: bool = False):
  """(Regularizer or None, the TrainState's aux or None) of config.regularizer. The
  retention set is read and encoded, and EWC's Fisher estimated at `params` (the run's
  starting weights); `abstract`: its shapes only (a restore target)."""
  from msr_jax.data.jsonl import read_records
  from msr_jax.train import regularizers
  r = config.get("regularizer", None)
  if r is None:
    return None, None
  for term in regularizers.TERMS:
    if not float(r[term]) >= 0:
      raise ConfigError(f"config.regularizer.{term}: must be >= 0, got {r[term]!r}")
  reg = regularizers.Regularizer(float(r.l2_sp), float(r.ewc), float(r.kl_to_base),
                                 int(r.retain_rows))
  if not reg.active:
    return None, None
  if not reg.needs_retain_set:
    return reg, None
  if reg.retain_rows < 1 or int(r.retain_max_tokens) < 2:
    raise ConfigError("config.regularizer: retain_rows must be >= 1 and retain_max_tokens "
                      f">= 2, got {reg.retain_rows} and {r.retain_max_tokens}")
  if adapter is None:
    raise ConfigError("config.regularizer: ewc and kl_to_base need the run's tokenizer "
                      "(config.data.tokenizer or the checkpoint's own)")
  from msr_jax.eval.real_probes import PROBE_SETS
  paths = list(r.retain_paths) or [str(PROBE_SETS / "retain_conversations.jsonl")]
  tokenized = []
  for path in paths:
    records, _ = read_records(path, on_error="raise")
    for record in records:
      try:
        tokenized.append(tokenize_record(record, adapter))
      except Exception as e:
        raise ConfigError(f"config.regularizer.retain_paths: {path}: record {record.id!r}: "
                          f"{e}") from None
  try:
    retain = regularizers.retain_set(tokenized, int(r.retain_max_tokens), pad_id)
  except ValueError as e:
    raise ConfigError(f"config.regularizer.retain_paths {paths}: {e}") from None
  aux = {"retain": retain}
  if reg.ewc:
    fisher = lambda p: regularizers.diagonal_fisher(graphdef, p, retain, trainable_paths)
    aux["fisher"] = jax.eval_shape(fisher, params) if abstract else fisher(params)
  return reg, aux


def build_model(model_config_dict, vocab_size: int, seed: int):
  """(ModelConfig, graphdef, params as a pure dict): the checkpoint, or a random init."""
  m = model_config_dict
  if m.checkpoint:
    return load_checkpoint(m)[:3]
  changes = {k: m[k] for k in MODEL_CHANGES if k in m and m[k]}
  config = ModelConfig.preset(m.preset, vocab_size=vocab_size)
  if "hidden_size" in changes or "num_heads" in changes:
    changes.setdefault("head_dim", None)  # re-derived from the new width and heads
  config = dataclasses.replace(config, **changes)
  graphdef, params = nnx.split(Decoder(config, rngs=nnx.Rngs(seed)), nnx.Param)
  return config, graphdef, nnx.to_pure_dict(params)
