"""Mixtures of named sources, a reservoir replay buffer, and the diverse/narrow switch.

`MixtureSampler` draws forever: each draw picks a source with probability proportional
to its weight, then that source's next example in a shuffled order (reshuffled each time
the source is used up, so every example is seen once per pass). Everything comes from one
`numpy.random.Generator(seed)`: the same seed, sources and weights give the same stream.

`ReplayBuffer` keeps a uniform sample of everything added to it (reservoir sampling,
Vitter's algorithm R). `interleave(new, buffer, ratio)` emits old examples from the buffer
on a fixed schedule so that exactly floor(ratio * n) of the first n emitted examples are
old (once the buffer holds anything), and adds each new example to the buffer after
emitting it.
"""

from __future__ import annotations

import collections
import logging
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)


def group_by_source(examples: Iterable[Any]) -> dict[str, list[Any]]:
  """Examples (anything with a `.source`) grouped by source name, in input order."""
  groups: dict[str, list[Any]] = collections.defaultdict(list)
  for example in examples:
    groups[example.source].append(example)
  return dict(groups)


class MixtureSampler:
  """Deterministic weighted draws over named sources; `counts` tallies draws per source."""

  def __init__(self, sources: Mapping[str, Sequence[Any]], weights: Mapping[str, float],
               seed: int):
    unknown = sorted(set(weights) - set(sources))
    if unknown:
      raise ValueError(f"weights name sources that do not exist: {unknown} "
                       f"(have {sorted(sources)})")
    unweighted = sorted(set(sources) - set(weights))
    if unweighted:
      raise ValueError(f"sources without a weight: {unweighted}")
    for name, w in weights.items():
      if not math.isfinite(w) or w < 0:
        raise ValueError(f"weights[{name!r}]: must be finite and >= 0, got {w}")
      if w > 0 and not sources[name]:
        raise ValueError(f"source {name!r} has weight {w} but no examples")
    # Sorted names: the stream must not depend on dict insertion order.
    self.names = sorted(sources)
    total = sum(weights[n] for n in self.names)
    if total <= 0:
      raise ValueError("all weights are zero")
    self.probs = np.asarray([weights[n] / total for n in self.names], dtype=np.float64)
    self.sources = {n: list(sources[n]) for n in self.names}
    self.rng = np.random.default_rng(seed)
    self.orders = {n: np.zeros(0, dtype=np.int64) for n in self.names}
    self.positions = dict.fromkeys(self.names, 0)
    self.counts = dict.fromkeys(self.names, 0)

  def __iter__(self) -> MixtureSampler:
    return self

  def __next__(self) -> Any:
    name = self.names[self.rng.choice(len(self.names), p=self.probs)]
    if self.positions[name] >= len(self.orders[name]):
      self.orders[name] = self.rng.permutation(len(self.sources[name]))
      self.positions[name] = 0
    example = self.sources[name][self.orders[name][self.positions[name]]]
    self.positions[name] += 1
    self.counts[name] += 1
    return example

  def take(self, n: int) -> list[Any]:
    return [next(self) for _ in range(n)]

  def get_state(self) -> dict:
    """JSON-serialisable position in the stream, for resuming a run."""
    return {"rng": self.rng.bit_generator.state,
            "orders": {n: o.tolist() for n, o in self.orders.items()},
            "positions": dict(self.positions), "counts": dict(self.counts)}

  def set_state(self, state: dict) -> None:
    self.rng.bit_generator.state = state["rng"]
    self.orders = {n: np.asarray(state["orders"][n], dtype=np.int64) for n in self.names}
    self.positions = {n: int(state["positions"][n]) for n in self.names}
    self.counts = {n: int(state["counts"][n]) for n in self.names}


