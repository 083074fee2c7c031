"""The dream loop's probes, grouped: fast and slow behaviour, knowledge and context.

Items come from `msr_jax.eval.probes` (a pure function of the world and a probe seed) and
are scored teacher-forced with `msr_jax.eval.probes_score`; this file only chooses sizes
and groups the summary:

  fast       R1 told as a rule note in context (`r1_note`): the fast system
  slow       R1 without the note: `B_train` (training situations), N1, N2, N3 and `spec`
             (where R1 must not fire): what consolidation moves into the weights
  knowledge  K1 (bio completion), K2 (closed-book QA on held-out people)
  context    C1 (note recall, mean over the trained fact counts), C2 (counterfactual
             notes) and its memorization ratio
"""

from __future__ import annotations

from msr_jax.eval import probes, probes_score
from msr_jax.world import corpus
from msr_jax.world.world import World

GROUPS = {
    "fast": ("r1_note",),
    "slow": ("B_train", "N1", "N2", "N3", "spec"),
    "knowledge": ("K1", "K2"),
    "context": ("C1_trained", "C2"),
}
# Every probe the groups do not use is built with size 0.
SMALL_SIZES = {**{name: 0 for name in probes.DEFAULT_SIZES},
               "K1": 48, "K2": 48, "C1": 8, "C2": 48, "r1_note": 64, "behaviour": 48}


def build_items(world: World, seed: int, adapter, sizes: dict | None = None) -> list:
  return probes.build(world, seed, adapter, {**SMALL_SIZES, **(sizes or {})})


def score(graphdef, params, items, pad_id: int,
          note_facts: tuple[int, int] = corpus.Mixture().note_facts) -> dict:
  """{group: {probe: accuracy}}, plus `memorization_ratio` under context (from C2)."""
  logprob, exact = probes_score.score_items(graphdef, params, items, pad_id=pad_id)
  summary = probes_score.add_aggregates(probes_score.summarize(items, logprob, exact),
                                        tuple(note_facts))
  out = {group: {p: summary[p]["acc"] for p in names if p in summary}
         for group, names in GROUPS.items()}
  if "C2" in summary:
    out["context"]["memorization_ratio"] = summary["C2"]["memorization_ratio"]
  return out
