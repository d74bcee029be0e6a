"""Never lose training: exact resume after SIGKILL, clean stops on signals, damaged checkpoints,
an atomic final, the workdir lock and the guards that refuse a run before any work.

Each test does the damage for real: it kills training subprocesses, truncates checkpoint files
and holds the lock from another process.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import ROOT, run_module

ARGS = ["--config=configs/test.py", "--config.num_iterations=60",
        "--config.checkpoint_every=10", "--config.log_every=10"]


def digest(workdir: pathlib.Path) -> str:
  """sha256 over every variable of the promoted model, in tree order."""
  from mnist_flax import predictor
  _, variables, _ = predictor.load_final(workdir / "checkpoints/final")
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(variables):
    h.update(np.asarray(leaf).tobytes())
  return h.hexdigest()


def start(workdir: pathlib.Path, mnist_dir: pathlib.Path, *extra: str) -> subprocess.Popen:
  env = dict(os.environ, MNIST_DATA_DIR=str(mnist_dir), XLA_FLAGS="")
  return subprocess.Popen([sys.executable, "-m", "mnist_flax.main", *ARGS, *extra,
                           f"--workdir={workdir}"], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(path: pathlib.Path, proc: subprocess.Popen, timeout: float = 240) -> None:
  deadline = time.monotonic() + timeout
  while not path.exists():
    assert proc.poll() is None, proc.communicate()
    assert time.monotonic() < deadline, f"{path} did not appear"
    time.sleep(0.05)


def finish(workdir: pathlib.Path, mnist_dir: pathlib.Path, *extra: str):
  return run_module("mnist_flax.main", *ARGS, *extra, f"--workdir={workdir}",
                    env={"MNIST_DATA_DIR": str(mnist_dir), "XLA_FLAGS": ""})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, mnist_dir) -> str:
  workdir = tmp_path_factory.mktemp("uninterrupted")
  result = finish(workdir, mnist_dir)
  assert result.returncode == 0, result.stderr
  return digest(workdir)


def test_resume_after_sigkill_at_random_points_is_bit_identical(uninterrupted, tmp_path, mnist_dir):
  rng = random.Random(1234)
  kills = 0
  for checkpoint_step in (10, 30, 40):
    proc = start(tmp_path, mnist_dir)
    wait_for(tmp_path / "checkpoints" / str(checkpoint_step), proc)
    time.sleep(rng.uniform(0.0, 0.6))  # Mid-step, mid-save or mid-evaluation.
    if proc.poll() is None:
      proc.kill()
      kills += 1
    proc.communicate()
  assert kills >= 2
  result = finish(tmp_path, mnist_dir)
  assert result.returncode == 0, result.stderr
  assert "resuming from checkpoint at step" in result.stdout
  assert digest(tmp_path) == uninterrupted


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_saves_the_current_step_and_resume_is_exact(signum, code, uninterrupted,
                                                           tmp_path, mnist_dir):
  proc = start(tmp_path, mnist_dir)
  wait_for(tmp_path / "checkpoints" / "20", proc)
  proc.send_signal(signum)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == code, stderr
  last = stderr.strip().splitlines()[-1]
  assert "checkpoint saved" in last and "run the same command again to resume" in last
  assert "Traceback" not in stderr
  stopped_at = int(last.split("stopped at step ")[1].split()[0])
  assert (tmp_path / "checkpoints" / str(stopped_at)).is_dir()  # Committed, not a temp dir.
  assert not list((tmp_path / "checkpoints").glob("*tmp*"))
  result = finish(tmp_path, mnist_dir)
  assert result.returncode == 0, result.stderr
  assert f"resuming from checkpoint at step {stopped_at}" in result.stdout
  assert digest(tmp_path) == uninterrupted


def test_second_sigint_exits_at_once(tmp_path, mnist_dir):
  proc = start(tmp_path, mnist_dir, "--config.num_iterations=100000")
  wait_for(tmp_path / "checkpoints" / "10", proc)
  proc.send_signal(signal.SIGINT)
  first_line = ""
  while "SIGINT received" not in first_line:  # Signals sent together would coalesce.
    first_line = proc.stderr.readline()
    assert first_line or proc.poll() is None
  proc.send_signal(signal.SIGINT)
  t0 = time.monotonic()
  _, stderr = proc.communicate(timeout=60)
  assert proc.returncode == 130
  assert time.monotonic() - t0 < 10
  assert "second interrupt" in stderr and "Traceback" not in stderr


def test_damaged_latest_checkpoint_falls_back_to_an_intact_one(tmp_path, mnist_dir):
  result = finish(tmp_path, mnist_dir, "--config.num_iterations=30")
  assert result.returncode == 0, result.stderr
  # Damage the latest step: truncate every array file, delete the metadata of one item.
  latest = tmp_path / "checkpoints" / "30"
  data_files = [f for f in (latest / "state").rglob("*") if f.is_file() and f.parent.name == "d"]
  assert data_files
  for f in data_files:
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
  # And a temp folder as a crash mid-save leaves it.
  leftover = tmp_path / "checkpoints" / "40.orbax-checkpoint-tmp-1700000000"
  (leftover / "state").mkdir(parents=True)
  (leftover / "state" / "junk").write_bytes(b"\0" * 100)
  result = finish(tmp_path, mnist_dir, "--config.num_iterations=40")
  assert result.returncode == 0, result.stderr
  assert "checkpoint 30 is damaged" in result.stdout
  assert "resuming from checkpoint at step 20" in result.stdout
  assert not leftover.exists()
  assert json.loads((tmp_path / "summary.json").read_text())["step"] == 40


def test_live_run_holds_the_lock_and_a_killed_one_does_not(tmp_path, mnist_dir):
  proc = start(tmp_path, mnist_dir, "--config.num_iterations=100000")
  wait_for(tmp_path / "checkpoints" / "10", proc)
  second = finish(tmp_path, mnist_dir)
  assert second.returncode == 7
  assert "in use by a live training run" in second.stderr and str(proc.pid) in second.stderr
  proc.kill()
  proc.communicate()
  third = finish(tmp_path, mnist_dir, "--config.num_iterations=20")
  assert third.returncode == 0, third.stderr


def test_unwritable_workdir_is_refused_at_start(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a folder")
  result = run_module("mnist_flax.main", *ARGS, f"--workdir={blocker / 'run'}", timeout=120)
  assert result.returncode == 7
  assert "is not writable" in result.stderr and len(result.stderr.splitlines()) == 1


def test_full_disk_is_refused_at_start(tmp_path, monkeypatch):
  from mnist_flax import errors, workdir
  usage = shutil.disk_usage(tmp_path)
  monkeypatch.setattr(workdir.shutil, "disk_usage",
                      lambda _: usage._replace(free=10 * 2**20))
  with pytest.raises(errors.WorkdirError, match="only 10 MiB free"):
    workdir.check_writable(tmp_path)


def test_nan_loss_stops_with_exit_8_and_saves_nothing_broken(tmp_path, mnist_dir):
  # An absurd learning rate breaks the weights at the first step, before any checkpoint.
  result = run_module("mnist_flax.main", "--config=configs/test.py", f"--workdir={tmp_path}",
                      "--config.num_iterations=60", "--config.checkpoint_every=1",
                      "--config.log_every=1", "--config.optimizer.learning_rate=1e9",
                      env={"MNIST_DATA_DIR": str(mnist_dir)})
  assert result.returncode == 8, result.stderr
  assert "training diverged at step 1" in result.stderr and "Traceback" not in result.stderr
  assert "no checkpoint had been saved yet" in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1
  assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()]
  assert not (tmp_path / "checkpoints" / "final").exists()


_DIVERGE_AFTER = """
import sys
import jax.numpy as jnp
from mnist_flax import main, train
real, good_steps = train.train_step, int(sys.argv[1])
def breaking(state, batch, key, **kwargs):  # From step good_steps + 1 on, the loss reads NaN.
  state, metrics = real(state, batch, key, **kwargs)
  if int(state.step) > good_steps:
    metrics = dict(metrics, loss=jnp.float32(jnp.nan))
  return state, metrics
