"""Helpers for experiment files: an arm config file (`configs/townworld_arms.py`) as the
base config, seeds, defence switches and stress grid of an experiment.

    grid = arm_grid(pathlib.Path(__file__).parents[1] / "configs/townworld_arms.py", scale)
    {"base": grid.base(**{"eval.sharpness": True}), "seeds": grid.seeds,
     "arms": grid.defence_arms({"all": grid.defences, "none": ()}), ...}

The experiment file names the config file; nothing here resolves a path of its own.
"""

from __future__ import annotations

import copy
import dataclasses

from msr_jax.runner.config import load_config_file, set_dotted


@dataclasses.dataclass(frozen=True)
class ArmGrid:
  arm: dict                                # an arm's config at this scale
  seeds: tuple[int, ...]
  switches: dict[str, tuple[dict, dict]]   # defence -> (changes on, changes off)
  stress: dict[str, dict]                  # stress cell -> changes
  controls: dict[str, dict] = dataclasses.field(default_factory=dict)  # name -> changes

  @property
  def defences(self) -> tuple[str, ...]:
    return tuple(self.switches)

  def base(self, **changes) -> dict:
    """The arm config with dotted-name changes (`base(**{"optim.learning_rate": 1e-3})`)."""
    config = copy.deepcopy(self.arm)
    for dotted, value in changes.items():
      set_dotted(config, dotted, value, f"arm config: {dotted!r}")
    return config

  def defence_changes(self, on: tuple[str, ...]) -> dict:
    """Arm changes with exactly the defences in `on` switched on."""
    unknown = sorted(set(on) - set(self.switches))
    if unknown:
      raise ValueError(f"unknown defence(s) {unknown}; expected some of {list(self.switches)}")
    changes = {}
    for name, (enabled, disabled) in self.switches.items():
      changes.update(enabled if name in on else disabled)
    return changes

  def defence_arms(self, defence_sets: dict[str, tuple[str, ...]]) -> dict:
    """{f"{name}@{cell}": changes} for every defence set x stress cell."""
    return {f"{name}@{cell}": {**self.defence_changes(on), **stress}
            for name, on in defence_sets.items() for cell, stress in self.stress.items()}


def arm_grid(config_file, scale: str) -> ArmGrid:
  """The arm config file's `get_config(scale)` as an `ArmGrid`."""
  c = load_config_file(f"{config_file}:{scale}")
  return ArmGrid(arm=c.arm.to_dict(), seeds=tuple(int(s) for s in c.seeds),
                 switches={name: (dict(s["on"]), dict(s["off"]))
                           for name, s in c.defences.to_dict().items()},
                 stress={cell: dict(changes) for cell, changes in c.stress.to_dict().items()},
                 controls={name: dict(changes) for name, changes in
                           c.get("controls", {}).items()})
