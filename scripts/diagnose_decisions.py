"""Where a Townworld checkpoint's decisions fail: the decision word against the whole
answer, by answer type and by the number of distractor clauses in the note.

  python scripts/diagnose_decisions.py [CHECKPOINT] [--n 300] [--examples 6]

Items are fresh pre-training decision episodes (R0) and told-rule episodes, drawn with
their own seed (not the probe items), scored teacher-forced: "decision" is the share whose
first answer token is the argmax, "exact" the share whose every answer token is. Beside
R0 decisions and note recall it prints what a reader that binds no value to its clause
scores (`msr_jax.world.binding_free`), and recall on notes where only the subject decides.
"""

from __future__ import annotations

import argparse
import collections
import os

import jax
import jax.numpy as jnp
import numpy as np

from msr_jax.data.tokenize import tokenize_record
from msr_jax.world import binding_free, rule_comparison
from msr_jax.model import forward
from msr_jax.runner.arm_probes import load_base
from msr_jax.world import checkpoint, corpus, episodes, lexicon, policy, tokenizer


def answer_type(record, kind: str) -> str:
  decision, _, evidence = record.meta["answer"].partition(" because ")
  why = ("weather" if "weather" in evidence else "broken" if "broken" in evidence
         else "stranger" if "stranger" in evidence else "relation")
  if kind == "decision":
    return f"{decision}/{why}"
  return f"rule {'fires' if record.meta['rule_fires'] else 'near miss'}: {decision}/{why}"


