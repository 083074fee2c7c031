"""Decision situations, rules and the policies that answer them.

A situation is what a decision episode's note says: the weather, the requested item and
its condition, the requester and their relation, plus distractor clauses. The base policy
R0 refuses broken items and strangers and lends otherwise. A `Rule` ("if the weather is W
and the item is SPEC, D") takes precedence over R0 whenever it fires; the behaviour to
teach later, R1, is one such rule learnt as a default instead of being told.
"""

from __future__ import annotations

import dataclasses
import re

from msr_jax.world import lexicon
from msr_jax.world import templates as T

# The situation clauses as patterns, for reading a note back. "the weather is W" also has
# the shape of a condition clause; a reader checks the weather pattern first.
WEATHER_PATTERN = re.compile("^" + T.WEATHER_CLAUSE.format(w=r"(\S+)") + "$")
CONDITION_PATTERN = re.compile("^" + T.CONDITION_CLAUSE.format(i=r"(\S+)", c=r"(\S+)") + "$")
RELATION_PATTERN = re.compile("^" + T.RELATION_CLAUSE.format(n=r"(\S+)", r=r"(\S+)") + "$")


def read_clause(clause: str) -> tuple[str, str | None, str] | None:
  """(kind, subject, value) of a situation clause: ("weather", None, W), ("condition",
  ITEM, C) or ("relation", PERSON, R); None for anything else."""
  weather = WEATHER_PATTERN.match(clause)
  if weather and weather[1] in lexicon.WEATHERS:
    return "weather", None, weather[1]
  condition = CONDITION_PATTERN.match(clause)
  if condition and condition[1] in lexicon.ITEMS:
    return "condition", condition[1], condition[2]
  relation = RELATION_PATTERN.match(clause)
  if relation:
    return "relation", relation[1], relation[2]
  return None


@dataclasses.dataclass(frozen=True)
class Situation:
  weather: str
  item: str
  condition: str  # "fine" | "broken"
  requester: str
  relation: str  # "friend" | "neighbour" | "stranger"
  template: int  # index into templates.REQUEST
  distractors: tuple[str, ...] = ()  # extra clauses (without full stops)

  @property
  def cell(self) -> tuple[str, str]:
    """The (item, weather) cell of the grid that the N2 split holds out."""
    return (self.item, self.weather)

  def clauses(self) -> tuple[str, ...]:
    """The situation's own clauses, in a fixed order (the note shuffles them)."""
    return (T.WEATHER_CLAUSE.format(w=self.weather),
            T.CONDITION_CLAUSE.format(i=self.item, c=self.condition),
            T.RELATION_CLAUSE.format(n=self.requester, r=self.relation))

  def stated(self) -> tuple[dict[str, str], dict[str, str]]:
    """(item -> condition, person -> relation) for every item and person the note states:
    the situation's own and its distractors'."""
    stated = {"condition": {self.item: self.condition},
              "relation": {self.requester: self.relation}}
    for clause in self.distractors:
      kind, subject, value = read_clause(clause) or (None, None, None)
      if kind in stated:
        stated[kind].setdefault(subject, value)
    return stated["condition"], stated["relation"]

  def with_request(self, requester: str, item: str, template: int) -> "Situation":
    """The same note with another request: a person and an item that the note states.

    The clauses that were the situation's own become distractors, and the new
    requester's and item's clauses leave them, so the note's clause set is unchanged.
    """
    conditions, relations = self.stated()
    if item not in conditions or requester not in relations:
      raise ValueError(f"the note states no clause for {requester!r} or the {item!r}")
    new = Situation(self.weather, item, conditions[item], requester, relations[requester],
                    template)
    own = set(new.clauses())
    note = self.clauses()[1:] + self.distractors  # Every clause but the weather.
    return dataclasses.replace(new, distractors=tuple(c for c in note if c not in own))


def item_category(item: str) -> str:
  if item in lexicon.OUTDOOR_ITEMS:
    return "outdoor"
  if item in lexicon.INDOOR_ITEMS:
    return "indoor"
  raise ValueError(f"unknown item {item!r}")


@dataclasses.dataclass(frozen=True)
class Rule:
  """If the weather is `weather` and the item matches `spec`, answer `decision`.

  `spec` is None (any item), "outdoor", "indoor" or an item name.
  """
  weather: str
  spec: str | None
  decision: str

  def matches_item(self, item: str) -> bool:
    if self.spec is None:
      return True
    if self.spec in ("outdoor", "indoor"):
      return item_category(item) == self.spec
    return item == self.spec

  def fires(self, situation: Situation) -> bool:
    return situation.weather == self.weather and self.matches_item(situation.item)

  def text(self) -> str:
    """The rule note, as told in a system message."""
    if self.spec is None:
      body = T.RULE_ANY_ITEM.format(w=self.weather, d=self.decision)
    else:
      spec = T.RULE_SPECS.get(self.spec) or f"the {self.spec}"
      body = T.RULE_WITH_SPEC.format(w=self.weather, s=spec, d=self.decision)
    return f"{T.RULE_HEADER} {body}"


def all_rules() -> tuple[Rule, ...]:
  """Every rule of the family, in a fixed order."""
  specs = (None, "outdoor", "indoor", *lexicon.ITEMS)
  return tuple(Rule(w, s, d) for w in lexicon.WEATHERS for s in specs
               for d in ("wait", "refuse"))


def r0_answer(situation: Situation) -> tuple[str, str]:
  """The base policy: (decision, evidence clause)."""
  s = situation
  if s.condition == "broken":
    return "refuse", T.CONDITION_CLAUSE.format(i=s.item, c="broken")
  if s.relation == "stranger":
    return "refuse", T.RELATION_CLAUSE.format(n=s.requester, r="stranger")
  return "lend", T.RELATION_CLAUSE.format(n=s.requester, r=s.relation)


def answer(situation: Situation, rule: Rule | None = None) -> tuple[str, str]:
  """(decision, evidence) under R0 extended by `rule` (which wins whenever it fires)."""
  if rule is not None and rule.fires(situation):
    return rule.decision, T.WEATHER_CLAUSE.format(w=situation.weather)
  return r0_answer(situation)


def answer_text(decision_evidence: tuple[str, str]) -> str:
  decision, evidence = decision_evidence
  return T.ANSWER.format(d=decision, e=evidence)
