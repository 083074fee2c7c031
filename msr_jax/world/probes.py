"""Townworld probe sets: fixed items, a pure function of (world, probe seed).

Every item is a token sequence and an answer span `tokens[start:end]`; a probe scores the
span teacher-forced (exact match: every answer token is the argmax; and its summed
log-probability). Probes (see METRICS.md, "Townworld probes"):
  K1  bio completion (the probed sentence opens the biography).
  K2  closed-book QA on people whose QA was never trained; `qa_trained` on those it was.
  K4  cross-entropy per token of held-out biography renderings (span = the whole bio).
  C1_k  note recall with k facts about never-seen visitors, k = 2..8.
  C2  counterfactual notes (the note wins); each item has a twin scored on the stored value
      for the memorization ratio M = P_stored / (P_stored + P_note).
  R0  base-policy decisions; `rule` / `rule_novel` told rules from / out of pre-training;
  `r1_note` R1 told as a rule note (half firing, half near misses).
  B_train, N1, N2, N3, N4_k, spec  the R1 behaviour without a note (see world/behaviour.py).
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from msr_jax.data.records import Message, Record
from msr_jax.data.tokenize import tokenize_record
from msr_jax.eval.probes_score import ProbeItem
from msr_jax.world import behaviour, corpus, episodes, lexicon
from msr_jax.world import templates as T
from msr_jax.world.world import World

NOTE_FACTS = (2, 3, 4, 5, 6, 7, 8)
DEFAULT_SIZES = {"K1": 300, "K2": 300, "qa_trained": 150, "K4": 120, "C1": 60, "C2": 200,
                 "R0": 200, "rule": 200, "rule_novel": 200, "r1_note": 100,
                 "behaviour": 150, "N4": 100}




def _span_item(probe: str, record: Record, adapter, cluster: str = "") -> ProbeItem:
  """The last assistant message's content is the answer (the end-of-turn is not scored)."""
  encoded = tokenize_record(record, adapter)
  span = encoded.spans[-1]
  return ProbeItem(probe, encoded.tokens, span.start, span.content_end, cluster=cluster)


def behaviour_cluster(probe: str, record: Record) -> str:
  """What a behaviour item shares with its neighbours: the held-out factor of its split
  (N1: the requester, N3: the request template), else its (item, weather) cell."""
  meta = record.meta
  if probe == "N1":
    return f"person:{meta['requester']}"
  if probe == "N3":
    return f"template:{meta['template']}"
  return "cell:" + "/".join(meta["cell"])


def _bio_completion(world: World, rng, person: str, attribute: str, adapter) -> ProbeItem:
  """A biography whose first sentence states `attribute`; the answer is its value."""
  others = [a for a in lexicon.ATTRIBUTES if a != attribute]
  order = [attribute] + [others[i] for i in rng.permutation(len(others))]
  templates = [int(rng.integers(len(T.BIO[a]))) for a in order]
  text = " ".join(episodes.bio_sentence(a, t, person, world.facts[person][a])
                  for a, t in zip(order, templates))
  record = Record("k1", (Message("assistant", text),), source=episodes.SOURCE)
  encoded = tokenize_record(record, adapter)
  # Word-level tokens: the value sits after exactly this many words of the first sentence.
  start = encoded.spans[0].start + T.BIO[attribute][templates[0]].split().index("{v}")
  return ProbeItem("K1", encoded.tokens, start, start + 1)


