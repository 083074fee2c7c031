"""The real-model probes: the shipped sets, their scores, `msr eval` on any checkpoint, and
the guard's default for a run from a chat model's checkpoint."""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "train"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "data"))

from msr_jax import cli  # noqa: E402
from msr_jax.checkpoints import loader  # noqa: E402
from msr_jax.eval import real_probes  # noqa: E402
from msr_jax.train import metrics_log  # noqa: E402
from msr_jax.train.state import pure_params  # noqa: E402
from test_train_from_checkpoint import _config, _hf_folder  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  folder = _hf_folder(tmp_path_factory.mktemp("hf") / "m", "llama")
  loaded = loader.load(str(folder))
  return folder, loaded


def test_the_shipped_sets_and_their_items(tiny):
  _, loaded = tiny
  probes = real_probes.build(loaded.tokenizer)
  kinds = [item.probe for item in probes.items]
  assert (kinds.count("facts"), kinds.count("context"), kinds.count("text")) == (36, 24, 20)
  assert probes.kl_tokens_BxT.shape[0] == 16
  france = next(i for i in probes.items if i.probe == "facts")  # the first fact
  answer = loaded.tokenizer.decode(france.tokens[france.start:france.end])
  prompt = loaded.tokenizer.decode(france.tokens[:france.start], skip_special_tokens=True)
  assert (prompt, answer) == ("The capital of France is", " Paris")


def test_scores_are_finite_and_the_kl_to_itself_is_zero(tiny):
  _, loaded = tiny
  params = pure_params(loaded.params)
  probes = real_probes.build(loaded.tokenizer)
  summary = real_probes.score(loaded.graphdef, params, probes, base_params=params)
  assert summary["retention"]["kl_to_base"] == pytest.approx(0.0, abs=1e-6)
  assert summary["retention"]["perplexity"] > 1
  assert 0 <= real_probes.retention_score(summary) <= 1


def test_a_bad_probe_file_names_its_line(tmp_path):
  path = tmp_path / "facts.jsonl"
  path.write_text('{"prompt": "a", "answer": "b"}\n{"prompt": "a"}\n')
  with pytest.raises(real_probes.ProbeSetError, match=r"facts.jsonl:2: field 'answer'"):
    real_probes.read_set(path, ("prompt", "answer"))


def test_msr_eval_scores_any_checkpoint(tiny, tmp_path):
  folder, _ = tiny
  out = tmp_path / "eval.json"
  assert cli.main(["eval", "--checkpoint", str(folder), "--base", str(folder),
                   "--out", str(out)]) == 0
  result = json.loads(out.read_text())
  assert set(result["probes"]) == {"retention", "context"}
  assert result["probes"]["retention"]["kl_to_base"] == pytest.approx(0.0, abs=1e-6)
  prompts = tmp_path / "prompts.jsonl"
  prompts.write_text('{"prompt": "may i borrow the ladder ?"}\n{"prompt": "you are kind"}\n')
  assert cli.main(["eval", "--checkpoint", str(folder), "--behaviour", str(prompts),
                   "--judge", ".", "--out", str(out)]) == 0
  behaviour = json.loads(out.read_text())["probes"]["behaviour"]
  assert behaviour["n"] == 2 and len(behaviour["answers"]) == 2
  assert cli.main(["eval", "--checkpoint", str(folder), "--judge", "x"]) == 1


def test_the_guard_probes_retention_for_a_run_from_a_chat_model(tiny, tmp_path):
  from msr_jax.train.loop import train_loop
  folder, loaded = tiny
  config = _config(tmp_path, str(folder), **{"guard.every": 2, "guard.threshold": 10.0})
  train_loop(config)
  guard = [m for m in metrics_log.read(tmp_path / "run" / "metrics.jsonl")
           if m["type"] == "guard"]
  assert [g["step"] for g in guard] == [0, 2]
  probes = real_probes.build(loaded.tokenizer, pad_id=loaded.tokenizer.pad_token_id or 0)
  expected = real_probes.retention_score(real_probes.score(
      loaded.graphdef, pure_params(loaded.params), probes,
      loaded.tokenizer.pad_token_id or 0))
  assert guard[0]["score"] == pytest.approx(expected)  # the base model's retention


@pytest.mark.slow
def test_smollm2_knows_the_capital_of_france():
  """The shipped GGUF answers the first fact (the precondition of "keeps Paris")."""
  loaded = loader.load("smollm2-135m-instruct-q4_1")
  probes = real_probes.build(loaded.tokenizer)
  probes.items = probes.items[:1]
  from msr_jax.eval.probes_score import score_items
  _, exact = score_items(loaded.graphdef, pure_params(loaded.params), probes.items)
  assert exact.tolist() == [True]
  assert np.all(np.isfinite(probes.kl_tokens_BxT))


