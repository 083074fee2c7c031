"""The fast store: a bounded episodic buffer of recent experiences.

An experience is a conversation `Record` plus the entities it mentions (people, items,
places: whatever the caller extracts; compared as exact strings) and the step at which it
happened. The buffer keeps the newest `capacity` experiences; adding one more evicts the
oldest, which `add` returns so the caller can consolidate it into the memory graph (the
slow store, `msr_jax.memory.graph`).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Iterable, Iterator

import numpy as np

from msr_jax.data.records import Record


@dataclasses.dataclass(frozen=True)
class Experience:
  """One remembered record.

  Attributes:
    record: the conversation record.
    entities: the entities it mentions.
    step: when it happened (a training step or any monotone clock); recency is measured
      in these units.
    embedding_D: optional precomputed embedding; the prompt builder uses it instead of
      calling the embedding function on this record.
  """
  record: Record
  entities: frozenset[str]
  step: int
  embedding_D: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)


def _entity_set(entities: Iterable[str], where: str) -> frozenset[str]:
  if isinstance(entities, str):
    raise TypeError(f"{where}: entities must be an iterable of strings, not a single string "
                    f"{entities!r}")
  out = frozenset(entities)
  for e in out:
    if not isinstance(e, str) or not e:
      raise ValueError(f"{where}: every entity must be a non-empty string, got {e!r}")
  return out


class EpisodicBuffer:
  """The newest `capacity` experiences, oldest first; steps never decrease."""

  def __init__(self, capacity: int):
    if not isinstance(capacity, int) or capacity < 1:
      raise ValueError(f"EpisodicBuffer: capacity must be a positive integer, got {capacity!r}")
    self._capacity = capacity
    self._items: collections.deque[Experience] = collections.deque()

  @property
  def capacity(self) -> int:
    return self._capacity

  def __len__(self) -> int:
    return len(self._items)

  def __iter__(self) -> Iterator[Experience]:
    """Oldest first."""
    return iter(tuple(self._items))

  def experiences(self) -> tuple[Experience, ...]:
    """All stored experiences, oldest first."""
    return tuple(self._items)

  @property
  def latest_step(self) -> int | None:
    return self._items[-1].step if self._items else None

  def add(self, record: Record, entities: Iterable[str] = (), step: int | None = None,
          embedding_D: np.ndarray | None = None) -> Experience | None:
    """Stores an experience; returns the evicted oldest one when the buffer was full.

    Args:
      record: the record to remember.
      entities: the entities it mentions.
      step: when it happened; defaults to the latest step + 1 (0 for an empty buffer). Must
        not be smaller than the latest step, so that the oldest experience is always first.
      embedding_D: optional precomputed embedding (1-D).
    """
    if not isinstance(record, Record):
      raise TypeError(f"EpisodicBuffer.add: record must be a Record, got {type(record).__name__}")
    where = f"EpisodicBuffer.add(record {record.id!r})"
    latest = self.latest_step
    if step is None:
      step = 0 if latest is None else latest + 1
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
      raise TypeError(f"{where}: step must be an integer, got {step!r}")
    if latest is not None and step < latest:
      raise ValueError(f"{where}: step {step} is older than the latest step {latest}")
    if embedding_D is not None:
      embedding_D = np.asarray(embedding_D, dtype=np.float64)
      if embedding_D.ndim != 1 or not np.all(np.isfinite(embedding_D)):
        raise ValueError(f"{where}: embedding_D must be a finite 1-D array, got shape "
                         f"{embedding_D.shape}")
    self._items.append(Experience(record=record, entities=_entity_set(entities, where),
                                  step=int(step), embedding_D=embedding_D))
    if len(self._items) > self._capacity:
      return self._items.popleft()
    return None

  def clear(self) -> tuple[Experience, ...]:
    """Empties the buffer and returns what it held, oldest first."""
    out = tuple(self._items)
    self._items.clear()
    return out
