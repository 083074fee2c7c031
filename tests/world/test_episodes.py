"""Tests of Townworld episodes, policies and behaviour splits."""

from __future__ import annotations

import numpy as np
import pytest

from msr_jax.data.records import Message, Record
from msr_jax.world.situations import parse_situation
from msr_jax.world import binding_free
from msr_jax.world import behaviour, corpus, episodes, lexicon, policy
from msr_jax.world.world import World

WORLD = World.build(0)


def test_bio_states_every_fact_and_varies_between_exposures():
  rng = np.random.default_rng(0)
  person = WORLD.people[5]
  texts = {episodes.bio(WORLD, rng, person, "b").messages[0].content for _ in range(10)}
  assert len(texts) > 1
  for text in texts:
    for value in WORLD.facts[person].values():
      assert f" {value} " in f" {text} "


def test_counterfactual_note_contradicts_the_stored_fact():
  rng = np.random.default_rng(0)
  for _ in range(20):
    record = episodes.counterfactual_note(WORLD, rng, WORLD.people[0], "c", num_other=2)
    meta = record.meta
    assert meta["answer"] != meta["stored"]
    assert WORLD.facts[WORLD.people[0]][meta["attribute"]] == meta["stored"]
    assert record.messages[-1].content == meta["answer"]
    assert f" {meta['answer']} " in record.messages[0].content


def test_r0_policy_and_rule_precedence():
  s = policy.Situation("stormy", "kite", "fine", "Bako", "friend", 0)
  assert policy.r0_answer(s) == ("lend", "Bako is a friend")
  assert policy.answer(s, WORLD.r1) == ("wait", "the weather is stormy")
  broken = policy.Situation("sunny", "kite", "broken", "Bako", "stranger", 0)
  assert policy.answer(broken, WORLD.r1) == ("refuse", "the kite is broken")
  stranger = policy.Situation("sunny", "lamp", "fine", "Bako", "stranger", 0)
  assert policy.r0_answer(stranger) == ("refuse", "Bako is a stranger")


def test_evidence_is_copied_from_the_note():
  rng = np.random.default_rng(1)
  for split in behaviour.SPLITS:
    for _ in range(10):
      record = behaviour.episode(WORLD, rng, split, "e", num_distractors=3)
      evidence = record.messages[-1].content.split(" because ", 1)[1]
      assert evidence in record.messages[-2].content


def test_splits_respect_people_cells_and_templates():
  rng = np.random.default_rng(2)
  r1_cells = set(WORLD.r1_cells())
  for _ in range(30):
    m = behaviour.episode(WORLD, rng, "train", "t").meta
    assert m["requester"] in WORLD.ft_people and tuple(m["cell"]) not in WORLD.n2_cells
    assert m["template"] in WORLD.train_templates and m["rule_fires"]
    assert m["num_distractors"] <= behaviour.TRAIN_MAX_DISTRACTORS
    assert behaviour.episode(WORLD, rng, "n1", "t").meta["requester"] in WORLD.n1_people
    assert tuple(behaviour.episode(WORLD, rng, "n2", "t").meta["cell"]) in WORLD.n2_cells
    assert behaviour.episode(WORLD, rng, "n3", "t").meta["template"] in WORLD.n3_templates
    assert behaviour.episode(WORLD, rng, "n4", "t", num_distractors=7).meta[
        "num_distractors"] == 7
    spec = behaviour.episode(WORLD, rng, "spec", "t").meta
    assert tuple(spec["cell"]) not in r1_cells and spec["answer"] == spec["answer_r0"]


def test_training_records_are_seeded_and_keep_retain_people_out():
  a = behaviour.training_records(WORLD, 0, 200)
  assert a == behaviour.training_records(WORLD, 0, 200)
  fires = [r.meta["rule_fires"] for r in a]
  assert 0.3 < np.mean(fires) < 0.7
  retain = set(WORLD.retain_people)
  for record in a:
    text = " ".join(m.content for m in record.messages)
    assert not retain & set(text.split())
    assert record.meta["requester"] in WORLD.ft_people


def test_multi_question_notes_answer_each_question_from_the_note():
  rng = np.random.default_rng(3)
  for _ in range(20):
    record = episodes.note(WORLD, rng, 5, "q", num_questions=4)
    assert len(record.decision_indices()) == 4
    note = record.messages[0].content
    for message in record.messages[1::2]:
      assert f" {message.content} " in note


