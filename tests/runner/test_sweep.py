import json
import re
import textwrap

import pytest

from msr_jax.runner import experiment as experiment_lib
from msr_jax.runner.store import ResultStore
from msr_jax.runner.sweep import run_sweep

ENTRY = textwrap.dedent("""
    import os
    CALLS = os.environ.get("TOY_CALLS")

    def entry(config, seed):
      if CALLS:
        with open(CALLS, "a") as f:
          f.write(f"{config['x']},{seed}\\n")
      if config["mode"] == "raise":
        raise RuntimeError("arm exploded")
      if config["mode"] == "die":
        os._exit(3)
      print(f"arm x={config['x']} seed={seed}")
      return {"value": config["x"] * 10 + seed, "pid": os.getpid()}
""")

EXPERIMENT = textwrap.dedent("""
    def get_experiment(scale):
      return {
          "name": "toy", "prediction": "P0", "entry": "toy_entry:entry",
          "base": {"x": 1, "mode": "ok"},
          "arms": {"one": {}, "two": {"x": 2}, "bad": {"mode": "raise"}, "dead": {"mode": "die"}},
          "seeds": [0, 1] if scale == "smoke" else [0, 1, 2, 3, 4],
          "analysis": {"metric": "value"},
      }
""")


@pytest.fixture
def toy(tmp_path, monkeypatch):
  (tmp_path / "toy_entry.py").write_text(ENTRY)
  exp = tmp_path / "toy_exp.py"
  exp.write_text(EXPERIMENT)
  monkeypatch.setenv("PYTHONPATH", str(tmp_path))
  monkeypatch.setenv("TOY_CALLS", str(tmp_path / "calls.txt"))
  monkeypatch.syspath_prepend(str(tmp_path))
  return exp, tmp_path / "run"


def _results(run_dir):
  return {(r["spec"]["arm"], r["spec"]["seed"]): r for r in ResultStore(run_dir).all()}


def test_sweep_records_results_and_errors_and_resumes(toy):
  exp, run_dir = toy
  summary = run_sweep([str(exp)], run_dir, "smoke", jobs=2, progress=False)
  assert summary == {"total": 8, "ran": 8, "failed": 4, "skipped": 0}
  results = _results(run_dir)
  assert results[("two", 1)]["output"]["value"] == 21
  assert results[("bad", 0)]["status"] == "error"
  assert "arm exploded" in results[("bad", 0)]["error"]
  assert "exited with code 3" in results[("dead", 1)]["error"]
  bad = results[("bad", 0)]
  log = (run_dir / "logs" / f"toy.bad.s0.{bad['key']}.log").read_text()
  assert f"run {bad['key']}: error in " in log and "RuntimeError: arm exploded" in log
  # A re-run skips the finished runs and retries only the failed ones.
  calls = (run_dir.parent / "calls.txt")
  calls.write_text("")
  summary = run_sweep([str(exp)], run_dir, "smoke", jobs=2, progress=False)
  assert summary["skipped"] == 4 and summary["ran"] == 4
  assert sorted(calls.read_text().split()) == ["1,0", "1,0", "1,1", "1,1"]


def test_identical_arms_share_one_run(toy):
  exp_path, run_dir = toy
  text = exp_path.read_text().replace('"one": {},', '"one": {}, "same_as_one": {"x": 1},')
  exp_path.write_text(text)
  summary = run_sweep([str(exp_path)], run_dir, "smoke", jobs=2, progress=False)
  assert summary["total"] == 8


def test_keys_depend_on_the_full_config(toy):
  exp_path, _ = toy
  exp = experiment_lib.load_experiment(exp_path, "smoke")
  keys = [r.key for r in experiment_lib.expand(exp)]
  assert len(set(keys)) == len(keys)
  exp["base"]["extra"] = 0  # Any change to the config changes every key.
  assert not set(keys) & {r.key for r in experiment_lib.expand(exp)}


def test_index_runs_one_run_in_process(toy):
  exp, run_dir = toy
  summary = run_sweep([str(exp)], run_dir, "smoke", index=3)
  assert summary["ran"] == 1 and summary["failed"] == 0
  assert list(_results(run_dir)) == [("two", 1)]
  with pytest.raises(IndexError, match="8 runs"):
    run_sweep([str(exp)], run_dir, "smoke", index=8)


def test_bad_override_names_the_arm(tmp_path):
  exp = tmp_path / "e.py"
  exp.write_text("def get_experiment(scale):\n  return {'name': 'e', 'prediction': 'P1', "
                 "'entry': 'x:y', 'base': {'a': 1}, 'arms': {'z': {'b': 2}}, 'seeds': [0]}\n")
  with pytest.raises(ValueError, match="arm 'z': 'b': no such field"):
    experiment_lib.expand(experiment_lib.load_experiment(exp))


def test_spec_files_are_written(toy):
  exp, run_dir = toy
  run_sweep([str(exp)], run_dir, "smoke", index=0)
  specs = list((run_dir / "specs").glob("*.json"))
  assert len(specs) == 8
  assert {json.loads(p.read_text())["arm"] for p in specs} == {"one", "two", "bad", "dead"}


