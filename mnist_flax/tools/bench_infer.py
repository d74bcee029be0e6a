"""The reading sections of ``python -m mnist_flax.tools.benchmark``: predict, infer_cold, infer_dir.

    python -m mnist_flax.tools.benchmark --only predict,infer_cold,infer_dir --table

* ``predict``: ``model.predict`` in this process, latency at batch 1 and images/s at batch 1024
  (the shipped checkpoint, else the ``--config`` model freshly initialised: latency depends on
  the architecture, not the weights).
* ``infer_cold``: ``python -m mnist_flax.infer --i test/3.jpg`` in fresh processes.
* ``infer_dir``: one ``infer`` process over a folder drawn by ``mnist_flax.tools.samples``, and
  the decode + preprocessing time per image measured here.

The infer commands read the shipped ``checkpoints/final``; without one, ``checkpoint_args``
trains a stand-in with configs/test.py once (in this process under ``--quick``).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import statistics
import tempfile
import time
from typing import TYPE_CHECKING, Any, Sequence

from mnist_flax.tools import bench_train
from mnist_flax.tools.bench_common import (
    NO_MNIST, SHIPPED_CHECKPOINT, STAND_IN_CONFIG, Skipped, log, resolve_config, run_process,
    stats)

if TYPE_CHECKING:
  from mnist_flax.tools.benchmark import Benchmark

COLD_IMAGE = "test/3.jpg"
QUICK_STAND_IN_STEPS = 6


def predict_section(bench: Benchmark) -> dict[str, Any]:
  import jax
  import numpy as np
  from mnist_flax import config as config_lib, model, predictor
  if SHIPPED_CHECKPOINT.is_dir():
    model_config, variables, _ = predictor.load_final(SHIPPED_CHECKPOINT)
    source = f"shipped checkpoint {SHIPPED_CHECKPOINT}"
  else:
    # Latency depends on the architecture, not the weights: fresh weights measure the same.
    config = config_lib.load_config_file(resolve_config(bench.args.config))
    model_config = config.model.to_dict()
    variables = model.build(model_config).init(jax.random.key(0), np.zeros((1, 28, 28),
                                                                           np.float32))
    source = f"no shipped checkpoint: {bench.args.config} model, freshly initialised"
  net = model.build(model_config)
  variables = jax.device_put(variables)
  rng = np.random.default_rng(0)
  one = rng.random((1, 28, 28), dtype=np.float32)
  many = rng.random((1024, 28, 28), dtype=np.float32)
  # As infer calls it: a host array in, a host array out (transfers included).
  call = lambda x: np.asarray(model.predict(net, variables, x))
  for _ in range(10):
    call(one)
  latencies = []
  for _ in range(bench.plan.predict_calls):
    start = time.perf_counter()
    call(one)
    latencies.append(1000 * (time.perf_counter() - start))
  call(many)
  rates = []
  for _ in range(bench.plan.repeats):
    start = time.perf_counter()
    call(many)
    rates.append(1024 / (time.perf_counter() - start))
  return {"model_source": source, "model": model_config,
          "parameters": int(sum(np.size(x) for x in jax.tree.leaves(variables))),
          "warmup_calls": 10, "latency_ms_batch1": stats(latencies, 4),
          "images_per_second_batch1024": stats(rates, 1)}


# ----------------------------------------------------------------------------- the model read


def find_or_train_checkpoint(bench: Benchmark) -> tuple[list[str], dict[str, Any]]:
  """``--checkpoint`` arguments for infer and a note on the model used."""
  if SHIPPED_CHECKPOINT.is_dir():
    return [], {"checkpoint": str(SHIPPED_CHECKPOINT), "stand_in": False}
  if bench.data_dir is None:
    raise Skipped(f"no shipped checkpoints/final, and {NO_MNIST} to train a stand-in "
                  f"({bench.data_note})")
  workdir = bench.tmp / "stand_in"
  log(f"no shipped checkpoints/final: training a stand-in with {STAND_IN_CONFIG}")
  if bench.plan.quick:
    return _quick_stand_in(bench, workdir)
  result = run_process(bench.python_module(
      "mnist_flax.main", f"--config={STAND_IN_CONFIG}", f"--workdir={workdir}",
      f"--config.data.dir={bench.data_dir}"), timeout=1800)
  if result.returncode != 0:
    raise RuntimeError(f"training the stand-in checkpoint failed (exit {result.returncode}): "
                       f"{result.tail()}")
  summary = json.loads((workdir / "summary.json").read_text())
  final = workdir / "checkpoints" / "final"
  return ["--checkpoint", str(final)], {
      "checkpoint": str(final), "stand_in": True,
      "note": f"no shipped checkpoints/final: trained a stand-in with {STAND_IN_CONFIG}",
      "stand_in_config": STAND_IN_CONFIG,
      "stand_in_test_accuracy": summary.get("test_accuracy"),
      "stand_in_wall_seconds": round(result.wall_seconds, 3)}


def _quick_stand_in(bench: Benchmark, workdir: pathlib.Path) -> tuple[list[str], dict[str, Any]]:
  """``--quick``: a few configs/test.py steps in this process, promoted as train.py does.

  A ``main`` subprocess would cost more than all the other quick sections together.
  """
  import jax
  from mnist_flax import checkpoint, train
  start = time.perf_counter()
  t = bench_train.trainer(bench, STAND_IN_CONFIG)
  t.steps(QUICK_STAND_IN_STEPS)
  accuracy = t.evaluate()["test_accuracy"]
  final = checkpoint.promote_final(
      workdir, jax.device_get(train.variables_of(t.state)),
      {"model": t.setup.config.model.to_dict(), "step": t.step, "test_accuracy": accuracy})
  del bench.trainers[STAND_IN_CONFIG]
  return ["--checkpoint", str(final)], {
      "checkpoint": str(final), "stand_in": True,
      "note": f"no shipped checkpoints/final: trained a stand-in with {STAND_IN_CONFIG} "
              f"(quick: {QUICK_STAND_IN_STEPS} steps in the benchmark's own process)",
      "stand_in_config": STAND_IN_CONFIG, "stand_in_steps": QUICK_STAND_IN_STEPS,
      "stand_in_test_accuracy": round(accuracy, 4),
      "stand_in_wall_seconds": round(time.perf_counter() - start, 3)}


# ----------------------------------------------------------------------------- infer processes


def infer_cold_section(bench: Benchmark) -> dict[str, Any]:
  ckpt_args, note = bench.checkpoint_args()
  argv = bench.python_module("mnist_flax.infer", "--i", COLD_IMAGE, *ckpt_args)
  runs = []
  for _ in range(bench.plan.cold_runs):
    result = run_process(argv, timeout=600)
    if result.returncode != 0:
      raise RuntimeError(f"infer exited {result.returncode}: {result.tail()}")
    runs.append(result)
  return {"command": "python -m " + " ".join(argv[2:]), "runs": len(runs), **note,
          "answer": runs[0].stdout.strip(),
          "wall_seconds": stats(r.wall_seconds for r in runs),
          "peak_rss_mb": stats((r.peak_rss_mb for r in runs if r.peak_rss_mb is not None), 1)}


def sample_dir(bench: Benchmark) -> pathlib.Path:
  """The generated images, drawn once and kept for later benchmarks (same seed, same files)."""
  root = pathlib.Path(bench.args.cache_dir) if bench.args.cache_dir else (
      pathlib.Path(tempfile.gettempdir()) / "mnist_flax_bench_cache")
  folder = root / f"samples-{bench.plan.image_count}-seed0"
  done = folder / ".complete"
  if not done.exists():
    shutil.rmtree(folder, ignore_errors=True)
    log(f"drawing {bench.plan.image_count} images into {folder}")
    result = run_process(bench.python_module(
        "mnist_flax.tools.samples", str(folder), "--count", str(bench.plan.image_count),
        "--seed", "0"), timeout=1800)
    if result.returncode != 0:
      raise RuntimeError(f"mnist_flax.tools.samples exited {result.returncode}: "
                         f"{result.tail()}")
    done.write_text("")
  return folder


def infer_dir_section(bench: Benchmark) -> dict[str, Any]:
  ckpt_args, note = bench.checkpoint_args()
  folder = sample_dir(bench)
  files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
  argv = bench.python_module("mnist_flax.infer", "--i", str(folder), "--json", *ckpt_args)
  runs, answers = [], []
  for _ in range(bench.plan.seeds):
    result = run_process(argv, timeout=3600)
    # 5: some drawing had no digit the preprocessing could find, a result, not a failure.
    if result.returncode not in (0, 5):
      raise RuntimeError(f"infer exited {result.returncode}: {result.tail()}")
    runs.append(result)
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
  if len(answers) != len(files):
    raise RuntimeError(f"infer answered {len(answers)} of {len(files)} images")
  correct = sum(a.get("digit") == int(pathlib.Path(a["path"]).name[0]) for a in answers)
  walls = [r.wall_seconds for r in runs]
  pre = _preprocess_times(files)
  median_wall = statistics.median(walls)
  return {
      "command": "python -m " + " ".join(argv[2:]), "images": len(files), **note,
      "wall_seconds": stats(walls), "images_per_second": stats(len(files) / w for w in walls),
      "peak_rss_mb": stats((r.peak_rss_mb for r in runs if r.peak_rss_mb is not None), 1),
      "accuracy": round(correct / len(files), 4),
      "no_digit_found": sum(a.get("digit") is None for a in answers),
      # The split, measured in this process: decoding + preprocessing alone, per image.
      "preprocess_seconds_per_image": pre,
      "preprocess_share_of_wall": round(pre["total_seconds"] / median_wall, 4),
      "other_seconds": round(median_wall - pre["total_seconds"], 4),
      "other_is": "process start, imports, checkpoint load, prediction, output",
  }


def _preprocess_times(files: Sequence[pathlib.Path]) -> dict[str, Any]:
  from mnist_flax import errors, preprocess
  try:
    preprocess.preprocess_file(files[0])  # Untimed: the first call imports PIL's plugins.
  except errors.MnistFlaxError:
    pass
  times = []
  for path in files:
    start = time.perf_counter()
    try:
      preprocess.preprocess_file(path)
    except errors.MnistFlaxError:
      pass  # A "no digit" verdict costs its time like any answer.
    times.append(time.perf_counter() - start)
  return {"mean": round(statistics.fmean(times), 6), "median": round(statistics.median(times), 6),
          "min": round(min(times), 6), "max": round(max(times), 6), "n": len(times),
          "total_seconds": round(sum(times), 4)}
