"""Townworld episodes as conversation records (`msr_jax.data.records.Record`).

Every generator takes the world, a numpy Generator and an id, and returns one Record whose
`meta` carries what probes and splits need (kind, split, cell, answer...). Loss goes on the
assistant messages only, so notes and questions cost no gradient, only their answers do.
Biographies and item facts are documents: a single assistant message, all of it trained.
"""

from __future__ import annotations

import numpy as np

from msr_jax.data.records import Message, Record
from msr_jax.world import lexicon
from msr_jax.world import policy
from msr_jax.world import templates as T
from msr_jax.world.world import World

SOURCE = "townworld"


def _record(uid: str, messages, meta: dict) -> Record:
  return Record(id=uid, messages=tuple(Message(r, c) for r, c in messages), source=SOURCE,
                meta=meta)


def bio_sentence(attribute: str, template: int, name: str, value: str) -> str:
  return T.BIO[attribute][template].format(n=name, v=value)


def bio(world: World, rng: np.random.Generator, person: str, uid: str) -> Record:
  """A biography: shuffled sentence order, one random paraphrase per attribute."""
  order = rng.permutation(len(lexicon.ATTRIBUTES))
  sentences = []
  for a in order:
    attribute = lexicon.ATTRIBUTES[a]
    template = int(rng.integers(len(T.BIO[attribute])))
    sentences.append(bio_sentence(attribute, template, person, world.facts[person][attribute]))
  return _record(uid, [("assistant", " ".join(sentences))], {"kind": "bio", "person": person})


def qa(world: World, person: str, attribute: str, uid: str) -> Record:
  """Closed-book question about a stored fact."""
  value = world.facts[person][attribute]
  return _record(uid, [("user", T.QUESTION[attribute].format(n=person)), ("assistant", value)],
                 {"kind": "qa", "person": person, "attribute": attribute, "answer": value})


def _note_question(facts: list[tuple[str, str, str]], asked: int) -> str:
  name, attribute, _ = facts[asked]
  body = " ".join(bio_sentence(a, 0, n, v) for n, a, v in facts)
  return f"{T.NOTE_HEADER} {body} {T.QUESTION_HEADER} {T.QUESTION[attribute].format(n=name)}"


def note(world: World, rng: np.random.Generator, num_facts: int, uid: str,
         num_questions: int = 1, same_attribute: bool = False) -> Record:
  """A note of `num_facts` facts about never-seen visitors and questions about them.

  The first question follows the note in the same user message; further questions (at
  most one per fact) are follow-up turns, each answer trained: more recall signal per
  note read. `meta["answer"]` is the first answer.

  With `same_attribute`, every fact states one attribute, each of another visitor with a
  different value: a value of the asked kind no longer identifies the answer, only its
  clause's subject does (the binding that note recall gets wrong).
  """
  if same_attribute:
    most = min(len(lexicon.VALUES[a]) for a in lexicon.ATTRIBUTES)
    if num_facts > most:
      raise ValueError(f"a note of one attribute has at most {most} facts (one value each), "
                       f"asked for num_facts={num_facts}")
    attribute = lexicon.ATTRIBUTES[int(rng.integers(len(lexicon.ATTRIBUTES)))]
    visitors = rng.choice(len(world.visitors), size=num_facts, replace=False)
    values = rng.choice(lexicon.VALUES[attribute], size=num_facts, replace=False)
    facts = [(world.visitors[int(v)], attribute, str(x)) for v, x in zip(visitors, values)]
  else:
    visitors = rng.choice(len(world.visitors), size=min(num_facts, 3), replace=False)
    keys = set()
    while len(keys) < num_facts:  # Distinct (visitor, attribute) pairs.
      keys.add((int(rng.choice(visitors)), int(rng.integers(len(lexicon.ATTRIBUTES)))))
    facts = []
    for v, a in sorted(keys):
      attribute = lexicon.ATTRIBUTES[a]
      facts.append((world.visitors[v], attribute,
                    str(rng.choice(lexicon.VALUES[attribute]))))
  facts = [facts[i] for i in rng.permutation(len(facts))]
  asked = int(rng.integers(num_facts))
  answer = facts[asked][2]
  messages = [("user", _note_question(facts, asked)), ("assistant", answer)]
  order = [asked]
  if num_questions > 1:
    order += [int(i) for i in rng.permutation(num_facts) if i != asked][:num_questions - 1]
    for i in order[1:]:
      name, attribute, value = facts[i]
      messages += [("user", f"{T.QUESTION_HEADER} {T.QUESTION[attribute].format(n=name)}"),
                   ("assistant", value)]
  # `facts` in note order and `asked` (the subject of each question in turn) let another
  # rendering of the same note (`binding_tasks.pair_note`) keep its content.
  return _record(uid, messages, {"kind": "note", "num_facts": num_facts, "answer": answer,
                                 "facts": [list(f) for f in facts],
                                 "asked": [facts[i][0] for i in order]})


