"""Every sentence shape of Townworld, kept as data.

Text is lower-case words and punctuation separated by single spaces, so the word-level
tokenizer's whitespace pre-tokenizer reproduces the words exactly. Placeholders:
{n} a name, {v} an attribute value, {i} an item, {w} a weather, {r} a relation,
{c} a condition, {d} a decision, {s} an item spec (see `RULE_SPECS`).
"""

from __future__ import annotations

# Several paraphrases per attribute: biographies re-sample template and sentence order at
# every exposure, which is what makes stored facts extractable by questions.
BIO: dict[str, tuple[str, ...]] = {
    "city": ("{n} lives in {v} .", "{n} resides in {v} .", "{n} has a home in {v} .",
             "{n} spends most days in {v} ."),
    "employer": ("{n} works at the {v} .", "{n} is employed by the {v} .",
                 "{n} earns a living at the {v} .", "{n} has a job at the {v} ."),
    "hobby": ("{n} enjoys {v} .", "{n} spends free time on {v} .", "{n} is fond of {v} .",
              "{n} has a passion for {v} ."),
    "pet": ("{n} owns a {v} .", "{n} keeps a {v} at home .", "{n} has a pet {v} .",
            "{n} takes care of a {v} ."),
    "colour": ("{n} likes the colour {v} .", "the favourite colour of {n} is {v} .",
               "{n} prefers the colour {v} .", "{n} loves anything {v} ."),
}

# One question per attribute: closed-book QA and note questions share them.
QUESTION: dict[str, str] = {
    "city": "where does {n} live ?",
    "employer": "where does {n} work ?",
    "hobby": "what hobby does {n} enjoy ?",
    "pet": "what pet does {n} have ?",
    "colour": "what colour does {n} like ?",
}

# Facts inside notes use the first bio template (one plain form), so the copy is easy to read.
NOTE_HEADER = "note :"
QUESTION_HEADER = "question :"
REQUEST_HEADER = "request :"
RULE_HEADER = "rule :"

# Situation clauses of decision episodes. The evidence of an answer is one of these clauses
# copied from the note (without its full stop).
WEATHER_CLAUSE = "the weather is {w}"
CONDITION_CLAUSE = "the {i} is {c}"
RELATION_CLAUSE = "{n} is a {r}"

# Request paraphrases; the N3 split holds some out of behaviour fine-tuning.
REQUEST: tuple[str, ...] = (
    "{n} asks to borrow the {i} .",
    "{n} wants to borrow the {i} .",
    "can {n} borrow the {i} ?",
    "{n} would like to use the {i} .",
    "{n} needs the {i} for a day .",
    "{n} comes by to ask for the {i} .",
)

ANSWER = "{d} because {e}"

# Questions about a decision note's own clauses (a person's relation, an item's condition),
# answered by the clause's value: the bindings a decision combines, asked one at a time.
RELATION_QUESTION = "what is {n} ?"
CONDITION_QUESTION = "what is the {i} ?"
# Asked after a told rule and a note: the note's weather, not the rule's.
WEATHER_QUESTION = "what is the weather ?"

# Rules: "if the weather is W [and the item is SPEC] , D ." SPEC is a category or one item.
RULE_WITH_SPEC = "if the weather is {w} and the item is {s} , {d} ."
RULE_ANY_ITEM = "if the weather is {w} , {d} ."
RULE_SPECS = {"outdoor": "an outdoor item", "indoor": "an indoor item"}  # else "the {i}"

# Item knowledge: which items are used outdoors, stated in pre-training documents.
ITEM_FACT = "the {i} is {a} item ."  # {a} is "an outdoor" or "an indoor"

ALL_TEMPLATES: tuple[str, ...] = (
    *[t for ts in BIO.values() for t in ts], *QUESTION.values(), NOTE_HEADER, QUESTION_HEADER,
    REQUEST_HEADER, RULE_HEADER, WEATHER_CLAUSE, CONDITION_CLAUSE, RELATION_CLAUSE, *REQUEST,
    ANSWER, RELATION_QUESTION, CONDITION_QUESTION, RULE_WITH_SPEC, RULE_ANY_ITEM,
    *RULE_SPECS.values(), ITEM_FACT, "an outdoor", "an indoor", "the {i}", WEATHER_QUESTION,
)
