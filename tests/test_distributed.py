"""One code path for 1..N devices and processes: same data order, same parameters.

Multiple devices are forced on the CPU with XLA_FLAGS; multiple hosts are several local
processes started by launch/local.sh against a loopback coordinator (JAX's CPU collectives).
The runs differ only in the order of float summations (batch-norm statistics and gradient
all-reduces): one step agrees to ~3e-8. After ~20 steps a near-tie in a max-pool or ReLU flips
differently and training amplifies the gap, exactly as it does on one device when only the order
of examples within each batch changes. So runs are compared after 40 steps by relative L2
distance, < 1e-2 (measured 1e-4 to 4e-4; a one-example data-order bug gives ~0.1), and test
accuracy within 0.5 points. See mnist_flax/distributed.py's docstring.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import ROOT, run_module

STEPS = ["--config=configs/test.py", "--config.num_iterations=40",
         "--config.checkpoint_every=10", "--config.log_every=10"]
TOLERANCE = 1e-2


def relative_distance(a, b) -> float:
  fa = np.concatenate([np.ravel(x) for x in jax.tree.leaves(a["params"])])
  fb = np.concatenate([np.ravel(x) for x in jax.tree.leaves(b["params"])])
  return float(np.linalg.norm(fa - fb) / np.linalg.norm(fa))


def final_params(workdir: pathlib.Path) -> dict:
  from mnist_flax import predictor
  _, variables, metadata = predictor.load_final(workdir / "checkpoints/final")
  return jax.tree.map(np.asarray, variables), metadata


def max_difference(a, b) -> float:
  return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.abs(x - y).max()), a, b)))


@pytest.fixture(scope="module")
def one_device(tmp_path_factory, mnist_dir):
  workdir = tmp_path_factory.mktemp("one_device")
  result = run_module("mnist_flax.main", *STEPS, f"--workdir={workdir}",
                      env={"MNIST_DATA_DIR": str(mnist_dir), "XLA_FLAGS": ""})
  assert result.returncode == 0, result.stderr
  return final_params(workdir)


def test_four_devices_match_one_device(one_device, tmp_path, mnist_dir):
  result = run_module("mnist_flax.main", *STEPS, f"--workdir={tmp_path}", env={
      "MNIST_DATA_DIR": str(mnist_dir),
      "XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
  assert result.returncode == 0, result.stderr
  assert "on 4 device(s)" in result.stdout
  (params, meta), (reference, ref_meta) = final_params(tmp_path), one_device
  assert meta["num_devices"] == 4 and ref_meta["num_devices"] == 1
  assert relative_distance(params, reference) < TOLERANCE
  assert abs(meta["test_accuracy"] - ref_meta["test_accuracy"]) <= 5e-3


def test_batch_that_devices_do_not_divide_is_refused(tmp_path, mnist_dir):
  result = run_module("mnist_flax.main", *STEPS, "--config.batch_size=130",
                      f"--workdir={tmp_path}", env={
                          "MNIST_DATA_DIR": str(mnist_dir),
                          "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}, timeout=120)
  assert result.returncode == 2
  assert "batch_size=130 does not divide over 4 devices" in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1


def _local(n: int, workdir: pathlib.Path, mnist_dir: pathlib.Path) -> subprocess.Popen:
  import sys
  env = dict(os.environ, MNIST_DATA_DIR=str(mnist_dir), PYTHON=sys.executable, XLA_FLAGS="")
  return subprocess.Popen(["bash", "launch/local.sh", str(n), *STEPS, f"--workdir={workdir}"],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True)


def test_two_processes_killed_and_resumed_match_one_process(one_device, tmp_path, mnist_dir):
  first = _local(2, tmp_path, mnist_dir)
  deadline = time.monotonic() + 300
  while not (tmp_path / "checkpoints" / "10").is_dir():
    assert first.poll() is None, first.stdout.read()
    assert time.monotonic() < deadline, "no checkpoint within 300 s"
    time.sleep(0.2)
  os.killpg(first.pid, signal.SIGKILL)  # Every process, mid-run, without warning.
  first.wait()
  assert not (tmp_path / "checkpoints" / "final").exists()

  second = _local(2, tmp_path, mnist_dir)
  output, _ = second.communicate(timeout=300)
  assert second.returncode == 0, output
  assert "[p0] resuming from checkpoint at step" in output
  assert "on 2 device(s), 2 process(es)" not in output  # Not started over.
  params, meta = final_params(tmp_path)
  assert meta["num_processes"] == 2 and meta["step"] == 40
  assert relative_distance(params, one_device[0]) < TOLERANCE
  assert abs(meta["test_accuracy"] - one_device[1]["test_accuracy"]) <= 5e-3


SAME_PROCESS = '''
import sys
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from mnist_flax import config, data, distributed, train
cfg = config.load_config_file("configs/test.py")
cfg.num_iterations = 40  # The schedule of the 40-step runs above: peak learning rate at step 8.
mnist = data.load(sys.argv[1])

def final_params(devices, translate=0, reverse=False, swap=False):
  mesh = Mesh(np.array(devices), ("data",))
  state = jax.jit(lambda r: train.create_train_state(r, cfg),
                  out_shardings=NamedSharding(mesh, P()))(jax.random.key(0))
  images = distributed.replicate(mnist.train_images, mesh)
  labels = distributed.replicate(mnist.train_labels, mesh)
  order = train.epoch_permutation(jax.random.key(1), 60000, 0)
  if swap:  # A data-order bug: one example of the first batch traded with one of the second.
    order = order.at[jnp.array([0, 128])].set(order[jnp.array([128, 0])])
  for step in range(40):
    batch = train.draw_batch(images, labels, order, step * 128, batch_size=128,
                             sharding=distributed.batch_sharding(mesh))
    if reverse:  # The same examples, summed in another order: the same step mathematically.
      batch = jax.tree.map(lambda x: x[::-1], batch)
    state, _ = train.train_step(state, batch, jax.random.fold_in(jax.random.key(2), step),
                                translate=translate, label_smoothing=0.1)
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.device_get(state.params))])

one, four = jax.devices()[:1], jax.devices()
reference, shifted = final_params(one), final_params(one, translate=2)
distance = lambda p, ref=reference: float(np.linalg.norm(p - ref) / np.linalg.norm(ref))
print("four", distance(final_params(four)))
print("four_shifted", distance(final_params(four, translate=2), shifted))
print("reordered", distance(final_params(one, reverse=True)))
print("swapped", distance(final_params(one, swap=True)))
'''


def test_device_count_changes_parameters_no_more_than_summation_order(tmp_path, mnist_dir):
  """One process, meshes of 1 and 4 devices, 40 steps: the gap is float summation order.

  Controls on one device: the same batches with their examples reversed (the same step
  mathematically, summed in another order) set the floor that float arithmetic allows; one
  example traded between two batches (a data-order bug) shows what the tolerance must catch.
  Measured relative L2: 4 devices 1e-4 (2.8e-7 with random shifts), reversed 2.3e-4, traded
  example 9.5e-2.
  """
  result = subprocess.run([sys.executable, "-c", SAME_PROCESS, str(mnist_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=dict(
                              os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4"))
  assert result.returncode == 0, result.stderr
  d = {line.split()[0]: float(line.split()[1]) for line in result.stdout.splitlines()}
  # The device count moves the parameters no more than reordering a sum does...
  assert max(d["four"], d["four_shifted"], d["reordered"]) < TOLERANCE / 10
  # ...and the tolerance of the multi-device tests above would catch a one-example bug.
  assert d["swapped"] > 5 * TOLERANCE


def test_a_lost_peer_is_named_in_one_line(monkeypatch):
  from mnist_flax import distributed, errors
  gloo = RuntimeError("INTERNAL: Error dispatching computation: Error dispatching computation: "
                      "Gloo all-reduce failed: [pair.cc:538] Read error [127.0.0.1]:13502: "
                      "Connection reset by peer")
  coordination = RuntimeError("UNAVAILABLE: The following tasks are unhealthy (stopped sending "
                              "heartbeats): /job:jax_worker/replica:0/task:1")
  assert distributed.lost_peer(gloo) is None  # One process: never a lost peer.
  monkeypatch.setattr(distributed.jax, "process_count", lambda: 2)
  lost = distributed.lost_peer(gloo)
  assert isinstance(lost, errors.LostProcess) and lost.exit_code == 9
  assert "[127.0.0.1]:13502" in str(lost) and "Error dispatching" not in str(lost)
  assert "lost process 1 of this 2-process run" in str(distributed.lost_peer(coordination))
  assert distributed.lost_peer(ValueError("a bug")) is None
