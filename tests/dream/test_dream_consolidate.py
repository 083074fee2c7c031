"""One tiny end-to-end dream cycle (random 2-layer, width-32 model) through `msr dream`."""

from __future__ import annotations

import json
import os

from msr_jax import cli
from msr_jax.data.jsonl import read_records
from msr_jax.dream.consolidate import RetentionProbe, retention

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "dream.py")
CYCLE_FIELDS = {
    "cycle", "mode", "walks", "short_walks", "scenarios", "temperature", "next_temperature",
    "judges", "acceptance", "validity", "answer_accuracy", "finished", "dreams",
    "dream_validity", "novelty", "novelty_dreams", "n2_cells_scenarios", "n2_cells_dreams",
    "n2_cells_covered", "n2_coverage", "train", "probes", "examples"}
PROBE_GROUPS = {"fast": {"r1_note"}, "slow": {"B_train", "N1", "N2", "N3", "spec"},
                "knowledge": {"K1", "K2"},
                "context": {"C1_trained", "C2", "memorization_ratio"}}


def test_one_cycle_runs_and_logs_every_field(tmp_path):
  out = str(tmp_path / "run")
  assert cli.main(["dream", "--config", f"{CONFIG}:smoke", "--out", out,
                   "--config.dream.cycles=1", "--config.dream.mode=oracle"]) == 0
  with open(os.path.join(out, "dream_cycles.jsonl")) as f:
    entries = [json.loads(line) for line in f]
  assert [e["cycle"] for e in entries] == [0, 1]
  base, cycle = entries
  assert set(base) == {"cycle", "probes", "memories"} and base["memories"] == 24
  assert CYCLE_FIELDS <= set(cycle), CYCLE_FIELDS - set(cycle)
  for group, probes in PROBE_GROUPS.items():
    assert set(cycle["probes"][group]) == probes
  assert set(cycle["judges"]) == {"format", "self", "oracle"}
  for report in cycle["judges"].values():
    assert set(report) == {"acceptance", "validity", "accepted"}
  assert cycle["scenarios"] + cycle["short_walks"] == cycle["walks"] == 8
  assert 0 <= cycle["novelty"] <= 1 and 0 <= cycle["n2_coverage"] <= 1
  # Oracle recombinations: every scenario becomes a valid dream, and dreams are trained on.
  assert cycle["dreams"] == cycle["scenarios"] > 0 and cycle["dream_validity"] == 1.0
  train = cycle["train"]
  assert train["steps"] == 2 and train["examples_dream"] > 0 and train["skipped"] == 0
  assert train["examples_real"] + train["examples_dream"] == 2 * 4
  # The trainer's guard probed retention before and after the cycle's steps.
  assert [g["step"] for g in train["guard"]] == [0, 2] and train["rollbacks"] == 0
  # ... measuring drops from the base model's retention too (dream.guard_anchor "base").
  assert all(abs(g["anchor"] - retention(base["probes"])) < 1e-12 for g in train["guard"])
  assert os.path.exists(os.path.join(out, "train", "cycle_1", "metrics.jsonl"))
  dreams, _ = read_records(os.path.join(out, "dreams", "cycle_1.jsonl"))
  assert len(dreams) == cycle["dreams"]
  for record in dreams:
    assert record.source == "dream" and [m.role for m in record.messages] == ["user",
                                                                              "assistant"]
    assert record.meta["stripped_messages"] == 1
    assert record.messages[-1].content == record.meta["oracle_answer"]
  assert os.path.exists(os.path.join(out, "memory.sqlite"))


def test_retention_probe_scores_each_parameter_set_once():
  calls = []
  def score(params):
    calls.append(params["w"])
    return {"knowledge": {"K1": params["w"], "K2": 1.0},
            "context": {"C1_trained": 0.5, "C2": 0.5, "memorization_ratio": 9.0}}
  probe = RetentionProbe(score)
  a, b = {"w": 0.0}, {"w": 1.0}
  assert probe(a) == 0.5 and probe(a) == 0.5 and calls == [0.0]
  assert probe(b) == retention(score(b)) == 0.75 and calls == [0.0, 1.0, 1.0]
  probe.remember(a, probe.summary(b))  # A copy of b's values under another object.
  assert probe(a) == 0.75 and len(calls) == 3


def test_in_process_real_only_arm_keeps_the_base_parameters(tmp_path):
  import jax
  import numpy as np
  from msr_jax.dream.consolidate import run_consolidation
  from msr_jax.world.dream_domain import townworld_setup
  from msr_jax.memory import MemoryGraph
  from msr_jax.runner.config import load_config

  config = load_config(f"{CONFIG}:smoke", ["--config.dream.cycles=1",
                                           "--config.dream.mode=none"])
  with MemoryGraph.open(str(tmp_path / "m.sqlite")) as graph:
    setup, base = townworld_setup(config, graph)
    before = jax.tree_util.tree_map(np.asarray, base)
    cycles = run_consolidation(config, base, setup, run_dir=None, log=lambda _: None)
  assert [c["cycle"] for c in cycles] == [0, 1]
  assert "judges" not in cycles[1] and cycles[1]["train"]["examples_dream"] == 0
  assert cycles[1]["train"]["examples_real"] == 8 and cycles[1]["scenarios"] > 0
  # The trainer donated its own copy; the caller's base parameters are intact.
  jax.tree_util.tree_map(np.testing.assert_array_equal, before,
                         jax.tree_util.tree_map(np.asarray, base))
