"""The training sections of ``python -m mnist_flax.tools.benchmark``: train, eval, speedrun, peer.

    python -m mnist_flax.tools.benchmark --only train,eval --table
    python -m mnist_flax.tools.benchmark --only speedrun,peer --peer ../torchvenv/bin/python

* ``train`` and ``eval`` run in the benchmark's own process, per config, from ``train.setup``:
  the same device data, keys and ``Setup.step`` as ``python -m mnist_flax.main``, so the steps
  timed are the steps a run makes (nothing synced between them, one ``block_until_ready`` at
  the end of each repeat).
* ``speedrun`` runs ``python -m mnist_flax.main --config=configs/speedrun.py`` once per seed,
  each followed by the PyTorch peer's run of the same seed (``peer``, with ``--peer PYTHON``),
  so both sides share the machine's load; then one more speedrun with an empty compilation
  cache. The ratios are jax/peer.

Each section function takes the ``benchmark.Benchmark`` running it (for its plan, arguments,
data and temporary folder) and returns its JSON entry.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import pathlib
import shutil
import time
from typing import TYPE_CHECKING, Any

from mnist_flax.tools.bench_common import (
    NO_MNIST, SPEEDRUN_CONFIG, all_or_error, config_label, guarded, last_json_line, log,
    median_of, ratio, resolve_config, run_process, stats)

if TYPE_CHECKING:
  from mnist_flax import train
  from mnist_flax.tools.benchmark import Benchmark


@dataclasses.dataclass
class Trainer:
  """A config's run in this process: ``train.setup``'s data and keys, the state, the step."""

  setup: train.Setup
  state: train.TrainState
  step: int = 0

  def steps(self, n: int) -> dict[str, Any]:
    """Makes ``n`` updates as the training loop does, then waits once; returns the metrics."""
    import jax
    metrics = None
    for _ in range(n):
      self.state, metrics = self.setup.step(self.state, self.step)
      self.step += 1
    jax.block_until_ready((self.state, metrics))
    return metrics

  def evaluate(self) -> dict[str, float]:
    return self.setup.evaluate(self.state)


def trainer(bench: Benchmark, config_path: str) -> Trainer:
  """A fresh run of a config (cached on ``bench`` until ``release``)."""
  if config_path not in bench.trainers:
    from mnist_flax import config as config_lib, train
    bench.need_mnist()
    config = config_lib.validate(config_lib.load_config_file(resolve_config(config_path)))
    s = train.setup(config, mnist=bench.mnist(), test_images=bench.plan.eval_images)
    bench.trainers[config_path] = Trainer(s, s.init())
  return bench.trainers[config_path]


def release(bench: Benchmark) -> None:
  """Frees the in-process states and data before the subprocess sections."""
  bench.trainers.clear()
  bench.release_mnist()
  gc.collect()


# ----------------------------------------------------------------------------- in-process


def train_section(bench: Benchmark) -> dict[str, Any]:
  bench.need_mnist()
  out: dict[str, Any] = {"steps_per_repeat": bench.plan.steps, "repeats": bench.plan.repeats,
                         "configs": {}}
  for path in bench.configs:
    out["configs"][config_label(path)] = guarded(lambda: _train_one(bench, path))
  return all_or_error(out)


def _train_one(bench: Benchmark, path: str) -> dict[str, Any]:
  t = trainer(bench, path)
  config = t.setup.config
  bs = config.batch_size
  start = time.perf_counter()
  t.steps(1)  # Traces and compiles train_step, draw_batch, epoch_permutation.
  first = time.perf_counter() - start
  rates = []
  for _ in range(bench.plan.repeats):
    start = time.perf_counter()
    metrics = t.steps(bench.plan.steps)
    rates.append(bench.plan.steps * bs / (time.perf_counter() - start))
  rate = stats(rates, 1)
  return {
      "config": path, "batch_size": bs, "model": config.model.to_dict(),
      "num_devices": t.setup.mesh.size, "first_step_seconds": round(first, 4),
      # The first step minus one steady step: tracing and XLA compilation.
      "compile_seconds": round(max(first - bs / rate["median"], 0.0), 4),
      "images_per_second": rate,
      "step_ms": round(1000 * bs / rate["median"], 3),
      "final_loss": round(float(metrics["loss"]), 4),
  }


def eval_section(bench: Benchmark) -> dict[str, Any]:
  bench.need_mnist()
  out: dict[str, Any] = {"repeats": bench.plan.repeats, "configs": {}}
  for path in bench.configs:
    out["configs"][config_label(path)] = guarded(lambda: _eval_one(bench, path))
  return all_or_error(out)


def _eval_one(bench: Benchmark, path: str) -> dict[str, Any]:
  t = trainer(bench, path)
  n = t.setup.test_images.shape[0]
  start = time.perf_counter()
  t.evaluate()  # Compiles eval_step and draw_batch at the eval batch size; device_get syncs.
  first = time.perf_counter() - start
  rates = []
  for _ in range(bench.plan.repeats):
    start = time.perf_counter()
    t.evaluate()
    rates.append(n / (time.perf_counter() - start))
  return {"config": path, "images": n, "eval_batch_size": t.setup.config.eval_batch_size,
          "first_call_seconds": round(first, 4), "images_per_second": stats(rates, 1)}


# ----------------------------------------------------------------------------- subprocesses


def _wanted(bench: Benchmark) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
  """(speedrun entry, peer entry): None for a side to run, else why it does not."""
  skipped = {"status": "skipped", "reason": "--skip"}
  jax_entry = skipped if "speedrun" in bench.args.skip else None
  peer_entry = skipped if "peer" in bench.args.skip else None
  if peer_entry is None and not bench.args.peer:
    peer_entry = {"status": "skipped", "reason": "no --peer PYTHON given"}
  if bench.data_dir is None:
    no_data = {"status": "skipped", "reason": f"{NO_MNIST} ({bench.data_note})"}
    jax_entry, peer_entry = jax_entry or no_data, peer_entry or no_data
  if peer_entry is None and not pathlib.Path(bench.args.peer_script).is_file():
    peer_entry = {"status": "error", "error": f"peer script not found: {bench.args.peer_script}"}
  return jax_entry, peer_entry


def speedrun_and_peer(bench: Benchmark) -> None:
  """The speedrun seeds, each followed by the peer's run of the same seed when asked for."""
  jax_entry, peer_entry = _wanted(bench)
  want_jax, want_peer = jax_entry is None, peer_entry is None
  peer_script = pathlib.Path(bench.args.peer_script)
  start = time.perf_counter()
  jax_runs: list[dict[str, Any]] = []
  peer_runs: list[dict[str, Any]] = []
  for seed in range(bench.plan.seeds if (want_jax or want_peer) else 0):
    if want_jax:
      log(f"speedrun seed {seed} ...")
      jax_runs.append(_speedrun_once(bench, seed))
    if want_peer:
      log(f"peer seed {seed} ...")
      peer_runs.append(_peer_once(bench, peer_script, seed))
  cold_runs = []
  if want_jax:
    # The seeds above share the persistent compilation cache (warm after the first run, or
    # from earlier runs); one more run with an empty cache shows the first-ever start.
    log("speedrun seed 0 with an empty compilation cache ...")
    cold_runs.append(_speedrun_once(bench, 0, cold=True))
  seconds = round(time.perf_counter() - start, 3)
  if want_jax:
    jax_entry = _summarise_runs(jax_runs)
    jax_entry["cold_compilation_cache"] = _summarise_runs(cold_runs)
    jax_entry.update(config=SPEEDRUN_CONFIG, overrides=list(bench.plan.speedrun_overrides),
                     section_seconds=seconds)
  if want_peer:
    peer_entry = _summarise_runs(peer_runs)
    peer_entry.update(python=bench.args.peer, script=str(peer_script),
                      interleaved=want_jax, section_seconds=seconds)
    first = next((r for r in peer_runs if "torch" in r), {})
    peer_entry.update(torch=first.get("torch"), threads=first.get("threads"))
    if want_jax:
      peer_entry["ratios"] = peer_ratios(jax_entry, peer_entry)
      if bench.plan.quick:
        peer_entry["note"] = "quick: the jax runs are cut short, so the ratios mean nothing"
  bench.results["speedrun"] = jax_entry
  bench.results["peer"] = peer_entry


