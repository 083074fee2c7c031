"""The batch the train step consumes: `msr_jax.data.batch.Batch`, the one batch type
between data and train, here with its host-side checks and micro-batch stacking.

Its layout (context, decision inputs, targets and weights, bucketed) is described in
`msr_jax/data/batch.py`. With gradient accumulation every array has a leading micro-batch
axis A (`context_AxBxC`, ...), scanned over inside the step.
"""

from __future__ import annotations

import numpy as np

from msr_jax.data.batch import Batch

__all__ = ["Batch", "check_batch", "stack_micro_batches"]


def check_batch(batch: Batch, micro_batches: int = 1) -> None:
  """Host-side shape and dtype checks with messages naming the field."""
  lead = 2 if micro_batches > 1 else 1
  c = np.shape(batch.context_BxC)
  if len(c) != lead + 1:
    raise ValueError(f"Batch.context_BxC: expected {lead + 1} dims "
                     f"(micro_batches={micro_batches}), got shape {c}")
  d = np.shape(batch.inputs_BxD)
  for name in ("targets_BxD", "weights_BxD"):
    if np.shape(getattr(batch, name)) != d:
      raise ValueError(f"Batch.{name}: shape {np.shape(getattr(batch, name))} != "
                       f"inputs_BxD shape {d}")
  if np.shape(batch.context_lengths_B) != c[:lead]:
    raise ValueError(f"Batch.context_lengths_B: shape {np.shape(batch.context_lengths_B)}, "
                     f"expected {c[:lead]}")
  if d[:lead] != c[:lead]:
    raise ValueError(f"Batch.inputs_BxD: leading dims {d[:lead]} != context's {c[:lead]}")
  if batch.segment_ids_BxT is not None and np.shape(batch.segment_ids_BxT) != \
      c[:lead] + (c[-1] + d[-1],):
    raise ValueError(f"Batch.segment_ids_BxT: shape {np.shape(batch.segment_ids_BxT)}, "
                     f"expected {c[:lead] + (c[-1] + d[-1],)} (context + decision)")
  lengths = np.asarray(batch.context_lengths_B)
  if lengths.size and (lengths.min() < 0 or lengths.max() > c[-1]):
    raise ValueError(f"Batch.context_lengths_B: values must lie in [0, {c[-1]}], "
                     f"got [{lengths.min()}, {lengths.max()}]")


def stack_micro_batches(batches: list[Batch]) -> Batch:
  """A leading micro-batch axis A over batches of identical shapes (one bucket)."""
  shapes = {tuple(np.shape(x) for x in b) for b in batches}
  if len(shapes) != 1:
    raise ValueError(f"micro-batches of one step must share their buckets, got {shapes}")
  return Batch(*(None if xs[0] is None else np.stack(xs) for xs in zip(*batches)))
