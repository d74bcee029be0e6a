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

import os
import pathlib
import sys
import warnings

from absl import flags
from ml_collections import config_flags

from mnist_flax import errors

PROG = "mnist_flax.main"
PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file, e.g. configs/default.py.", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", str(PROJECT_ROOT), "Folder for checkpoints/, summary.json and logs.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for multi-process runs.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0-based.")


def _parse(argv: list[str]):
  """Parses flags and the config; every problem becomes a one-line ConfigError (exit 2)."""
  if any(a in ("-h", "--help", "--helpfull") for a in argv[1:]):
    print(flags.FLAGS.main_module_help() if hasattr(flags.FLAGS, "main_module_help")
          else __doc__)
    sys.exit(0)
  try:
    flags.FLAGS(argv)
  except flags.Error as e:
    raise errors.ConfigError(" ".join(str(e).split())) from None
  except AttributeError as e:  # ml_collections: an override of a field the config lacks.
    field = str(e.args[0] if e.args else e).strip("'\"")
    raise errors.ConfigError(f"unknown config field '{field}'; see the config file for the "
                             "fields it has") from None
  except Exception as e:  # ml_collections raises plain errors for bad override values.
    raise errors.ConfigError(f"bad config override: {' '.join(str(e).split())}") from None
  if _CONFIG.value is None:
    raise errors.ConfigError("missing --config, e.g. --config=configs/default.py")
  config_path = pathlib.Path(flags.FLAGS["config"].config_filename or "")
  if not config_path.is_file():
    raise errors.ConfigError(f"config file not found: {config_path}")
  try:
    config = _CONFIG.value
    config.keys()
  except Exception as e:  # config_flags defers a broken config file's error until first use.
    raise errors.ConfigError(f"cannot load --config: {' '.join(str(e).split())}") from None
  return config


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv if argv is None else argv)
  # A failed save fails on Orbax's threads too; their tracebacks and absl ERROR logs would
  # bury the one line that says what happened.
  errors.quiet_background_threads()
  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.FATAL)
  # The compilation cache failing to write (a full disk, a file-size limit) only costs speed.
  warnings.filterwarnings("ignore", message="Error writing persistent compilation cache")
  try:
    config = _parse(argv)
    from mnist_flax import config as config_lib
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
  except errors.MnistFlaxError as e:
    return errors.report(e, PROG)
  except Exception as e:
    if os.environ.get("MNIST_FLAX_TRACEBACK"):
      raise
    if errors.os_errno(e) in errors.DISK_CAUSES:  # A write that failed outside a save.
      return errors.report(errors.write_failure(e, _WORKDIR.value, "cannot write in"), PROG)
    if "jax" in sys.modules:
      from mnist_flax import distributed
      lost = distributed.lost_peer(e)
      if lost is not None:  # Said at once; nothing is gained by waiting to be killed.
        return errors.report(lost, PROG)
    return errors.report(errors.MnistFlaxError(
        f"internal error ({type(e).__name__}: {' '.join(str(e).split())[:300]}); rerun with "
        "MNIST_FLAX_TRACEBACK=1 for the traceback, and please report it", errors.INTERNAL), PROG)
  return 0


if __name__ == "__main__":
  code = main()
  if code != 0:
    # After a failure, Orbax's threads may still wait (minutes) for writes that will never
    # come; the one line is out and every committed checkpoint is on disk: leave now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  sys.exit(code)
