"""Loading and checking ml-collections configs, before any work is done.

Config files live in ``configs/`` and define ``get_config()``; variants build on the default::

    from mnist_flax.config import sibling_config
    default = sibling_config(__file__, "default")

    def get_config():
      config = default.get_config()
      config.num_iterations = 60
      return config

``validate(config)`` refuses values that would only fail later (after an hour of training, or
deep inside JAX) with a one-line ``ConfigError`` (exit code 2). ``available()``, ``field_types``,
``closest_field`` and ``type_in_words`` give the command line (``mnist_flax.main``) what it
needs for its help and for plain-words refusals of a misspelt field or a value of the wrong type.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import math
import pathlib
import types
from typing import Any

import ml_collections

from mnist_flax import errors
from mnist_flax.constants import IMAGE_SIZE

CONFIGS_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"
POOLS = ("max", "avg")
OPTIMIZERS = ("adam", "adamw", "sgd", "lion")
SCHEDULES = ("constant", "onecycle", "cosine")


def sibling_config(config_file: str, name: str) -> types.ModuleType:
  """Imports the config file ``name``.py that sits next to ``config_file``, from any cwd."""
  path = pathlib.Path(config_file).resolve().with_name(f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"_mnist_flax_config_{name}", path)
  if spec is None or spec.loader is None:
    raise errors.ConfigError(f"cannot load config file {path}")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_config_file(path: str | pathlib.Path) -> ml_collections.ConfigDict:
  """Loads ``get_config()`` from a config file (used by tests and tools; main uses absl)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise errors.ConfigError(f"config file not found: {path}")
  return sibling_config(str(path), path.stem).get_config()


def available(folder: pathlib.Path = CONFIGS_DIR) -> list[tuple[pathlib.Path, str]]:
  """The config files in ``folder``, each with its docstring's first line (read, not run)."""
  out = []
  for path in sorted(folder.glob("*.py")):
    try:
      doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    except (OSError, SyntaxError, ValueError):
      doc = ""
    out.append((path, doc.split("\n")[0]))
  return out


def field_types(config: ml_collections.ConfigDict, prefix: str = "") -> dict[str, type]:
  """Every field of ``config`` by its dotted path (``model.features``), with the type that
  an override of it must parse as (a group of fields is a ConfigDict)."""
  out: dict[str, type] = {}
  for key, value in config.items():
    out[prefix + key] = config.get_type(key)
    if isinstance(value, ml_collections.ConfigDict):
      out.update(field_types(value, f"{prefix}{key}."))
  return out


def closest_field(config: ml_collections.ConfigDict, path: str) -> str | None:
  """The field of ``config`` that ``path`` most likely misspells, or None."""
  candidates = [f for f, t in field_types(config).items()
                if not issubclass(t, ml_collections.ConfigDict)]
  matches = difflib.get_close_matches(path, candidates, n=1, cutoff=0.6)
  if not matches:  # The right name in the wrong group: "--config.features" for model.features.
    matches = [f for f in candidates if f.rsplit(".", 1)[-1] == path.rsplit(".", 1)[-1]][:1]
  return matches[0] if matches else None


# What a value of each field type looks like on the command line, in plain words.
_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               tuple: "a tuple, e.g. (32,64)", list: "a list, e.g. [32,64]"}


def type_in_words(field_type: type) -> str:
  """``int`` -> "an integer": what a field of this type expects, for a message."""
  if issubclass(field_type, ml_collections.ConfigDict):
    return "a group of fields, each set on its own (--config.GROUP.FIELD=VALUE)"
  return _TYPE_WORDS.get(field_type, f"a {field_type.__name__}")


def output_side(model: ml_collections.ConfigDict) -> int:
  """Side of the model's last feature map, from its config alone (IMAGE_SIZE square input)."""
  side = IMAGE_SIZE // model.space_to_depth
  for padding, window in zip(model.padding, model.pool_windows):
    side = (side - (model.kernel_size - 1 if padding == "VALID" else 0)) // window
  return side


def _positive_int(config: ml_collections.ConfigDict, name: str, prefix: str = "") -> None:
  value = config[name]
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise errors.ConfigError(f"config.{prefix}{name} must be a positive integer, got {value!r}")


