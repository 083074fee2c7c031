"""Loading ml-collections config files, big_vision style.

A config file is a Python file with `get_config(arg: str | None) -> ConfigDict`. It is
named as `path/to/file.py` or `path/to/file.py:arg` (for example `configs/train.py:smoke`).
Overrides are `--config.a.b=value` strings; the value is parsed with the type of the
existing field, so a typo or a wrong type is an error naming the field, never a silent
new key. `set_dotted` / `get_dotted` are the one way in the project to reach a field by its
dotted name, in a ConfigDict or in an experiment's nested dicts.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import importlib.util
import os
import pathlib
import traceback

import ml_collections

from msr_jax.errors import ConfigError

__all__ = ["ConfigError", "apply_overrides", "get_dotted", "load_config", "load_config_file",
           "set_dotted"]


def _line_in(error: BaseException, path: pathlib.Path) -> str:
  """":N", the last line of `path` in the error's traceback ("" when it has none)."""
  target, line = os.path.realpath(path), ""
  for frame, lineno in traceback.walk_tb(error.__traceback__):
    if os.path.realpath(frame.f_code.co_filename) == target:
      line = f":{lineno}"
  return line


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  path_str, _, arg = spec.partition(":")
  path = pathlib.Path(path_str)
  if not path.is_file():
    raise ConfigError(f"{path}: config file not found")
  module_spec = importlib.util.spec_from_file_location(f"_msr_config_{path.stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except Exception as e:  # Re-raised with the file (and the line) named.
    line = f":{e.lineno}" if isinstance(e, SyntaxError) and e.lineno else _line_in(e, path)
    raise ConfigError(f"{path}{line}: error while executing the config file: {e!r}") from e
  get_config = getattr(module, "get_config", None)
  if get_config is None:
    raise ConfigError(f"{path}: defines no get_config(arg) function")
  try:
    config = get_config(arg or None)
  except Exception as e:  # Re-raised with the file, the line and the argument named.
    raise ConfigError(f"{path}{_line_in(e, path)}: get_config({arg or None!r}) raised "
                      f"{e!r}") from e
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"{path}: get_config returned {type(config).__name__}, not ConfigDict")
  return config


def _parse_value(text: str, current, field: str):
  if isinstance(current, bool):
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
      return True
    if lowered in ("false", "0", "no"):
      return False
    raise ConfigError(f"--config.{field}: expected a bool, got {text!r}")
  if isinstance(current, str):
    return text
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    if current is None:
      return text
    raise ConfigError(f"--config.{field}: cannot parse {text!r} as {type(current).__name__}")
  if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  if isinstance(current, ml_collections.ConfigDict) and isinstance(value, dict):
    return ml_collections.ConfigDict(value)  # a whole section: "{'weather': 1.0}"
  if current is not None and not isinstance(value, type(current)):
    raise ConfigError(
        f"--config.{field}: expected {type(current).__name__}, got {text!r}")
  return value


class MissingFieldError(ConfigError, KeyError):
  """A dotted name that is not there. A KeyError too, so that readers of results that
  treat a missing number as missing data (`analysis`) catch it as before."""
  __str__ = ConfigError.__str__  # KeyError would quote the message


def _is_section(node) -> bool:
  return isinstance(node, (dict, ml_collections.ConfigDict))


def _parent(tree, dotted: str, where: str):
  """(the section holding `dotted`'s last name, that name); errors name the missing part."""
  *parents, leaf = dotted.split(".")
  node = tree
  for i, name in enumerate(parents):
    if name not in node or not _is_section(node[name]):
      raise MissingFieldError(f"{where}: no section {'.'.join(parents[:i + 1])!r}")
    node = node[name]
  if leaf not in node:
    raise MissingFieldError(f"{where}: no such field (known: {sorted(node.keys())})")
  return node, leaf


def get_dotted(tree, dotted: str, where: str = ""):
  """The value at a dotted name ("optim.learning_rate") of a config or a nested dict."""
  node, leaf = _parent(tree, dotted, where or dotted)
  return node[leaf]


def set_dotted(tree, dotted: str, value, where: str = "") -> None:
  """Sets an existing field by its dotted name, in a ConfigDict (whose type checks are
  the caller's: `apply_overrides` parses the text with the field's type first) or a
  nested dict (an arm's config); a name that is not there is an error, never a new key."""
  node, leaf = _parent(tree, dotted, where or dotted)
  if isinstance(node, ml_collections.ConfigDict):
    with node.ignore_type():
      node[leaf] = value
  else:
    node[leaf] = copy.deepcopy(value)


# Sections whose keys are names the user chooses (a mixture's sources, by the names the
# records give them): `--config.data.weights.weather=0.5` adds a key there, a number.
MAP_SECTIONS = ("data.weights",)


def _in_map_section(field: str) -> bool:
  parent = field.rpartition(".")[0]
  return any(parent == m or parent.endswith("." + m) for m in MAP_SECTIONS)


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]) -> ml_collections.ConfigDict:
  """Applies `--config.a.b=value` overrides in order; unknown fields are errors, except
  new names in a `MAP_SECTIONS` section (numbers). A section takes a dict literal whole."""
  for override in overrides:
    if not override.startswith("--config.") or "=" not in override:
      raise ConfigError(f"bad override {override!r}: expected --config.field=value")
    field, _, text = override[len("--config."):].partition("=")
    where = f"--config.{field}"
    if _in_map_section(field):
      section = get_dotted(config, field.rpartition(".")[0], where)
      leaf = field.rpartition(".")[2]
      if leaf not in section:
        with section.unlocked() if hasattr(section, "unlocked") else contextlib.nullcontext():
          section[leaf] = _parse_value(text, 0.0, field)
        continue
    set_dotted(config, field, _parse_value(text, get_dotted(config, field, where), field), where)
  return config


def load_config(spec: str, overrides: list[str] | None = None) -> ml_collections.ConfigDict:
  """Loads `file.py[:arg]` and applies overrides."""
  return apply_overrides(load_config_file(spec), list(overrides or []))