def build(world: World, seed: int, adapter, sizes: dict | None = None) -> list[ProbeItem]:
  """All probe items, in a fixed order. `sizes` overrides `DEFAULT_SIZES` entries."""
  n = {**DEFAULT_SIZES, **(sizes or {})}
  items: list[ProbeItem] = []

  def rng(tag: int):  # One independent stream per probe: resizing one never moves another.
    return np.random.default_rng([seed, tag])

  r = rng(1)
  for _ in range(n["K1"]):
    person = world.people[int(r.integers(len(world.people)))]
    items.append(_bio_completion(world, r, person, str(r.choice(lexicon.ATTRIBUTES)), adapter))
  for probe, people, tag in (("K2", world.qa_test, 2), ("qa_trained", world.qa_train, 3)):
    r = rng(tag)
    for _ in range(n[probe]):
      person = people[int(r.integers(len(people)))]
      record = episodes.qa(world, person, str(r.choice(lexicon.ATTRIBUTES)), probe)
      items.append(_span_item(probe, record, adapter))
  r = rng(4)
  for _ in range(n["K4"]):
    record = episodes.bio(world, r, world.people[int(r.integers(len(world.people)))], "k4")
    encoded = tokenize_record(record, adapter)
    items.append(ProbeItem("K4", encoded.tokens, encoded.spans[0].start,
                           encoded.spans[0].content_end))
  r = rng(5)
  for k in NOTE_FACTS:
    for _ in range(n["C1"]):
      items.append(_span_item(f"C1_{k}", episodes.note(world, r, k, "c1"), adapter))
  r = rng(6)
  for _ in range(n["C2"]):
    record = episodes.counterfactual_note(world, r, world.people[int(r.integers(
        len(world.people)))], "c2", num_other=int(r.integers(0, 3)))
    stored = dataclasses.replace(record, messages=record.messages[:-1] + (
        dataclasses.replace(record.messages[-1], content=record.meta["stored"]),))
    items.append(dataclasses.replace(_span_item("C2", record, adapter), twin=len(items) + 1))
    items.append(_span_item("C2_stored", stored, adapter))
  mixture = corpus.Mixture()
  r = rng(7)
  for _ in range(n["R0"]):
    items.append(_span_item("R0", corpus.sample_record(world, r, "decision", "r0", mixture),
                            adapter))
  for probe, rules, tag in (("rule", world.pretrain_rules, 8),
                            ("rule_novel", world.heldout_rules, 9), ("r1_note", (world.r1,), 10)):
    r = rng(tag)
    for i in range(n[probe]):
      rule = rules[int(r.integers(len(rules)))]
      situation = corpus.rule_situation(world, r, rule, fires=i % 2 == 0,
                                        num_distractors=int(r.integers(4)))
      items.append(_span_item(probe, episodes.decision(r, situation, probe, told_rule=rule),
                              adapter))
  r = rng(11)
  for split, probe in (("train", "B_train"), ("n1", "N1"), ("n2", "N2"), ("n3", "N3"),
                       ("spec", "spec")):
    for _ in range(n["behaviour"]):
      record = behaviour.episode(world, r, split, probe)
      items.append(_span_item(probe, record, adapter, behaviour_cluster(probe, record)))
  for k in behaviour.N4_DISTRACTORS:
    for _ in range(n["N4"]):
      record = behaviour.episode(world, r, "n4", "n4", num_distractors=k)
      items.append(_span_item(f"N4_{k}", record, adapter,
                              behaviour_cluster(f"N4_{k}", record)))
  return items


# The summary of scored items: per probe, and Townworld's aggregates.

def summarize(items: list[ProbeItem], logprob: np.ndarray, exact: np.ndarray) -> dict:
  """{probe: {"acc", "logprob", "n", ...}}, plus aggregates C1_trained, C1_long, N4."""
  out: dict[str, dict] = {}
  groups = collections.defaultdict(list)
  for i, item in enumerate(items):
    groups[item.probe].append(i)
  for probe, idx in groups.items():
    if probe == "C2_stored":
      continue
    entry = {"acc": float(exact[idx].mean()), "logprob": float(logprob[idx].mean()),
             "n": len(idx)}
    if probe == "K4":
      num_tokens = sum(items[i].end - items[i].start for i in idx)
      entry = {"ce": float(-logprob[idx].sum() / num_tokens), "n": len(idx)}
    if probe == "C2":
      p_note = np.exp(logprob[idx])
      p_stored = np.exp(logprob[[items[i].twin for i in idx]])
      entry["memorization_ratio"] = float(np.mean(p_stored / (p_stored + p_note)))
    out[probe] = entry
  return out


def add_aggregates(summary: dict, trained_note_facts: tuple[int, int]) -> dict:
  """Means over C1 lengths inside / beyond the trained range and over the N4 curve."""
  low, high = trained_note_facts
  c1 = {int(k.split("_")[1]): v["acc"] for k, v in summary.items() if k.startswith("C1_")}
  trained = [a for k, a in c1.items() if low <= k <= high]
  longer = [a for k, a in c1.items() if k > high]
  n4 = [v["acc"] for k, v in summary.items() if k.startswith("N4_")]
  if trained:
    summary["C1_trained"] = {"acc": float(np.mean(trained))}
  if longer:
    summary["C1_long"] = {"acc": float(np.mean(longer))}
  if n4:
    summary["N4"] = {"acc": float(np.mean(n4))}
  return summary
