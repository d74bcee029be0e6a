"""Refit a promoted checkpoint's temperature, in place: ``python -m mnist_flax.calibrate``.

    python -m mnist_flax.calibrate [--checkpoint checkpoints/final] [--from REPLICA]
                                   [--temperature T] [--data_dir DIR] [--json]

Fits the temperature that makes the checkpoint's probabilities honest (``mnist_flax.calibration``)
and rewrites the checkpoint with it in its metadata, through ``checkpoint.promote_final`` (the
same atomic path as training's promotion: the weights are written back unchanged). Inference
(``infer``, its cached export, ``evaluate``) then answers at that temperature. Never fitted on
the MNIST test split. Where the temperature comes from, first that applies:

* ``--temperature T``: given (``1`` undoes a calibration);
* ``--from REPLICA``: a final checkpoint of the same recipe (same config apart from
  ``data.validation``) trained with a validation split held out
  (``--config.data.validation=10000``): fitted on that split, with the replica's weights, and
  carried over. This is how the shipped model, which trained on all 60,000 training images and
  so has no split of its own, was calibrated (see ``configs/shipped.py``);
* otherwise the checkpoint's own held-out split (it was trained with ``data.validation``).

Prints the fit on the validation split, and for comparison the other place the temperature
could apply (each member's logits instead of the ensemble's answer). Exit codes as in
``mnist_flax.errors`` (2: no validation split to fit on, or a replica of another recipe;
3: checkpoint missing or unusable; 6: MNIST missing or not the files it trained on).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
from typing import Any, Mapping, Sequence

from mnist_flax import errors

PROG = "mnist_flax.calibrate"
# Config fields that may differ between a checkpoint and its replica: where the data is, the
# held-out split itself, the calibration, and how often the run logged and saved.
_REPLICA_MAY_DIFFER = ("data", "calibration", "checkpoint_every", "log_every")


def _parser() -> argparse.ArgumentParser:
  p = errors.ArgumentParser(prog="python -m mnist_flax.calibrate", description=__doc__.split("\n\n")[0])
  p.add_argument("--checkpoint", default=None, metavar="DIR",
                 help="promoted checkpoint to recalibrate in place (default: checkpoints/final)")
  source = p.add_mutually_exclusive_group()
  source.add_argument("--from", dest="replica", default=None, metavar="REPLICA",
                      help="a final checkpoint of the same recipe trained with a held-out "
                           "validation split: fit on that split")
  source.add_argument("--temperature", type=float, default=None, metavar="T",
                      help="store this temperature instead of fitting one")
  from mnist_flax import data
  data.add_dir_flag(p)
  p.add_argument("--json", action="store_true", help="print the stored calibration as JSON")
  return p


def _validation_size(metadata: Mapping[str, Any]) -> int:
  return int(((metadata.get("config") or {}).get("data") or {}).get("validation") or 0)


def _recipe(metadata: Mapping[str, Any]) -> dict[str, Any]:
  config = dict(metadata.get("config") or {})
  for key in _REPLICA_MAY_DIFFER:
    config.pop(key, None)
  return config


def _recipe_differences(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
  out = []
  for key in sorted(set(a) | set(b)):
    x, y = a.get(key, "<absent>"), b.get(key, "<absent>")
    if isinstance(x, Mapping) and isinstance(y, Mapping):
      out += _recipe_differences(x, y, f"{prefix}{key}.")
    elif x != y:
      out.append(f"{prefix}{key}: {x!r} vs {y!r}")
  return out


def fit_on_held_out(path: pathlib.Path, metadata: Mapping[str, Any], model_config: Any,
                    variables: Any, data_dir: str | None, described_as: str) -> dict[str, Any]:
  """The calibration fitted on the held-out training images of the checkpoint at ``path``,
  with a comparison of both places the temperature could apply."""
  import numpy as np
  from mnist_flax import calibration, data, model
  held_out = _validation_size(metadata)
  if not held_out:
    raise errors.ConfigError(
        f"{path} was trained on all the training images: it holds out no validation split to "
        "fit a temperature on (and the test split is never used for that). Train a replica of "
        "its recipe with one, e.g. python -m mnist_flax.main --config=<its config> "
        "--config.data.validation=10000 --workdir=runs/replica, then pass "
        "--from runs/replica/checkpoints/final")
  folder = data.resolve_dir(data_dir, data.DIR_FLAG, metadata.get("data_dir"))
  mnist = data.load(folder, data.DIR_FLAG)
  if metadata.get("data_sha256") and metadata["data_sha256"] != mnist.sha256:
    raise errors.DataError(f"these MNIST files are not the ones {path} was trained on, so its "
                           f"held-out images are unknown; point {data.DIR_FLAG} at those")
  start = len(mnist.train_images) - held_out
  images, labels = mnist.train_images[start:], mnist.train_labels[start:].astype(np.int64)
  logits = calibration.member_logits_all(model.build(model_config), variables, images)
  calib = calibration.calibrate(logits, labels,
                                described_as.format(held_out=held_out, trained=start))
  other = calibration.fit_temperature(logits, labels, calibration.MEMBERS)
  calib["compared"] = {
      "where": "each member's logits, before its softmax and the averaging (not used)",
      "temperature": other,
      "after": calibration.scores(logits, labels, other, calibration.MEMBERS)}
  return calib


def run(args: argparse.Namespace) -> int:
  from mnist_flax import calibration, checkpoint, predictor, workdir as workdir_lib
  path = predictor.resolve_checkpoint(args.checkpoint).absolute()
  if path.name != checkpoint.FINAL or path.parent.name != "checkpoints":
    raise errors.ConfigError(f"{path} is not a promoted checkpoint (<workdir>/checkpoints/final),"
                             " which this command rewrites in place")
  workdir = path.parent.parent
  with workdir_lib.claim(workdir, "--checkpoint"):
    model_config, variables, metadata = predictor.load_final(path)
    if args.temperature is not None:
      if not (math.isfinite(args.temperature) and args.temperature > 0):
        raise errors.ConfigError(f"--temperature must be a finite positive number, got "
                                 f"{args.temperature!r}")
      calib = calibration.given(args.temperature, None if args.temperature == 1.0
                                else "--temperature, given on the command line")
    elif args.replica is not None:
      replica = predictor.resolve_checkpoint(args.replica).absolute()
      r_model, r_variables, r_metadata = predictor.load_final(replica)
      differences = _recipe_differences(_recipe(metadata), _recipe(r_metadata))
      if differences:
        raise errors.ConfigError(f"{replica} is not a replica of {path}'s recipe ("
                                 + "; ".join(differences) + ")")
      calib = fit_on_held_out(
          replica, r_metadata, r_model, r_variables, args.data_dir,
          "the last {held_out} training images, held out from a replica of this recipe "
          "(trained on the first {trained}), answered by that replica")
    else:
      calib = fit_on_held_out(path, metadata, model_config, variables, args.data_dir,
                              "the last {held_out} training images, held out from this run")
    # Host arrays, as training promotes them (Orbax then writes no device sharding metadata).
    import jax
    checkpoint.promote_final(workdir, jax.device_get(variables), dict(metadata, calibration=calib))
  if args.json:
    print(json.dumps(calib))
    return 0
  print(f"{path}: " + calibration.describe(calib))
  if "gate" in model_config:
    print("  these are the reader's figures; its gate (mnist_flax.gate) scales the answers after "
          "them: see python -m mnist_flax.evaluate for the model's")
  if "compared" in calib:
    c = calib["compared"]
    print(f"  for comparison, T applied to each member's logits instead: temperature "
          f"{c['temperature']:g}, ECE {c['after']['ece']:.4f}, NLL {c['after']['nll']:.4f}, "
          f"accuracy {c['after']['accuracy']:.4f} (here: {calib['after']['accuracy']:.4f}, "
          "the model's own)")
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  return errors.run_command(PROG, lambda: run(_parser().parse_args(argv)))


if __name__ == "__main__":
  errors.leave(main())
