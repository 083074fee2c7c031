"""A run survives a full disk, a torn log, a changed config, a second process, an
oversized decision and an absurd record weight; a config that could not run is refused
before anything is written."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import math
import os
import subprocess
import sys

import pytest

from msr_jax import cli, optim
from msr_jax.data.jsonl import RecordError, write_records
from msr_jax.data.records import Message
from msr_jax.data.segmentation import DecisionTooLongError
from msr_jax.errors import ConfigError, DiskFullError
from msr_jax.runner.config import load_config
from msr_jax.train import loop, metrics_log, run_folder
from msr_jax.train.guard import GuardError
from msr_jax.train.loop import train_loop
from msr_jax.world import behaviour
from msr_jax.world.world import World

SMALL = ["--config.model.hidden_size=32", "--config.model.intermediate_size=64",
         "--config.progress=False", "--config.checkpoint.every=2", "--config.guard.every=3",
         "--config.guard.holdout_examples=2", "--config.guard.batch_size=2",
         "--config.train.steps=6"]


@pytest.fixture(scope="module")
def jsonl_path(tmp_path_factory):
  path = tmp_path_factory.mktemp("data") / "records.jsonl"
  write_records(path, behaviour.training_records(World.build(0), seed=1, count=24))
  return str(path)


def small_config(jsonl_path, *overrides):
  return load_config("configs/train.py:smoke", SMALL + [
      "--config.data.kind=jsonl", f"--config.data.paths=('{jsonl_path}',)", *overrides])


class FixedClock:
  """A `time` module whose perf_counter advances 0.25 s a call: every step lasts as long
  in every run, so metrics.jsonl's wall-clock fields, and its bytes, repeat."""

  def __init__(self):
    self.now = 0.0

  def perf_counter(self) -> float:
    self.now += 0.25
    return self.now


@pytest.fixture(scope="module")
def reference(tmp_path_factory, jsonl_path):
  """metrics.jsonl of an uninterrupted run (on the fixed clock)."""
  run_dir = tmp_path_factory.mktemp("reference")
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(loop, "time", FixedClock())
    train_loop(small_config(jsonl_path), run_dir=str(run_dir))
  return (run_dir / "metrics.jsonl").read_text()


def computed_lines(path) -> list[dict]:
  """The lines of a metrics.jsonl without their wall-clock fields."""
  return [metrics_log.computed(r) for r in metrics_log.read(path)]


def same_run(path, reference: str) -> bool:
  """Whether the metrics.jsonl at `path` is the reference run's, wall-clock aside."""
  expected = [metrics_log.computed(json.loads(line)) for line in reference.splitlines()]
  return computed_lines(path) == expected


class DiskFillsAt:
  """A metrics.jsonl file object that runs out of space after `budget` bytes: the line in
  flight is written in part (as a real full disk leaves it), then ENOSPC."""

  def __init__(self, file, budget: int):
    self.file, self.budget, self.name = file, budget, file.name

  def write(self, data) -> int:
    if len(data) > self.budget:
      self.file.write(data[:self.budget])
      self.budget = 0
      raise OSError(errno.ENOSPC, "No space left on device", self.name)
    self.budget -= len(data)
    return self.file.write(data)

  def fileno(self):
    return self.file.fileno()

  def close(self):
    self.file.close()


def fill_disk_at(monkeypatch, budget: int):
  original = metrics_log.MetricsLog.__init__

  def init(self, path):
    original(self, path)
    self._file = DiskFillsAt(self._file, budget)
  monkeypatch.setattr(metrics_log.MetricsLog, "__init__", init)