def counterfactual_note(world: World, rng: np.random.Generator, person: str, uid: str,
                        num_other: int = 1) -> Record:
  """A note that contradicts one stored fact of `person`; the note wins."""
  attribute = str(rng.choice(lexicon.ATTRIBUTES))
  stored = world.facts[person][attribute]
  new = str(rng.choice([v for v in lexicon.VALUES[attribute] if v != stored]))
  facts = [(person, attribute, new)]
  others = [a for a in lexicon.ATTRIBUTES if a != attribute]
  for a in rng.choice(others, size=num_other, replace=False):
    facts.append((person, str(a), world.facts[person][str(a)]))  # True facts as padding.
  order = rng.permutation(len(facts))
  facts = [facts[i] for i in order]
  asked = int(np.argmax(order == 0))
  return _record(uid, [("user", _note_question(facts, asked)), ("assistant", new)],
                 {"kind": "counterfactual", "person": person, "attribute": attribute,
                  "answer": new, "stored": stored})


def item_facts(rng: np.random.Generator, uid: str) -> Record:
  """Which items are used outdoors: the knowledge rules about categories rely on."""
  sentences = []
  for i in rng.permutation(len(lexicon.ITEMS)):
    item = lexicon.ITEMS[i]
    kind = "an outdoor" if policy.item_category(item) == "outdoor" else "an indoor"
    sentences.append(T.ITEM_FACT.format(i=item, a=kind))
  return _record(uid, [("assistant", " ".join(sentences))], {"kind": "items"})


def sample_situation(rng: np.random.Generator, *, people, cells, templates,
                     num_distractors: int, p_broken: float = 0.25,
                     p_stranger: float = 0.25, contrast: bool = False) -> policy.Situation:
  """A situation from the given people, (item, weather) cells and request templates.

  Requester and distractor people are drawn from `people` only. With `contrast`, every
  distractor clause states a value of the other decision class than the situation's own
  clause of its kind (the other condition; a stranger beside a friend or neighbour, and
  the reverse), so the note's values alone no longer decide: only the clauses of the
  requester and the item do (the binding R0 decisions get wrong; `msr_jax.world.binding_free`).
  """
  item, weather = cells[int(rng.integers(len(cells)))]
  requester = people[int(rng.integers(len(people)))]
  condition = "broken" if rng.random() < p_broken else "fine"
  u = rng.random()
  relation = "stranger" if u < p_stranger else ("friend" if u < (1 + p_stranger) / 2
                                                else "neighbour")
  template = int(templates[int(rng.integers(len(templates)))])
  distractors = []
  other_items = [i for i in lexicon.ITEMS if i != item]
  # Distractor people come from the same pool, so a split's people never leak elsewhere.
  other_people = [p for p in people if p != requester]
  used_items, used_people = set(), set()
  while len(distractors) < num_distractors:
    if rng.random() < 0.5:
      i = other_items[int(rng.integers(len(other_items)))]
      if i not in used_items:
        used_items.add(i)
        conditions = ([c for c in lexicon.CONDITIONS if c != condition] if contrast
                      else lexicon.CONDITIONS)
        distractors.append(T.CONDITION_CLAUSE.format(i=i, c=str(rng.choice(conditions))))
    else:
      p = other_people[int(rng.integers(len(other_people)))]
      if p not in used_people:
        used_people.add(p)
        # Contrast is in the decision's class: a stranger beside a friend or neighbour.
        relations = (lexicon.RELATIONS if not contrast else ("stranger",)
                     if relation != "stranger" else ("friend", "neighbour"))
        distractors.append(T.RELATION_CLAUSE.format(n=p, r=str(rng.choice(relations))))
  return policy.Situation(weather, item, condition, requester, relation, template,
                          tuple(distractors))


