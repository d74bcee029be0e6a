"""Configs: the defaults the brief fixes, validation, and the command line's refusals."""

from __future__ import annotations

import math

import pytest

from conftest import ROOT, run_module
from mnist_flax import config as config_lib, errors


def test_default_config_has_the_documented_values():
  config = config_lib.load_config_file(ROOT / "configs/default.py")
  assert config.num_iterations == 5000 and config.checkpoint_every == 1000
  assert config.data.dir is None
  config_lib.validate(config)


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "configs").glob("*.py")))
def test_every_config_file_is_valid(name):
  config_lib.validate(config_lib.load_config_file(ROOT / "configs" / f"{name}.py"))


@pytest.mark.parametrize("field, value, message", [
    ("num_iterations", 0, "num_iterations must be a positive integer"),
    ("num_iterations", -5, "num_iterations must be a positive integer"),
    ("checkpoint_every", 0, "checkpoint_every must be a positive integer"),
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("optimizer.learning_rate", math.nan, "learning_rate must be a finite positive number"),
    ("optimizer.learning_rate", math.inf, "learning_rate must be a finite positive number"),
    ("optimizer.learning_rate", -0.1, "learning_rate must be a finite positive number"),
    ("optimizer.learning_rate", 0.0, "learning_rate must be a finite positive number"),
    ("optimizer.name", "adagrad", "optimizer.name must be one of"),
    ("model.pool", "median", "model.pool must be one of"),
    ("model.features", (8, 0), "model.features must be positive integers"),
    ("model.members", 0, "config.model.members must be a positive integer"),
    ("augment.translate", 20, "augment.translate must be an integer in"),
])
def test_validate_refuses_unusable_values(field, value, message):
  config = config_lib.load_config_file(ROOT / "configs/default.py")
  *parents, leaf = field.split(".")
  node = config
  for parent in parents:
    node = node[parent]
  node[leaf] = value
  with pytest.raises(errors.ConfigError, match=message):
    config_lib.validate(config)


@pytest.mark.parametrize("args, message", [
    (["--config=configs/test.py", "--config.no_such_field=1"],
     "unknown config field 'no_such_field'; see configs/test.py for its fields"),
    (["--config=configs/test.py", "--config.num_iteration=5"],
     "unknown config field 'num_iteration'; did you mean --config.num_iterations=5?"),
    (["--config=configs/test.py", "--config.model.featurs=(8,16)"],
     "unknown config field 'model.featurs'; did you mean --config.model.features=(8,16)?"),
    (["--config=configs/test.py", "--config.num_iterations=abc"],
     "--config.num_iterations=abc: config.num_iterations expects an integer"),
    (["--config=configs/test.py", "--config.optimizer.learning_rate=fast"],
     "config.optimizer.learning_rate expects a number"),
    (["--config=configs/test.py", "--config.model.batch_norm=maybe"],
     "config.model.batch_norm expects true or false"),
    (["--config=configs/test.py", "--config.model=3"], "config.model expects a group of fields"),
    (["--config=configs/test.py", "--num_iterations=10"],
     "unknown flag --num_iterations; config fields are set as --config.num_iterations=10"),
    (["--config=configs/test"], "config file not found: configs/test; did you mean "
                                "--config=configs/test.py?"),
    (["--config=configs/nope.py"], "the configs: configs/default.py,"),
    (["--config=configs/test.py", "--config.num_iterations=0"], "must be a positive integer"),
    (["--config=configs/test.py", "--config.optimizer.learning_rate=inf"], "finite positive"),
    (["--config=configs/missing.py"], "config file not found: configs/missing.py"),
    ([], "missing --config"),
    (["--config.num_iterations=5"], "missing --config"),
    (["--config=configs/test.py", "--no_such_flag"], "no_such_flag"),
])
def test_cli_refuses_bad_configs_with_one_line_and_exit_2(args, message, tmp_path):
  result = run_module("mnist_flax.main", *args, f"--workdir={tmp_path}", timeout=60)
  assert result.returncode == 2, result.stderr
  assert message in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "checkpoints").exists()  # Refused before any work.


def test_help_says_what_the_command_does_and_how():
  result = run_module("mnist_flax.main", "--help", timeout=60)
  assert result.returncode == 0 and result.stderr == ""
  text = result.stdout
  assert text.startswith("Train the MNIST CNN") and str(ROOT) not in text  # No path as header.
  for path, first_line in config_lib.available():
    assert f"configs/{path.name}" in text and first_line and first_line in text
  assert "--config.FIELD=VALUE" in text and "MNIST_DATA_DIR" in text
  assert "example:\n  MNIST_DATA_DIR=/path/to/mnist python -m mnist_flax.main --config=" in text
  full = run_module("mnist_flax.main", "--helpfull", timeout=60).stdout
  assert "--workdir" in full and "--flagfile" in full  # absl's own flags too.


def test_field_types_closest_field_and_type_words():
  config = config_lib.load_config_file(ROOT / "configs/default.py")
  types = config_lib.field_types(config)
  assert types["num_iterations"] is int and types["data.dir"] is str  # A placeholder's type.
  assert types["model.features"] is tuple and types["model.batch_norm"] is bool
  assert config_lib.closest_field(config, "optimizer.learning_rat") == "optimizer.learning_rate"
  assert config_lib.closest_field(config, "features") == "model.features"  # Group left out.
  assert config_lib.closest_field(config, "xyz") is None
  assert config_lib.type_in_words(int) == "an integer"
  assert config_lib.type_in_words(bool) == "true or false"
