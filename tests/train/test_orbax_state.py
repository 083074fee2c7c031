from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from msr_jax.checkpoints.orbax_state import StateCheckpointer
from msr_jax.train.state import init_state
from tests.train.conftest import tiny_model


def test_save_restore_roundtrip_and_retention(tmp_path):
  _, _, params = tiny_model()
  tx = optax.adamw(1e-3)
  state = init_state(params, tx, seed=3)
  state = state._replace(params=jax.tree_util.tree_map(lambda x: x + 1.0, state.params),
                         step=state.step + 7)
  checkpointer = StateCheckpointer(tmp_path / "ckpt", max_to_keep=2)
  for step in (1, 2, 3):
    checkpointer.save(step, state, {"data": {"position": step}, "guard": None})
  assert checkpointer.all_steps() == [2, 3] and checkpointer.latest_step() == 3
  target = init_state(params, tx, seed=0)
  restored, meta = checkpointer.restore(3, target)
  assert meta == {"data": {"position": 3}, "guard": None}
  assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(state)
  jax.tree_util.tree_map(np.testing.assert_array_equal, restored, state)
  with pytest.raises(FileNotFoundError, match="step 1"):
    checkpointer.restore(1, target)
  checkpointer.close()
