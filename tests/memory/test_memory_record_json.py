"""`record_from_json` inverts `Record.to_json()` and names the bad field."""

from __future__ import annotations

import json

import pytest

from msr_jax.data.records import Message, Record
from msr_jax.memory.record_json import record_from_json


def test_round_trip_through_json_text():
  record = Record(id="x1", messages=(Message("system", "be kind"), Message("user", "hi"),
                                     Message("assistant", "hello")),
                  source="dream", decisions=(2,), weight=0.5, meta={"cell": [1, 2]})
  back = record_from_json(json.loads(json.dumps(record.to_json())))
  assert back == record and back.meta == record.meta
  plain = Record(id="y", messages=(Message("user", "q"),))
  assert record_from_json(plain.to_json()) == plain


@pytest.mark.parametrize("obj, message", [
    ([], "expected a JSON object"),
    ({"messages": []}, "missing field 'id'"),
    ({"id": "a", "messages": [], "extra": 1}, "unknown field"),
    ({"id": "a", "messages": []}, "missing field 'source'"),
    ({"id": "a", "source": "s", "messages": [{"role": "bot", "content": "x"}]},
     "messages\\[0\\].role"),
    ({"id": "a", "source": "s", "messages": [{"role": "user"}]},
     "messages\\[0\\] must be an object"),
    ({"id": "a", "source": "s", "messages": [{"role": "user", "content": "x"}],
      "decisions": [0]}, "not the index of an assistant"),
    ({"id": "a", "source": "s", "messages": [], "weight": "1"},
     "'weight' must be a number"),
    ({"id": "a", "source": "s", "messages": [], "weight": 1e300},
     "'weight' must be finite and in \\[0, 1e\\+06\\]"),
    ({"id": "a", "source": "s", "messages": [{"role": "user", "content": "\ud800"}]},
     "field messages\\[0\\].content: not valid Unicode text"),
])
def test_bad_fields_are_named(obj, message):
  with pytest.raises(ValueError, match=f"node 7: .*{message}"):
    record_from_json(obj, where="node 7")
