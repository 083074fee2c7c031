"""The Townworld: who is who, and every split, fixed by one seed before any run.

`World.build(seed)` is a pure function of its arguments: the same seed gives the same
people, attributes and splits. People splits:
  - `qa_train` / `qa_test`: closed-book QA of the first half is in pre-training; the second
    half tests knowledge extraction (K2).
  - `ft_people` / `n1_people` / `retain_people`: requesters of behaviour fine-tuning, the
    unseen people of N1, and a retain set that never appears in any fine-tuning data.
Behaviour splits: `n2_cells` (item x weather cells never in behaviour fine-tuning),
`n3_templates` (request paraphrases never in behaviour fine-tuning; they are in
pre-training, so the base model can read them), and `heldout_rules` (rule notes never in
pre-training, to test following a rule the model has never been told).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from msr_jax.world import lexicon
from msr_jax.world import policy
from msr_jax.world import templates as T

# The behaviour to teach: storm + outdoor item -> wait. Never in pre-training as a rule note.
R1 = policy.Rule("stormy", "outdoor", "wait")


@dataclasses.dataclass(frozen=True)
class World:
  seed: int
  people: tuple[str, ...]
  visitors: tuple[str, ...]
  facts: dict  # person -> {attribute: value}
  qa_train: tuple[str, ...]
  qa_test: tuple[str, ...]
  ft_people: tuple[str, ...]
  n1_people: tuple[str, ...]
  retain_people: tuple[str, ...]
  n2_cells: frozenset  # of (item, weather)
  train_templates: tuple[int, ...]
  n3_templates: tuple[int, ...]
  pretrain_rules: tuple[policy.Rule, ...]
  heldout_rules: tuple[policy.Rule, ...]
  r1: policy.Rule = R1

  @classmethod
  def build(cls, seed: int, num_people: int = 240, num_visitors: int = 64,
            num_heldout_rules: int = 24, num_n3_templates: int = 2) -> "World":
    if not 200 <= num_people <= 300:
      raise ValueError(f"num_people must be in [200, 300], got {num_people}")
    rng = np.random.default_rng(seed)
    pool = list(lexicon.names(num_people + num_visitors))
    rng.shuffle(pool)
    people, visitors = tuple(pool[:num_people]), tuple(pool[num_people:])
    facts = {}
    for person in people:
      facts[person] = {a: str(rng.choice(lexicon.VALUES[a])) for a in lexicon.ATTRIBUTES}

    order = rng.permutation(num_people)
    half = num_people // 2
    qa_train = tuple(people[i] for i in order[:half])
    qa_test = tuple(people[i] for i in order[half:])
    # Fine-tuning roles are drawn independently of the QA halves: 40% / 25% / 35%.
    order = rng.permutation(num_people)
    n_ft, n_n1 = int(0.4 * num_people), int(0.25 * num_people)
    ft_people = tuple(people[i] for i in order[:n_ft])
    n1_people = tuple(people[i] for i in order[n_ft:n_ft + n_n1])
    retain_people = tuple(people[i] for i in order[n_ft + n_n1:])

    n2_cells = _held_out_cells(rng)
    templates = rng.permutation(len(T.REQUEST))
    n3_templates = tuple(sorted(int(t) for t in templates[:num_n3_templates]))
    train_templates = tuple(sorted(int(t) for t in templates[num_n3_templates:]))

    rules = [r for r in policy.all_rules() if r != R1]
    picks = rng.permutation(len(rules))
    heldout = tuple(rules[i] for i in sorted(picks[:num_heldout_rules]))
    pretrain_rules = tuple(rules[i] for i in sorted(picks[num_heldout_rules:]))
    return cls(seed=seed, people=people, visitors=visitors, facts=facts, qa_train=qa_train,
               qa_test=qa_test, ft_people=ft_people, n1_people=n1_people,
               retain_people=retain_people, n2_cells=n2_cells,
               train_templates=train_templates, n3_templates=n3_templates,
               pretrain_rules=pretrain_rules, heldout_rules=heldout)

  def r1_cells(self) -> tuple[tuple[str, str], ...]:
    """(item, weather) cells where R1 fires."""
    return tuple((i, w) for i in lexicon.ITEMS for w in lexicon.WEATHERS
                 if self.r1.weather == w and self.r1.matches_item(i))

  def rotated(self, k: int) -> "World":
    """The world with the seed-dependent behaviour splits of rotation `k`: the N2 split
    holds out R1 cells k and k+1 (mod their number, in a fixed order) instead of the
    world's two, plus the world's held-out non-firing cells; the N3 split holds out
    request templates k and k+1 (mod their number). Over consecutive k every R1 cell and
    every template is held out, so a claim about novel cells or templates rests on all of
    them rather than on the world's two (each seed of an experiment draws one rotation;
    the seed means then carry the cell-to-cell variance). People splits are unchanged."""
    fires = [(i, self.r1.weather) for i in lexicon.ITEMS if self.r1.matches_item(i)]
    held = {fires[k % len(fires)], fires[(k + 1) % len(fires)]}
    n2 = frozenset(c for c in self.n2_cells if c not in fires) | held
    n3 = tuple(sorted({k % len(T.REQUEST), (k + 1) % len(T.REQUEST)}))
    train = tuple(t for t in range(len(T.REQUEST)) if t not in n3)
    return dataclasses.replace(self, n2_cells=n2, n3_templates=n3, train_templates=train)

  def cells(self, *, held_out: bool) -> tuple[tuple[str, str], ...]:
    """Grid cells in (held_out=True) or out of the N2 split, in a fixed order."""
    return tuple((i, w) for i in lexicon.ITEMS for w in lexicon.WEATHERS
                 if ((i, w) in self.n2_cells) == held_out)


def _held_out_cells(rng: np.random.Generator) -> frozenset:
  """N2: two of the six R1 cells, and a quarter of all other cells."""
  r1_cells = [(i, R1.weather) for i in lexicon.OUTDOOR_ITEMS]
  other = [(i, w) for i in lexicon.ITEMS for w in lexicon.WEATHERS if (i, w) not in r1_cells]
  r1_pick = rng.choice(len(r1_cells), size=2, replace=False)
  other_pick = rng.choice(len(other), size=len(other) // 4, replace=False)
  return frozenset([r1_cells[i] for i in r1_pick] + [other[i] for i in other_pick])
