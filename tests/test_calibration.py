"""Honest probabilities: the ECE, fitting a temperature, and the temperature reaching every answer.

The stored temperature must reach ``model.predict``, the ``jax.export``ed predict the cache keeps
(under a key that changes with it) and so ``infer``'s text; ``evaluate --json`` reports the ECE;
a run holding out a validation split calibrates on it when it promotes; ``calibrate`` rewrites a
final in place and refuses to fit where there is no held-out split.
"""

from __future__ import annotations

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, run_module
from mnist_flax import cache, calibration, checkpoint, config as config_lib, errors, model, predictor


def test_ece_on_a_hand_checkable_case():
  # Four answers. Bins are 1/15 wide: 0.95 and 0.97 share bin 14 (0.933, 1], 0.55 is in bin
  # 8 (0.533, 0.6], 0.3 in bin 4 (0.267, 0.333].
  #   bin 14: right, wrong -> accuracy 0.5, confidence 0.96 -> |gap| 0.46, weight 2/4
  #   bin 8: right -> |1 - 0.55| = 0.45, weight 1/4;  bin 4: wrong -> |0 - 0.3| = 0.3, 1/4
  # ECE = 0.5 * 0.46 + 0.25 * 0.45 + 0.25 * 0.3 = 0.4175
  def row(top, p):
    r = np.full(10, (1 - p) / 9)
    r[top] = p
    return r
  probs = np.stack([row(1, 0.95), row(2, 0.97), row(3, 0.55), row(4, 0.3)])
  labels = np.array([1, 0, 3, 0])
  assert calibration.ece(probs, labels) == pytest.approx(0.4175)
  # A perfectly calibrated set: 80% right at confidence 0.8 in one bin.
  probs = np.stack([row(0, 0.8)] * 10)
  assert calibration.ece(probs, np.array([0] * 8 + [1] * 2)) == pytest.approx(0.0, abs=1e-12)
  assert calibration.nll(probs[:1], np.array([0])) == pytest.approx(-np.log(0.8))