def test_behaviour_probes_generate_and_judge(tiny):
  from msr_jax.eval import behaviour_probes
  _, loaded = tiny
  judge = behaviour_probes.judge_from_spec(r"regex:^Forecast:")
  assert judge(["", ""], ["Forecast: sunny.", "It will be sunny. Forecast: sunny."]) == [1, 0]
  assert behaviour_probes.judge_from_spec(r"^Fore")(["p"], ["Forecast:"]) == [1.0]
  prompts = ["may i borrow the ladder ?", "thanks , and the umbrella ?", "you are kind"]
  always = behaviour_probes.behaviour_score(loaded.graphdef, pure_params(loaded.params),
                                            loaded.tokenizer, prompts, lambda p, a: [1.0] * len(a),
                                            max_new_tokens=4, batch_size=2)
  assert always["n"] == 3 and always["acc"] == 1.0 and len(always["answers"]) == 3
  never = behaviour_probes.behaviour_score(loaded.graphdef, pure_params(loaded.params),
                                           loaded.tokenizer, prompts, lambda p, a: [0.0] * len(a),
                                           max_new_tokens=4)
  assert never["acc"] == 0.0 and never["answers"] == always["answers"]  # greedy: the same


def test_the_example_config_and_its_files():
  from msr_jax.data.jsonl import read_records
  from msr_jax.runner.config import load_config
  config = load_config("configs/smollm2_forecast.py")
  assert config.model.checkpoint == "smollm2-135m-instruct-q4_1" and config.data.tokenizer == ""
  records, _ = read_records(config.data.paths[0])
  assert len(records) == 48 and all(r.messages[-1].content.startswith("Forecast:")
                                    for r in records)
  heldout = real_probes.read_set("examples/forecast/heldout_prompts.jsonl", ("prompt",))
  words = lambda text: {w.strip("?.,") for w in text.split()}
  trained = set().union(*(words(r.messages[0].content) for r in records))
  held_out_cities = {"Warsaw", "Quito", "Seoul", "Lisbon", "Prague", "Denver"}
  assert not held_out_cities & trained  # held-out prompts name cities never trained on
  assert len(heldout) == 12 and all(words(row["prompt"]) & held_out_cities
                                    for row in heldout)
  for arg in ("full", "apollo_mini", "full_apollo_mini", "lora", "kl", "ewc", "l2sp"):
    load_config(f"configs/smollm2_forecast.py:{arg}")


@pytest.mark.slow
def test_a_few_steps_teach_smollm2_the_example_behaviour_and_keep_paris(tmp_path):
  """The shipped example, shortened: 12 context-frozen AdamW steps on its conversations
  make SmolLM2-135M-Instruct open held-out weather answers with "Forecast:" (the base does
  for none), and the capital of France is still Paris."""
  from msr_jax.eval import behaviour_probes
  from msr_jax.eval.probes_score import score_items
  from msr_jax.runner.config import load_config
  from msr_jax.train.loop import train_loop
  config = load_config("configs/smollm2_forecast.py", [
      "--config.train.steps=12", "--config.guard.every=0", "--config.checkpoint.every=0",
      "--config.tensorboard=False", "--config.progress=False"])
  config.run_dir, config.resume = str(tmp_path / "run"), False
  result = train_loop(config)
  loaded = loader.load(config.model.checkpoint)
  prompts = [r["prompt"] for r in real_probes.read_set(
      "examples/forecast/heldout_prompts.jsonl", ("prompt",))][:6]
  judge = behaviour_probes.regex_judge(r"^Forecast:")
  before = behaviour_probes.behaviour_score(loaded.graphdef, pure_params(loaded.params),
                                            loaded.tokenizer, prompts, judge)
  after = behaviour_probes.behaviour_score(result.graphdef, result.state.params,
                                           loaded.tokenizer, prompts, judge)
  assert before["acc"] == 0.0 and after["acc"] >= 5 / 6, after["answers"]
  france = real_probes.build(loaded.tokenizer).items[:1]
  _, exact = score_items(result.graphdef, result.state.params, france)
  assert exact.tolist() == [True]


def test_the_llm_behaviour_judge_equals_p_yes_of_transformers(tmp_path):
  """`--judge llm:CHECKPOINT`: the score is P(yes) / (P(yes) + P(no)) at the end of the
  rubric prompt, as transformers' PyTorch model of the same checkpoint gives it."""
  import torch
  import transformers
  from msr_jax.dream.judges import yes_no_ids
  from msr_jax.eval import behaviour_probes
  # A judge whose vocabulary spells yes and no as single tokens.
  folder = _hf_folder(tmp_path / "judge", "qwen2", extra_corpus=["yes no"] * 50)
  loaded = loader.load(str(folder))
  rubric = "opens with 'Forecast:'"
  judge = behaviour_probes.judge_from_spec(f"llm:{folder}", rubric)
  prompts, answers = ["weather in oslo ?", "and in rome ?"], ["Forecast: rain.", "no idea"]
  scores = judge(prompts, answers)
  model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
  yes, no = yes_no_ids(loaded.tokenizer)
  for prompt, answer, score in zip(prompts, answers, scores):
    messages = [
        {"role": "system", "content": "You are grading an assistant's answer to a user. "
                                      f"Reply with one word: yes if the answer {rubric}, "
                                      "otherwise no."},
        {"role": "user", "content": f"Conversation:\nuser: {prompt}\n\nAnswer:\n{answer}\n\n"
                                    "Does the answer meet the rule? Reply yes or no."}]
    ids = loaded.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                               tokenize=True, return_dict=False)
    with torch.no_grad():
      logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].double(), -1)
    p_yes, p_no = torch.logsumexp(logp[yes], 0), torch.logsumexp(logp[no], 0)
    assert score == pytest.approx(float(torch.sigmoid(p_yes - p_no)), abs=1e-5)
  with pytest.raises(Exception, match="rubric"):
    behaviour_probes.judge_from_spec(f"llm:{folder}")
