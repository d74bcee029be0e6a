"""Tests of ``python -m mnist_flax.tools.benchmark``: the quick run's JSON, its table, the peer
ratios.

One ``--quick`` run with real MNIST and a fake peer (an executable the test writes that prints
the peer's JSON line) serves most tests; a second run without MNIST checks that the sections
needing it say why they were skipped. Only sanity is asserted, never speed: the machine may
be shared.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import subprocess
import sys
from typing import Any, Iterator

import pytest

from conftest import run_module
from mnist_flax.tools import benchmark

SECTIONS = ("train", "eval", "predict", "infer_cold", "infer_dir", "read", "serve", "speedrun",
            "peer", "memory")
HEADLINES = ("train images/s [default]", "train compile s [default]",
             "train images/s [speedrun]", "eval images/s [default]",
             "predict latency ms [batch 1]", "predict images/s [batch 1024]",
             "cold infer wall s", "infer dir images/s", "preprocess ms/image",
             "speedrun wall s (whole process)", "speedrun test accuracy", "peer wall s",
             "peak RSS MiB [training]", "peak RSS MiB [cold infer]", "ratio jax/peer wall s",
             "ratio jax/peer train s", "ratio jax/peer images/s")
# What the fake peer reports for seed S: distinct per seed, so a mix-up would show.
FAKE_TRAIN_SECONDS, FAKE_RATE, FAKE_ACCURACY = 2.0, 7000, 0.9875


def _fake_peer(folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
  """A stand-in "Python with torch": called as ``PYTHON SCRIPT DATA_DIR 1 SEED``."""
  python = folder / "fake_python"
  python.write_text(
      f"#!{sys.executable}\n"
      "import json, sys\n"
      "script, data_dir, epochs, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])\n"
      "assert script.endswith('torch_fast_mnist.py') and epochs == '1', sys.argv\n"
      "print('noise before the JSON line')\n"
      f"print(json.dumps({{'framework': 'pytorch', 'torch': 'fake', 'threads': 2, 'epochs': 1, "
      f"'train_seconds': {FAKE_TRAIN_SECONDS} + seed, 'images_per_second': {FAKE_RATE} - seed, "
      f"'test_accuracy': {FAKE_ACCURACY}, 'wall_seconds': 3.0}}))\n")
  python.chmod(0o755)
  script = folder / "torch_fast_mnist.py"
  script.write_text("# the fake Python ignores its script\n")
  return python, script


@pytest.fixture(scope="module")
def quick(mnist_dir: pathlib.Path,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
  """(JSON written with --out, table printed on stdout) of one quick run."""
  tmp = tmp_path_factory.mktemp("benchmark")
  python, script = _fake_peer(tmp)
  out = tmp / "bench.json"
  result = run_module("mnist_flax.tools.benchmark", "--quick", "--table", "--out", str(out),
                      "--data-dir", str(mnist_dir), "--peer", str(python),
                      "--peer-script", str(script), "--cache-dir", str(tmp / "cache"))
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(out.read_text()), result.stdout


def _stats_entries(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
  """Every measured-figure dict ({median, min, max, n, samples}) in the report."""
  if isinstance(node, dict):
    if {"median", "min", "max", "n", "samples"} <= node.keys():
      yield where, node
    for key, value in node.items():
      yield from _stats_entries(value, f"{where}.{key}")
  elif isinstance(node, list):
    for i, value in enumerate(node):
      yield from _stats_entries(value, f"{where}[{i}]")


def test_quick_report_has_every_section_and_the_machine(quick: tuple[dict[str, Any], str]) -> None:
  report, _ = quick
  assert report["schema"] == benchmark.SCHEMA and report["quick"] is True
  assert {"machine", "plan", "data_dir", "total_seconds", *SECTIONS} <= report.keys()
  for name in SECTIONS:
    assert report[name]["status"] == "ok", (name, report[name])
  machine = report["machine"]
  assert machine["cpu_count"] >= 1 and machine["cpus_usable"] >= 1
  assert machine["cpu_model"] and machine["memory_total_gib"] > 0 and machine["date"]
  assert all(machine["versions"][k] for k in ("python", "jax", "jaxlib", "flax", "optax"))
  assert set(report["train"]["configs"]) == {"default", "speedrun"}
  assert set(report["eval"]["configs"]) == {"default", "speedrun"}


def test_quick_figures_are_sane(quick: tuple[dict[str, Any], str]) -> None:
  report, _ = quick
  found = list(_stats_entries(report))
  assert len(found) > 15
  for where, entry in found:
    samples = entry["samples"]
    assert entry["n"] == len(samples) >= 1, where
    assert all(s > 0 for s in samples), where
    assert entry["min"] == min(samples) and entry["max"] == max(samples), where
    assert entry["min"] <= entry["median"] <= entry["max"], where
    assert entry["median"] == pytest.approx(statistics.median(samples), rel=1e-3), where
  for config in report["train"]["configs"].values():
    assert config["compile_seconds"] >= 0 and config["first_step_seconds"] > 0
    assert config["images_per_second"]["n"] == report["plan"]["repeats"]
  accuracies = [*report["speedrun"]["test_accuracy"]["samples"],
                *report["peer"]["test_accuracy"]["samples"], report["infer_dir"]["accuracy"]]
  if report["infer_cold"]["stand_in"]:
    accuracies.append(report["infer_cold"]["stand_in_test_accuracy"])
  assert all(0.0 <= a <= 1.0 for a in accuracies)
  assert "The recognized result is" in report["infer_cold"]["answer"]
  assert report["infer_dir"]["images"] == report["plan"]["image_count"]
  assert report["infer_dir"]["preprocess_seconds_per_image"]["median"] > 0
  memory = report["memory"]
  assert memory["train_peak_rss_mb"]["median"] > 50  # A JAX process, not the wrapper's floor.
  assert memory["infer_cold_peak_rss_mb"]["median"] > 50


def test_table_shows_the_headline_rows(quick: tuple[dict[str, Any], str]) -> None:
  _, text = quick
  assert text.startswith("mnist_flax benchmark (quick)")
  for row in HEADLINES:
    assert row in text, row
  assert "accuracy side by side" in text


def test_peer_runs_interleaved_and_ratios_are_jax_over_peer(
    quick: tuple[dict[str, Any], str]) -> None:
  report, _ = quick
  jax_entry, peer = report["speedrun"], report["peer"]
  assert peer["interleaved"] is True and peer["torch"] == "fake"
  assert [r["seed"] for r in peer["runs"]] == [r["seed"] for r in jax_entry["runs"]]
  seeds = [r["seed"] for r in peer["runs"]]
  assert peer["train_seconds"]["samples"] == [FAKE_TRAIN_SECONDS + s for s in seeds]
  ratios = peer["ratios"]
  median = lambda entry, key: entry[key]["median"]
  assert ratios["wall_seconds"] == pytest.approx(
      median(jax_entry, "wall_seconds") / median(peer, "wall_seconds"), rel=1e-3, abs=1e-4)
  assert ratios["train_seconds"] == pytest.approx(
      median(jax_entry, "train_seconds") / statistics.median(FAKE_TRAIN_SECONDS + s
                                                             for s in seeds), rel=1e-3, abs=1e-4)
  assert ratios["images_per_second"] == pytest.approx(
      median(jax_entry, "images_per_second") / statistics.median(FAKE_RATE - s for s in seeds),
      rel=1e-3, abs=1e-4)  # Ratios are rounded to 4 decimals.
  assert ratios["test_accuracy"] == {"jax": median(jax_entry, "test_accuracy"),
                                     "peer": FAKE_ACCURACY}
  assert [p["seed"] for p in ratios["per_seed"]] == seeds


def test_without_mnist_the_sections_needing_it_say_why(tmp_path: pathlib.Path) -> None:
  python, script = _fake_peer(tmp_path)
  # infer sections left out: with a shipped checkpoint they would run (correctly) and cost time.
  result = run_module("mnist_flax.tools.benchmark", "--quick", "--skip", "infer_cold,infer_dir",
                      "--peer", str(python), "--peer-script", str(script),
                      env={"MNIST_DATA_DIR": ""})
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout)
  assert report["data_dir"] is None
  for name in ("train", "eval", "speedrun", "peer"):
    assert report[name]["status"] == "skipped", name
    assert "MNIST not available" in report[name]["reason"], name
  assert report["infer_cold"] == {"status": "skipped", "reason": "--skip"}
  assert report["predict"]["status"] == "ok"
  assert report["predict"]["latency_ms_batch1"]["median"] > 0
  assert report["machine"]["versions"]["jax"]


def test_a_failing_section_is_recorded_and_nothing_run_exits_1(
    capsys: pytest.CaptureFixture[str]) -> None:
  args = benchmark._parser().parse_args(["--quick"])
  args.skip = set()
  bench = benchmark.Benchmark(args, benchmark.Plan.make(True, None, None, None))
  try:
    entry = bench.run_section("predict", lambda: 1 / 0)
  finally:
    bench.close()
  assert entry["status"] == "error" and entry["error"].startswith("ZeroDivisionError")
  code = benchmark.main(["--quick", "--data-dir", "/nonexistent", "--skip", ",".join(SECTIONS)])
  assert code == 1
  report = json.loads(capsys.readouterr().out)
  assert all(report[name]["status"] == "skipped" for name in SECTIONS)


def test_bad_command_line_exits_2() -> None:
  for argv in (["--skip", "nonsense"], ["--config", "configs/missing.py"], ["--repeats", "0"]):
    result = subprocess.run([sys.executable, "-m", "mnist_flax.tools.benchmark", *argv],
                            cwd=benchmark.PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 2, (argv, result.stderr)
