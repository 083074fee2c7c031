from __future__ import annotations

import collections

import ml_collections
import pytest

from msr_jax.data.mixture import (MixtureSampler, ReplayBuffer, build_mixture,
                                  group_by_source, interleave)

SOURCES = {"a": [f"a{i}" for i in range(10)], "b": [f"b{i}" for i in range(3)],
           "c": [f"c{i}" for i in range(5)]}


def test_same_seed_same_stream_other_seed_other_stream():
  weights = {"a": 1.0, "b": 2.0, "c": 1.0}
  first = MixtureSampler(SOURCES, weights, seed=3).take(200)
  # Insertion order of the dicts must not matter.
  again = MixtureSampler(dict(reversed(SOURCES.items())), dict(reversed(weights.items())),
                         seed=3).take(200)
  other = MixtureSampler(SOURCES, weights, seed=4).take(200)
  assert first == again and first != other


def test_frequencies_follow_weights_and_counts_match():
  sampler = MixtureSampler(SOURCES, {"a": 1.0, "b": 3.0, "c": 0.0}, seed=0)
  drawn = sampler.take(4000)
  by_source = collections.Counter(x[0] for x in drawn)
  assert sampler.counts == {"a": by_source["a"], "b": by_source["b"], "c": 0}
  assert abs(by_source["b"] / 4000 - 0.75) < 0.03  # binomial sd is 0.007
  # Every pass over a source shows each example once.
  b_draws = [x for x in drawn if x[0] == "b"]
  for start in range(0, len(b_draws) - 3, 3):
    assert sorted(b_draws[start:start + 3]) == SOURCES["b"]


def test_state_round_trip_resumes_the_stream():
  sampler = MixtureSampler(SOURCES, {"a": 1.0, "b": 1.0, "c": 1.0}, seed=1)
  sampler.take(17)
  state = sampler.get_state()
  rest = sampler.take(50)
  resumed = MixtureSampler(SOURCES, {"a": 1.0, "b": 1.0, "c": 1.0}, seed=99)
  resumed.set_state(state)
  assert resumed.take(50) == rest and resumed.counts == sampler.counts


@pytest.mark.parametrize("weights,match", [
    ({"a": 1.0, "b": 1.0}, "without a weight"),
    ({"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}, "do not exist"),
    ({"a": -1.0, "b": 1.0, "c": 1.0}, "finite"),
    ({"a": 0.0, "b": 0.0, "c": 0.0}, "all weights are zero"),
])
def test_bad_weights(weights, match):
  with pytest.raises(ValueError, match=match):
    MixtureSampler(SOURCES, weights, seed=0)


def test_reservoir_is_uniform_over_everything_added():
  hits = collections.Counter()
  for seed in range(300):
    buffer = ReplayBuffer(capacity=5, seed=seed)
    buffer.extend(range(20))
    assert len(buffer) == 5 and buffer.seen == 20
    hits.update(buffer.items)
  # Each of 20 items is kept with probability 1/4: 75 of 300 expected, sd 7.5.
  assert all(45 < hits[i] < 105 for i in range(20)), hits


def test_interleave_emits_exactly_the_ratio_of_old_examples():
  buffer = ReplayBuffer(capacity=100, seed=0)
  buffer.extend(f"old{i}" for i in range(50))
  stream = interleave((f"new{i}" for i in range(300)), buffer, ratio=0.25)
  out, fresh = [], []
  for n, x in enumerate(stream, start=1):
    assert stream.num_old == int(0.25 * n + 1e-9)
    if stream.num_new > len(fresh):
      fresh.append(x)
    out.append(x)
  assert stream.num_new == 300 and stream.num_old == 100 and len(out) == 400
  assert fresh == [f"new{i}" for i in range(300)]  # new ones in order, none lost
  assert buffer.seen == 350  # new examples joined the reservoir
  assert any(x.startswith("new") for x in buffer.items)


def test_interleave_without_adding_replays_only_the_old():
  buffer = ReplayBuffer(capacity=10, seed=0)
  buffer.extend(f"old{i}" for i in range(10))
  out = list(interleave((f"new{i}" for i in range(30)), buffer, ratio=0.5, add_new=False))
  assert sum(x.startswith("old") for x in out) == 30 and buffer.seen == 10


def test_interleave_is_deterministic_and_zero_ratio_is_identity():
  def run(seed):
    buffer = ReplayBuffer(capacity=8, seed=seed)
    return list(interleave(range(100), buffer, ratio=0.4))
  assert run(0) == run(0) and run(0) != run(1)
  assert list(interleave(range(10), ReplayBuffer(4, 0), ratio=0.0)) == list(range(10))
  with pytest.raises(ValueError, match="ratio"):
    interleave(range(3), ReplayBuffer(4, 0), ratio=1.0)


def _config(mixture, weights=None, narrow="b"):
  return ml_collections.ConfigDict({"data": {
      "mixture": mixture, "weights": weights or {"a": 1.0, "b": 1.0, "c": 2.0},
      "narrow_source": narrow, "seed": 7}})


def test_build_mixture_diverse_and_narrow():
  diverse = build_mixture(_config("diverse"), SOURCES)
  assert diverse.names == ["a", "b", "c"] and diverse.probs.tolist() == [0.25, 0.25, 0.5]
  assert diverse.take(30) == MixtureSampler(SOURCES, {"a": 1.0, "b": 1.0, "c": 2.0}, 7).take(30)
  narrow = build_mixture(_config("narrow"), SOURCES)
  assert narrow.names == ["b"] and set(narrow.take(30)) == set(SOURCES["b"])


def test_default_mixtures_fit_any_records():
  """Empty weights: every source, equally; an empty narrow source: the only one."""
  empty = ml_collections.ConfigDict({"data": {"mixture": "diverse", "weights": {},
                                              "narrow_source": "", "seed": 7}})
  diverse = build_mixture(empty, SOURCES)
  assert diverse.names == ["a", "b", "c"] and diverse.probs.tolist() == pytest.approx([1 / 3] * 3)
  assert build_mixture(empty, {"logs": SOURCES["a"]}).names == ["logs"]
  empty.data.mixture = "narrow"
  assert build_mixture(empty, {"logs": SOURCES["a"]}).names == ["logs"]
  with pytest.raises(ValueError, match=r"narrow_source: empty, and the records hold 3 "
                                       r"sources \['a', 'b', 'c'\]"):
    build_mixture(empty, SOURCES)


@pytest.mark.parametrize("config,match", [
    (_config("diverse", {"a": 1.0, "b": 0.0}), ">= 2 sources"),
    (_config("diverse", {"a": 1.0, "z": 1.0}), "no examples: \\['z'\\]"),
    (_config("narrow", narrow="z"), "narrow_source='z'"),
    (_config("wide"), "'diverse' or 'narrow'"),
])
def test_build_mixture_errors(config, match):
  with pytest.raises(ValueError, match=match):
    build_mixture(config, SOURCES)


def test_group_by_source():
  Item = collections.namedtuple("Item", "source n")
  items = [Item("x", 0), Item("y", 1), Item("x", 2)]
  assert group_by_source(items) == {"x": [items[0], items[2]], "y": [items[1]]}
