import json
import textwrap

from msr_jax.runner.report import build_report
from msr_jax.runner.sweep import run_sweep

ENTRY = textwrap.dedent("""
    import numpy as np

    def entry(config, seed):
      rng = np.random.default_rng(seed)
      base = np.ones(40)
      final = (rng.random(40) > config["loss_rate"]).astype(float)
      return {"scores": {"K": {"base": base.tolist(), "final": final.tolist()},
                         "B": {"base": [0.0] * 10, "final": [config["learn"]] * 10}},
              "during": [{"step": s, "K": 1.0 - config["loss_rate"] * s / 10} for s in range(0, 11, 5)],
              "sharpness": {"lambda_max": config["loss_rate"] * 10 + seed}}
""")

EXPERIMENT = textwrap.dedent("""
    def get_experiment(scale):
      return {
          "name": "toy_forgetting", "prediction": "P1", "entry": "report_entry:entry",
          "base": {"loss_rate": 0.0, "learn": 1.0, "lr": 1e-4},
          "arms": {"gentle": {}, "harsh": {"loss_rate": 0.5, "lr": 1e-3}, "lazy": {"learn": 0.0, "lr": 1e-5}},
          "seeds": [0, 1, 2],
          "analysis": {
              "claim": "gentle updates do not forget",
              "report_metrics": ["forgetting:K", "gain:B"],
              "criteria": [
                  {"name": "gentle forgets < 5 points", "kind": "non_inferiority",
                   "metric": "forgetting:K", "arm": "gentle", "margin": 0.05, "primary": True},
                  {"name": "harsh forgets more", "kind": "superiority", "metric": "forgetting:K",
                   "arm": "harsh", "baseline": "gentle"},
              ],
              "plots": [{"kind": "pareto", "learned": "gain:B", "forgetting": "forgetting:K"},
                        {"kind": "metric_vs_config", "metric": "forgetting:K", "x": "lr", "logx": True},
                        {"kind": "stability", "probe": "K"},
                        {"kind": "scatter_output", "x": "sharpness.lambda_max", "metric": "forgetting:K"},
                        {"kind": "curve", "probes": ["K", "B"], "x": [1, 2]},
                        {"kind": "bars", "metrics": ["gain:B"]},
                        {"kind": "bars", "metrics": ["gain:MISSING"]}],
          },
      }
""")


def _toy_sweep(tmp_path, monkeypatch, scale: str, jobs: int):
  """The toy experiment swept at `scale` into tmp_path/run (returned)."""
  (tmp_path / "report_entry.py").write_text(ENTRY)
  exp = tmp_path / "exp.py"
  exp.write_text(EXPERIMENT)
  monkeypatch.setenv("PYTHONPATH", str(tmp_path))
  run_dir = tmp_path / "run"
  assert run_sweep([str(exp)], run_dir, scale, jobs=jobs, progress=False)["failed"] == 0
  return run_dir


def test_report_end_to_end(tmp_path, monkeypatch):
  run_dir = _toy_sweep(tmp_path, monkeypatch, "decide", jobs=2)
  summary = build_report(run_dir, num_resamples=300)
  item = summary["toy_forgetting"]
  assert item["verdict"] == "supported"
  assert [c["outcome"] for c in item["criteria"]] == ["supported", "supported"]
  report = (run_dir / "report.md").read_text()
  assert "| toy_forgetting | P1 | supported |" in report
  assert "gentle updates do not forget" in report
  # The section opens with what was found, in one sentence.
  section = report.split("## toy_forgetting")[1].splitlines()
  assert section[2].startswith("**Found: supported.** Every criterion holds; gentle forgets")
  assert len(list((run_dir / "plots").glob("*.png"))) == 6
  assert "bars: not drawn" in report  # A missing probe is reported, not a crash.
  assert json.loads((run_dir / "verdicts.json").read_text())["toy_forgetting"]["holm_p"] < 0.05


def test_a_sections_opening_sentence_names_what_decided_it():
  from msr_jax.runner.report import _finding
  criteria = [{"name": "A", "outcome": "supported", "detail": "a"},
              {"name": "B", "outcome": "inconclusive", "detail": "not learned within the cap"}]
  assert _finding("inconclusive", "inconclusive", criteria) == (
      "**Found: inconclusive.** B: not learned within the cap.")
  criteria[1]["outcome"] = "not supported"
  assert _finding("not supported", "not supported", criteria).startswith(
      "**Found: not supported.** B:")
  assert "Holm" in _finding("inconclusive", "supported", criteria)
  assert "no criterion" in _finding("no criterion", "no criterion", [])


def test_a_failed_control_opens_the_section_as_instrument_failed():
  from msr_jax.runner.report import _finding
  criteria = [{"name": "A", "outcome": "supported", "detail": "a", "control": "",
               "expect": ""},
              {"name": "planted forgetting", "outcome": "supported", "detail": "harm 0.00",
               "control": "positive", "expect": "not supported"}]
  text = _finding("instrument failed", "instrument failed", criteria)
  assert text.startswith("**Found: instrument failed.** The positive control planted "
                         "forgetting gave supported, designed to give not supported")
  # As designed, the controls are no criteria of the finding.
  criteria[1]["outcome"] = "not supported"
  assert _finding("supported", "supported", criteria).startswith(
      "**Found: supported.** Every criterion holds; A: a")


def test_smoke_scale_is_a_pipeline_check_without_verdicts(tmp_path, monkeypatch):
  run_dir = _toy_sweep(tmp_path, monkeypatch, "smoke", jobs=1)
  item = build_report(run_dir, num_resamples=100)["toy_forgetting"]
  assert item["verdict"].startswith("no verdict") and item["holm_p"] is None
  report = (run_dir / "report.md").read_text()
  assert "**Smoke scale: a pipeline check, no verdict.**" in report
  # The criteria table still shows each interval's width beside its margin.
  assert "| CI width | margin / bound |" in report and "| 0.05 |" in report


def test_the_dream_table_shows_each_judge_and_what_the_filter_removed():
  from msr_jax.runner.report import _dream_table
  stage = {"scenarios": 10, "acceptance": 0.8, "removed_by_filter": 2, "removed_in_n2": 1,
           "kept": 7, "judges": {"format": {"acceptance": 1.0, "validity": 0.7},
                                 "self": {"acceptance": 0.8, "validity": 0.875}}}
  grouped = {"filtered": [{"output": {"dreams": [stage]}}, {"output": {"dreams": [stage]}}],
             "real_only": [{"output": {}}]}
  lines = _dream_table(grouped)
  assert lines[3] == ("| arm | scenarios | accepted (signal) | removed by the filter | removed in "
                      "held-out N2 cells | kept | format accepts (validity) | self accepts "
                      "(validity) |")
  assert lines[5] == ("| filtered | 10.000 | 0.800 | 2.000 | 1.000 | 7.000 | 1.000 (0.700) | "
                      "0.800 (0.875) |")
  assert len(lines) == 6  # no row for an arm without dreams
  assert _dream_table({"real_only": [{"output": {}}]}) == []


def test_the_stability_plot_draws_gated_runs_that_stop_at_different_steps(tmp_path):
  from msr_jax.runner import plots
  runs = [{"output": {"during": [{"step": s, "context": 1.0 - s / 100} for s in steps]}}
          for steps in ([0, 20, 40], [0, 20], [0, 20, 40, 60])]
  path = tmp_path / "stability.png"
  assert plots.draw("stability", {"arm": runs}, {"probe": "context"}, "t", path) is None
  assert path.stat().st_size > 0
