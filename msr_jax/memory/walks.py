"""Seeded random walks with restart over a weighted graph (pure logic, no storage).

At node u, having arrived from p, every neighbour v gets the score

  s(v) = W(u, v) * salience(v),   W(u, v) = sum over edges e between u and v (either
                                            direction, any type) of type_weight[e.type] * e.weight

and the walk moves to v with probability s(v) / sum_v' s(v'), over the neighbours with
s > 0, leaving out p (no immediate revisit) whenever another neighbour has s > 0. Before
each move a uniform draw decides a restart: with probability `restart_prob` the walk jumps
back to its start instead (a restart is the one move that may return to the node just
left; at the start itself the draw is ignored). A node without any positive-score
neighbour also restarts; at the start it ends the walk early, so an isolated start gives a
walk of length 1. Each step consumes exactly two uniforms from the generator (restart,
choice), so a seed fixes the walk.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

# Neighbour scores of a node: (neighbour id, s(v)) sorted by id, each id once.
ScoresFn = Callable[[int], Sequence[tuple[int, float]]]


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
  if isinstance(rng, np.random.Generator):
    return rng
  if rng is None or isinstance(rng, bool) or not isinstance(rng, (int, np.integer)):
    raise TypeError(f"rng must be a numpy Generator or an integer seed, got {rng!r}")
  return np.random.default_rng(int(rng))


def transition_probabilities(scores: Sequence[tuple[int, float]],
                             prev: int | None) -> tuple[np.ndarray, np.ndarray]:
  """The (neighbour ids, probabilities) of one move, as in the module docstring."""
  ids = np.array([v for v, s in scores if s > 0], dtype=np.int64)
  weights = np.array([s for _, s in scores if s > 0], dtype=np.float64)
  if prev is not None and len(ids) > 1:
    keep = ids != prev
    ids, weights = ids[keep], weights[keep]
  if len(ids) == 0:
    return ids, weights
  return ids, weights / weights.sum()


def pick(weights: np.ndarray, u: float) -> int:
  """Index i with probability weights[i] / sum(weights), from one uniform u in [0, 1)."""
  cumulative = np.cumsum(weights)
  return min(int(np.searchsorted(cumulative, u * cumulative[-1], side="right")),
             len(weights) - 1)


def random_walk(scores_fn: ScoresFn, start: int, length: int, restart_prob: float,
                rng: np.random.Generator) -> list[int]:
  """A walk of at most `length` nodes beginning at `start` (see the module docstring)."""
  if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
    raise ValueError(f"length must be a positive integer, got {length!r}")
  if not 0.0 <= restart_prob < 1.0:
    raise ValueError(f"restart_prob must be in [0, 1), got {restart_prob!r}")
  walk, prev = [start], None
  while len(walk) < length:
    current = walk[-1]
    restart = rng.random() < restart_prob
    u = rng.random()
    if restart and current != start:
      nxt = start
    else:
      ids, probs = transition_probabilities(scores_fn(current), prev)
      if len(ids) == 0:
        if current == start:
          break
        nxt = start
      else:
        nxt = int(ids[pick(probs, u)])
    prev = current
    walk.append(nxt)
  return walk
