"""Training on real MNIST end to end: accuracy, step checkpoints, resume, promotion of final."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import pathlib
import shutil

import numpy as np
import pytest

from conftest import run_module

STUB = '''
import os, pathlib
pathlib.Path(os.environ["TF_IMPORT_MARKER"]).write_text("imported")
raise ImportError("tensorflow must not be imported by mnist_flax")
'''


def tensorflow_tripwire(tmp: pathlib.Path) -> dict[str, str]:
  """Env that makes any `import tensorflow` leave a marker file (and fail)."""
  stub = tmp / "tf_stub" / "tensorflow"
  stub.mkdir(parents=True)
  (stub / "__init__.py").write_text(STUB)
  return {"PYTHONPATH": str(stub.parent), "TF_IMPORT_MARKER": str(tmp / "tf_imported")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_dir):
  """One run of configs/test.py (300 steps, checkpoints every 100) shared by the tests."""
  tmp = tmp_path_factory.mktemp("train")
  workdir = tmp / "work"
  env = dict(tensorflow_tripwire(tmp), MNIST_DATA_DIR=str(mnist_dir))
  result = run_module("mnist_flax.main", "--config=configs/test.py", f"--workdir={workdir}", env=env)
  assert result.returncode == 0, result.stderr
  return tmp, workdir, result


def test_short_run_reaches_97_percent_and_writes_summary(trained):
  _, workdir, result = trained
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["step"] == 300
  assert summary["test_accuracy"] >= 0.97, summary
  for key in ("test_loss", "train_seconds", "images_per_second"):
    assert summary[key] > 0
  assert "final test_accuracy" in result.stdout
  assert "images/s" in result.stdout and "step 100/300" in result.stdout


def test_checkpoints_every_k_steps_and_final(trained):
  _, workdir, _ = trained
  names = sorted(p.name for p in (workdir / "checkpoints").iterdir())
  assert names == ["100", "200", "300", "final"]


def test_tensorflow_is_never_imported(trained):
  tmp, _, _ = trained
  assert not (tmp / "tf_imported").exists()


def test_final_restores_and_reproduces_its_recorded_accuracy(trained, mnist_dir):
  from mnist_flax import data, model, predictor
  _, workdir, _ = trained
  model_config, variables, metadata = predictor.load_final(workdir / "checkpoints/final")
  mnist = data.load(mnist_dir)
  assert metadata["data_sha256"] == mnist.sha256
  assert metadata["step"] == 300 and "jax" in metadata["versions"]
  net = model.build(model_config)
  probs = np.concatenate([
      np.asarray(model.predict(net, variables, mnist.test_images[i:i + 2000] / np.float32(255)))
      for i in range(0, 10000, 2000)])
  accuracy = float((probs.argmax(-1) == mnist.test_labels).mean())
  assert accuracy == pytest.approx(metadata["test_accuracy"], abs=2e-4)


def test_resume_continues_from_the_latest_step(trained, tmp_path, mnist_dir):
  _, workdir, _ = trained
  copy = tmp_path / "work"
  shutil.copytree(workdir, copy)
  result = run_module("mnist_flax.main", "--config=configs/test.py", f"--workdir={copy}",
                      "--config.num_iterations=400", env={"MNIST_DATA_DIR": str(mnist_dir)})
  assert result.returncode == 0, result.stderr
  assert "resuming from checkpoint at step 300" in result.stdout
  assert "step 50/400" not in result.stdout and "step 350/400" in result.stdout
  assert json.loads((copy / "summary.json").read_text())["step"] == 400
  assert sorted(p.name for p in (copy / "checkpoints").iterdir()) == [
      "100", "200", "300", "400", "final"]
  again = run_module("mnist_flax.main", "--config=configs/test.py", f"--workdir={copy}",
                     "--config.num_iterations=400", env={"MNIST_DATA_DIR": str(mnist_dir)})
  assert again.returncode == 0, again.stderr
  assert "already complete at step 400" in again.stdout
  assert "a step-400 model, is left as it is" in again.stdout and "promoted to" not in again.stdout


def test_rereport_leaves_a_final_put_back_and_promotes_only_a_missing_one(
    trained, tmp_path, mnist_dir, random_checkpoint):
  from mnist_flax import checkpoint
  _, workdir, _ = trained
  copy = tmp_path / "work"
  shutil.copytree(workdir, copy)
  final = copy / "checkpoints" / "final"
  # Another model put back over the run's, as `git checkout checkpoints/final` puts the
  # shipped one back after training in the project root: with a file of the run's model left
  # in it (git restores tracked files only), so it fails its checks.
  shutil.rmtree(final)
  shutil.copytree(random_checkpoint, final)
  (final / "variables" / "d" / "left_by_the_run").write_bytes(b"run")
  files = lambda: {p.relative_to(final): p.read_bytes() for p in final.rglob("*") if p.is_file()}
  before = files()
  env = {"MNIST_DATA_DIR": str(mnist_dir)}
  again = run_module("mnist_flax.main", "--config=configs/test.py", f"--workdir={copy}", env=env)
  assert again.returncode == 0, again.stderr
  assert "run already complete at step 300; re-reporting" in again.stdout
  assert "promoted to" not in again.stdout
  assert (f"not promoted (a re-report never replaces final): {final}, which fails its checks"
          in again.stdout)
  assert files() == before
  assert json.loads((copy / "summary.json").read_text())["promoted"] is False
  # A run killed after its last checkpoint but before its promotion: the re-report promotes.
  shutil.rmtree(final)
  third = run_module("mnist_flax.main", "--config=configs/test.py", f"--workdir={copy}", env=env)
  assert third.returncode == 0, third.stderr
  assert f"model promoted to {final}" in third.stdout
  assert checkpoint.final_step(final) == 300
  assert json.loads((copy / "summary.json").read_text())["promoted"] is True


def test_resume_refuses_a_different_model(trained, tmp_path, mnist_dir):
  _, workdir, _ = trained
  copy = tmp_path / "work"
  shutil.copytree(workdir, copy)
  result = run_module("mnist_flax.main", "--config=configs/test.py", f"--workdir={copy}",
                      "--config.model.dense=48", env={"MNIST_DATA_DIR": str(mnist_dir)})
  assert result.returncode == 3
  assert "model.dense: checkpoint has 64, config has 48" in result.stderr


def test_missing_data_dir_is_a_clear_error(tmp_path):
  result = run_module("mnist_flax.main", "--config=configs/test.py", f"--workdir={tmp_path}",
                      "--config.data.dir=/nonexistent", timeout=120)
  assert result.returncode == 6
  assert "config.data.dir=/nonexistent" in result.stderr and "MNIST_DATA_DIR" in result.stderr
  assert "Traceback" not in result.stderr


LOAD_FINAL = '''
import hashlib, sys, jax, numpy as np
from mnist_flax import predictor
_, variables, meta = predictor.load_final(sys.argv[1])
digest = hashlib.sha256()
for leaf in jax.tree.leaves(variables):
  digest.update(np.asarray(leaf).tobytes())
print(len(jax.devices()), meta["num_devices"], digest.hexdigest())
'''


def test_final_written_on_two_devices_restores_on_one(tmp_path, mnist_dir):
  two = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "MNIST_DATA_DIR": str(mnist_dir)}
  result = run_module("mnist_flax.main", "--config=configs/test.py", f"--workdir={tmp_path}",
                      "--config.num_iterations=20", "--config.checkpoint_every=20", env=two)
  assert result.returncode == 0, result.stderr
  final = str(tmp_path / "checkpoints/final")
  outputs = []
  for env in ({"XLA_FLAGS": ""}, two):
    loaded = subprocess.run([sys.executable, "-c", LOAD_FINAL, final], capture_output=True,
                            text=True, env={**os.environ, **env}, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    outputs.append(loaded.stdout.split())
  (devices_1, written_on, digest_1), (devices_2, _, digest_2) = outputs
  assert (devices_1, devices_2, written_on) == ("1", "2", "2")
  assert digest_1 == digest_2  # Bit-identical whatever the device count.
