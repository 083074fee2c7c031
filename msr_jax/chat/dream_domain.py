"""The dream loop on a chat model: `msr_jax.dream.domain.DreamDomain` for conversations.

Memories are the records of conversation JSONL files (config.memory.paths); a memory's
entities are the capitalised words of its user turns that do not open a sentence (names,
places), so the memory graph links conversations about the same people and places.

Collisions: a writer model (the base checkpoint, frozen) is asked, with few-shot examples
written for this repository (config.collide.examples, else the generic `FEW_SHOT`), to
write one new user request blending 2-3 memories (`dream.collide.blend_prompt`); its
first line is the scenario. A reply is dropped when it is empty, an echo (its words are
mostly those of one memory, of the instruction or of a few-shot example: Jaccard
similarity >= `max_overlap`) a reply that loops (fewer distinct words than half its words), or a duplicate of an
earlier scenario of the run.

Answers are generated with the fast store in context: the behaviour's instruction as the
system message and `demonstrations` real conversations as examples (config.fast_store);
the training records strip it. Judges: "verify" (a regex the answer must match,
config.judges.verify), "llm" (an LLM judge: any checkpoint `msr_jax.load` reads, a larger
model included, with config.judges.rubric) and the loop's own "self" (self-consistency);
each is reported, the config names the one that filters. The verifier is the reference
(validity); there is no oracle answer.

Probes, all teacher-forced: "fast" / "slow", whether the greedy answer to each held-out
prompt (config.probes.prompts) starts with the behaviour's prefix (config.probes.prefix,
the token-level form of the verifier), with and without the fast store; "knowledge"
(closed-book facts) and "context" (note recall) from the shipped real-model probes.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import jax
import numpy as np

from msr_jax.data.records import Message, Record
from msr_jax.dream.collide import Scenario, blend_prompt, free_text_scenario
from msr_jax.dream.judges import LLMJudge, OneByOne, Verdict, same_length, yes_no_ids
from msr_jax.eval import probes_score, real_probes
from msr_jax.eval.behaviour_probes import end_of_turn_ids

# Few-shot examples of a good collision: memories in, one new request out.
FEW_SHOT = (
    (("user: Can you suggest a pasta dish for tonight?",
      "user: I'm visiting my aunt Rosa in Naples next week."),
     "I'm cooking for my aunt Rosa when I visit her in Naples next week - which pasta "
     "dish should I make?"),
    (("user: How long does the train from Leeds take?",
      "user: My bike has a flat tyre, how do I fix it?",
      "user: What should I bring to a picnic?"),
     "I'm taking my bike on the train from Leeds to a picnic - what should I bring in "
     "case of a flat tyre?"),
)
INSTRUCTIONS = (
    "Write one new, realistic request that a user could make, combining details of the "
    "memories below (a person or place of one, the situation of another). Do not copy any "
    "memory. Reply with the request only, on one line.")
WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")


def _words(text: str) -> set[str]:
  return {w.lower() for w in WORD.findall(text)}


def overlap(a: str, b: str) -> float:
  """Jaccard similarity of the word sets of two texts."""
  x, y = _words(a), _words(b)
  return len(x & y) / max(len(x | y), 1)


def entities(text: str) -> frozenset[str]:
  """Capitalised words that do not open a sentence: names and places."""
  out = set()
  for sentence in re.split(r"(?<=[.!?])\s+", text):
    words = WORD.findall(sentence)
    out.update(w for w in words[1:] if w[0].isupper() and w not in ("I", "I'm", "I'll"))
  return frozenset(out)


def user_text(record: Record) -> str:
  return " ".join(m.content for m in record.messages if m.role == "user")


class RegexVerifier(OneByOne):
  """1.0 where the answer matches the pattern (`re.search`), else 0.0."""
  name = "verify"

  def __init__(self, pattern: str):
    self.pattern, self._compiled = pattern, re.compile(pattern)

  def judge(self, scenario, response) -> Verdict:
    ok = self._compiled.search(response.text) is not None
    return Verdict(float(ok), ("ok",) if ok else (f"verify: no match for {self.pattern!r}",))

  def judge_batch(self, scenarios, responses):
    same_length(scenarios, responses)
    return [self.judge(s, r) for s, r in zip(scenarios, responses)]

  def expected(self, scenario):
    return None  # a verifier checks answers; it has none of its own


@dataclasses.dataclass
class Writer:
  """The frozen model that writes collisions (greedy, one line)."""
  graphdef: object
  params: dict
  adapter: object
  decode: object
  eos_ids: tuple
  pad_id: int
  max_new_tokens: int = 64

  def __call__(self, messages) -> str:
    from msr_jax.dream.generate import prompt_tokens
    from msr_jax.sample.generation import generate
    prompt = prompt_tokens(self.adapter, messages)
    out = generate(self.graphdef, self.params, [list(prompt)], self.max_new_tokens,
                   eos_ids=self.eos_ids, pad_id=self.pad_id)
    tokens, length = jax.device_get((out.tokens_BxN, out.lengths_B))
    ids = [int(t) for t in tokens[0, :int(length[0])] if int(t) not in self.eos_ids]
    return self.decode(ids).strip()


class ChatDomain:
  """See the module docstring."""
  held_out_cells = frozenset()

  def __init__(self, records: Sequence[Record], writer: Writer, *, instruction: str,
               demonstrations: int, verify: str, prefix: str, heldout_prompts: Sequence[str],
               tokenizer, llm_judge=None, few_shot=FEW_SHOT, max_overlap: float = 0.8):
    self.records = list(records)
    sources = {r.source for r in self.records}
    if len(sources) != 1:
      raise ValueError(f"the memories must come from one source, got {sorted(sources)}")
    self.real_source = sources.pop()
    self.writer, self.instruction, self.prefix = writer, instruction, prefix
    self.demos = self.records[:demonstrations]
    self.verifier = RegexVerifier(verify)
    self.heldout_prompts, self.tokenizer = list(heldout_prompts), tokenizer
    self.llm_judge, self.few_shot, self.max_overlap = llm_judge, few_shot, max_overlap
    self.seen: list[str] = []
    self.dropped = {"empty": 0, "echo": 0, "duplicate": 0, "repetitive": 0}

  # -- memories and collisions ---------------------------------------------------------
  def memory_entities(self, record: Record):
    if not any(m.role == "user" for m in record.messages):
      return None
    found = entities(user_text(record))
    return found or frozenset(sorted(_words(user_text(record)), key=len)[-2:])

  def _prompt(self, memories) -> tuple[Message, ...]:
    shots = "\n\n".join("Memories:\n" + "\n".join(m) + f"\nNew request: {new}"
                        for m, new in self.few_shot)
    body = blend_prompt(memories, INSTRUCTIONS + "\n\nExamples:\n\n" + shots +
                        "\n\nNow the {count} memories:")[0].content
    return (Message("user", body + "\n\nNew request:"),)

  def collide(self, memories, rng, uid, parents=(), split_cell=False):
    lines = self.writer(self._prompt(memories)).strip().splitlines() if memories else []
    text = lines[0].strip().strip('"').strip() if lines else ""
    if text.lower().startswith("new request:"):
      text = text[len("new request:"):].strip()
    if not text:
      self.dropped["empty"] += 1
      return None
    # An echo of a memory, of the instruction, or of a few-shot example (small models
    # copy the example they were shown).
    sources = ([user_text(m) for m in memories] + [INSTRUCTIONS] +
               [new for _, new in self.few_shot] + [m for ms, _ in self.few_shot for m in ms])
    if max(overlap(text, s) for s in sources) >= self.max_overlap:
      self.dropped["echo"] += 1
      return None
    words = [w.lower() for w in WORD.findall(text)]
    if len(words) >= 8 and len(set(words)) < 0.5 * len(words):  # a loop, not a request
      self.dropped["repetitive"] += 1
      return None
    if any(overlap(text, s) >= self.max_overlap for s in self.seen):
      self.dropped["duplicate"] += 1
      return None
    self.seen.append(text)
    return free_text_scenario(text, uid, parents)

  def fast_store(self) -> tuple[Message, ...]:
    messages = [Message("system", self.instruction)]
    for record in self.demos:
      messages += [m for m in record.messages if m.role in ("user", "assistant")]
    return tuple(messages)

  # -- judges ---------------------------------------------------------------------------
  def judge(self, name: str):
    if name == "verify":
      return self.verifier
    if name == "llm":
      if self.llm_judge is None:
        raise ValueError("judge 'llm': set config.judges.llm to a checkpoint")
      return self.llm_judge
    raise ValueError(f"unknown judge {name!r} for the chat domain (verify, llm, self)")

  def reference(self):
    return self.verifier

  def scenario_key(self, scenario: Scenario):
    return " ".join(sorted(_words(scenario.messages[-1].content)))

  def record_key(self, record: Record):
    return " ".join(sorted(_words(user_text(record))))

  def coverage_key(self, scenario):
    return None

  # -- probes ---------------------------------------------------------------------------
  def probe_items(self, seed: int, adapter, sizes: dict | None = None) -> list:
    from msr_jax.dream.generate import prompt_tokens
    prefix = self.tokenizer.encode(self.prefix, add_special_tokens=False)
    items = []
    for name, store in (("fast", self.fast_store()), ("slow", ())):
      for prompt in self.heldout_prompts:
        context = prompt_tokens(adapter, tuple(store) + (Message("user", prompt),))
        tokens = np.asarray(list(context) + list(prefix), np.int32)
        items.append(probes_score.ProbeItem(name, tokens, len(context), len(tokens)))
    retention = real_probes.build(self.tokenizer, pad_id=self.tokenizer.pad_token_id or 0)
    items += [i for i in retention.items if i.probe in ("facts", "context")]
    return items

  def score_probes(self, graphdef, params, items: list, pad_id: int) -> dict:
    _, exact = probes_score.score_items(graphdef, params, items, pad_id=pad_id)
    acc = lambda probe: float(np.mean([e for i, e in zip(items, exact) if i.probe == probe]))
    return {"fast": {"behaviour": acc("fast")}, "slow": {"behaviour": acc("slow")},
            "knowledge": {"facts": acc("facts")}, "context": {"recall": acc("context")}}


def chat_setup(config, graph):
  """(DreamSetup, base params) of config.model.checkpoint and config.memory.paths."""
  from msr_jax.checkpoints import loader
  from msr_jax.data.chat_template import ChatTemplateAdapter
  from msr_jax.data.jsonl import read_records
  from msr_jax.dream.consolidate import DreamSetup
  from msr_jax.train.state import pure_params
  loaded = loader.load(config.model.checkpoint)
  tokenizer = loaded.tokenizer
  if tokenizer is None or not getattr(tokenizer, "chat_template", None):
    raise ValueError(f"config.model.checkpoint={config.model.checkpoint!r}: the chat domain "
                     "needs a tokenizer with a chat template")
  params = pure_params(loaded.params)
  adapter = ChatTemplateAdapter(tokenizer)
  decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True)
  eos = end_of_turn_ids(tokenizer)
  pad = tokenizer.pad_token_id or 0
  records = []
  for path in config.memory.paths:
    records += read_records(path, on_error="raise")[0]
  writer = Writer(loaded.graphdef, params, adapter, decode, eos, pad,
                  int(config.collide.max_new_tokens))
  few_shot = tuple((tuple(f"user: {m}" for m in e["memories"]), e["request"])
                   for e in config.collide.get("examples", ())) or FEW_SHOT
  llm = None
  if config.judges.get("llm"):
    judge_model = loader.load(config.judges.llm)
    yes, no = yes_no_ids(judge_model.tokenizer)
    llm = LLMJudge(judge_model.graphdef, pure_params(judge_model.params),
                   ChatTemplateAdapter(judge_model.tokenizer), yes, no,
                   rubric=config.judges.rubric, pad_id=judge_model.tokenizer.pad_token_id or 0,
                   question="Does the answer follow the rule? Reply yes or no.")
  prompts = [row["prompt"] for row in real_probes.read_set(config.probes.prompts, ("prompt",))]
  domain = ChatDomain(records, writer, instruction=config.fast_store.instruction,
                      demonstrations=int(config.fast_store.demonstrations),
                      verify=config.judges.verify, prefix=config.probes.prefix,
                      heldout_prompts=prompts, tokenizer=tokenizer, llm_judge=llm,
                      few_shot=few_shot, max_overlap=float(config.collide.max_overlap))
  setup = DreamSetup(domain=domain, graphdef=loaded.graphdef, model_config=loaded.config,
                     adapter=adapter, decode=decode, pad_id=pad, eos_ids=eos, graph=graph,
                     real_records=records)
  return setup, params
