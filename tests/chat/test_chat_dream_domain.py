"""The chat dream domain (`msr_jax/chat/dream_domain.py`): entities, collisions that drop
echoes, loops and duplicates, the verifier, the teacher-forced probes, and one cycle of
the dream loop on a tiny HF model through `configs/dream_real.py`'s path."""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "train"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "data"))

from msr_jax.chat import dream_domain as chat  # noqa: E402
from msr_jax.data.records import Message, Record  # noqa: E402
from msr_jax.dream.generate import Response  # noqa: E402
from test_train_from_checkpoint import _hf_folder  # noqa: E402


def _record(i, question, answer="Forecast: sunny, around 20C, calm."):
  return Record(f"w{i}", (Message("user", question), Message("assistant", answer)),
                source="weather")


MEMORIES = [_record(0, "Is it going to rain in Toronto tomorrow?"),
            _record(1, "How warm will it be in Madrid today?"),
            _record(2, "Should I take an umbrella in Toronto tonight?")]


class Scripted:
  """A writer that replies from a list (the model's part, fixed for the test)."""

  def __init__(self, replies):
    self.replies, self.prompts = list(replies), []

  def __call__(self, messages):
    self.prompts.append(messages)
    return self.replies.pop(0)


def _domain(replies, tokenizer=None):
  return chat.ChatDomain(MEMORIES, Scripted(replies), instruction="Start with Forecast:",
                         demonstrations=1, verify=r"^Forecast:", prefix="Forecast:",
                         heldout_prompts=["Will it snow in Oslo?"], tokenizer=tokenizer)


def test_entities_are_the_names_and_places_of_the_user_turns():
  assert chat.entities("Is it going to rain in Toronto tomorrow?") == {"Toronto"}
  assert chat.entities("I'm in Paris with Ana. Is it warm?") == {"Paris", "Ana"}
  domain = _domain([])
  assert domain.memory_entities(MEMORIES[0]) == {"Toronto"}
  assert domain.real_source == "weather"


def test_collisions_drop_echoes_loops_and_duplicates():
  new = "I'm flying from Toronto to Madrid tomorrow - will it rain when I land?"
  domain = _domain([
      "Is it going to rain in Toronto tomorrow?",                  # a memory, echoed
      chat.FEW_SHOT[0][1],                                          # the example, copied
      "the rain the rain the rain the rain the rain the rain",      # a loop
      '"' + new + '"\nand more lines',                             # kept (first line)
      new.replace("tomorrow", "tonight"),                           # a duplicate
      ""])
  rng = np.random.default_rng(0)
  out = [domain.collide(MEMORIES[:2], rng, f"s{i}", (1, 2)) for i in range(6)]
  assert [o is None for o in out] == [True, True, True, False, True, True]
  assert out[3].messages == (Message("user", new),) and out[3].parents == (1, 2)
  assert domain.dropped == {"echo": 2, "repetitive": 1, "duplicate": 1, "empty": 1}
  prompt = domain.writer.prompts[0][0].content
  assert "Toronto" in prompt and "Madrid" in prompt and "New request:" in prompt


def test_the_verifier_is_the_reference_without_answers_of_its_own():
  domain = _domain([])
  verifier = domain.reference()
  scenario = chat.free_text_scenario("Will it rain?", "s")
  ok, bad = (Response(t, (), (), True, 0.0) for t in ("Forecast: rain.", "It will rain."))
  assert [v.score for v in verifier.judge_batch([scenario] * 2, [ok, bad])] == [1.0, 0.0]
  assert verifier.expected(scenario) is None and domain.judge("verify") is verifier
  with pytest.raises(ValueError, match="llm"):
    domain.judge("llm")
  store = domain.fast_store()
  assert store[0] == Message("system", "Start with Forecast:") and len(store) == 3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("chat")
  folder = _hf_folder(tmp / "hf", "llama")
  memories = tmp / "memories.jsonl"
  memories.write_text("".join(json.dumps({"id": r.id, "source": r.source, "messages": [
      {"role": m.role, "content": m.content} for m in r.messages]}) + "\n" for r in MEMORIES))
  prompts = tmp / "prompts.jsonl"
  prompts.write_text(json.dumps({"id": "p0", "prompt": "Will it snow in Oslo?"}) + "\n")
  return tmp, folder, memories, prompts


def _one_cycle(tiny, monkeypatch, name: str, overrides=(), check=None) -> dict:
  """configs/dream_real.py:smoke on the tiny model, its writer scripted; the cycle's entry
  (and the base's, as entries[0])."""
  from msr_jax.dream.consolidate import run_consolidation
  from msr_jax.memory import MemoryGraph
  from msr_jax.runner.config import load_config
  tmp, folder, memories, prompts = tiny
  config = load_config("configs/dream_real.py:smoke", [
      f"--config.model.checkpoint={folder}", f"--config.trainer.model.checkpoint={folder}",
      f"--config.memory.paths=('{memories}',)", f"--config.probes.prompts={prompts}",
      "--config.fast_store.demonstrations=1", "--config.trainer.data.max_context_tokens=128",
      "--config.trainer.data.context_buckets=(64,128)", *overrides])
  replies = iter([f"I'm flying from Toronto to Madrid on day {i} - will it rain there?"
                  for i in range(50)])
  monkeypatch.setattr(chat.Writer, "__call__", lambda self, messages: next(replies))
  with MemoryGraph.open(str(tmp / f"memory_{name}.sqlite")) as graph:
    setup, params = chat.chat_setup(config, graph)
    if check is not None:
      check(setup)
    return run_consolidation(config, params, setup, run_dir=str(tmp / f"run_{name}"),
                             log=lambda _: None)


def test_one_cycle_of_the_dream_loop_on_a_tiny_chat_model(tiny, monkeypatch):
  base, cycle = _one_cycle(tiny, monkeypatch, "unfiltered", ["--config.dream.mode=unfiltered"])
  assert set(base["probes"]) == {"fast", "slow", "knowledge", "context"}
  assert cycle["scenarios"] > 0 and set(cycle["judges"]) == {"verify", "self"}
  # The scripted requests differ only in a number: all but the first are duplicates.
  assert cycle["dropped_why"]["duplicate"] == cycle["dropped_collisions"] > 0
  assert cycle["dream_validity"] is None
  dreams = [json.loads(line) for line in
            (tiny[0] / "run_unfiltered" / "dreams" / "cycle_1.jsonl").open()]
  assert dreams and all([m["role"] for m in d["messages"]] == ["user", "assistant"]
                        for d in dreams)  # the fast store stripped
  assert cycle["train"]["steps"] == 2


def test_an_llm_judge_from_another_checkpoint_is_reported_beside_the_verifier(tiny,
                                                                             monkeypatch):
  """`config.judges.llm`: a judge model loaded with msr_jax.load (here another tiny model,
  whose vocabulary spells yes / no as one token) scores every answer, reported separately;
  the verifier stays the training signal."""
  judge = _hf_folder(tiny[0] / "judge", "qwen2", extra_corpus=["yes no"] * 50)
  check = lambda setup: setup.domain.judge("llm").name == "llm" or pytest.fail("no llm judge")
  _, cycle = _one_cycle(tiny, monkeypatch, "llm", [f"--config.judges.llm={judge}",
                                                   "--config.dream.judges=('verify','llm')"],
                        check)
  assert set(cycle["judges"]) == {"verify", "llm"}
  assert 0.0 <= cycle["judges"]["llm"]["acceptance"] <= 1.0
  assert cycle["acceptance"] == cycle["judges"]["verify"]["acceptance"]
