"""Ablation of the data defence: all defences against all but data, over P5's stress grid
(criterion and arms in msr_jax/runner/ablation.py, shared by every ablation file)."""

from msr_jax.runner.ablation import ablation_experiment


def get_experiment(scale):
  return ablation_experiment("data", scale)
