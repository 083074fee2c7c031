"""The synthetic binding tasks: copies where the mask says, pair notes with a note's content."""

import numpy as np
import pytest

from msr_jax.world import binding_tasks, episodes
from msr_jax.world.world import World


def _second_copy(row, mask_row):
  """(n, start of the second copy) read back from the mask alone."""
  marked = np.flatnonzero(mask_row)
  return len(marked) + 1, int(marked[0])


@pytest.mark.parametrize("fixed", [True, False])
def test_copy_rows_mask_marks_exactly_the_copied_targets(fixed):
  tokens, mask, segments = binding_tasks.copy_rows(np.random.default_rng(0), 32, 128, 10, 500,
                                                   bos_id=2, fixed_offset=fixed)
  gaps = set()
  for row, mask_row, seg_row in zip(tokens, mask, segments):
    n, second = _second_copy(row, mask_row)
    assert row[0] == 2 and np.all(row[1:second + n] >= 10)
    np.testing.assert_array_equal(row[second:second + n], row[1:1 + n])  # the same string
    gap = second - 1 - n
    gaps.add(gap)
    assert np.all(row[second + n:] == 0) and np.all(seg_row == (row != 0))
    # mask[t] marks tokens[t + 1]: the second copy's tokens after its first.
    assert mask_row[second - 1] == 0 and mask_row[second + n - 2] == 1
  if fixed:
    assert gaps == {0} and all(_second_copy(r, m)[0] == binding_tasks.OFFSET_LENGTH
                               for r, m in zip(tokens, mask))
  else:
    assert len(gaps) > 10  # the copy distance varies: no positional shortcut


def test_copy_rows_are_seeded():
  a = binding_tasks.copy_rows(np.random.default_rng(3), 4, 128, 10, 500, 2, False)
  b = binding_tasks.copy_rows(np.random.default_rng(3), 4, 128, 10, 500, 2, False)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


def test_pair_note_keeps_the_note_content_and_answers():
  world = World.build(0, num_people=240)
  note = episodes.note(world, np.random.default_rng(5), 4, "n", 3, same_attribute=True)
  pairs = binding_tasks.pair_note(world, np.random.default_rng(5), 4, "p", 3)
  text = pairs.messages[0].content
  body, _, question = text.partition(" question : ")
  parsed = dict(clause.split() for clause in body[len("note : "):].split(" .") if clause.strip())
  assert list(parsed) == [name for name, _, _ in note.meta["facts"]]
  assert len(pairs.messages) == len(note.messages) == 6
  users = [m.content for m in pairs.messages if m.role == "user"]
  answers = [m.content for m in pairs.messages if m.role == "assistant"]
  assert answers == [m.content for m in note.messages if m.role == "assistant"]
  for user, answer in zip(users, answers):
    name = user.split()[-2]  # "... question : Kofi ?"
    assert user.endswith(f"question : {name} ?") and parsed[name] == answer


def test_records_only_for_note_tasks():
  world = World.build(0, num_people=240)
  stream = binding_tasks.records(world, 0, "pairs", (2, 3), 2)
  first = next(stream)
  assert first.meta["kind"] == "pair_note" and 2 <= first.meta["num_facts"] <= 3
  with pytest.raises(ValueError, match="has no records"):
    next(binding_tasks.records(world, 0, "induction", (2, 3), 2))
