"""The Townworld arm end to end on a tiny random base checkpoint."""

import json
import pathlib

import numpy as np
import pytest

from arm_fixtures import SMALL_SIZES, tiny_base
from msr_jax.runner import analysis, arm_probes, townworld_arm
from msr_jax.runner.arms import arm_grid

GRID = arm_grid(pathlib.Path(__file__).resolve().parents[2] / "configs" / "townworld_arms.py",
                "smoke")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
  return tiny_base(str(tmp_path_factory.mktemp("base")))


def _config(base_dir, **changes):
  return GRID.base(**{
      "base_checkpoint": base_dir, "stages": 2, "train.steps": 3, "train.batch_size": 4,
      "data.behaviour_records": 24, "data.replay_records": 24, "eval.every": 2,
      "eval.sizes": SMALL_SIZES, "eval.during_items": 6, "dream.count": 8,
      "dream.mode": "oracle", "memory.self_targets": True, "guard.every": 2,
      "eval.sharpness": True, "stress.bad_batch_fraction": 0.3, **changes})


def test_arm_output_is_complete_and_deterministic(base_dir):
  config = _config(base_dir)
  first = townworld_arm.run(config, 0)
  second = townworld_arm.run(config, 0)
  assert json.dumps(first, sort_keys=True, default=str) == json.dumps(second, sort_keys=True, default=str)
  scores = first["scores"]
  for probe in ("K1", "K2", "C2", "R0", "B_train", "B_train_s2", "N1", "N2", "N3", "spec"):
    assert len(scores[probe]["base"]) == len(scores[probe]["final"]) > 0
  # The composite: novel behaviour x kept knowledge, context and specificity x what the
  # later update learned.
  mean = lambda p, w: float(np.mean(scores[p][w]))
  kept = lambda g, c: min(1.0, first["stages"]["R"][-1][c] / max(first["stages"]["R"][0][c], 1e-9))
  novel = np.mean([mean(n, "final") for n in ("N1", "N2", "N3")])
  spec = min(1.0, mean("spec", "final") / max(mean("spec", "base"), 1e-9))
  assert first["composite"] == pytest.approx(novel * kept("knowledge", 2) * kept("context", 3)
                                             * spec * mean("B_train_s2", "final"))
  # Behaviour items carry their clusters: N2 by cell, N3 by template, N1 by person.
  clusters = first["clusters"]
  assert {"B_train", "B_train_s2", "N1", "N2", "N3", "spec"} <= set(clusters)
  assert all(len(clusters[p]) == len(scores[p]["final"]) for p in clusters)
  assert {c.split(":")[0] for p, kind in (("N1", "person"), ("N2", "cell"), ("N3", "template"))
          for c in clusters[p]} == {"person", "cell", "template"}
  assert first["stages"]["columns"] == ["behaviour", "behaviour_2", "knowledge", "context"]
  assert np.shape(first["stages"]["R"]) == (3, 4)
  assert [d["step"] for d in first["during"]] == [0, 2, 5]  # every 2 steps, across stages
  assert set(first["sharpness"]) == {"quadratic_prediction", "observed_increase",
                                     "directional", "lambda_max"}
  assert first["train"][0]["records"]["dream"] > 0 and "replay" in first["train"][0]["records"]
  # Every metric the experiments use can be read from the output.
  for metric in ("forgetting:K1+K2+C1_*+C2", "score:B_train+B_train_s*", "value:composite",
                 "value:kl_to_base", "value:context_cka", "transfer_ratio:N1+N2+N3/B_train"):
    if metric.startswith("transfer_ratio"):
      continue
    assert np.all(np.isfinite(analysis.metric_items(first, metric)))


def test_narrow_data_has_no_replay_and_bad_config_is_named(base_dir):
  out = townworld_arm.run(_config(base_dir, stages=1, **{
      "data.mixture": "narrow", "dream.mode": "none", "memory.self_targets": False,
      "guard.every": 0, "eval.sharpness": False, "eval.every": 0}), 1)
  assert out["train"][0]["records"] == {"behaviour": 24}
  with pytest.raises(KeyError, match="arm config: 'train.nope': no such field"):
    GRID.base(**{"train.nope": 1})


def test_an_arm_trains_lora_adapters_and_a_regulariser(base_dir):
  """The literature's baselines as arm fields: the arm config's `lora` and `regularizer`
  sections reach the trainer; the adapters train with the base frozen and are merged for
  every probe (the guard's, the curves', the final scores)."""
  import ml_collections
  config = _config(base_dir, stages=1, **{"dream.mode": "none", "memory.self_targets": False,
                                          "eval.sharpness": False})
  cfg = ml_collections.ConfigDict(config)
  cfg.lora = ml_collections.ConfigDict({"rank": 2, "alpha": 4.0})
  cfg.regularizer = ml_collections.ConfigDict({"l2_sp": 0.5})
  trainer = townworld_arm._train_config(cfg, "/tmp/unused", 0, {"behaviour"})
  assert trainer.lora.rank == 2 and trainer.regularizer.l2_sp == 0.5
  out = townworld_arm.run(cfg.to_dict(), 0)
  plain = townworld_arm.run(config, 0)
  assert out["train"][0]["step"] == plain["train"][0]["step"] == 3
  assert len(out["during"]) == len(plain["during"])  # the callbacks saw merged parameters
  assert out["kl_to_base"] != plain["kl_to_base"]  # another model was trained