def test_full_disk_during_an_append_leaves_a_torn_line_that_resume_drops(
    tmp_path, jsonl_path, reference, monkeypatch, caplog):
  clock = pytest.MonkeyPatch()
  clock.setattr(loop, "time", FixedClock())  # the reference's bytes, line for line
  lines = reference.splitlines(keepends=True)
  train5 = next(i for i, l in enumerate(lines) if '"step": 5' in l and '"train"' in l)
  fill_disk_at(monkeypatch, sum(map(len, lines[:train5])) + len(lines[train5]) // 2)
  with pytest.raises(DiskFullError, match=r"metrics\.jsonl: appending a line: out of disk "
                                          r"space \(No space left on device"):
    train_loop(small_config(jsonl_path), run_dir=str(tmp_path))
  torn = (tmp_path / "metrics.jsonl").read_text()
  assert not torn.endswith("\n") and torn == "".join(lines[:train5]) + lines[train5][:len(
      lines[train5]) // 2]
  monkeypatch.undo()  # space is free again
  with caplog.at_level(logging.WARNING, logger="msr_jax"):
    train_loop(small_config(jsonl_path), run_dir=str(tmp_path))
  clock.undo()
  assert same_run(tmp_path / "metrics.jsonl", reference)
  assert any("dropped a torn last line" in r.getMessage() for r in caplog.records)


def test_the_cli_reports_a_full_disk_in_one_line(tmp_path, jsonl_path, monkeypatch, capsys):
  fill_disk_at(monkeypatch, 500)
  code = cli.main(["train", "--config", "configs/train.py:smoke", "--run-dir", str(tmp_path),
                   *SMALL, "--config.data.kind=jsonl", f"--config.data.paths=('{jsonl_path}',)"])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 1 and len(err) == 1, err
  assert err[0].startswith("msr train: ") and "out of disk space" in err[0]
  assert "run the same command again" in err[0]


def test_a_damaged_line_inside_the_log_is_an_error_naming_file_and_line(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1, "type": "train"}\n{"step": 2, "ty\n{"step": 3}\n')
  with pytest.raises(metrics_log.MetricsLogError, match=r"metrics\.jsonl:2: not a JSON line"):
    metrics_log.truncate_after(path, 1)
  assert path.read_text().count("\n") == 3  # left as it was
  path.write_text('{"step": 1}\n{"type": "train"}\n')
  with pytest.raises(metrics_log.MetricsLogError, match=r"metrics\.jsonl:2: field 'step'"):
    metrics_log.read(path)
  path.write_text('{"step": 1}\n{"step": 2}')  # torn just before its newline: whole
  metrics_log.truncate_after(path, 5)
  assert path.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_resume_refuses_a_config_that_changes_the_run(tmp_path, jsonl_path):
  train_loop(small_config(jsonl_path), run_dir=str(tmp_path), max_steps=4)
  for change, field in (("--config.optim.learning_rate=0.01", "optim.learning_rate"),
                        ("--config.train.batch_size=3", "train.batch_size"),
                        ("--config.seed=1", "seed")):
    with pytest.raises(run_folder.RunFolderError,
                       match=rf"resuming at step 4 with a config that changes the run "
                             rf"\({field}: "):
      train_loop(small_config(jsonl_path, change), run_dir=str(tmp_path))
  assert [r["step"] for r in metrics_log.read(tmp_path / "metrics.jsonl")][-1] == 4
  # How the run is watched and kept is not the run: these resume.
  train_loop(small_config(jsonl_path, "--config.checkpoint.keep=5"), run_dir=str(tmp_path),
             max_steps=5)


def test_a_fresh_run_refuses_a_folder_with_an_earlier_runs_checkpoints(tmp_path, jsonl_path):
  train_loop(small_config(jsonl_path), run_dir=str(tmp_path), max_steps=4)
  with pytest.raises(run_folder.RunFolderError, match=r"holds the checkpoints of an earlier "
                                                       r"run \(steps \[2, 4\]\)"):
    train_loop(small_config(jsonl_path, "--config.resume=False"), run_dir=str(tmp_path))
  assert [r["step"] for r in metrics_log.read(tmp_path / "metrics.jsonl")][-1] == 4  # kept


def test_an_allowed_change_takes_effect_and_is_recorded(tmp_path, jsonl_path):
  train_loop(small_config(jsonl_path), run_dir=str(tmp_path), max_steps=4)
  config = small_config(jsonl_path, "--config.optim.learning_rate=0.01",
                        "--config.allow_config_change=True")
  result = train_loop(config, run_dir=str(tmp_path))
  assert float(optim.get_learning_rate(result.state.opt_state)) == pytest.approx(0.01)
  changes = [json.loads(l) for l in (tmp_path / run_folder.CHANGES_FILE).read_text().splitlines()]
  assert changes == [{"field": "optim.learning_rate", "new": 0.01, "step": 4, "stored": 0.001}]
  stored = json.loads((tmp_path / run_folder.CONFIG_FILE).read_text())
  assert stored["optim.learning_rate"] == 0.01


def test_an_allowed_change_survives_a_rollback(tmp_path, jsonl_path):
  """The guard's good copy gets the new learning rate too: rolling back to it must not
  bring the stored one back (only the guard's halving applies)."""
  train_loop(small_config(jsonl_path), run_dir=str(tmp_path), max_steps=4,
             probe_fn=lambda params: 1.0)
  config = small_config(jsonl_path, "--config.optim.learning_rate=0.01",
                        "--config.allow_config_change=True")
  result = train_loop(config, run_dir=str(tmp_path), probe_fn=lambda params: 0.0)
  assert result.summary["num_rollbacks"] == 1
  assert float(optim.get_learning_rate(result.state.opt_state)) == pytest.approx(0.005)


def test_a_refused_change_writes_nothing(tmp_path, jsonl_path):
  train_loop(small_config(jsonl_path), run_dir=str(tmp_path), max_steps=4)
  before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
  with pytest.raises(run_folder.RunFolderError):
    train_loop(small_config(jsonl_path, "--config.seed=3"), run_dir=str(tmp_path))
  assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_a_locked_run_folder_is_refused_and_a_stale_lock_taken_over(tmp_path, jsonl_path,
                                                                     caplog):
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys; from msr_jax.train.run_folder import RunLock; "
       f"lock = RunLock({str(tmp_path)!r}).__enter__(); print('locked', flush=True); "
       "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(run_folder.RunFolderError,
                       match=rf"in use by pid {holder.pid} on .*\.lock"):
      train_loop(small_config(jsonl_path), run_dir=str(tmp_path))
    assert not (tmp_path / "metrics.jsonl").exists()
  finally:
    holder.kill()  # dies holding it: the kernel frees the lock, the file stays filled
    holder.wait()
  assert str(holder.pid) in (tmp_path / ".lock").read_text()
  with caplog.at_level(logging.WARNING, logger="msr_jax"):
    result = train_loop(small_config(jsonl_path), run_dir=str(tmp_path), max_steps=2)
  assert result.summary["step"] == 2
  assert any(f"stale lock of pid {holder.pid}" in r.getMessage() for r in caplog.records)
  assert (tmp_path / ".lock").read_text() == ""  # a clean end empties it


def long_turn_records(tmp_path, repeat: int):
  """Seven Townworld records; the fourth one's answer is said `repeat` times over."""
  records = list(behaviour.training_records(World.build(0), seed=1, count=7))
  messages = list(records[3].messages)
  last = max(i for i, m in enumerate(messages) if m.role == "assistant")
  messages[last] = Message("assistant", " ".join([messages[last].content] * repeat))
  records[3] = dataclasses.replace(records[3], id="long-one", messages=tuple(messages),
                                   decisions=None)
  path = tmp_path / "long.jsonl"
  write_records(path, records)
  return str(path)


def test_an_oversized_decision_is_handled_at_load_time_as_the_config_says(tmp_path):
  path = long_turn_records(tmp_path, repeat=8)  # the smoke config's largest bucket is 16
  args = ["--config.guard.every=0", "--config.checkpoint.every=0"]
  with pytest.raises(DecisionTooLongError, match=r"long\.jsonl:4: record 'long-one', "
                                                 r"messages\[\d+\]: a decision of \d+ tokens"):
    train_loop(small_config(path, *args), run_dir=str(tmp_path / "raise"))
  assert not (tmp_path / "raise" / "metrics.jsonl").exists()  # nothing ran
  for policy in ("skip", "cut"):
    result = train_loop(small_config(path, *args, f"--config.data.long_decisions={policy}"),
                        run_dir=str(tmp_path / policy))
    assert result.summary["step"] == 6
  # on_error=skip also skips it (the policy follows on_error unless it is set).
  result = train_loop(small_config(path, *args, "--config.data.on_error=skip"),
                      run_dir=str(tmp_path / "on_error"))
  assert result.summary["step"] == 6


def test_an_absurd_weight_is_refused_and_a_non_finite_guard_baseline_is_an_error(
    tmp_path, jsonl_path):
  line = json.dumps({"id": "w", "source": "townworld", "weight": 1e300, "messages": [
      {"role": "user", "content": "a"}, {"role": "assistant", "content": "lend"}]})
  path = tmp_path / "weights.jsonl"
  path.write_text(line + "\n")
  with pytest.raises(RecordError, match=r"weights\.jsonl:1: weight: must be finite and in "
                                        r"\[0, 1e\+06\]"):
    train_loop(small_config(str(path)), run_dir=str(tmp_path / "w"))
  with pytest.raises(GuardError, match="score at step 0.*nan"):
    train_loop(small_config(jsonl_path), run_dir=str(tmp_path / "g"),
               probe_fn=lambda params: math.nan)


@pytest.mark.parametrize("override,message", [
    ("--config.train.batch_size=0", r"config\.train\.batch_size: must be an integer >= 1, got 0"),
    ("--config.train.steps=0", r"config\.train\.steps: must be an integer >= 1, got 0"),
    ("--config.train.steps=-3", r"config\.train\.steps: must be an integer >= 1, got -3"),
    ("--config.checkpoint.every=-1", r"config\.checkpoint\.every: must be an integer >= 0"),
    ("--config.data.max_context_tokens=200", r"config\.data\.max_context_tokens=200: a context"),
    ("--config.data.decision_buckets=(16, 8)", r"config\.data\.decision_buckets: must be a "
                                                r"non-empty ascending list"),
])
def test_a_config_that_cannot_run_is_refused_before_anything_is_written(
    tmp_path, jsonl_path, override, message):
  with pytest.raises(ConfigError, match=message):
    train_loop(small_config(jsonl_path, override), run_dir=str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_a_run_that_can_never_resume_says_so(tmp_path, jsonl_path, caplog):
  with caplog.at_level(logging.WARNING, logger="msr_jax"):
    train_loop(small_config(jsonl_path, "--config.checkpoint.every=0"), run_dir=str(tmp_path),
               max_steps=1)
  assert any("checkpoint.every=0" in r.getMessage() and "cannot be resumed" in r.getMessage()
             for r in caplog.records)


def test_rewritten_logs_and_stored_configs_keep_ordinary_permissions(tmp_path, jsonl_path):
  old = os.umask(0o022)
  try:
    train_loop(small_config(jsonl_path), run_dir=str(tmp_path), max_steps=3)
    train_loop(small_config(jsonl_path), run_dir=str(tmp_path), max_steps=4)  # truncates
  finally:
    os.umask(old)
  for name in ("metrics.jsonl", run_folder.CONFIG_FILE):
    assert os.stat(tmp_path / name).st_mode & 0o777 == 0o644, name


@pytest.fixture
def small_disk(tmp_path):
  """A 32 MiB file system of its own (tmpfs), so that filling it up affects nothing else."""
  if os.geteuid() != 0:
    pytest.skip("mounting a small file system needs root")
  mount = tmp_path / "disk"
  mount.mkdir()
  done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
                        capture_output=True, text=True)
  if done.returncode:
    pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
  yield mount
  subprocess.run(["umount", str(mount)], check=True)


def test_a_disk_that_fills_during_a_checkpoint_then_frees_resumes_to_the_same_metrics(
    small_disk, jsonl_path, reference):
  """The real thing: `msr train` in its own process on a nearly full file system. The
  first checkpoint cannot be written; the command says so in one line; once space is
  freed the same command resumes and writes exactly the uninterrupted run's log."""
  stat = os.statvfs(small_disk)
  filler = small_disk / "filler"
  filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 64 * 1024))  # 64 KiB left
  command = [sys.executable, "-m", "msr_jax.cli", "train", "--config", "configs/train.py:smoke",
             "--run-dir", str(small_disk / "run"), *SMALL, "--config.data.kind=jsonl",
             f"--config.data.paths=('{jsonl_path}',)",
             "--config.tensorboard=False"]
  full = subprocess.run(command, capture_output=True, text=True, timeout=300)
  err = full.stderr.strip().splitlines()
  assert full.returncode == 1 and len(err) == 1, full.stderr[-3000:]
  assert err[0].startswith("msr train: ") and "saving the checkpoint of step 2: out of disk " \
      "space (No space left on device" in err[0]
  filler.unlink()
  freed = subprocess.run(command, capture_output=True, text=True, timeout=300)
  assert freed.returncode == 0, freed.stderr[-3000:]
  assert same_run(small_disk / "run" / "metrics.jsonl", reference)
