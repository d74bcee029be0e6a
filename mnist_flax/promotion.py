"""Promoting a run's model to ``<workdir>/checkpoints/final``: its metadata and calibration.

    from mnist_flax import promotion
    final = promotion.promote(workdir, config, variables, step=5000, evaluation=last_eval,
                              run_meta=run_meta, mnist=mnist, num_train=60000, log=print)

``train`` calls it at the end of a run that trained (and, on a re-report, only when there is no
intact ``final``: see ``train._run``). The metadata holds everything inference and a reader of
the checkpoint need without the run: the model config, test metrics, the config and its
history, the data's checksums, library versions and the probability calibration.
"""

from __future__ import annotations

import os
import pathlib
import platform
from typing import Any, Callable, Mapping

import flax
import jax
import ml_collections
import numpy as np
import optax

from mnist_flax import calibration, checkpoint, data, model


def promote(workdir: str | os.PathLike, config: ml_collections.ConfigDict, variables: Any, *,
            step: int, evaluation: Mapping[str, float], run_meta: Mapping[str, Any],
            mnist: data.Mnist, num_train: int, log: Callable[[str], None]) -> pathlib.Path:
  """Writes ``variables`` (on the host) as the workdir's ``final``, calibrated; its path."""
  metadata = {
      "step": step, "model": config.model.to_dict(), **evaluation,
      "config": run_meta["config"], "config_history": run_meta["config_history"],
      "data_sha256": mnist.sha256, "versions": _versions(),
      "data_dir": str(mnist.folder),  # Where evaluate and calibrate look when not told.
      "num_devices": jax.device_count(), "num_processes": jax.process_count(),
  }
  metadata["calibration"] = _calibration(config, variables, mnist, num_train)
  log(calibration.describe(metadata["calibration"]))
  return checkpoint.promote_final(workdir, variables, metadata)


def _versions() -> dict[str, str]:
  import orbax.checkpoint as ocp
  return {"python": platform.python_version(), "jax": jax.__version__,
          "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else jax.__version__,
          "flax": flax.__version__, "optax": optax.__version__,
          "orbax-checkpoint": getattr(ocp, "__version__", "?"), "numpy": np.__version__}


def _calibration(config: ml_collections.ConfigDict, variables: Any, mnist: data.Mnist,
                 num_train: int) -> dict[str, Any]:
  """The promoted model's temperature: fitted on the held-out training images when the run
  has them; else the one the config carries (measured on a held-out replica of its recipe);
  else none (1.0, said so in the metadata)."""
  if num_train < len(mnist.train_images):
    net = model.build(config.model.to_dict())
    logits = calibration.member_logits_all(net, variables, mnist.train_images[num_train:],
                                           config.eval_batch_size)
    return calibration.calibrate(
        logits, mnist.train_labels[num_train:].astype(np.int64),
        f"the last {len(mnist.train_images) - num_train} training images, held out from this run")
  if config.calibration.temperature is not None:
    return calibration.given(config.calibration.temperature, "config.calibration.temperature")
  return calibration.given(1.0, None)
