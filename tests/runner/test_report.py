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


def test_report_end_to_end(tmp_path, monkeypatch):
  (tmp_path / "report_entry.py").write_text(ENTRY)
  exp = tmp_path / "exp.py"
  exp.write_text(EXPERIMENT)
  monkeypatch.setenv("PYTHONPATH", str(tmp_path))
  run_dir = tmp_path / "run"
  assert run_sweep([str(exp)], run_dir, "decide", jobs=2, progress=False)["failed"] == 0
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
