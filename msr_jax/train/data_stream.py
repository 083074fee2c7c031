"""The loop's stream of step batches, with a resumable position.

Examples come from `msr_jax.data.mixture` (diverse or narrow mixture, optional replay);
each step takes `batch_size * micro_batches` of them, picks one (context, decision) bucket
pair for all of them (so micro-batches stack into one array), and pads each micro-batch
with `msr_jax.data.batch.make_batch`. The position is the number of examples drawn plus,
without replay, the mixture's own state; with replay (whose buffer holds examples, not
JSON) the stream is rebuilt and fast-forwarded by the number drawn, which is exact
because every draw is seeded.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from msr_jax.data import mixture as mixture_lib
from msr_jax.data.batch import bucket_length, make_batch
from msr_jax.data.segmentation import Example
from msr_jax.train.batch import Batch, stack_micro_batches


class BatchStream:

  def __init__(self, config, sources: Mapping[str, Sequence[Example]], batch_size: int,
               micro_batches: int, pad_id: int):
    self.config, self.sources = config, sources
    self.batch_size, self.micro_batches, self.pad_id = batch_size, micro_batches, pad_id
    self.context_buckets = tuple(config.data.context_buckets)
    self.decision_buckets = tuple(config.data.decision_buckets)
    self.replay_ratio = float(config.data.replay_ratio)
    self._build()

  def _build(self) -> None:
    self.mixture = mixture_lib.build_mixture(self.config, self.sources)
    self.examples = self.mixture
    if self.replay_ratio > 0:
      buffer = mixture_lib.ReplayBuffer(int(self.config.data.replay_capacity),
                                        seed=int(self.config.data.seed) + 1)
      self.examples = mixture_lib.interleave(self.mixture, buffer, self.replay_ratio)
    self.drawn = 0

  def next_examples(self) -> list[Example]:
    n = self.batch_size * self.micro_batches
    out = [next(self.examples) for _ in range(n)]
    self.drawn += n
    return out

  def next_batch(self) -> Batch:
    """The next step's batch (a leading micro-batch axis when micro_batches > 1)."""
    examples = self.next_examples()
    c = bucket_length(max(len(e.context_tokens) - 1 for e in examples), self.context_buckets)
    d = bucket_length(max(len(e.decision_tokens) for e in examples), self.decision_buckets)
    micro = [make_batch(examples[i:i + self.batch_size], (c,), (d,), self.pad_id)
             for i in range(0, len(examples), self.batch_size)]
    return micro[0] if self.micro_batches == 1 else stack_micro_batches(micro)

  def get_state(self) -> dict:
    state = {"drawn": self.drawn}
    if self.replay_ratio == 0:
      state["mixture"] = self.mixture.get_state()
    return state

  def set_state(self, state: dict) -> None:
    self._build()
    if "mixture" in state:
      self.mixture.set_state(state["mixture"])
      self.drawn = int(state["drawn"])
      return
    for _ in range(int(state["drawn"])):
      next(self.examples)
    self.drawn = int(state["drawn"])
