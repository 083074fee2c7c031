from __future__ import annotations

import json

import pytest

from msr_jax.data.jsonl import RecordError, read_records, write_records
from msr_jax.data.records import Message, Record

GOOD = {"id": "a", "source": "agent_log",
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def _line(**changes):
  obj = dict(GOOD, **changes)
  return json.dumps({k: v for k, v in obj.items() if v is not ...})


# (line text, field named in the error, words of the reason)
BAD = [
    ("{not json", "<json>", "bad JSON"),
    ("[1, 2]", "<record>", "JSON object"),
    (_line(id=...), "id", "missing"),
    (_line(id=7), "id", "non-empty string"),
    (_line(source=...), "source", "missing"),
    (_line(messages=[{"role": "robot", "content": "x"}]), "messages[0].role", "unknown role"),
    (_line(messages=[{"role": "assistant", "content": 3}]), "messages[0].content", "string"),
    (_line(messages=[{"role": "assistant"}]), "messages[0].content", "missing"),
    (_line(messages=[{"role": "assistant", "content": "x", "name": "n"}]), "messages[0].name",
     "unknown field"),
    (_line(messages=[]), "messages", "empty"),
    (_line(decisions=[5]), "decisions[0]", "out of range"),
    (_line(decisions=[0]), "decisions[0]", "'user' turn"),
    (_line(decisions=[1, 1]), "decisions[1]", "twice"),
    (_line(decisions=[True]), "decisions[0]", "integer"),
    (_line(decisions=[]), "decisions", "no turn to train on"),
    (_line(messages=[{"role": "user", "content": "x"}]), "decisions", "no turn to train on"),
    (_line(messages=[{"role": "assistant", "content": "  "}]), "messages[0].content", "empty"),
    (_line(weight=-1.0), "weight", "finite and in"),
    (_line(weight=float("nan")), "weight", "finite and in"),
    (_line(weight="1"), "weight", "number"),
    (_line(meta=[1]), "meta", "object"),
    (_line(wieght=2.0), "wieght", "unknown field"),
]


@pytest.mark.parametrize("text,field,reason", BAD)
def test_raise_names_file_line_and_field(tmp_path, text, field, reason):
  path = tmp_path / "d.jsonl"
  path.write_text(_line(id="first") + "\n\n" + text + "\n")
  with pytest.raises(RecordError) as info:
    read_records(path, on_error="raise")
  assert str(info.value).startswith(f"{path}:3: {field}: ")
  assert reason in str(info.value)
  assert (info.value.line, info.value.problems[0].field) == (3, field)


def test_skip_lists_every_bad_line_and_keeps_the_rest(tmp_path):
  lines = [_line(id="ok0")] + [text for text, _, _ in BAD] + [_line(id="ok0"), _line(id="ok1")]
  path = tmp_path / "d.jsonl"
  path.write_text("\n".join(lines) + "\n")
  records, report = read_records(path, on_error="skip")
  assert [r.id for r in records] == ["ok0", "ok1"]
  assert [s.line for s in report.skipped] == list(range(2, len(BAD) + 3))
  for skipped, (_, field, reason) in zip(report.skipped, BAD):
    assert skipped.problems[0].field == field and reason in skipped.reason
  assert "duplicate id 'ok0' (first on line 1)" in report.skipped[-1].reason
  assert report.records + report.num_skipped + report.blank_lines == report.lines == len(lines)
  assert f"{path}:2: " in report.summary()


def test_all_problems_of_a_line_are_reported(tmp_path):
  path = tmp_path / "d.jsonl"
  path.write_text(json.dumps({"messages": [{"role": "bot", "content": 1}], "weight": -2}) + "\n")
  _, report = read_records(path, on_error="skip")
  fields = {p.field for p in report.skipped[0].problems}
  assert fields == {"id", "source", "weight", "messages[0].role", "messages[0].content"}


def test_line_numbers_survive_unicode_line_separators(tmp_path):
  path = tmp_path / "d.jsonl"
  odd = dict(GOOD, id="u", messages=[{"role": "assistant", "content": "a\u2028b\u0085c"}])
  path.write_text(json.dumps(odd, ensure_ascii=False) + "\n{bad\n", encoding="utf-8")
  with pytest.raises(RecordError, match=r":2: <json>"):
    read_records(path)


def test_invalid_utf8_is_a_line_error(tmp_path):
  path = tmp_path / "d.jsonl"
  path.write_bytes(_line().encode() + b"\n\xff\xfe\n")
  _, report = read_records(path, on_error="skip")
  assert report.skipped[0].line == 2 and "UTF-8" in report.skipped[0].reason


def test_round_trip_and_defaults(tmp_path):
  records = [
      Record("r1", (Message("system", "s"), Message("user", "u"), Message("assistant", "ä\u2028")),
             source="dream", decisions=(2,), weight=0.5, meta={"cell": [1, 2]}),
      Record("r2", (Message("user", "u"), Message("assistant", "a"), Message("assistant", "b")),
             source="townworld"),
  ]
  path = tmp_path / "sub" / "out.jsonl"
  assert write_records(path, records) == 2
  back, report = read_records(path)
  assert back == records and back[0].meta == {"cell": [1, 2]}
  assert report.skipped == [] and report.records == 2
  assert back[1].decision_indices() == (1, 2) and back[1].weight == 1.0


def test_decisions_are_stored_sorted(tmp_path):
  path = tmp_path / "d.jsonl"
  msgs = [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]
  path.write_text(_line(messages=msgs, decisions=[1, 0]) + "\n")
  (record,), _ = read_records(path)
  assert record.decisions == (0, 1)


def test_write_rejects_bad_records_and_keeps_the_old_file(tmp_path):
  path = tmp_path / "out.jsonl"
  good = Record("a", (Message("assistant", "x"),), source="s")
  write_records(path, [good])
  before = path.read_bytes()
  with pytest.raises(RecordError, match=r"out.jsonl:2: id: duplicate"):
    write_records(path, [good, good])
  with pytest.raises(RecordError, match=r":1: decisions\[0\]"):
    write_records(path, [Record("b", (Message("user", "x"),), source="s", decisions=(0,))])
  # A lone surrogate would have been a raw UnicodeEncodeError from the encoder.
  with pytest.raises(RecordError, match=r":2: messages\[0\]\.content: not valid Unicode "
                                        r"text: a lone surrogate U\+D800 at character 2"):
    write_records(path, [good, Record("c", (Message("assistant", "ab\ud800"),), source="s")])
  with pytest.raises(RecordError, match=r":1: weight: must be finite and in \[0, 1e\+06\]"):
    write_records(path, [Record("d", (Message("assistant", "x"),), source="s", weight=1e300)])
  assert path.read_bytes() == before
  assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left


def test_on_error_must_be_known(tmp_path):
  path = tmp_path / "d.jsonl"
  path.write_text("")
  with pytest.raises(ValueError, match="on_error"):
    read_records(path, on_error="ignore")
  assert read_records(path)[1].lines == 0
