"""What one dream cycle reports: acceptance and validity per judge, novelty, N2 coverage.

  acceptance(j)  fraction of the cycle's answers judge j accepts (score >= its threshold)
  validity(j)    fraction of the answers j accepted that the oracle agrees with
                 (None when j accepted none): the judge's precision against the rule
  novelty        fraction of scenarios whose situation key (the domain's; Townworld's
                 (person, item, weather, condition, relation)) no real record shares
  N2 coverage    which held-out cells (the domain's; Townworld's (item, weather) cells of
                 the N2 split) the scenarios, and the dreams actually trained on, touched
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from msr_jax.dream import collide
from msr_jax.dream.domain import DreamDomain
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


def novelty(scenarios: Sequence[collide.Scenario], real_keys: frozenset,
            domain: DreamDomain) -> float | None:
  if not scenarios:
    return None
  return float(np.mean([collide.is_novel(s, real_keys, domain) for s in scenarios]))


def n2_cells(cells: Iterable[Sequence[str]], held_out: frozenset) -> list[list[str]]:
  """The held-out cells among `cells` (None: a scenario without one), sorted, as
  JSON-ready lists ([item, weather] pairs in Townworld)."""
  return [list(c) for c in sorted({tuple(c) for c in cells if c is not None}
                                   & set(held_out))]