class ReplayBuffer:
  """A uniform sample of at most `capacity` of all examples ever added (reservoir)."""

  def __init__(self, capacity: int, seed: int):
    if capacity < 1:
      raise ValueError(f"capacity must be >= 1, got {capacity}")
    self.capacity = capacity
    self.items: list[Any] = []
    self.seen = 0
    self.rng = np.random.default_rng(seed)

  def __len__(self) -> int:
    return len(self.items)

  def add(self, item: Any) -> None:
    self.seen += 1
    if len(self.items) < self.capacity:
      self.items.append(item)
      return
    # Keep the new item with probability capacity / seen, in a uniform slot.
    slot = int(self.rng.integers(self.seen))
    if slot < self.capacity:
      self.items[slot] = item

  def extend(self, items: Iterable[Any]) -> None:
    for item in items:
      self.add(item)

  def sample(self) -> Any:
    if not self.items:
      raise IndexError("sample from an empty replay buffer")
    return self.items[int(self.rng.integers(len(self.items)))]


class Interleave:
  """Iterator behind `interleave`; `num_new` and `num_old` count what it emitted."""

  def __init__(self, new_stream: Iterable[Any], buffer: ReplayBuffer, ratio: float,
               add_new: bool = True):
    if not 0.0 <= ratio < 1.0:
      raise ValueError(f"ratio must be in [0, 1), got {ratio}")
    self.new_stream = iter(new_stream)
    self.buffer, self.ratio, self.add_new = buffer, ratio, add_new
    self.num_new = self.num_old = 0

  def __iter__(self) -> Interleave:
    return self

  def __next__(self) -> Any:
    n = self.num_new + self.num_old + 1
    # 1e-9 absorbs float error in ratio * n (0.1 * 30 is 3.0000000000000004).
    if len(self.buffer) and self.num_old + 1 <= self.ratio * n + 1e-9:
      self.num_old += 1
      return self.buffer.sample()
    example = next(self.new_stream)  # StopIteration ends the interleaved stream too.
    self.num_new += 1
    if self.add_new:
      self.buffer.add(example)
    return example


def interleave(new_stream: Iterable[Any], replay_buffer: ReplayBuffer, ratio: float,
               add_new: bool = True) -> Interleave:
  """New examples with a fraction `ratio` of old ones from `replay_buffer` mixed in."""
  return Interleave(new_stream, replay_buffer, ratio, add_new)


def build_mixture(config, sources: Mapping[str, Sequence[Any]]) -> MixtureSampler:
  """The training mixture that `config.data` asks for, over examples grouped by source.

  config.data.mixture == "diverse": every source named in `config.data.weights`, with
    those weights; at least two must have a positive weight. Empty weights (the default):
    every source the records hold, with equal weights, so any JSONL trains as it is.
  config.data.mixture == "narrow": only `config.data.narrow_source`, with weight 1;
    other sources are ignored (and logged). An empty name: the records' only source.
  Seeded by `config.data.seed`.
  """
  data = config.data
  if data.mixture == "diverse":
    weights = {name: float(w) for name, w in dict(data.weights).items()}
    if not weights:
      if not sources:
        raise ValueError("config.data.mixture='diverse': the records hold no source")
      weights = {name: 1.0 for name in sorted(sources)}
      if len(weights) == 1:
        log.info("diverse mixture over the records' only source %s", list(weights))
    positive = [n for n, w in weights.items() if w > 0]
    if len(positive) < 2 and dict(data.weights):
      raise ValueError(f"config.data.mixture='diverse' needs >= 2 sources with a positive "
                       f"weight in config.data.weights, got {weights}")
    missing = sorted(set(weights) - set(sources))
    if missing:
      raise ValueError(f"config.data.weights names sources with no examples: {missing} "
                       f"(have {sorted(sources)})")
    chosen = {name: sources[name] for name in weights}
  elif data.mixture == "narrow":
    name = data.narrow_source
    if not name:
      if len(sources) != 1:
        raise ValueError(f"config.data.narrow_source: empty, and the records hold "
                         f"{len(sources)} sources {sorted(sources)}: name the one to train on")
      name = next(iter(sources))
    if name not in sources:
      raise ValueError(f"config.data.narrow_source={name!r} has no examples "
                       f"(have {sorted(sources)})")
    weights, chosen = {name: 1.0}, {name: sources[name]}
  else:
    raise ValueError(f"config.data.mixture must be 'diverse' or 'narrow', got {data.mixture!r}")
  ignored = sorted(set(sources) - set(chosen))
  if ignored:
    log.info("mixture %r uses %s; ignoring sources %s", data.mixture, sorted(chosen), ignored)
  return MixtureSampler(chosen, weights, seed=data.seed)