def _miscalibrated(n: int = 20000, members: int = 3, squash: float = 0.3):
  """Labels drawn from softmax(true logits), so those probabilities are honest by construction;
  the members' logits are the true ones (plus a little noise of their own) times ``squash``,
  as label smoothing makes them: probabilities too modest, a temperature near ``squash`` cures."""
  rng = np.random.default_rng(0)
  true = rng.normal(0, 3, (n, 10))
  p = np.exp(true - true.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  labels = (p.cumsum(-1) < rng.random((n, 1))).sum(-1)
  logits = (true[None] + 0.1 * rng.normal(0, 1, (members, n, 10))) * squash
  return logits, labels


def test_fitting_a_temperature_reduces_nll_and_ece_on_a_miscalibrated_set():
  logits, labels = _miscalibrated()
  for where in (calibration.MEMBERS, calibration.ENSEMBLE):
    before = calibration.scores(logits, labels, 1.0, where)
    t = calibration.fit_temperature(logits, labels, where)
    after = calibration.scores(logits, labels, t, where)
    assert t == pytest.approx(0.3, rel=0.05)  # The squash undone.
    assert after["nll"] < before["nll"] - 0.05 and after["ece"] < before["ece"] / 4
    assert after["ece"] < 0.015
    # The fit is the minimum: nearby temperatures are no better.
    for other in (t * 0.95, t * 1.05):
      assert calibration.scores(logits, labels, other, where)["nll"] >= after["nll"]
  # An overconfident model (logits 3x the honest ones) is softened: T near 3.
  assert calibration.fit_temperature(logits / 0.3 * 3, labels) == pytest.approx(3, rel=0.05)


def test_a_checkpoint_temperature_must_be_usable():
  assert calibration.temperature_of({}) == 1.0  # Older checkpoints: as trained.
  assert calibration.temperature_of({"calibration": calibration.given(0.47, "x")}) == 0.47
  for bad in (0.0, -1.0, float("nan"), float("inf"), "0.5", None, True):
    with pytest.raises(errors.CheckpointError):
      calibration.temperature_of({"calibration": {"temperature": bad}})


def _test_model(members: int = 2):
  config = config_lib.load_config_file(ROOT / "configs/test.py")
  config.model.members = members
  net = model.build(config.model.to_dict())
  variables = jax.tree.map(np.asarray, net.init(jax.random.key(0), jnp.zeros((1, 28, 28))))
  return config.model.to_dict(), net, variables


def test_predict_applies_the_temperature_to_the_ensembles_answer_and_keeps_it():
  _, net, variables = _test_model()
  images = np.asarray(jax.random.uniform(jax.random.key(1), (64, 28, 28)))
  logits = np.asarray(model.member_logits(net, variables, images))
  assert logits.shape == (2, 64, 10)
  plain = np.asarray(model.predict(net, variables, images))
  # At T = 1 it is the ensemble as trained: the mean of its members' probabilities.
  np.testing.assert_allclose(plain, calibration.ensemble_probs(logits, 1.0, calibration.MEMBERS),
                             rtol=1e-5, atol=1e-7)
  for t in (0.3, 2.0):
    probs = np.asarray(model.predict(net, variables, images, temperature=t))
    np.testing.assert_allclose(probs, calibration.ensemble_probs(logits, t), rtol=1e-4, atol=1e-7)
    # A temperature changes how sure each answer is, never the answer.
    np.testing.assert_array_equal(probs.argmax(-1), plain.argmax(-1))
    assert (probs.max(-1) > plain.max(-1)).all() if t < 1 else (probs.max(-1) < plain.max(-1)).all()


def _promote(workdir, temperature: float | None):
  # One CNN: two random members disagree, and their mean stays near 0.5 at any temperature.
  model_config, _, variables = _test_model(members=1)
  metadata = {"model": model_config, "step": 1}
  if temperature is not None:
    metadata["calibration"] = calibration.given(temperature, "a test")
  checkpoint.promote_final(workdir, variables, metadata)
  return workdir / "checkpoints" / "final"


def test_the_stored_temperature_reaches_the_cached_export_and_infer(tmp_path, monkeypatch):
  monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
  env = {cache.ENV_VAR: str(tmp_path / "cache")}
  image = str(ROOT / "test/3.jpg")
  final = _promote(tmp_path / "work", None)  # An older checkpoint: no calibration, T = 1.
  images = np.asarray(jax.random.uniform(jax.random.key(2), (2, 28, 28)))
  model_config, net, variables = _test_model(members=1)
  plain = np.asarray(predictor.load_predict(final, 2)[0](images))
  np.testing.assert_allclose(plain, model.predict(net, variables, images), rtol=1e-6)

  def answer() -> tuple[float, str]:
    result = run_module("mnist_flax.infer", "--i", image, "--checkpoint", str(final), env=env,
                        timeout=120)
    assert result.returncode == 0, result.stderr
    p = float(re.search(r"probability is ([0-9]+\.[0-9]+)", result.stdout).group(1))
    return p, result.stdout

  p1, text1 = answer()
  # Random weights are unsure of everything, and infer says so.
  assert p1 < 0.5 and text1.strip().endswith("(unsure).")
  # Recalibrated in place through the command (promote_final): a very sharp temperature.
  result = run_module("mnist_flax.calibrate", "--checkpoint", str(final), "--temperature",
                      "0.02", env=env, timeout=120)
  assert result.returncode == 0, result.stderr
  assert predictor.load_final(final)[2]["calibration"]["temperature"] == 0.02
  sharp = np.asarray(predictor.load_predict(final, 2)[0](images))
  np.testing.assert_allclose(sharp, model.predict(net, variables, images, temperature=0.02),
                             rtol=1e-5, atol=1e-7)
  assert not np.allclose(sharp, plain)
  exports = sorted(p.name for p in (tmp_path / "cache/final").glob("*-predict-2-*.jaxexport"))
  assert len(exports) == 2 and any(f"-t{(0.02).hex()}-predict-" in name for name in exports)
  p2, text2 = answer()
  assert p2 > p1 and "(unsure)" not in text2


def test_calibrate_refuses_a_checkpoint_without_a_held_out_split(tmp_path, mnist_dir):
  final = _promote(tmp_path / "work", None)
  result = run_module("mnist_flax.calibrate", "--checkpoint", str(final),
                      env={"MNIST_DATA_DIR": str(mnist_dir)}, timeout=120)
  assert result.returncode == 2 and "holds out no validation split" in result.stderr
  assert "Traceback" not in result.stderr
  assert "calibration" not in predictor.load_final(final)[2]  # Untouched.


def test_calibrate_refuses_a_replica_of_another_recipe_or_without_a_held_out_split(tmp_path):
  model_config, _, variables = _test_model(members=1)
  recipe = {"seed": 0, "model": model_config, "data": {"dir": None, "validation": 0}}
  checkpoint.promote_final(tmp_path / "a", variables, {"model": model_config, "config": recipe})
  other = dict(recipe, seed=1, data={"dir": "/elsewhere", "validation": 10000})
  checkpoint.promote_final(tmp_path / "b", variables, {"model": model_config, "config": other})
  same = dict(recipe, data={"dir": "/elsewhere", "validation": 0})
  checkpoint.promote_final(tmp_path / "c", variables, {"model": model_config, "config": same})
  final = tmp_path / "a/checkpoints/final"
  for replica, message in (("b", "is not a replica of"), ("c", "holds out no validation split")):
    result = run_module("mnist_flax.calibrate", "--checkpoint", str(final), "--from",
                        str(tmp_path / replica / "checkpoints/final"), timeout=120)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    if replica == "b":  # Named: the seed differs; where the data is and the split may.
      assert "seed: 0 vs 1" in result.stderr and "data" not in result.stderr.split("(")[1]
  result = run_module("mnist_flax.calibrate", "--checkpoint", str(final), "--from", "x",
                      "--temperature", "0.5", timeout=120)
  assert result.returncode == 2 and "not allowed with" in result.stderr
  assert "calibration" not in predictor.load_final(final)[2]  # Untouched throughout.


def test_a_run_with_a_validation_split_is_calibrated_on_it_and_calibrate_refits(tmp_path,
                                                                                mnist_dir):
  workdir = tmp_path / "run"
  result = run_module("mnist_flax.main", "--config=configs/test.py", f"--workdir={workdir}",
                      "--config.num_iterations=100", "--config.checkpoint_every=100",
                      "--config.data.validation=5000", env={"MNIST_DATA_DIR": str(mnist_dir)})
  assert result.returncode == 0, result.stderr[-2000:]
  final = workdir / "checkpoints/final"
  calib = predictor.load_final(final)[2]["calibration"]
  assert calib["fitted_on"].startswith("the last 5000 training images, held out")
  assert calib["validation_examples"] == 5000
  assert calib["after"]["nll"] < calib["before"]["nll"] and calib["temperature"] < 1
  # evaluate --json reports the ECE at the stored temperature, below the uncalibrated one.
  result = run_module("mnist_flax.evaluate", "--checkpoint", str(final), "--json",
                      env={"MNIST_DATA_DIR": str(mnist_dir)})
  assert result.returncode == 0, result.stderr
  out = json.loads(result.stdout)
  assert out["temperature"] == calib["temperature"]
  assert out["ece"] < out["uncalibrated"]["ece"] and out["nll"] < out["uncalibrated"]["nll"]
  # calibrate refits the same temperature in place, from the same held-out images.
  checkpoint.promote_final(workdir, predictor.load_final(final)[1],
                           dict(predictor.load_final(final)[2], calibration=None))
  result = run_module("mnist_flax.calibrate", "--checkpoint", str(final), "--json",
                      env={"MNIST_DATA_DIR": str(mnist_dir)})
  assert result.returncode == 0, result.stderr
  assert predictor.load_final(final)[2]["calibration"]["temperature"] == calib["temperature"]


def test_evaluate_reports_the_shipped_models_ece(mnist_dir):
  result = run_module("mnist_flax.evaluate", "--json", env={"MNIST_DATA_DIR": str(mnist_dir)})
  assert result.returncode == 0, result.stderr
  out = json.loads(result.stdout)
  assert out["test_accuracy"] >= 0.9965
  assert out["ece"] <= 0.015 and out["ece"] < out["uncalibrated"]["ece"]
  assert "training images" in out["calibration_fitted_on"]  # Fitted, and never on test.
