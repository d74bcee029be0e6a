"""Honest probabilities: one temperature, fitted on held-out images, and how it is measured.

    from mnist_flax import calibration
    logits = calibration.member_logits_all(net, variables, images)      # (members, N, 10)
    t = calibration.fit_temperature(logits, labels)                     # minimises the NLL
    probs = calibration.ensemble_probs(logits, t)                       # what predict returns
    calibration.ece(probs, labels), calibration.nll(probs, labels)

Label smoothing (0.1) teaches every CNN to answer about 0.9 even where it is right 99.6% of
the time, so the raw probabilities are too modest. One number, the temperature ``T``, fixes
that without retraining: the ensemble's answer, the log of its members' mean probability
(``model.Ensemble``; a lone CNN's logits), is divided by ``T`` before the softmax
(``model.predict(..., temperature=T)``). ``T < 1`` sharpens, ``T > 1`` softens, ``T = 1`` is
the model as trained. Dividing by a positive number keeps the order of the ten classes, so
calibration never changes an answer, only its probability.

Where ``T`` applies was measured. The other natural place is each member's logits, before its
softmax and the averaging (``where="members"``). On the shipped recipe's held-out split
(10,000 images, see ``configs/shipped.py``) both reach the same calibration: ECE 0.0012 and
0.0010, NLL 0.0137 and 0.0134 (the MNIST-only recipe before it: ECE 0.0013 and 0.0010, NLL
0.01456 and 0.01446), a difference well inside its noise (that recipe's paired
bootstrap 95% interval of the NLL difference [-0.0003, +0.0006]). The ensemble's answer was
chosen for the guarantee above, which the members' logits lack: there the averaging comes
after the temperature, and on the MNIST test split it changed two answers (one right to
wrong, one wrong to right). ``python -m mnist_flax.calibrate`` prints both again.

A temperature is fitted by minimising the negative log-likelihood of the true labels (not
the ECE, whose bins make it jumpy) over ``log T``, on images the model never trained on:

* a run that holds out ``config.data.validation`` training images fits it there when its
  model is promoted (``train.py``);
* ``python -m mnist_flax.calibrate`` refits a promoted checkpoint in place, on its own held-out
  split, or on a held-out replica of its recipe (``--from``), as the shipped model's was.

The shipped model, measured (held-out rows: the replica that never saw those 10k images):

  images                                    T        accuracy   ECE (15 bins)   NLL
  held-out 10k, uncalibrated                1        99.69%     0.0934          0.1080
  held-out 10k, calibrated                  0.4657   99.69%     0.0012          0.0137
  MNIST test, uncalibrated                  1        99.65%     0.0945          0.1087
  MNIST test, calibrated (measured after)   0.4657   99.65%     0.0010          0.0113

(The previous shipped model, MNIST only: T 0.4707, held out 99.56% at ECE 0.0013, test 99.65%
at ECE 0.0012.)

What calibration cannot do: it makes probabilities honest on digits like MNIST's and sharper
everywhere, so the reader alone reads a drawn capital A as 4 with 0.997 (0.858 uncalibrated), a
smiley as 0 with 0.997. Refusing non-digits needs a model that has seen some, not a temperature:
the shipped model's gate (``mnist_flax.gate``), which these figures, the reader's, leave out.

The ECE (expected calibration error) is the usual one: answers grouped by their top
probability into 15 equal-width bins of [0, 1]; the mean over images of |accuracy - mean
confidence| of each one's bin. This module is numpy only, except ``member_logits_all``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

BINS = 15
# Where the temperature divides: the ensemble's answer (what predict does), or each member's logits.
ENSEMBLE, MEMBERS = "ensemble", "members"
APPLIES_TO = "the log of the members' mean probability (a lone CNN's logits), before the softmax"
# Searched range of T: far wider than any sane model needs (a label-smoothed MNIST CNN: ~0.3-0.6).
_LOG_T_RANGE = (math.log(0.02), math.log(50.0))


def _softmax(logits: np.ndarray) -> np.ndarray:
  z = logits - logits.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


def ensemble_probs(member_logits: np.ndarray, temperature: float = 1.0,
                   where: str = ENSEMBLE) -> np.ndarray:
  """The ensemble's probabilities (N, 10) from its members' logits (members, N, 10).

  ``where="ensemble"``: softmax(log(mean of the members' softmax) / T) (``model.predict``).
  ``where="members"``: softmax(logits / T) per member, then their mean.
  """
  logits = np.asarray(member_logits, np.float64)
  if logits.ndim == 2:
    logits = logits[None]
  if where == MEMBERS:
    return _softmax(logits / temperature).mean(axis=0)
  if where == ENSEMBLE:
    mean = _softmax(logits).mean(axis=0)
    return _softmax(np.log(np.maximum(mean, 1e-300)) / temperature)
  raise ValueError(f"where must be {MEMBERS!r} or {ENSEMBLE!r}, got {where!r}")


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
  """Mean negative log-likelihood of the true labels."""
  p = np.asarray(probs, np.float64)[np.arange(len(labels)), np.asarray(labels, np.int64)]
  return float(-np.log(np.maximum(p, 1e-300)).mean())


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
  """Expected calibration error over ``bins`` equal-width bins of the top probability.

  Bin ``b`` holds confidences in ((b / bins), (b + 1) / bins] (the first also holds 0).
  """
  probs = np.asarray(probs, np.float64)
  confidence = probs.max(axis=-1)
  correct = probs.argmax(axis=-1) == np.asarray(labels, np.int64)
  index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
  gap = np.bincount(index, weights=correct - confidence, minlength=bins)
  return float(np.abs(gap).sum() / len(confidence))


def fit_temperature(member_logits: np.ndarray, labels: np.ndarray,
                    where: str = ENSEMBLE) -> float:
  """The temperature that minimises the NLL of ``labels`` (to 4 decimals): a grid over log T,
  then a golden-section search in the best grid cell (the NLL is smooth and unimodal in
  log T)."""
  loss = lambda log_t: nll(ensemble_probs(member_logits, math.exp(log_t), where), labels)
  grid = np.linspace(*_LOG_T_RANGE, 61)
  values = [loss(x) for x in grid]
  i = int(np.argmin(values))
  lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
  ratio = (math.sqrt(5) - 1) / 2
  a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
  fa, fb = loss(a), loss(b)
  while hi - lo > 1e-5:
    if fa < fb:
      hi, b, fb = b, a, fa
      a = hi - ratio * (hi - lo)
      fa = loss(a)
    else:
      lo, a, fa = a, b, fb
      b = lo + ratio * (hi - lo)
      fb = loss(b)
  return float(round(math.exp((lo + hi) / 2), 4))


def scores(member_logits: np.ndarray, labels: np.ndarray, temperature: float,
           where: str = ENSEMBLE) -> dict[str, float]:
  """Accuracy, ECE and NLL of the ensemble at ``temperature``."""
  probs = ensemble_probs(member_logits, temperature, where)
  return {"accuracy": float((probs.argmax(-1) == labels).mean()),
          "ece": round(ece(probs, labels), 6), "nll": round(nll(probs, labels), 6)}


def calibrate(member_logits: np.ndarray, labels: np.ndarray, fitted_on: str) -> dict[str, Any]:
  """Fits the temperature on held-out ``member_logits``/``labels`` and describes the fit, as
  stored in a checkpoint's metadata under ``"calibration"``."""
  temperature = fit_temperature(member_logits, labels)
  return {
      "temperature": temperature, "applies_to": APPLIES_TO, "fitted_on": fitted_on,
      "validation_examples": int(len(labels)), "bins": BINS,
      "before": scores(member_logits, labels, 1.0),
      "after": scores(member_logits, labels, temperature),
  }


def given(temperature: float, source: str | None) -> dict[str, Any]:
  """The ``"calibration"`` metadata of a temperature fitted elsewhere (``source``), or of none
  (``source`` None: T = 1, the probabilities as trained)."""
  return {"temperature": float(temperature), "applies_to": APPLIES_TO, "fitted_on": source}


def describe(calib: Mapping[str, Any]) -> str:
  """One line for logs: the temperature, where it came from and what it did there."""
  if not calib.get("fitted_on"):
    return ("probabilities not calibrated (temperature 1): hold out a validation split "
            "(--config.data.validation=10000) or see python -m mnist_flax.calibrate")
  text = f"calibration: temperature {calib['temperature']:g} from {calib['fitted_on']}"
  if "before" in calib and "after" in calib:
    b, a = calib["before"], calib["after"]
    text += (f": ECE {b['ece']:.4f} -> {a['ece']:.4f}, NLL {b['nll']:.4f} -> {a['nll']:.4f} "
             f"on {calib['validation_examples']} images")
  return text


def temperature_of(metadata: Mapping[str, Any]) -> float:
  """The temperature a promoted checkpoint's metadata holds (1.0 when it has none: older
  checkpoints); ``CheckpointError`` (exit 3) for one that is not a finite positive number."""
  value = (metadata.get("calibration") or {}).get("temperature", 1.0)
  if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
      value) and value > 0:
    return float(value)
  from mnist_flax import errors
  raise errors.CheckpointError(f"the checkpoint's calibration temperature {value!r} is not a "
                               "finite positive number; refit it with python -m "
                               "mnist_flax.calibrate")


def member_logits_all(net: Any, variables: Any, images: np.ndarray,
                      batch_size: int = 1000) -> np.ndarray:
  """Each member's logits (members, N, 10) for uint8 images (N, 28, 28), in fixed batches."""
  from mnist_flax import model, predictor
  return predictor.in_batches(lambda x: model.member_logits(net, variables, x), images,
                              batch_size, axis=1)
