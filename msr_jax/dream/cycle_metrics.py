"""What one dream cycle reports: acceptance and validity per judge, novelty, N2 coverage.

  acceptance(j)  fraction of the cycle's answers judge j accepts (score >= its threshold)
  validity(j)    fraction of the answers j accepted that the oracle agrees with
                 (None when j accepted none): the judge's precision against the rule
  novelty        fraction of scenarios whose (person, item, weather, condition, relation)
                 tuple is absent from the real training examples
  N2 coverage    which held-out (item, weather) cells of the N2 split the scenarios, and
                 the dreams actually trained on, touched
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from msr_jax.dream import collide
from msr_jax.dream.judges import Verdict


def accepted(verdicts: Sequence[Verdict], threshold: float) -> np.ndarray:
  return np.asarray([v.score >= threshold for v in verdicts], bool)


def judge_report(verdicts: Mapping[str, Sequence[Verdict]], thresholds: Mapping[str, float],
                 oracle_ok: Sequence[bool]) -> dict:
  """{judge: {"acceptance", "validity", "accepted"}} (see module doc)."""
  oracle_ok = np.asarray(oracle_ok, bool)
  out = {}
  for name, vs in verdicts.items():
    keep = accepted(vs, thresholds[name])
    out[name] = {"acceptance": float(keep.mean()) if keep.size else None,
                 "validity": float(oracle_ok[keep].mean()) if keep.any() else None,
                 "accepted": int(keep.sum())}
  return out


def novelty(scenarios: Sequence[collide.Scenario], real_keys: frozenset) -> float | None:
  if not scenarios:
    return None
  return float(np.mean([collide.is_novel(s, real_keys) for s in scenarios]))


def n2_cells(cells: Iterable[Sequence[str]], held_out: frozenset) -> list[list[str]]:
  """The held-out cells among `cells`, sorted, as JSON-ready [item, weather] pairs."""
  return [list(c) for c in sorted({tuple(c) for c in cells} & set(held_out))]
