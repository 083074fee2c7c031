"""Townworld's closed lexicon: every entity and attribute value is one word.

The lexicon is constant (not seeded) so that every world, whatever its seed, shares one
tokenizer; the seed only decides who is who (`world.World.build`). Names are built from
syllables and capitalised, so no name can collide with a lower-case word of the templates.
"""

from __future__ import annotations

import itertools

ATTRIBUTES = ("city", "employer", "hobby", "pet", "colour")

VALUES: dict[str, tuple[str, ...]] = {
    "city": ("paris", "rome", "oslo", "cairo", "lima", "dublin", "vienna", "madrid", "lisbon",
             "prague", "athens", "berlin", "sydney", "toronto", "nairobi", "kyoto"),
    "employer": ("bakery", "library", "hospital", "school", "factory", "bank", "museum",
                 "harbour", "farm", "theatre", "garage", "pharmacy", "hotel", "mill",
                 "brewery", "market"),
    "hobby": ("chess", "painting", "fishing", "hiking", "singing", "cooking", "gardening",
              "rowing", "knitting", "juggling", "archery", "pottery", "dancing", "climbing",
              "cycling", "sailing"),
    "pet": ("cat", "dog", "parrot", "rabbit", "hamster", "turtle", "goldfish", "ferret",
            "lizard", "pony", "goat", "owl"),
    "colour": ("red", "blue", "green", "yellow", "purple", "orange", "black", "white", "grey",
               "pink", "brown", "teal"),
}

WEATHERS = ("sunny", "rainy", "stormy", "snowy", "windy", "foggy")
OUTDOOR_ITEMS = ("ladder", "tent", "kite", "bike", "wheelbarrow", "canoe")
INDOOR_ITEMS = ("lamp", "kettle", "toaster", "blender", "iron", "heater")
ITEMS = OUTDOOR_ITEMS + INDOOR_ITEMS
CONDITIONS = ("fine", "broken")
RELATIONS = ("friend", "neighbour", "stranger")
DECISIONS = ("lend", "refuse", "wait")

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "n", "l", "r")


def _all_names() -> tuple[str, ...]:
  """Every two-syllable name, in a fixed interleaved order (so prefixes vary early)."""
  names = []
  for coda, v2, c2, v1, c1 in itertools.product(_CODAS, _VOWELS, _ONSETS, _VOWELS, _ONSETS):
    names.append((c1 + v1 + c2 + v2 + coda).capitalize())
  return tuple(names)


def names(count: int) -> tuple[str, ...]:
  """The first `count` names of the fixed pool (people first, then visitors)."""
  pool = _all_names()
  if count > len(pool):
    raise ValueError(f"asked for {count} names, the pool has {len(pool)}")
  # A fixed stride through the pool spreads names over onsets and vowels.
  stride = 37
  order = [(i * stride) % len(pool) for i in range(len(pool))]
  return tuple(pool[i] for i in order[:count])