def _speedrun_once(bench: Benchmark, seed: int, cold: bool = False) -> dict[str, Any]:
  """One whole speedrun process; ``cold`` gives it an empty compilation cache of its own."""
  workdir = bench.tmp / f"speedrun-{seed}{'-cold' if cold else ''}"
  env = None
  if cold:
    env = dict(os.environ, MNIST_FLAX_CACHE_DIR=str(bench.tmp / f"empty-cache-{seed}"))
  try:
    result = run_process(bench.python_module(
        "mnist_flax.main", f"--config={SPEEDRUN_CONFIG}", f"--workdir={workdir}",
        f"--config.seed={seed}", f"--config.data.dir={bench.data_dir}",
        *bench.plan.speedrun_overrides), timeout=3600, env=env)
    run = {"seed": seed, "returncode": result.returncode,
           "wall_seconds": round(result.wall_seconds, 4), "peak_rss_mb": result.peak_rss_mb}
    if result.returncode != 0:
      return {**run, "error": f"exit {result.returncode}: {result.tail()}"}
    summary = json.loads((workdir / "summary.json").read_text())
    return {**run, **{k: summary.get(k) for k in (
        "test_accuracy", "train_seconds", "images_per_second", "steady_images_per_second",
        "step")}}
  except Exception as e:
    return {"seed": seed, "error": f"{type(e).__name__}: {e}"}
  finally:
    shutil.rmtree(workdir, ignore_errors=True)


