"""The shipped experiment files: each loads at every scale, names only arms it declares,
and carries controls with known answers beside its criteria (a static check: no run)."""

import pathlib

import pytest

from msr_jax.runner import analysis
from msr_jax.runner.experiment import SCALES, expand, load_experiment, runs_at

FILES = sorted((pathlib.Path(__file__).resolve().parents[2] / "experiments").glob("*.py"))


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_an_experiment_file_loads_and_names_its_own_arms(path, scale):
  exp = load_experiment(path, scale)
  arms = set(exp["arms"])
  prefixes = {a.split("@")[0] for a in arms}
  for c in exp["analysis"].get("criteria", []):
    named = [c["arm"], c.get("baseline")] + list(c.get("baselines", []))
    for arm in filter(None, named):
      assert arm in arms or arm in prefixes, f"{path.name}: {c['name']}: no arm {arm!r}"
    assert c.get("control", "") in ("",) + analysis.CONTROLS
  assert len({r.key for r in expand(exp)}) == len(expand(exp))  # no two arms are one run
  if exp["prediction"].startswith("P") or exp["prediction"] == "baselines":
    criteria = exp["analysis"]["criteria"]
    assert {c.get("control") for c in criteria} >= {"positive", "null"}
    assert sum(bool(c.get("primary")) for c in criteria) <= 1


def test_the_decide_tier_runs_the_predictions_and_leaves_the_rest_to_full():
  from msr_jax.commands.reproduce import experiment_files
  folder = str(FILES[0].parent)
  decide = {pathlib.Path(f).stem for f in experiment_files(folder, scale="decide")}
  assert decide == {"p1_forgetting", "p2_generalisation", "p3_context_frozen", "p4_dreams",
                    "p5_combination"}
  assert len(experiment_files(folder, scale="full")) == len(FILES)
  assert [pathlib.Path(f).stem for f in experiment_files(folder, ["baselines"], "decide")] == [
      "baselines"]


SHARED = {  # one run, by (experiment, arm)
    "the standard arm": [("p2_generalisation", "standard"), ("p3_context_frozen", "cf_relevant"),
                         ("p4_dreams", "real_only"), ("baselines", "standard")],
    "the planted forgetter": [("p1_forgetting", "planted_forgetting"),
                              ("p3_context_frozen", "planted_forgetting"),
                              ("baselines", "planted_forgetting")],
    "the reseeded standard arm": [("p3_context_frozen", "reseeded"), ("p4_dreams", "reseeded"),
                                  ("baselines", "reseeded")],
    "the arm that ignores the note": [("p2_generalisation", "fires_everywhere"),
                                      ("p3_context_frozen", "cf_ignored")],
}


@pytest.mark.parametrize("what", SHARED)
def test_arms_shared_between_experiments_are_one_run(what):
  """Arms that several experiments use are the same configs in each, so the result store
  computes each once (and every experiment reads the same numbers)."""
  keys = {}
  for path in FILES:
    exp = load_experiment(path, "decide")
    for run in expand(exp):
      if run.seed == 0:
        keys[(exp["name"], run.arm)] = run.key
  assert len({keys[pair] for pair in SHARED[what]}) == 1
