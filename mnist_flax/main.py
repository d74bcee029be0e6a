"""Command line for training: parse flags, load the config, call ``train.train_and_evaluate``.

    python -m mnist_flax.main --config=configs/default.py [--workdir=.] [--config.FIELD=VALUE]

Checkpoints go to ``<workdir>/checkpoints/`` (the default workdir is the project root, so the
promoted model lands in ``checkpoints/final``). Running the same command again resumes from
the latest step checkpoint; a run already complete only re-reports, leaving ``final`` as it is
(it promotes only when there is no intact ``final``: a run killed before its promotion).

The shipped model back after training in the project root, and the files training added there
removed, in one command (it says what it removed): ``python -m mnist_flax.tools.reset``.

Multi-process runs take ``--coordinator_address``, ``--num_processes`` and ``--process_id``
(see ``launch/``). Exit codes: ``mnist_flax.errors``.
"""

from __future__ import annotations

import pathlib
import sys
import textwrap
import warnings

from absl import flags
import ml_collections
from ml_collections import config_flags

from mnist_flax import config as config_lib, errors
from mnist_flax.constants import PROJECT_ROOT

PROG = "mnist_flax.main"

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file, e.g. configs/default.py.", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", str(PROJECT_ROOT),
    "Folder for checkpoints/, summary.json and logs (default: the project root).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for multi-process runs (see launch/).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0-based.")


def _help() -> str:
  """What ``--help`` prints: what the command does, the configs, overrides, MNIST, an example."""
  from mnist_flax import data  # numpy: only for the help, not before every run's checks.
  configs = config_lib.available()
  width = max((len(f"configs/{path.name}") for path, _ in configs), default=0)
  own_flags = ("config", "workdir", "coordinator_address", "num_processes", "process_id")
  fill = lambda text: textwrap.fill(text, 100, break_on_hyphens=False, subsequent_indent="  " if text[:2] == "  " else "")
  return "\n".join([
      "Train the MNIST CNN, save checkpoints and promote the final model.", "",
      "usage: python -m mnist_flax.main --config=CONFIG [--config.FIELD=VALUE ...] "
      "[--workdir=DIR]", "",
      fill("Checkpoints go to <workdir>/checkpoints/ (default workdir: the project root, so the "
           "promoted model lands in checkpoints/final). Running the same command again resumes "
           "from the latest step checkpoint."), "",
      "configs (--config=):",
      *(f"  {'configs/' + path.name:<{width}}  {line}" for path, line in configs), "",
      "overrides: --config.FIELD=VALUE sets any field of the config (those of configs/default.py):",
      "  --config.num_iterations=300  --config.model.features=(16,32)  --config.seed=1", "",
      fill(f"MNIST: read from --config.data.dir=DIR, else ${data.ENV_VAR}, else downloaded "
           "through tensorflow-datasets."), "",
      "example:",
      f"  {data.ENV_VAR}=/path/to/mnist python -m mnist_flax.main --config=configs/test.py "
      "--workdir=/tmp/run", "",
      "flags:",
      *(fill(f"  --{name}: {flags.FLAGS[name].help}") for name in own_flags), "",
      "--helpfull lists every flag, absl's own included. Exit codes: see README.md.",
  ])


def _given(argv: list[str], name: str) -> str | None:
  """The value of ``--name=VALUE`` or ``--name VALUE`` on the command line, the last wins."""
  value = None
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      value = arg.split("=", 1)[1]
    elif arg == f"--{name}" and i + 1 < len(argv):
      value = argv[i + 1]
  return value


def _config_file(argv: list[str]) -> pathlib.Path | None:
  """The --config file named on the command line; a missing one is refused with a hint."""
  given = _given(argv, "config")
  if given is None:
    return None
  path = pathlib.Path(given)
  if path.is_file():
    return path
  with_py = path.with_name(path.name + ".py")
  if with_py.is_file():
    hint = f"did you mean --config={with_py}?"
  else:
    hint = "the configs: " + ", ".join(f"configs/{p.name}" for p, _ in config_lib.available())
  raise errors.ConfigError(f"config file not found: {given}; {hint}")


def _overrides(argv: list[str]) -> list[tuple[str, str]]:
  """(field path, value) of every ``--config.FIELD=VALUE`` on the command line."""
  out = []
  for arg in argv:
    if arg.startswith("--config."):
      path, _, value = arg[len("--config."):].partition("=")
      out.append((path, value))
  return out