def test_the_guard_and_the_gate_score_items_disjoint_from_the_scored_ones(base_dir):
  base = arm_probes.load_base(base_dir)
  from msr_jax.runner import arm_data
  rules = arm_data.stage_rules(base.world, 2)
  items = arm_probes.build_items(base, rules, SMALL_SIZES)
  guard, validation = arm_probes.decision_items(base, rules, SMALL_SIZES, items)
  key = lambda i: (i.tokens.tobytes(), i.start, i.end)
  scored = {key(i) for i in items}
  chosen = [i for k in (1, 2) for part in ("fire", "hold") for i in validation[k][part]]
  assert guard and all(validation[k][part] for k in (1, 2) for part in ("fire", "hold"))
  assert not scored & {key(i) for i in guard + chosen}


@pytest.mark.parametrize("learned", [True, False])
def test_an_arm_gated_on_its_validation_split(base_dir, monkeypatch, learned):
  """Known answers, whatever the tiny model learns: a validation split that scores 1 stops
  the stage at its first check (step 0), one that scores 0 runs to the cap and says "not
  learned". The validation items are the only thing the stand-in scores differently."""
  real_items, real_exact = arm_probes.decision_items, arm_probes.exact
  pool = set()

  def items(*args):
    guard, validation = real_items(*args)
    pool.update(i.tokens.tobytes() for v in validation.values() for part in v.values()
                for i in part)
    return guard, validation

  def exact(base, params, scored):
    if scored and all(i.tokens.tobytes() in pool for i in scored):
      return np.full(len(scored), 1.0 if learned else 0.0)
    return real_exact(base, params, scored)

  monkeypatch.setattr(arm_probes, "decision_items", items)
  monkeypatch.setattr(arm_probes, "exact", exact)
  townworld_arm.clear_cache()  # the validation items are made again, by the stand-in
  config = _config(base_dir, stages=1, **{"dream.mode": "none", "memory.self_targets": False,
                                          "eval.sharpness": False, "train.steps": 4,
                                          "gate.every": 2, "gate.target": 0.8,
                                          "gate.validation_items": 8})
  out = townworld_arm.run(config, 0)
  townworld_arm.clear_cache()  # no later test sees the stand-in's items
  summary = out["train"][0]
  assert out["learned"] is learned and summary["gate_reached"] is learned
  if learned:
    assert summary["step"] == summary["gate_step"] == 0
  else:
    assert summary["step"] == 4 and summary["gate_step"] is None
    assert summary["gate_efficacy"] == 0.0


def test_a_later_update_never_labels_an_earlier_behaviours_cells_with_the_base_policy():
  """P1's second update used to draw base-policy (R0) answers in R1's firing cells, which
  un-teaches R1 without the retention metric counting it; with the earlier rules given, no
  record of the later stage falls in their cells. Stage 1 is unchanged."""
  from msr_jax.runner import arm_data
  from msr_jax.world.world import World
  world = World.build(0)
  rules = arm_data.stage_rules(world, 2)
  r1_cells = arm_data.earlier_cells(world, rules[:1])
  cell = lambda r: tuple(r.meta["cell"])
  before = arm_data.behaviour_records(world, rules[1], 7, 400)
  after = arm_data.behaviour_records(world, rules[1], 7, 400, earlier=rules[:1])
  assert sum(cell(r) in r1_cells for r in before) > 0  # the contrary labels of old
  assert not any(cell(r) in r1_cells for r in after)
  assert len(after) == 400 and any(r.meta["rule_fires"] for r in after)
  first = arm_data.behaviour_records(world, rules[0], 7, 50)
  assert [r.messages for r in first] == [r.messages for r in arm_data.behaviour_records(
      world, rules[0], 7, 50, earlier=())]


def test_the_untrained_control_is_the_base_through_the_same_probes(base_dir):
  out = townworld_arm.run(_config(base_dir, stages=1, **{
      "train.steps": 0, "gate.every": 0, "dream.mode": "none", "memory.self_targets": False,
      "guard.every": 0, "eval.sharpness": False}), 0)
  assert out["steps"] == 0 and "learned" not in out
  for probe, s in out["scores"].items():
    assert s["final"] == s["base"] and s["final_logp"] == s["base_logp"], probe
  assert out["kl_to_base"] == pytest.approx(0.0, abs=1e-6)


def test_rotated_splits_and_the_reseed_switch(base_dir):
  """With splits.rotate each seed holds out its own R1 cells and templates (the behaviour
  probes list themselves as seed-dependent); `reseed` changes the training randomness and
  nothing that is scored."""
  from msr_jax.world.world import World
  world = World.build(0)
  held = [sorted(c for c in world.rotated(k).n2_cells if c in world.r1_cells())
          for k in range(6)]
  assert all(len(h) == 2 for h in held)
  assert {c for h in held for c in h} == set(world.r1_cells())  # every cell held out once
  assert {t for k in range(3) for t in world.rotated(2 * k).n3_templates} == set(range(6))
  config = _config(base_dir, stages=1, **{
      "splits.rotate": True, "dream.mode": "none", "memory.self_targets": False,
      "guard.every": 0, "eval.sharpness": False, "gate.every": 0})
  first, other_seed = townworld_arm.run(config, 0), townworld_arm.run(config, 1)
  assert "N2" in first["seed_items"] and "K1" not in first["seed_items"]
  assert set(first["seed_items"]) <= set(first["scores"])
  assert set(first["clusters"]["N2"]) != set(other_seed["clusters"]["N2"])
  reseeded = townworld_arm.run({**config, "reseed": 5}, 0)
  assert reseeded["clusters"] == first["clusters"]
  assert reseeded["scores"]["K1"]["base"] == first["scores"]["K1"]["base"]
  assert reseeded["kl_to_base"] != first["kl_to_base"]
