"""Measure a promoted checkpoint on the MNIST test split: ``python -m mnist_flax.evaluate``.

    python -m mnist_flax.evaluate [--checkpoint checkpoints/final] [--data_dir DIR] [--json]
                                  [--report DIR]

Prints the test accuracy, the accuracy the checkpoint recorded when it was trained, how
honest its probabilities are (``ece``: expected calibration error over 15 equal-width
confidence bins, and ``nll``, at the checkpoint's calibration temperature, and at
temperature 1 for comparison; see ``mnist_flax.calibration``), and the accuracy per digit; ``--report DIR`` also writes pictures and tables there (confusion matrix,
the mistakes, per-digit precision/recall/F1, training curves: see ``mnist_flax.report``).
MNIST comes from ``--data_dir``, then ``$MNIST_DATA_DIR``, then the folder the model's training
read (recorded in its metadata) if it is still there, then a tensorflow-datasets download. Exit codes as in ``mnist_flax.errors``
(3: checkpoint missing or unusable; 6: MNIST missing; 7: report folder unwritable).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any, Sequence

import numpy as np

from mnist_flax import data, errors
from mnist_flax.constants import NUM_CLASSES

PROG = "mnist_flax.evaluate"
_BATCH = 1000  # Test images per predict call: one compilation for the 10,000.


def _parser() -> argparse.ArgumentParser:
  p = errors.ArgumentParser(prog="python -m mnist_flax.evaluate", description=__doc__.split("\n\n")[0])
  p.add_argument("--checkpoint", default=None, metavar="DIR",
                 help="promoted checkpoint (default: checkpoints/final)")
  data.add_dir_flag(p)
  p.add_argument("--json", action="store_true", help="print one JSON object")
  p.add_argument("--report", default=None, metavar="DIR",
                 help="also write confusion_matrix.png, mistakes.png, per_class.md and, from the "
                      "run that wrote the checkpoint, training_curves.png into DIR")
  return p


def measure(checkpoint_path: pathlib.Path, data_dir: str | None) -> dict[str, Any]:
  from mnist_flax import calibration, model, predictor, report
  model_config, variables, metadata = predictor.load_final(checkpoint_path)
  folder = data.resolve_dir(data_dir, data.DIR_FLAG, metadata.get("data_dir"))
  mnist = data.load(folder, data.DIR_FLAG)
  net = model.build(model_config)
  temperature = calibration.temperature_of(metadata)
  def at(t: float) -> np.ndarray:
    return predictor.in_batches(lambda x: model.predict(net, variables, x, t),
                                mnist.test_images, _BATCH)
  # What predict answers (at the checkpoint's temperature), and the model as trained (T = 1).
  probs = at(temperature)
  raw = probs if temperature == 1.0 else at(1.0)
  predicted = probs.argmax(-1)
  labels = mnist.test_labels.astype(np.int64)
  correct = predicted == labels
  return {
      "checkpoint": str(checkpoint_path),
      "test_accuracy": float(correct.mean()),
      "recorded_test_accuracy": metadata.get("test_accuracy"),
      "test_examples": int(len(labels)),
      "ece": round(calibration.ece(probs, labels), 6),
      "nll": round(calibration.nll(probs, labels), 6),
      "temperature": temperature,
      "calibration_fitted_on": (metadata.get("calibration") or {}).get("fitted_on"),
      "uncalibrated": {"accuracy": float((raw.argmax(-1) == labels).mean()),
                       "ece": round(calibration.ece(raw, labels), 6),
                       "nll": round(calibration.nll(raw, labels), 6)},
      "errors": int((~correct).sum()),
      "per_class_accuracy": {str(d): float(correct[labels == d].mean())
                             for d in range(NUM_CLASSES)},
      "confusion_matrix": report.confusion_matrix(labels, predicted).tolist(),
      "step": metadata.get("step"),
      "data_matches_training": metadata.get("data_sha256") == mnist.sha256,
      "data_dir": str(mnist.folder),
      "_recorded": {k: metadata.get(k) for k in ("step", "test_accuracy", "test_loss")},
      "_probabilities": probs, "_labels": labels, "_images": mnist.test_images,
  }


def run(args: argparse.Namespace) -> int:
  from mnist_flax import calibration, predictor
  path = predictor.resolve_checkpoint(args.checkpoint)
  result = measure(path, args.data_dir)
  public = {k: v for k, v in result.items() if not k.startswith("_")}
  written = _write_report(args.report, result, path) if args.report else None
  left_out = written and written["curves_left_out"]
  if args.json:
    print(json.dumps(public))
    if left_out:  # stdout stays one JSON object.
      print(f"note: training curves left out: {left_out}", file=sys.stderr)
    return 0
  recorded = public["recorded_test_accuracy"]
  print(f"checkpoint {path} (step {public['step']}); MNIST from {public['data_dir']}")
  print(f"test accuracy {public['test_accuracy']:.4f} on {public['test_examples']} images "
        f"({public['errors']} wrong); recorded at training: "
        + (f"{recorded:.4f}" if isinstance(recorded, float) else "n/a"))
  raw = public["uncalibrated"]
  print(f"calibration: temperature {public['temperature']:g} ("
        + (f"fitted on {public['calibration_fitted_on']}" if public["calibration_fitted_on"]
           else "not calibrated") + f"); ECE {public['ece']:.4f} ({calibration.BINS} bins), "
        f"NLL {public['nll']:.4f}; at temperature 1: ECE {raw['ece']:.4f}, NLL {raw['nll']:.4f}")
  print("per digit: " + "  ".join(f"{d}: {a:.4f}" for d, a in public["per_class_accuracy"].items()))
  if not public["data_matches_training"]:
    print("note: these MNIST files differ from the ones the model was trained on")
  if written is not None:
    print(f"report written to {args.report}: " + ", ".join(p.name for p in written["files"]))
  if left_out:
    print(f"note: training curves left out: {left_out}")
  return 0


def _write_report(directory: str, result: dict[str, Any],
                  checkpoint_path: pathlib.Path) -> dict[str, Any]:
  from mnist_flax import report  # matplotlib: loaded only when a report is asked for
  try:
    return report.write_report(directory, result, metrics_path=report.metrics_of(checkpoint_path))
  except OSError as e:
    raise errors.WorkdirError(f"cannot write the report to {directory}: "
                              f"{e.strerror or e}") from None


def main(argv: Sequence[str] | None = None) -> int:
  return errors.run_command(PROG, lambda: run(_parser().parse_args(argv)))


if __name__ == "__main__":
  errors.leave(main())