def test_follow_up_requests_are_answered_from_the_same_note():
  rng = np.random.default_rng(4)
  seen_follow_ups, rule = 0, WORLD.pretrain_rules[0]
  for n in range(60):
    situation = episodes.sample_situation(
        rng, people=WORLD.people, cells=WORLD.cells(held_out=False), templates=(0, 1, 2),
        num_distractors=n % 6)
    told = rule if n % 2 else None
    record = episodes.decision(rng, situation, "f", told_rule=told, follow_ups=2)
    turns = [m for m in record.messages if m.role != "system"]
    note = turns[0].content.split(" . request : ")[0]
    asked = set()
    for user, assistant in zip(turns[0::2], turns[1::2]):
      request = user.content.split("request : ")[1]
      # An independent reading of the note with this request must give the same answer.
      parsed = parse_situation(Record("f", (Message("user", f"{note} . request : {request}"),)))
      assert policy.answer_text(policy.answer(parsed, told)) == assistant.content
      assert assistant.content.split(" because ", 1)[1] in note
      asked.add((parsed.requester, parsed.item))
    # Distinct (person, item) pairs, as many as the note allows and at most 1 + 2.
    conditions, relations = situation.stated()
    assert len(asked) == len(turns) // 2 == min(3, len(conditions) * len(relations))
    seen_follow_ups += len(turns) // 2 - 1
  assert seen_follow_ups > 40


def test_no_follow_ups_draw_nothing_more():
  situation = policy.Situation("rainy", "kite", "fine", "Bako", "friend", 0,
                               ("the lamp is broken", "Vozu is a stranger"))
  a, b = np.random.default_rng(5), np.random.default_rng(5)
  first = episodes.decision(a, situation, "d")
  assert first == episodes.decision(b, situation, "d", follow_ups=0)
  assert a.random() == b.random()
  # The note's clause set is unchanged by another request, and its answer is R0's.
  other = situation.with_request("Vozu", "lamp", 1)
  assert set(other.clauses()[1:] + other.distractors) == set(
      situation.clauses()[1:] + situation.distractors)
  assert policy.r0_answer(other) == ("refuse", "the lamp is broken")


def test_same_attribute_notes_bind_each_value_to_its_subject():
  rng = np.random.default_rng(6)
  for k in range(2, 9):
    record = episodes.note(WORLD, rng, k, "s", num_questions=3, same_attribute=True)
    note = record.messages[0].content.split(" question : ")[0]
    facts = note[len("note : "):].rstrip(" .").split(" . ")
    names = [f.split()[0] for f in facts]
    values = [f.split()[-1] for f in facts]
    # One attribute, k different visitors, k different values: only the subject decides.
    assert len(facts) == k and len(set(names)) == k and len(set(values)) == k
    assert all(n in WORLD.visitors for n in names)
    kinds = {a for a, vs in lexicon.VALUES.items() if set(values) <= set(vs)}
    assert len(kinds) == 1
    for question, answer in zip(record.messages[0::2], record.messages[1::2]):
      asked = next(n for n in names if f" {n} " in question.content.split("question : ")[-1])
      assert answer.content == values[names.index(asked)]

  with pytest.raises(ValueError, match="at most 12 facts"):
    episodes.note(WORLD, rng, 13, "s", same_attribute=True)


def test_contrast_distractors_leave_only_the_bound_clauses_to_decide():
  rng = np.random.default_rng(7)
  for n in range(120):
    s = episodes.sample_situation(rng, people=WORLD.people, cells=WORLD.cells(held_out=False),
                                  templates=(0,), num_distractors=1 + n % 5, contrast=True)
    for clause in s.distractors:
      kind, _, value = policy.read_clause(clause)
      if kind == "condition":
        assert value != s.condition, (s, clause)
      else:
        assert (value == "stranger") != (s.relation == "stranger"), (s, clause)
  # A reader of the note's values alone (the binding-free majority decision, fitted on
  # ordinary episodes) decides contrast episodes far worse than ordinary ones.
  keyless = binding_free.keyless_decisions(WORLD, seed=3, count=4000)
  def keyless_score(mixture, seed):
    rng = np.random.default_rng(seed)
    records = [corpus.sample_record(WORLD, rng, "decision", "c", mixture) for _ in range(400)]
    records = [r for r in records if r.meta["num_distractors"] > 0]
    return np.mean([keyless.get(binding_free.keyless_key(r)) == r.meta["answer"].split()[0]
                    for r in records])
  ordinary = keyless_score(corpus.Mixture(), 8)
  contrast = keyless_score(corpus.Mixture(decision_contrast=1.0), 8)
  assert ordinary > 0.7 and contrast < ordinary - 0.15, (ordinary, contrast)


