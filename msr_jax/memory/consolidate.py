"""Moving experiences from the fast store (episodic buffer) into the slow store (graph).

Typical use: whatever `EpisodicBuffer.add` evicts is consolidated, so the buffer holds the
recent past for prompting and the graph holds everything for replay and dreaming:

  evicted = buffer.add(record, entities, step)
  if evicted is not None:
    last = consolidate(graph, [evicted], after=last)[-1]
"""

from __future__ import annotations

from typing import Callable, Iterable

from msr_jax.memory.episodic import Experience
from msr_jax.memory.graph import MemoryGraph


def consolidate(graph: MemoryGraph, experiences: Iterable[Experience], *,
                kind: str = "experience",
                salience: float | Callable[[Experience], float] = 1.0,
                after: int | None = None) -> list[int]:
  """Adds each experience (in the given order, oldest first) as a graph node.

  Each node gets created = the experience's step, its shared-entity edges, and a temporal
  edge from the node before it (from `after` for the first one, if given: the last node of
  the previous call). Each node and its edges are one transaction.

  Args:
    graph: the memory graph.
    experiences: what to consolidate, oldest first.
    kind: the node kind.
    salience: a constant, or a function of the experience (for example its surprise).
    after: the node the first experience follows in time, or None.

  Returns:
    The new node ids, in order.
  """
  ids = []
  for exp in experiences:
    s = salience(exp) if callable(salience) else salience
    after = graph.add_node(exp.record, exp.entities, kind=kind, salience=s, created=exp.step,
                           connect=True, after=after)
    ids.append(after)
  return ids
