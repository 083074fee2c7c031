"""Coverage of the verdicts' 95% intervals on simulated data with a known mean.

Data: x[s, i] = mu + seed effect + cluster effect + noise, all N(0, 1), S seeds crossed
with C clusters of 4 items (every arm and seed is scored on the same items, as in the
experiments). For each (S, C) it prints the share of simulations whose interval holds mu:
the two-level percentile bootstrap (`stats.paired_bootstrap`, seeds then items, the
clusters ignored), and the crossed t interval (`stats.crossed_t`, seeds and clusters,
Welch-Satterthwaite df).

  python scripts/stats_coverage.py [--sims 400] [--resamples 1000]
"""

from __future__ import annotations

import argparse

import numpy as np

from msr_jax.runner import stats


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sims", type=int, default=400)
  parser.add_argument("--resamples", type=int, default=1000)
  args = parser.parse_args()
  print("| seeds | clusters | percentile bootstrap | crossed t |")
  print("| ---: | ---: | ---: | ---: |")
  for seeds, clusters in ((3, 2), (3, 6), (5, 6), (10, 6), (20, 12)):
    rng = np.random.default_rng(seeds * 1000 + clusters)
    boot, crossed = [], []
    labels = np.repeat(np.arange(clusters), 4)
    for sim in range(args.sims):
      x = (rng.normal(size=(seeds, 1)) + rng.normal(size=clusters)[labels][None, :]
           + rng.normal(size=(seeds, clusters * 4)))
      b = stats.mean_ci(x, num_resamples=args.resamples, seed=sim)
      boot.append(b.low <= 0 <= b.high)
      t = stats.crossed_t(x, labels).interval(0.95)
      crossed.append(t.low <= 0 <= t.high)
    print(f"| {seeds} | {clusters} | {np.mean(boot):.3f} | {np.mean(crossed):.3f} |")


if __name__ == "__main__":
  main()
