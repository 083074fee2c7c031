"""Experiment files and their expansion into runs (arm x seed).

An experiment file is a Python file with `get_experiment(scale: str) -> ConfigDict`,
scale being "smoke" (a pipeline check: the report gives no verdicts), "decide" (`msr
reproduce`'s tier) or "full". It declares, and nothing else:
  name        short name (also the report section)
  prediction  "P1".."P5" or "ablation"
  entry       "module:function" run in a fresh process for every arm x seed:
              function(config: dict, seed: int) -> result dict (JSON-able)
  base        the config every arm starts from (a nested dict)
  arms        {arm name: {dotted.field: value}} overrides of `base`
  seeds       list of ints
  analysis    the pre-registered metric, comparison and margins the report applies
  scales      (optional) the scales `msr reproduce` runs it at (default: all), so a tier
              can leave an experiment to a longer one; `msr sweep` runs any experiment at
              any scale it is asked for
A run's key is a hash of everything that determines its result (entry, config, seed), so
changing an arm's config re-runs exactly that arm, and identical arms of different
experiments share one result.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import pathlib

import ml_collections

from msr_jax.runner.config import set_dotted
from msr_jax.runner.store import config_hash

SCALES = ("smoke", "decide", "full")


@dataclasses.dataclass(frozen=True)
class RunSpec:
  experiment: str
  arm: str
  seed: int
  entry: str
  config: dict

  @property
  def key(self) -> str:
    # Names are left out on purpose: the same config and seed in two experiments (the
    # full system in P5 and in every ablation, say) is one run, computed once.
    return config_hash({"seed": self.seed, "entry": self.entry, "config": self.config})

  def to_json(self) -> dict:
    return {"experiment": self.experiment, "arm": self.arm, "seed": self.seed,
            "entry": self.entry, "config": self.config, "key": self.key}


def load_experiment(path: str | pathlib.Path, scale: str = "smoke") -> dict:
  if scale not in SCALES:
    raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: experiment file not found")
  spec = importlib.util.spec_from_file_location(f"_msr_experiment_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_experiment"):
    raise ValueError(f"{path}: defines no get_experiment(scale)")
  exp = module.get_experiment(scale)
  if isinstance(exp, ml_collections.ConfigDict):
    exp = exp.to_dict()
  for field in ("name", "prediction", "entry", "base", "arms", "seeds"):
    if field not in exp:
      raise ValueError(f"{path}: experiment is missing field {field!r}")
  if not exp["arms"]:
    raise ValueError(f"{path}: field 'arms' is empty")
  exp.setdefault("analysis", {})
  exp["scale"] = scale
  exp["file"] = str(path)
  exp["commit"] = file_commit(path)
  return exp


def file_commit(path) -> str:
  """The last commit that changed the experiment file ("<hash>", "<hash>+changed" when the
  file differs from it, "" outside a git checkout): the pre-registration a report names."""
  import subprocess
  path = pathlib.Path(path).resolve()
  def git(*args):
    return subprocess.run(["git", "-C", str(path.parent), *args], capture_output=True,
                          text=True, timeout=20)
  try:
    last = git("log", "-1", "--format=%h", "--", path.name)
    if last.returncode or not last.stdout.strip():
      return ""
    changed = git("status", "--porcelain", "--", path.name).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return ""
  return last.stdout.strip() + ("+changed" if changed else "")


def runs_at(exp: dict, scale: str) -> bool:
  """Whether `msr reproduce` runs the experiment at `scale` (its optional `scales`)."""
  return scale in exp.get("scales", SCALES)


def expand(exp: dict) -> list[RunSpec]:
  """Every arm x seed, in a fixed order (arms as declared, then seeds)."""
  runs = []
  for arm_name, overrides in exp["arms"].items():
    config = copy.deepcopy(exp["base"])
    for dotted, value in (overrides or {}).items():
      set_dotted(config, dotted, value, f"{exp.get('file', '?')}: arm {arm_name!r}: {dotted!r}")
    for seed in exp["seeds"]:
      runs.append(RunSpec(exp["name"], arm_name, int(seed), exp["entry"], config))
  return runs
