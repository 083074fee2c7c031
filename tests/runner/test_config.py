"""Config overrides: mixture weights by source name from the command line, whole sections
as dict literals, and the errors that name the field."""

from __future__ import annotations

import pytest

from msr_jax.data.mixture import build_mixture
from msr_jax.runner.config import ConfigError, MissingFieldError, load_config


def test_source_weights_by_name_from_the_command_line():
  config = load_config("configs/train.py", ["--config.data.weights.weather=3",
                                            "--config.data.weights.chat=1.0"])
  assert dict(config.data.weights) == {"weather": 3.0, "chat": 1.0}
  # The same in a trainer nested in another config (the dream loop's).
  dream = load_config("configs/dream.py", ["--config.trainer.data.weights.dream=0.5"])
  assert dict(dream.trainer.data.weights) == {"dream": 0.5}
  # The mixture draws the named sources in proportion.
  sources = {"weather": list(range(100)), "chat": list(range(100))}
  mixture = build_mixture(config, sources)
  mixture.take(4000)
  share = mixture.counts["weather"] / 4000
  assert 0.72 < share < 0.78


def test_a_section_takes_a_dict_literal_whole():
  config = load_config("configs/train.py", ["--config.data.weights={'a': 2, 'b': 1.5}"])
  assert dict(config.data.weights) == {"a": 2, "b": 1.5}


def test_errors_name_the_field():
  with pytest.raises(ConfigError, match=r"--config.data.weights.weather: cannot parse 'x'"):
    load_config("configs/train.py", ["--config.data.weights.weather=x"])
  with pytest.raises(MissingFieldError, match=r"no section 'data.weightz'"):
    load_config("configs/train.py", ["--config.data.weightz.weather=1"])
  with pytest.raises(MissingFieldError, match=r"--config.optim.nope: no such field"):
    load_config("configs/train.py", ["--config.optim.nope=1"])  # other sections stay closed