def _positive_float(value: Any, name: str) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
      math.isfinite(value) and value > 0):
    raise errors.ConfigError(f"config.{name} must be a finite positive number, got {value!r}")


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> None:
  if value not in choices:
    raise errors.ConfigError(f"config.{name} must be one of {', '.join(choices)}; got {value!r}")


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Returns ``config`` if every value is usable, else raises ``ConfigError`` naming the field."""
  if not isinstance(config, ml_collections.ConfigDict):
    raise errors.ConfigError(f"a config must be an ml_collections.ConfigDict, got {type(config).__name__}")
  for name in ("num_iterations", "checkpoint_every", "log_every", "batch_size",
               "eval_batch_size"):
    _positive_int(config, name)
  if not isinstance(config.seed, int) or isinstance(config.seed, bool):
    raise errors.ConfigError(f"config.seed must be an integer, got {config.seed!r}")
  if not 0.0 <= config.label_smoothing < 1.0:
    raise errors.ConfigError(
        f"config.label_smoothing must be in [0, 1), got {config.label_smoothing!r}")

  model = config.model
  if not model.features or any(
      not isinstance(f, int) or f <= 0 for f in model.features):
    raise errors.ConfigError(
        f"config.model.features must be positive integers, got {model.features!r}")
  for name in ("kernel_size", "dense", "space_to_depth", "members"):
    _positive_int(model, name, "model.")
  _choice(model.pool, "model.pool", POOLS)
  if not 0.0 <= model.dropout < 1.0:
    raise errors.ConfigError(f"config.model.dropout must be in [0, 1), got {model.dropout!r}")
  if IMAGE_SIZE % model.space_to_depth:
    raise errors.ConfigError(
        f"config.model.space_to_depth must divide {IMAGE_SIZE}, got {model.space_to_depth!r}")
  if not len(model.features) == len(model.padding) == len(model.pool_windows):
    raise errors.ConfigError("config.model.features, padding and pool_windows need one entry "
                             f"per conv block; got {len(model.features)}, {len(model.padding)} "
                             f"and {len(model.pool_windows)}")
  for padding in model.padding:
    _choice(padding, "model.padding", ("VALID", "SAME"))
  if any(not isinstance(w, int) or w <= 0 for w in model.pool_windows):
    raise errors.ConfigError(
        f"config.model.pool_windows must be positive integers, got {model.pool_windows!r}")
  if output_side(model) < 1:
    raise errors.ConfigError(f"config.model shrinks the {IMAGE_SIZE}x{IMAGE_SIZE} input to "
                             "nothing: fewer blocks, SAME padding or smaller pool_windows")

  opt = config.optimizer
  _choice(opt.name, "optimizer.name", OPTIMIZERS)
  _choice(opt.schedule, "optimizer.schedule", SCHEDULES)
  _positive_float(opt.learning_rate, "optimizer.learning_rate")
  for name in ("b1", "b2"):
    if not 0.0 <= opt[name] < 1.0:
      raise errors.ConfigError(f"config.optimizer.{name} must be in [0, 1), got {opt[name]!r}")
  if not (math.isfinite(opt.weight_decay) and opt.weight_decay >= 0):
    raise errors.ConfigError(
        f"config.optimizer.weight_decay must be >= 0, got {opt.weight_decay!r}")
  if not 0.0 <= opt.warmup_fraction < 1.0:
    raise errors.ConfigError(
        f"config.optimizer.warmup_fraction must be in [0, 1), got {opt.warmup_fraction!r}")

  translate = config.augment.translate
  if not isinstance(translate, int) or not 0 <= translate <= 8:
    raise errors.ConfigError(f"config.augment.translate must be an integer in [0, 8], got {translate!r}")
  if not 0.0 <= config.augment.rotate <= 45.0:
    raise errors.ConfigError(
        f"config.augment.rotate must be in [0, 45] degrees, got {config.augment.rotate!r}")
  if not 0.0 <= config.augment.scale < 0.5:
    raise errors.ConfigError(
        f"config.augment.scale must be in [0, 0.5), got {config.augment.scale!r}")
  validation = config.data.validation
  if isinstance(validation, bool) or not isinstance(validation, int) or not (
      0 <= validation <= 50000):
    raise errors.ConfigError(
        f"config.data.validation must be an integer in [0, 50000], got {validation!r}")
  for name in ("nondigits", "printed"):
    count = config.extra_data[name]
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 200000:
      raise errors.ConfigError(
          f"config.extra_data.{name} must be an integer in [0, 200000], got {count!r}")
  temperature = config.calibration.temperature
  if temperature is not None:
    _positive_float(temperature, "calibration.temperature")
  return config
