"""Ablation of the architectural defence: all defences against all but architectural, over P5's stress grid
(criterion and arms in msr_jax/runner/ablation.py, shared by every ablation file)."""

import pathlib

from msr_jax.runner.ablation import ablation_experiment
from msr_jax.runner.arms import arm_grid

ARMS = pathlib.Path(__file__).resolve().parents[1] / "configs" / "townworld_arms.py"


def get_experiment(scale):
  return ablation_experiment("architectural", arm_grid(ARMS, scale))
