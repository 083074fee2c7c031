"""The batch the train step consumes: a (context, decision) pair per row, bucketed.

Next-token prediction splits a tokenized example `tokens` with decision mask `mask` at the
input position `s` whose target is the first decision token:
  context_BxC[b, :context_lengths_B[b]] = tokens[:s]         (right-padded to the bucket C)
  inputs_BxD[b]  = tokens[s : e - 1]     targets_BxD[b] = tokens[s + 1 : e]
  weights_BxD[b] = mask[s + 1 : e] * record weight           (0 on padding)
so the decision forward starts with the last context token (the role marker before an
answer) and predicts every decision token. Decision positions continue the context:
`context_lengths_B[b] + arange(D)`. C and D are buckets (a handful of sizes per run), so a
run compiles a handful of shapes. With gradient accumulation every array has a leading
micro-batch axis A (`context_AxBxC`, ...), scanned over inside the step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np


class Batch(NamedTuple):
  context_BxC: jnp.ndarray        # int32, right-padded context tokens
  context_lengths_B: jnp.ndarray  # int32, real context tokens per row (<= C)
  inputs_BxD: jnp.ndarray         # int32, decision-forward input tokens
  targets_BxD: jnp.ndarray        # int32, next-token targets of those inputs
  weights_BxD: jnp.ndarray        # float32, loss weight per target (0 = not trained on)

  @property
  def num_tokens(self):
    """Tokens the step runs forward over (context + decision), for throughput."""
    return int(np.sum(np.asarray(self.context_lengths_B))) + int(np.prod(self.inputs_BxD.shape))


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
  lengths = np.asarray(batch.context_lengths_B)
  if lengths.size and (lengths.min() < 0 or lengths.max() > c[-1]):
    raise ValueError(f"Batch.context_lengths_B: values must lie in [0, {c[-1]}], "
                     f"got [{lengths.min()}, {lengths.max()}]")


# `msr_jax.data.batch.make_batch` field -> Batch field. The data batch also carries the
# full-mode arrays (tokens_BxT, ...); the full objective rebuilds the same concatenation
# from the context-frozen arrays on the device, so only these five travel.
DATA_FIELDS = {
    "context_tokens_BxC": "context_BxC",
    "context_lengths_B": "context_lengths_B",
    "decision_tokens_BxD": "inputs_BxD",
    "decision_targets_BxD": "targets_BxD",
    "decision_mask_BxD": "weights_BxD",
}


def from_data_batch(arrays: dict) -> Batch:
  """A `Batch` from the dict that `msr_jax.data.batch.make_batch` returns."""
  missing = sorted(set(DATA_FIELDS) - set(arrays))
  if missing:
    raise ValueError(f"data batch: missing fields {missing} (have {sorted(arrays)})")
  return Batch(**{ours: np.asarray(arrays[theirs]) for theirs, ours in DATA_FIELDS.items()})


def stack_micro_batches(batches: list[Batch]) -> Batch:
  """A leading micro-batch axis A over batches of identical shapes (one bucket)."""
  shapes = {tuple(np.shape(x) for x in b) for b in batches}
  if len(shapes) != 1:
    raise ValueError(f"micro-batches of one step must share their buckets, got {shapes}")
  return Batch(*(np.stack(xs) for xs in zip(*batches)))
