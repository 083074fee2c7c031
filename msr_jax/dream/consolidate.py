"""Consolidation: cycles of walk -> dream -> judge -> train, logged per cycle.

`run_consolidation(config, base_params, setup)` runs `config.dream.cycles` cycles in the
setup's domain (`dream/domain.py`; Townworld's is `msr_jax.world.dream_domain`) and
returns one dict per cycle (entry 0 is the base model's probes). A cycle:

1. walk    `sample_walks` over the memory graph (real decision episodes, optionally more
           experiences), seeded by (seed, cycle);
2. dream   a collision per walk (`collide.collide_walks`), answered by the current model
           with the domain's fast store (Townworld: R1's rule note) in context at the
           adaptive temperature;
3. judge   every judge in `config.dream.judges` scores every answer; the one named
           `config.dream.judge` is the training signal; the temperature follows its
           failure rate;
4. filter  `filter.dream_records` under `config.dream.mode` (filtered | unfiltered |
           oracle | none) turns answers into records without the rule note;
5. train   `config.train.steps_per_cycle` context-frozen steps on real + dream examples;
6. probe   fast / slow behaviour, knowledge and context probes. The trainer's quality
           guard probes the retention score (mean knowledge and context accuracy) at the
           start and every `config.trainer.guard.every` steps of a cycle, and rolls the
           cycle back (halving the learning rate, or stopping the run) when it drops by
           more than its threshold. With `config.dream.guard_anchor = "base"` the drop
           is measured from the base model's score as well as the cycle's best, so a
           decline spread over cycles is caught; "cycle" measures within each cycle only.

Each cycle's dict is appended to `<run_dir>/dream_cycles.jsonl` (the file is rewritten
atomically), its dream records go to `<run_dir>/dreams/cycle_<n>.jsonl` and its training
run (metrics.jsonl, checkpoints) to `<run_dir>/train/cycle_<n>`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from msr_jax import atomic
from msr_jax.data.jsonl import write_records
from msr_jax.data.records import Record
from msr_jax.dream import collide, cycle_metrics, filter as dream_filter, judges, training
from msr_jax.dream.domain import DreamDomain
from msr_jax.dream.generate import AdaptiveTemperature, answer_scenarios
from msr_jax.memory import Experience, MemoryGraph, consolidate as memory_consolidate

LOG_FILE = "dream_cycles.jsonl"
# What the trainer's guard measures a cycle's drops from: "base" also from the base
# model's retention score (a decline spread over cycles is caught), "cycle" only from the
# cycle's own start and best.
GUARD_ANCHORS = ("base", "cycle")


@dataclasses.dataclass
class DreamSetup:
  """What a run needs besides the config and the starting parameters."""
  domain: DreamDomain                    # the world the loop dreams in (dream/domain.py)
  graphdef: object
  model_config: object
  adapter: object                        # data.TokenizerAdapter (the plain template)
  decode: Callable[[list[int]], str]
  pad_id: int
  eos_ids: tuple[int, ...]
  graph: MemoryGraph
  real_records: list[Record]


def fill_memory(graph: MemoryGraph, records: Sequence[Record], domain: DreamDomain) -> int:
  """Consolidates the domain's memories among `records` into an empty graph, with the
  domain's entities (a record that is no memory is an error naming it)."""
  experiences = []
  for i, record in enumerate(records):
    entities = domain.memory_entities(record)
    if entities is None:
      raise ValueError(f"record {record.id!r}: not a memory of the dream domain")
    experiences.append(Experience(record, entities, step=i))
  return len(memory_consolidate(graph, experiences))


def make_judges(names: Sequence[str], setup: DreamSetup, params, fast_store,
                self_threshold: float) -> dict:
  """The generic self-consistency judge ("self") and the domain's judges by name."""
  out = {}
  for name in names:
    if name == "self":
      out[name] = judges.SelfConsistencyJudge(setup.graphdef, params, setup.adapter,
                                              fast_store, self_threshold, setup.pad_id)
    else:
      out[name] = setup.domain.judge(name)
  return out