train.train_step = breaking
sys.exit(main.main(["mnist_flax.main", *sys.argv[2:]]))
"""


def test_divergence_after_checkpoints_keeps_them_and_the_same_command_resumes(tmp_path,
                                                                           mnist_dir):
  """A run whose loss turns NaN at step 7, after a checkpoint at step 4: exit 8 naming the kept
  step, nothing newer or broken written, no final; the same command, once the cause is gone,
  carries on from step 4."""
  args = ["--config=configs/test.py", "--config.num_iterations=12",
          "--config.checkpoint_every=4", "--config.log_every=1", f"--workdir={tmp_path}"]
  env = dict(os.environ, MNIST_DATA_DIR=str(mnist_dir), XLA_FLAGS="")
  result = subprocess.run([sys.executable, "-c", _DIVERGE_AFTER, "6", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 8, result.stderr
  assert "Traceback" not in result.stderr
  assert "training diverged at step 7" in result.stderr
  assert "the last good checkpoint (step 4) is kept" in result.stderr
  checkpoints = tmp_path / "checkpoints"
  assert sorted(p.name for p in checkpoints.iterdir() if p.name[0].isdigit()) == ["4"]
  assert not (checkpoints / "final").exists()
  resumed = run_module("mnist_flax.main", *args, env={"MNIST_DATA_DIR": str(mnist_dir),
                                                       "XLA_FLAGS": ""})
  assert resumed.returncode == 0, resumed.stderr
  assert "resuming from checkpoint at step 4" in resumed.stdout + resumed.stderr
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["step"] == 12 and summary["steps_this_run"] == 8