def _peer_once(bench: Benchmark, script: pathlib.Path, seed: int) -> dict[str, Any]:
  try:
    result = run_process([bench.args.peer, str(script), str(bench.data_dir), "1", str(seed)],
                         timeout=3600)
    run = {"seed": seed, "returncode": result.returncode,
           "wall_seconds": round(result.wall_seconds, 4), "peak_rss_mb": result.peak_rss_mb}
    reported = last_json_line(result.stdout)
    if result.returncode != 0 or reported is None:
      return {**run, "error": f"exit {result.returncode}, no JSON line: {result.tail()}"}
    return {**run, "test_accuracy": reported.get("test_accuracy"),
            "train_seconds": reported.get("train_seconds"),
            "images_per_second": reported.get("images_per_second"),
            "reported_wall_seconds": reported.get("wall_seconds"),
            "torch": reported.get("torch"), "threads": reported.get("threads")}
  except Exception as e:
    return {"seed": seed, "error": f"{type(e).__name__}: {e}"}


def _summarise_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
  good = [r for r in runs if "error" not in r]
  entry: dict[str, Any] = {"status": "ok" if good else "error", "runs": runs}
  if not good:
    entry["error"] = "; ".join(f"seed {r['seed']}: {r['error']}" for r in runs) or "no runs"
    return entry
  for key, digits in (("wall_seconds", 4), ("train_seconds", 4), ("images_per_second", 1),
                      ("test_accuracy", 4), ("peak_rss_mb", 1)):
    entry[key] = stats((r[key] for r in good if r.get(key) is not None), digits)
  return entry


def peer_ratios(jax_entry: dict[str, Any], peer_entry: dict[str, Any]) -> dict[str, Any]:
  """jax/peer ratios of the medians (> 1: jax slower, or faster for images/s), and per seed."""
  if jax_entry.get("status") != "ok" or peer_entry.get("status") != "ok":
    return {"error": "no successful run on one side"}
  m = lambda entry, key: median_of(entry.get(key))
  per_seed = []
  peer_by_seed = {r["seed"]: r for r in peer_entry["runs"] if "error" not in r}
  for run in jax_entry["runs"]:
    other = peer_by_seed.get(run["seed"])
    if "error" not in run and other:
      per_seed.append({"seed": run["seed"],
                       "wall_seconds": ratio(run["wall_seconds"], other["wall_seconds"]),
                       "train_seconds": ratio(run.get("train_seconds"), other.get("train_seconds")),
                       "test_accuracy": [run.get("test_accuracy"), other.get("test_accuracy")]})
  return {
      "meaning": "jax / peer; above 1 means jax took longer (or, for images/s, was faster)",
      "wall_seconds": ratio(m(jax_entry, "wall_seconds"), m(peer_entry, "wall_seconds")),
      "train_seconds": ratio(m(jax_entry, "train_seconds"), m(peer_entry, "train_seconds")),
      "images_per_second": ratio(m(jax_entry, "images_per_second"),
                                 m(peer_entry, "images_per_second")),
      "test_accuracy": {"jax": m(jax_entry, "test_accuracy"),
                        "peer": m(peer_entry, "test_accuracy")},
      "per_seed": per_seed,
  }