def _write_log(path: str, entries: list[dict]) -> None:
  atomic.write_text(path, "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))


def retention(probes: dict) -> float:
  """The guard's score: mean accuracy over the knowledge and context probes."""
  values = [v for group in ("knowledge", "context") for k, v in probes[group].items()
            if k != "memorization_ratio"]
  return float(np.mean(values)) if values else 0.0


class RetentionProbe:
  """The trainer guard's `probe_fn` (params -> retention score). It keeps the full probe
  summary of the last parameters it scored, so a cycle's closing probes are not scored
  twice (once for the guard, once for the log)."""

  def __init__(self, score: Callable[[dict], dict]):
    self._score, self._params, self.last = score, None, None

  def summary(self, params) -> dict:
    if params is not self._params:
      self.last, self._params = self._score(params), params
    return self.last

  def remember(self, params, summary: dict) -> None:
    self._params, self.last = params, summary

  def __call__(self, params) -> float:
    return retention(self.summary(params))


def _cell(domain: DreamDomain, scenario) -> dict:
  """{"cell": [...]}: the scenario's coverage cell, where it has one."""
  cell = domain.coverage_key(scenario)
  return {} if cell is None else {"cell": list(cell)}


def dream_cycle(config, setup: DreamSetup, params, cycle: int, temperature: float,
                real_keys: frozenset, key) -> tuple[list[Record], dict]:
  """Steps 1-4 of a cycle: (dream records to train on, the cycle's dream statistics)."""
  d = config.dream
  rng = np.random.default_rng([int(config.seed), cycle])
  walks = setup.graph.sample_walks(int(d.walks_per_cycle), int(d.walk_length), seed=rng,
                                   restart_prob=float(d.restart_prob))
  domain = setup.domain
  scenarios, cstats = collide.collide_walks(setup.graph, walks, rng, f"c{cycle}", domain,
                                            split_cell=bool(d.split_cell))
  stats = {"walks": cstats.walks, "short_walks": cstats.short_walks,
           "dropped_collisions": cstats.dropped,
           # Cumulative reasons, where the domain counts them (the chat domain does).
           **({"dropped_why": dict(domain.dropped)} if hasattr(domain, "dropped") else {}),
           "scenarios": len(scenarios), "temperature": temperature,
           "novelty": cycle_metrics.novelty(scenarios, real_keys, domain),
           "n2_cells_scenarios": cycle_metrics.n2_cells(
               map(domain.coverage_key, scenarios), domain.held_out_cells)}
  if not scenarios or d.mode == "none":
    return [], stats
  records, answered = answer_and_filter(config, setup, params, scenarios, temperature,
                                        real_keys, key)
  return records, stats | answered


def judge_signal(names: Sequence[str], verdicts: dict, thresholds: dict) -> list[float]:
  """The training signal of `config.dream.judge`: one judge's score, or for "a+b" 1 where
  every named judge accepts (its score at or above its threshold) and 0 elsewhere."""
  count = len(next(iter(verdicts.values())))
  if len(names) == 1:
    return [v.score for v in verdicts[names[0]]]
  return [float(all(verdicts[n][i].score >= thresholds[n] for n in names))
          for i in range(count)]


def answer_and_filter(config, setup: DreamSetup, params, scenarios, temperature: float,
                      real_keys: frozenset, key) -> tuple[list[Record], dict]:
  """Steps 2-4 on given scenarios (collisions, or real situations for a control that
  distils the fast store without dreaming): answer with the fast store in context, judge
  with every judge, keep under `config.dream.mode`. (records, their statistics)."""
  d = config.dream
  domain = setup.domain
  fast_store = domain.fast_store()
  oracle = domain.reference()
  responses = answer_scenarios(
      setup.graphdef, params, scenarios, adapter=setup.adapter, decode=setup.decode,
      fast_store=fast_store, temperature=temperature, key=key, eos_ids=setup.eos_ids,
      max_new_tokens=int(d.max_new_tokens), batch_size=int(d.generate_batch_size),
      pad_id=setup.pad_id)
  signal_names = str(d.judge).split("+")
  names = list(dict.fromkeys(list(d.judges) + signal_names))
  judge_objs = make_judges(names, setup, params, fast_store, float(d.self_threshold))
  verdicts = {n: j.judge_batch(scenarios, responses) for n, j in judge_objs.items()}
  thresholds = {n: float(d.self_threshold) if n == "self" else float(d.threshold)
                for n in names}
  oracle_ok = [v.score == 1.0 for v in oracle.judge_batch(scenarios, responses)]
  signal = judge_signal(signal_names, verdicts, thresholds)
  signal_threshold = thresholds[signal_names[0]] if len(signal_names) == 1 else 0.5
  # Scores are the model's answer's; `oracle_answer` checks the record's own answer
  # (in oracle mode the record holds the oracle's answer, not the model's).
  meta = [{**_cell(domain, s), "judges": {n: verdicts[n][i].score for n in names},
           "novel": collide.is_novel(s, real_keys, domain),
           "oracle_answer": oracle.expected(s)}
          for i, s in enumerate(scenarios)]
  records = dream_filter.dream_records(
      d.mode, scenarios, [r.text for r in responses], scores=signal,
      threshold=signal_threshold, top_fraction=d.get("top_fraction"),
      oracle=oracle.expected, fast_store=fast_store, meta=meta)
  kept = [r.meta for r in records]
  report = cycle_metrics.judge_report(verdicts, thresholds, oracle_ok)
  accepted = np.asarray(signal) >= signal_threshold
  stats = {
      "judges": report,
      "acceptance": float(accepted.mean()),
      "validity": float(np.asarray(oracle_ok)[accepted].mean()) if accepted.any() else None,
      "answer_accuracy": float(np.mean(oracle_ok)),
      "finished": float(np.mean([r.finished for r in responses])),
      "dreams": len(records),
      # Against the reference's own answers, where it has them (a verifier has none).
      "dream_validity": float(np.mean([r.messages[-1].content == r.meta["oracle_answer"]
                                       for r in records]))
                        if records and all(r.meta["oracle_answer"] is not None
                                           for r in records) else None,
      "novelty_dreams": float(np.mean([m["novel"] for m in kept])) if kept else None,
      "n2_cells_dreams": cycle_metrics.n2_cells((m.get("cell") for m in kept),
                                                domain.held_out_cells),
      "examples": [{"scenario": s.messages[-1].content, "answer": r.text,
                    "judges": {n: verdicts[n][i].reasons[0] for n in names}}
                   for i, (s, r) in enumerate(zip(scenarios[:2], responses[:2]))],
  }
  return records, stats


def _copy(params):
  # The trainer donates its state's buffers; the caller's parameters must survive (the
  # experiment runner starts every arm from the same base parameters).
  return jax.tree_util.tree_map(jnp.array, params)


def run_consolidation(config, base_params, setup: DreamSetup, run_dir: str | None = None,
                      log: Callable[[str], None] = print) -> list[dict]:
  """Runs the cycles (see module doc); returns [base entry, cycle 1, ..., cycle C].

  `run_dir` receives the per-cycle log, the dream records and each cycle's training run;
  None uses a temporary folder, deleted at the end.
  """
  if run_dir is None:
    with tempfile.TemporaryDirectory(prefix="dream-") as tmp:
      return run_consolidation(config, base_params, setup, tmp, log)
  d = config.dream
  if d.mode not in dream_filter.MODES:
    raise ValueError(f"config.dream.mode: unknown {d.mode!r}, expected {dream_filter.MODES}")
  anchor_mode = d.get("guard_anchor", "base")  # configs/dream.py's default
  if anchor_mode not in GUARD_ANCHORS:
    raise ValueError(f"config.dream.guard_anchor: unknown {anchor_mode!r}, expected one of "
                     f"{GUARD_ANCHORS}")
  domain = setup.domain
  if setup.graph.num_nodes() == 0:
    fill_memory(setup.graph, setup.real_records, domain)
  real_keys = collide.real_keys(setup.real_records, domain)
  real_examples = training.examples(setup.real_records, setup.adapter,
                                    config.trainer)[domain.real_source]
  items = domain.probe_items(int(config.probes.seed), setup.adapter,
                             dict(config.probes.sizes))
  probe = RetentionProbe(lambda p: domain.score_probes(setup.graphdef, p, items,
                                                       setup.pad_id))
  temperature = AdaptiveTemperature(**dict(d.temperature))
  params = _copy(base_params)
  entries = [{"cycle": 0, "probes": probe.summary(params),
              "memories": setup.graph.num_nodes()}]
  anchor = retention(entries[0]["probes"]) if anchor_mode == "base" else None
  key = jax.random.key(int(config.seed))
  covered: set = set()
  log_path = os.path.join(run_dir, LOG_FILE)
  for cycle in range(1, int(d.cycles) + 1):
    t_used = temperature.temperature
    records, stats = dream_cycle(config, setup, params, cycle, t_used, real_keys,
                                 jax.random.fold_in(key, cycle))
    if stats.get("acceptance") is not None:
      temperature.update(1.0 - stats["acceptance"])
    covered.update(map(tuple, stats.get("n2_cells_dreams", [])))
    dreams = (training.examples(records, setup.adapter, config.trainer).get(
        training.DREAM, []) if records else [])
    write_records(os.path.join(run_dir, "dreams", f"cycle_{cycle}.jsonl"), records)
    start = _copy(params)
    probe.remember(start, probe.summary(params))  # Same values: not scored again.
    params, stats["train"] = training.train_cycle(
        config.trainer, setup, start, real_examples, dreams,
        seed=int(config.seed) * 1000 + cycle, dream_weight=float(d.dream_weight),
        probe_fn=probe, run_dir=os.path.join(run_dir, "train", f"cycle_{cycle}"),
        guard_anchor=anchor)
    stats["probes"] = probe.summary(params)
    stats.update(cycle=cycle, mode=d.mode, next_temperature=temperature.temperature,
                 n2_cells_covered=[list(c) for c in sorted(covered)],
                 n2_coverage=len(covered) / max(len(domain.held_out_cells), 1))
    entries.append(stats)
    _write_log(log_path, entries)
    log(_summary_line(stats))
    if stats["train"]["stopped_by_guard"]:
      log(f"cycle {cycle}: the quality guard stopped training; no further cycles")
      break
  return entries


def _fmt(x) -> str:
  return "-" if x is None else f"{x:.2f}"


def _summary_line(s: dict) -> str:
  """The cycle's dream statistics, then every probe of every group (the domain's)."""
  probes = " | ".join(f"{group} " + " ".join(f"{name}={_fmt(value)}"
                                            for name, value in scores.items())
                      for group, scores in s["probes"].items() if scores)
  return (f"cycle {s['cycle']}: {s['scenarios']} scenarios T={s['temperature']:.2f} "
          f"accept={_fmt(s.get('acceptance'))} valid={_fmt(s.get('validity'))} "
          f"novel={_fmt(s.get('novelty'))} dreams={s.get('dreams', 0)} "
          f"loss={_fmt(s['train']['loss_mean'])} | {probes}")
