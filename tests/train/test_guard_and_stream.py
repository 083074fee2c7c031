"""Host-side pieces of the loop: the guard's decisions and the batch stream's position."""

from __future__ import annotations

import math

import numpy as np
import pytest

from msr_jax.runner.config import load_config
from msr_jax.train import setup
from msr_jax.train.data_stream import BatchStream
from msr_jax.train.guard import QualityGuard


def test_guard_decisions_and_state_roundtrip():
  guard = QualityGuard(every=2, threshold=0.1, action="halve_lr", max_rollbacks=2)
  assert guard.due(4) and not guard.due(3)
  assert guard.observe(0, 1.0)["event"] == "baseline"
  assert guard.observe(2, 0.95)["event"] == "ok"       # a drop within the threshold
  assert guard.observe(4, 1.2)["event"] == "best"
  event = guard.observe(6, math.nan)                    # a non-finite score is a drop
  assert event["event"] == "rollback" and event["lr_factor"] == 0.5 and not event["stop"]
  assert event["rollback_to_step"] == 4 and event["best_score"] == 1.2
  assert event["non_finite"] and event["drop"] == math.inf
  copy = QualityGuard(every=2, threshold=0.1, action="halve_lr", max_rollbacks=2)
  copy.set_state(guard.get_state())
  for g in (guard, copy):  # the second rollback is the last one max_rollbacks allows: stop
    event = g.observe(8, 0.0)
    assert event["event"] == "rollback" and event["stop"] and g.state.stopped
    assert g.state.lr_factor == 0.5


def test_guard_rolls_back_at_most_max_rollbacks_times():
  for limit in (0, 1, 3):
    guard = QualityGuard(every=1, threshold=0.1, max_rollbacks=limit)
    guard.observe(0, 1.0)
    rollbacks = 0
    for step in range(1, 10):
      if guard.state.stopped:
        break
      rollbacks += guard.observe(step, 0.0)["event"] == "rollback"
    assert rollbacks == max(limit, 1) and guard.state.num_rollbacks == max(limit, 1)
    assert guard.state.stopped


def test_a_non_finite_baseline_is_an_error_not_a_rollback():
  from msr_jax.train.guard import GuardError
  for score in (math.nan, math.inf, -math.inf):
    with pytest.raises(GuardError, match="baseline.*not finite|nothing to guard"):
      QualityGuard(every=2, threshold=0.1).observe(0, score)


def test_anchored_guard_catches_a_decline_spread_over_runs():
  """Retention over four dream cycles (each its own trainer run, start -> end), as a run of
  `msr dream` measured it: no cycle drops by more than 0.05 from its own best, so guards
  without an anchor never act; anchored to the base model's 0.946 the guard rolls back in
  the third cycle, and a run that starts too far below the anchor stops at once."""
  cycles = [(0.946, 0.948), (0.948, 0.925), (0.925, 0.893), (0.893, 0.859)]

  def events(anchor):
    out = []
    for start, end in cycles:
      guard = QualityGuard(every=30, threshold=0.05, anchor=anchor)
      out.append((guard.observe(0, start)["event"], guard.observe(30, end)["event"]))
    return out

  assert events(None) == [("baseline", "best"), ("baseline", "ok"), ("baseline", "ok"),
                          ("baseline", "ok")]
  anchored = events(0.946)
  assert anchored[:2] == [("baseline", "best"), ("baseline", "ok")]
  assert anchored[2] == ("baseline", "rollback")           # 0.946 - 0.893 > 0.05
  assert anchored[3][0] == "below_anchor"                  # 0.946 - 0.893 at the start
  guard = QualityGuard(every=30, threshold=0.05, anchor=0.946)
  event = guard.observe(0, 0.893)
  assert event["stop"] and guard.state.stopped and event["drop"] == pytest.approx(0.053)
  guard = QualityGuard(every=30, threshold=0.05, anchor=0.9)  # the run's own best counts
  guard.observe(0, 0.99)
  assert guard.observe(30, 0.93)["event"] == "rollback"


def test_guard_rejects_bad_settings():
  with pytest.raises(ValueError, match="guard.action"):
    QualityGuard(every=1, threshold=0.1, action="panic")
  with pytest.raises(ValueError, match="guard.threshold"):
    QualityGuard(every=1, threshold=-1.0)
  with pytest.raises(ValueError, match="guard.anchor"):
    QualityGuard(every=1, threshold=0.1, anchor=math.nan)


@pytest.mark.parametrize("replay_ratio", [0.0, 0.3])
def test_batch_stream_resumes_exactly(replay_ratio):
  config = load_config("configs/train.py:smoke", ["--config.data.townworld.count=16"])
  config.data.replay_ratio = replay_ratio
  adapter, _, pad_id = setup.make_adapter("msr_jax.world.tokenizer:training_adapter")
  sources = setup.load_sources(config, adapter)
  stream = BatchStream(config, sources, batch_size=2, micro_batches=2, pad_id=pad_id)
  for _ in range(3):
    stream.next_batch()
  state = stream.get_state()
  expected = [stream.next_batch() for _ in range(3)]
  resumed = BatchStream(config, sources, batch_size=2, micro_batches=2, pad_id=pad_id)
  resumed.set_state(state)
  for a, b in zip(expected, [resumed.next_batch() for _ in range(3)]):
    assert a.context_BxC.shape[:2] == (2, 2)  # micro-batch axis, then rows
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x, y)


def test_config_entry_points_name_the_file_of_a_missing_function():
  from msr_jax.errors import ConfigError
  with pytest.raises(ConfigError, match=r"config\.data\.tokenizer: cannot load "
                                        r"'msr_jax\.world\.tokenizer:no_such'"):
    setup.make_adapter("msr_jax.world.tokenizer:no_such")
  with pytest.raises(ConfigError, match=r"config\.data\.tokenizer: 'townworld' is neither"):
    setup.make_adapter("townworld")