def near_miss(record, rules: dict[str, policy.Rule]) -> str:
  """Which of a told rule's two conditions a near miss fails, and what the rule's item is
  (`rules`: each rule by its text)."""
  rule = rules[record.meta["rule"]]
  spec = ("any item" if rule.spec is None else "one item" if rule.spec in lexicon.ITEMS
          else f"an {rule.spec} item")
  miss = "weather differs" if record.meta["cell"][1] != rule.weather else "item differs"
  return f"{miss} ({spec}): {record.meta['answer'].split()[0]}"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("checkpoint", nargs="?", default="assets/townworld_base")
  parser.add_argument("--n", type=int, default=300, help="episodes of each kind")
  parser.add_argument("--examples", type=int, default=6, help="failures to print")
  args = parser.parse_args()
  base = load_base(args.checkpoint)
  tok = tokenizer.load(os.path.join(args.checkpoint, checkpoint.TOKENIZER))
  logits_fn = jax.jit(lambda p, t: forward(base.graphdef, p, t)[0])

  def teacher_forced(record):
    """(wanted answer ids, argmax ids at the same positions) of the record's last answer."""
    encoded = tokenize_record(record, base.adapter)
    span = encoded.spans[-1]
    length = -(-len(encoded.tokens) // 32) * 32  # Few shapes, few compilations.
    tokens = np.full((1, length), base.pad_id, np.int32)
    tokens[0, :len(encoded.tokens)] = encoded.tokens
    predicted = np.asarray(jnp.argmax(logits_fn(base.params, tokens), -1))[0]
    return (tokens[0, span.start:span.content_end],
            predicted[span.start - 1:span.content_end - 1])

  rng, mixture = np.random.default_rng([99, 7]), corpus.Mixture()
  keyless = binding_free.keyless_decisions(base.world, seed=99)
  counts = collections.defaultdict(lambda: np.zeros(3))
  keyless_hits = collections.defaultdict(list)
  failures = []
  # The weather word that ends "... because the weather is W" (told rules that fire on the
  # weather): wanted against predicted, to tell copying from guessing a frequent value.
  weather_want, weather_got = collections.Counter(), collections.Counter()
  weather_hits = 0
  rules = {rule.text(): rule for rule in base.world.pretrain_rules}
  for kind in ["decision"] * args.n + ["rule"] * args.n:
    record = corpus.sample_record(base.world, rng, kind, "diag", mixture)
    want, got = teacher_forced(record)
    hit = got == want
    group = answer_type(record, kind)
    for key in (group, f"{kind}: {record.meta['num_distractors']} distractors"):
      counts[(kind, key)] += [1, hit[0], hit.all()]
    if kind == "decision" and group == "refuse/stranger":
      # Refusing a stranger needs the requester's own relation clause unless every
      # relation clause in the note says stranger (then the values alone decide).
      relations = binding_free.keyless_key(record)[1]
      alone = "every relation a stranger" if set(relations) == {"stranger"} else (
          "a friend or neighbour beside")
      counts[(kind, f"refuse/stranger, {alone}")] += [1, hit[0], hit.all()]
    if kind == "rule" and not record.meta["rule_fires"]:
      counts[(kind, f"near miss, {near_miss(record, rules)}")] += [1, hit[0], hit.all()]
    if kind == "decision":
      keyless_hits[record.meta["num_distractors"]].append(
          keyless.get(binding_free.keyless_key(record)) == record.meta["answer"].split()[0])
    if kind == "rule" and "weather" in record.meta["answer"]:
      weather_want[tok.decode(want[-1:].tolist())] += 1
      weather_got[tok.decode(got[-1:].tolist())] += 1
      weather_hits += int(hit[-1])
    if not hit.all() and len(failures) < args.examples:
      failures.append((record, tok.decode(want.tolist()), tok.decode(got.tolist())))
  print(f"{'kind':9s} {'group':48s} {'n':>4s} {'decision':>8s} {'exact':>6s}")
  for (kind, key), (n, decision, exact) in sorted(counts.items()):
    print(f"{kind:9s} {key:48s} {int(n):4d} {decision / n:8.2f} {exact / n:6.2f}")
  print("\nR0 decision word against a reader that binds no clause (the best decision from "
        "the note's condition and relation values alone):")
  for k in sorted(keyless_hits):
    model = counts[("decision", f"decision: {k} distractors")]
    print(f"  {k} distractors: model {model[1] / model[0]:.2f}, "
          f"binding-free {np.mean(keyless_hits[k]):.2f} (n {len(keyless_hits[k])})")
  n_weather = sum(weather_want.values())
  if n_weather:
    print(f"\nweather word after a fired rule (teacher-forced): {weather_hits / n_weather:.2f} "
          f"right of {n_weather} (chance 1/{len(weather_want)}); predicted "
          f"{dict(weather_got.most_common())}; wanted {dict(weather_want.most_common())}")
  for record, want, got in failures:
    print("\n" + " | ".join(m.content for m in record.messages[:-1]))
    print(f"  want: {want}\n  got:  {got} (teacher-forced argmax)")
  weather_comparison(base, teacher_forced, tok, args.n)
  note_recall(base, teacher_forced, tok, args.n)


def weather_comparison(base, teacher_forced, tok, n: int) -> None:
  """Whether a told rule's weather is compared with the note's: on rules for any item (only
  the weather decides) and rules naming one item, with the item matching and R0 lending,
  the share of decisions that are the rule's, where the rule fires and where only the
  weather differs. A model that compares them gives 1 and 0; one that does not, the same
  share twice."""
  rng = np.random.default_rng([99, 9])
  print("\ntold rules with the item matching: the rule's decision given (first answer word)")
  for name, any_item in (("any item", True), ("one item", False)):
    shares = {}
    for fires in (True, False):
      given = [teacher_forced(record)[1][0] == tok.token_to_id(rule.decision)
               for record, rule in rule_comparison.episodes_for(base.world, rng, n // 4,
                                                                any_item, fires)]
      shares[fires] = np.mean(given)
    print(f"  rule for {name}: rule fires {shares[True]:.2f}, weather differs "
          f"{shares[False]:.2f} (n {n // 4} each)")


def note_recall(base, teacher_forced, tok, n: int) -> None:
  """Wrong note-recall answers by what they are, per number of facts in the note."""
  rng = np.random.default_rng([99, 8])
  kinds = ("right", "other person's value", "asked person, other value", "not in the note")
  counts = collections.defaultdict(collections.Counter)
  type_only = collections.defaultdict(list)
  for _ in range(n):
    num_facts = int(rng.integers(2, 9))
    record = episodes.note(base.world, rng, num_facts, "diag")
    type_only[num_facts].append(binding_free.type_only_recall(record))
    want, got = teacher_forced(record)
    text = record.messages[0].content
    body, _, question = text.partition(" question : ")
    clauses = [c.split() for c in body.removeprefix("note : ").split(" . ")]
    asked = next(w for w in question.split() if w[:1].isupper())  # Names are capitalised.
    word = tok.decode(got[:1].tolist())
    owners = {c[0] for c in clauses if word in c[1:]}
    kind = (kinds[0] if (got == want).all() else kinds[2] if asked in owners
            else kinds[1] if owners else kinds[3])
    counts[num_facts][kind] += 1
  print("\nnote recall, teacher-forced (what the first answer word is):")
  print(f"{'facts':>5s} " + " ".join(f"{k:>26s}" for k in kinds) + "  type-only reader")
  for num_facts in sorted(counts):
    print(f"{num_facts:5d} " + " ".join(f"{counts[num_facts][k]:26d}" for k in kinds)
          + f"  {np.mean(type_only[num_facts]) * sum(counts[num_facts].values()):16.1f}")
  # Every fact one attribute of another visitor: the value's kind tells nothing, so only a
  # model that binds values to subjects beats 1 / facts.
  print("\nnotes of one attribute (only the subject decides), first answer word:")
  for num_facts in (2, 4, 8):
    hits = []
    for _ in range(60):
      want, got = teacher_forced(
          episodes.note(base.world, rng, num_facts, "diag", same_attribute=True))
      hits.append(want[0] == got[0])
    print(f"  {num_facts} facts: {np.mean(hits):.2f} (chance {1 / num_facts:.2f}, n 60)")


if __name__ == "__main__":
  main()