def _refusal(error: Exception, argv: list[str]) -> errors.ConfigError:
  """A flag or override that absl or ml_collections refused, said in plain words."""
  # The default config's fields stand in for those of a config not named (yet).
  path = _config_file(argv) or config_lib.CONFIGS_DIR / "default.py"
  try:
    fields = config_lib.load_config_file(path)
  except Exception:  # A broken config file: what went wrong is in ``error`` already.
    return errors.ConfigError(f"bad config override: {errors.one_line(error)}")
  types = config_lib.field_types(fields)
  if isinstance(error, flags.UnrecognizedFlagError):  # --num_iterations=10, for one.
    name = error.flagname or ""
    field = name if name in types else config_lib.closest_field(fields, name)
    if field is not None:
      value = _given(argv, name)
      return errors.ConfigError(f"unknown flag --{name}; config fields are set as "
                                f"--config.{field}={'VALUE' if value is None else value}")
    return errors.ConfigError(errors.one_line(error))
  for field, value in _overrides(argv):
    if field not in types:
      guess = config_lib.closest_field(fields, field)
      return errors.ConfigError(
          f"unknown config field '{field}'; " + (f"did you mean --config.{guess}={value}?"
                                                 if guess else f"see {path} for its fields"))
  for field, value in _overrides(argv):
    if f"--config.{field}={value}:" in str(error) or f"--config.{field}:" in str(error):
      return errors.ConfigError(f"--config.{field}={value}: config.{field} expects "
                                f"{config_lib.type_in_words(types[field])}")
  if isinstance(error, flags.Error):
    return errors.ConfigError(errors.one_line(error))
  return errors.ConfigError(f"bad config override: {errors.one_line(error)}")


def _parse(argv: list[str]) -> ml_collections.ConfigDict:
  """Parses flags and the config; every problem becomes a one-line ConfigError (exit 2)."""
  if "--helpfull" in argv[1:]:
    print(flags.FLAGS.get_help())
    sys.exit(0)
  if any(a in ("-h", "--help") for a in argv[1:]):
    print(_help())
    sys.exit(0)
  missing = errors.ConfigError("missing --config, e.g. --config=configs/default.py (--help "
                               "lists the configs)")
  if _config_file(argv) is None and _overrides(argv):  # Overrides of no config: absl's words.
    raise missing
  try:
    flags.FLAGS(argv)
  except Exception as e:  # absl's flag errors; ml_collections' plain ones for overrides.
    raise _refusal(e, argv) from None
  if _CONFIG.value is None:
    raise missing
  try:
    config = _CONFIG.value
    config.keys()
  except Exception as e:  # config_flags defers a broken config file's error until first use.
    raise errors.ConfigError(f"cannot load --config: {errors.one_line(e)}") from None
  return config


def run(argv: list[str]) -> int:
  """Training, from the command line ``argv`` (program name first) to the promoted model."""
  config = _parse(argv)
  config_lib.validate(config)
  from mnist_flax import workdir
  # Before JAX's import (seconds on a busy machine): an unusable workdir is said at once.
  workdir.check_writable(pathlib.Path(_WORKDIR.value).absolute())
  from mnist_flax import distributed  # Imports JAX: only after the cheap checks passed.
  distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  from mnist_flax import cache
  cache.enable_compilation_cache()
  from mnist_flax import train
  summary = train.train_and_evaluate(config, _WORKDIR.value)
  shipped = PROJECT_ROOT / "checkpoints" / "final"
  if summary.get("promoted") and distributed.is_primary() and \
      pathlib.Path(summary["final_checkpoint"]).resolve() == shipped.resolve():
    print("this run's model replaced the shipped one; `python -m mnist_flax.tools.reset` "
          "puts the shipped model back and removes the files training added", flush=True)
  return errors.OK


def _known_failure(error: Exception) -> errors.MnistFlaxError | None:
  """Training's failures that are not bugs although no code path raised them as such."""
  if errors.os_errno(error) in errors.DISK_CAUSES:  # A write that failed outside a save.
    return errors.write_failure(error, _WORKDIR.value, "cannot write in")
  if "jax" in sys.modules:  # Said at once; nothing is gained by waiting to be killed.
    from mnist_flax import distributed
    return distributed.lost_peer(error)
  return None


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv if argv is None else argv)
  from absl import logging as absl_logging
  # A failed save fails on Orbax's threads too: absl ERROR logs would bury the one line.
  absl_logging.set_verbosity(absl_logging.FATAL)
  # The compilation cache failing to write (a full disk, a file-size limit) only costs speed.
  warnings.filterwarnings("ignore", message="Error writing persistent compilation cache")
  return errors.run_command(PROG, lambda: run(argv), _known_failure)


if __name__ == "__main__":
  errors.leave(main())