def _ok_only(exp_path):
  exp_path.write_text(exp_path.read_text().replace(
      ', "bad": {"mode": "raise"}, "dead": {"mode": "die"}', ''))


def test_a_worker_serves_many_runs_and_logs_each_apart(toy):
  exp, run_dir = toy
  _ok_only(exp)
  summary = run_sweep([str(exp)], run_dir, "smoke", jobs=1, progress=False)
  assert summary == {"total": 4, "ran": 4, "failed": 0, "skipped": 0}
  results = _results(run_dir)
  assert len({r["output"]["pid"] for r in results.values()}) == 1
  for (arm, seed), r in results.items():
    x = r["spec"]["config"]["x"]
    log = run_dir / "logs" / f"toy.{arm}.s{seed}.{r['key']}.log"
    lines = log.read_text().splitlines()
    assert lines[0] == f"run {r['key']}: toy / {arm} / seed {seed} ({r['spec']['entry']})"
    assert lines[1:-1] == [f"arm x={x} seed={seed}"]  # the run's own output, and no other's
    assert re.fullmatch(rf"run {r['key']}: ok in \d+\.\d s", lines[-1])


def test_runs_per_worker_recycles_workers(toy):
  exp, run_dir = toy
  _ok_only(exp)
  run_sweep([str(exp)], run_dir, "smoke", jobs=2, progress=False, runs_per_worker=1)
  assert len({r["output"]["pid"] for r in _results(run_dir).values()}) == 4


def test_a_dead_worker_is_replaced_and_the_queue_goes_on(toy):
  exp, run_dir = toy
  # One worker, and the dying arm runs first: the runs queued behind it still run.
  exp.write_text(exp.read_text().replace('"arms": {', '"arms": {"dead": {"mode": "die"}, ')
                 .replace(', "bad": {"mode": "raise"}, "dead": {"mode": "die"}', ''))
  summary = run_sweep([str(exp)], run_dir, "smoke", jobs=1, progress=False)
  assert summary == {"total": 6, "ran": 6, "failed": 2, "skipped": 0}
  results = _results(run_dir)
  assert [r["spec"]["arm"] for r in ResultStore(run_dir).all() if r["status"] != "ok"] == [
      "dead", "dead"]
  assert all("exited with code 3" in results[("dead", s)]["error"] for s in (0, 1))
  assert results[("two", 1)]["output"]["value"] == 21


def test_job_array_indices_in_separate_processes_give_the_local_sweeps_report(toy):
  """What `scripts/slurm_sweep.sh` does on a cluster: every index of `msr sweep --index`
  in a process of its own, two at a time, writing into one result store; the report built
  from it equals the report of a local sweep."""
  import os
  import subprocess
  import sys

  from msr_jax.runner.report import build_report
  exp, run_dir = toy
  exp.write_text(exp.read_text().replace(
      '"analysis": {"metric": "value"},',
      '"analysis": {"criteria": [{"kind": "threshold", "metric": "value:value", '
      '"arm": "two", "min": 15.0, "primary": True}]},'))
  _ok_only(exp)
  local = run_dir.parent / "local"
  run_sweep([str(exp)], local, "smoke", jobs=1, progress=False)
  code = "import sys; from msr_jax import cli; sys.exit(cli.main(sys.argv[1:]))"
  def index(i):
    return subprocess.Popen([sys.executable, "-c", code, "sweep", str(exp), "--smoke",
                             "--index", str(i), "--run-dir", str(run_dir)],
                            env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
  for pair in ((0, 1), (2, 3)):
    procs = [index(i) for i in pair]
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
  strip = lambda r: {k: v for k, v in r["output"].items() if k != "pid"}
  assert {k: strip(r) for k, r in _results(run_dir).items()} == {
      k: strip(r) for k, r in _results(local).items()}
  assert build_report(run_dir, 200) == build_report(local, 200)
  normalise = lambda path: re.sub(re.escape(str(path)), "RUN", (path / "report.md").read_text())
  assert normalise(run_dir) == normalise(local)
  # A re-submitted task finds its run done; --count sizes the array.
  assert run_sweep([str(exp)], run_dir, "smoke", index=2)["skipped"] == 1
  from msr_jax.runner.sweep import count_runs
  assert count_runs([str(exp)], "smoke") == 4


def test_a_report_names_the_commit_of_each_experiment_file(tmp_path):
  """The pre-registration kept honest: the commit that last changed an experiment file,
  marked when the file has changed since, or nothing outside git."""
  import subprocess
  repo = tmp_path / "repo"
  repo.mkdir()
  exp = repo / "e.py"
  exp.write_text("# v1\\n")
  assert experiment_lib.file_commit(exp) == ""  # not a checkout
  git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True,
                                  capture_output=True, text=True).stdout.strip()
  git("init", "-q")
  git("-c", "user.name=t", "-c", "user.email=t@t", "add", "e.py")
  git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pre-register")
  head = git("log", "-1", "--format=%h")
  assert experiment_lib.file_commit(exp) == head
  exp.write_text("# v2\\n")
  assert experiment_lib.file_commit(exp) == head + "+changed"