def decision(rng: np.random.Generator, situation: policy.Situation, uid: str, *,
             told_rule: policy.Rule | None = None, default_rule: policy.Rule | None = None,
             meta: dict | None = None, follow_ups: int = 0) -> Record:
  """A decision episode: [rule note], note + request, `DECISION because EVIDENCE`.

  `told_rule` is stated in a system message (the fast system); `default_rule` is a rule the
  answer follows without being told (R1 as a learnt behaviour). At most one may be given.
  `follow_ups` further requests (as many as the note allows) are follow-up turns, each
  from another (person, item) pair whose clauses the note states, each answer trained:
  one request's distractors are another's evidence, so answering all of them needs each
  value read from its own clause. The meta describes the first request.
  """
  if told_rule is not None and default_rule is not None:
    raise ValueError("give a told rule or a default rule, not both")
  rule = told_rule or default_rule
  clauses = list(situation.clauses()) + list(situation.distractors)
  clauses = [clauses[i] for i in rng.permutation(len(clauses))]
  request = T.REQUEST[situation.template].format(n=situation.requester, i=situation.item)
  user = f"{T.NOTE_HEADER} {' . '.join(clauses)} . {T.REQUEST_HEADER} {request}"
  decided = policy.answer(situation, rule)
  messages = [("user", user), ("assistant", policy.answer_text(decided))]
  for other in _follow_up_situations(rng, situation, follow_ups):
    request = T.REQUEST[other.template].format(n=other.requester, i=other.item)
    messages += [("user", f"{T.REQUEST_HEADER} {request}"),
                 ("assistant", policy.answer_text(policy.answer(other, rule)))]
  if told_rule is not None:
    messages.insert(0, ("system", told_rule.text()))
  info = {"kind": "decision", "cell": list(situation.cell), "requester": situation.requester,
          "template": situation.template, "num_distractors": len(situation.distractors),
          "answer": policy.answer_text(decided),
          "answer_r0": policy.answer_text(policy.r0_answer(situation)),
          "rule_fires": bool(rule is not None and rule.fires(situation)),
          "rule": None if rule is None else rule.text()}
  info.update(meta or {})
  return _record(uid, messages, info)


def situation_questions(rng: np.random.Generator, situation: policy.Situation, uid: str,
                        num_questions: int = 1, told_rule: policy.Rule | None = None) -> Record:
  """A decision note followed by questions about its own clauses instead of a request:
  "what is P ?" -> P's relation, "what is the T ?" -> the T's condition, at most one per
  person or item the note states.

  Each answer is one value read from its subject's clause: the two bindings an R0 decision
  combines at its first word, learnt one at a time and on people's names. With `told_rule`,
  the rule is stated in a system message and the first question is "what is the weather ?"
  -> the note's weather, which the rule's own weather (another value of the same phrase,
  "the weather is W") must not answer: the comparison a told rule's decision starts from.
  """
  clauses = list(situation.clauses()) + list(situation.distractors)
  clauses = [clauses[i] for i in rng.permutation(len(clauses))]
  conditions, relations = situation.stated()
  subjects = [("relation", p, r) for p, r in sorted(relations.items())] + [
      ("condition", i, c) for i, c in sorted(conditions.items())]
  order = [int(k) for k in rng.permutation(len(subjects))[:num_questions]]
  asked = [subjects[k] for k in order]
  if told_rule is not None:
    asked = [("weather", "weather", situation.weather)] + asked[:num_questions - 1]
  messages = []
  for n, (kind, subject, value) in enumerate(asked):
    question = (T.RELATION_QUESTION.format(n=subject) if kind == "relation"
                else T.CONDITION_QUESTION.format(i=subject) if kind == "condition"
                else T.WEATHER_QUESTION)
    user = f"{T.QUESTION_HEADER} {question}"
    if n == 0:
      user = f"{T.NOTE_HEADER} {' . '.join(clauses)} . {user}"
    messages += [("user", user), ("assistant", value)]
  if told_rule is not None:
    messages.insert(0, ("system", told_rule.text()))
  return _record(uid, messages, {"kind": "situation", "answer": asked[0][2],
                                 "num_distractors": len(situation.distractors),
                                 "asked": [subject for _, subject, _ in asked],
                                 "rule": None if told_rule is None else told_rule.text()})


def _follow_up_situations(rng: np.random.Generator, situation: policy.Situation,
                          count: int) -> list[policy.Situation]:
  """Up to `count` other requests on `situation`'s note: distinct (person, item) pairs, in
  any request template (only pre-training asks follow-ups, and it sees every template)."""
  if count <= 0:  # No draw: streams without follow-ups stay what they were.
    return []
  conditions, relations = situation.stated()
  pairs = [(p, i) for p in sorted(relations) for i in sorted(conditions)
           if (p, i) != (situation.requester, situation.item)]
  chosen = rng.permutation(len(pairs))[:count]
  return [situation.with_request(*pairs[int(k)], int(rng.integers(len(T.REQUEST))))
          for k in chosen]
