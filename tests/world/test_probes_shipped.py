"""The shipped base checkpoint still scores what its card says (reduced probe subset)."""

from __future__ import annotations

import json
import pathlib

import pytest

from msr_jax.world import probes_card

ASSET = pathlib.Path(__file__).resolve().parents[2] / "assets" / "townworld_base"


def test_shipped_checkpoint_scores_equal_its_card():
  card = json.loads((ASSET / "card.json").read_text())
  result = probes_card.evaluate(str(ASSET), subset=True)
  assert set(result["probes"]) == set(card["probes_subset"])
  for probe, expected in card["probes_subset"].items():
    for key, value in expected.items():
      got = result["probes"][probe][key]
      if key in ("acc", "n"):
        assert got == value, (probe, key)
      else:  # Log-probabilities: equal up to float32 summation order across machines.
        assert got == pytest.approx(value, abs=1e-4), (probe, key)
