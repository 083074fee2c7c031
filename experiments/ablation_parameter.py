"""Ablation of the parameter defence: all defences against all but parameter, over P5's stress grid
(criterion and arms in msr_jax/runner/ablation.py, shared by every ablation file)."""

from msr_jax.runner.ablation import ablation_experiment


def get_experiment(scale):
  return ablation_experiment("parameter", scale)