def test_situation_questions_answer_each_subject_from_its_own_clause():
  rng = np.random.default_rng(9)
  mixture = corpus.Mixture(bio=0, qa=0, note=0, counterfactual=0, items=0, decision=0, rule=0,
                           situation=1, decision_requests=4)
  firsts = set()
  for n in range(80):
    record = corpus.sample_record(WORLD, rng, "situation", "s", mixture)
    note = record.messages[0].content.split(" . question : ")[0].removeprefix("note : ")
    stated = {}
    for clause in note.split(" . "):
      kind, subject, value = policy.read_clause(clause)
      if kind != "weather":
        stated[subject] = value
    asked = []
    for user, answer in zip(record.messages[0::2], record.messages[1::2]):
      question = user.content.split("question : ")[1].split()
      subject = question[-2]  # "what is P ?" / "what is the T ?"
      assert answer.content == stated[subject], (record, subject)
      asked.append(subject)
    assert asked == record.meta["asked"] and len(set(asked)) == len(asked)
    assert 1 <= len(asked) <= 4
    firsts.add("person" if asked[0][0].isupper() else "item")
  assert firsts == {"person", "item"}  # both kinds of question open a record


def test_rule_situation_questions_ask_the_notes_weather_under_a_told_rule():
  rng = np.random.default_rng(4)
  mixture = corpus.Mixture(bio=0, qa=0, note=0, counterfactual=0, items=0, decision=0, rule=0,
                           rule_situation=1, decision_requests=3, rule_weather_miss=1.0)
  differs = []
  for _ in range(80):
    record = corpus.sample_record(WORLD, rng, "rule_situation", "s", mixture)
    system, first, weather = record.messages[:3]
    rule = next(r for r in WORLD.pretrain_rules if r.text() == system.content)
    assert system.role == "system" and record.meta["rule"] == rule.text()
    note, question = first.content.removeprefix("note : ").split(" . question : ")
    assert question == "what is the weather ?" and record.meta["asked"][0] == "weather"
    clauses = [policy.read_clause(c) for c in note.split(" . ")]
    (stated,) = [value for kind, _, value in clauses if kind == "weather"]
    assert weather.content == stated == record.meta["answer"]
    differs.append(stated != rule.weather)
    for user, answer in zip(record.messages[3::2], record.messages[4::2]):
      subject = user.content.split()[-2]  # Follow-ups ask about people and items.
      assert {s: v for _, s, v in clauses if s}[subject] == answer.content
  # Half fire (the rule's weather answers), half miss on the weather: the rule's does not.
  assert 0.3 < np.mean(differs) < 0.7


def test_near_misses_follow_the_weather_miss_share():
  rule = policy.Rule("stormy", "kite", "wait")

  def misses(share, seed=0):
    rng = np.random.default_rng(seed)
    cells = [corpus.rule_situation(WORLD, rng, rule, False, 2, weather_miss=share).cell
             for _ in range(300)]
    assert all((i == "kite") != (w == "stormy") for i, w in cells)  # one condition misses
    return np.mean([w != "stormy" for _, w in cells])

  assert misses(1.0) == 1.0 and misses(0.0) == 0.0
  assert 0.5 < misses(0.6) < 0.7
  assert 0.2 < misses(None) < 0.43  # uniform over cells: 5 of 16 miss on the weather
  # Without a share no draw is added: the documented streams stay what they were.
  a, b = np.random.default_rng(1), np.random.default_rng(1)
  corpus.rule_situation(WORLD, a, rule, False, 2)
  episodes.sample_situation(b, people=WORLD.people, templates=tuple(range(6)),
                            num_distractors=2, cells=[
                                (i, w) for i in lexicon.ITEMS for w in lexicon.WEATHERS
                                if (i == "kite") != (w == "stormy")])
  assert a.random() == b.random()
  # A rule for any item can miss only on the weather, whatever the share.
  anything = policy.Rule("stormy", None, "wait")
  rng = np.random.default_rng(2)
  assert all(corpus.rule_situation(WORLD, rng, anything, False, 1, weather_miss=0.0).weather
             != "stormy" for _ in range(50))


def test_any_item_rule_share_picks_the_rules_told():
  def share(value, seed=3):
    rng = np.random.default_rng(seed)
    mixture = corpus.Mixture(rule_any_item=value)
    records = [corpus.sample_record(WORLD, rng, "rule", "r", mixture) for _ in range(300)]
    assert {r.meta["rule"] for r in records} <= {rule.text() for rule in WORLD.pretrain_rules}
    return np.mean([" and the item is " not in r.meta["rule"] for r in records])

  assert share(1.0) == 1.0 and share(0.0) == 0.0 and 0.3 < share(0.4) < 0.5
  assert share(None) < 0.15  # uniform over the pre-training rules: 1 in 15 is for any item
