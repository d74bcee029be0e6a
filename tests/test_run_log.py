"""RunLog: plain lines off a terminal, a progress bar on one, TensorBoard files, metrics.jsonl.

Most tests drive ``RunLog`` directly (fast); the last one trains for real on MNIST (skipped
without ``MNIST_DATA_DIR``): a plain run, then a resume under a pseudo-terminal.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import pathlib
import pty
import re
import shutil
import subprocess
import sys
import time
from typing import Any

import pytest

from conftest import ROOT, run_module
from mnist_flax import run_log

CONFIG = {"seed": 0, "num_iterations": 60, "checkpoint_every": 20, "log_every": 10,
          "model": {"features": [8, 16], "dense": 32, "batch_norm": True},
          "data": {"dir": None}}


def drive(workdir: pathlib.Path, first: int, last: int, total: int = 60,
          stream: Any = None, **kwargs: Any) -> run_log.RunLog:
  """What train.py does from ``first`` to ``last``: log every 10, evaluate every 20."""
  log = run_log.RunLog(workdir, total_steps=total, config=CONFIG, **kwargs)
  if stream is not None:
    log._stream = stream
  log.start(first)
  for step in range(first + 1, last + 1):
    log.step(step)
    if step % 10 == 0:
      log.train(step, {"loss": 1.0 / step, "accuracy": 0.5 + step / 200,
                       "learning_rate": 1e-3, "images_per_second": 12345.0})
    if step % 20 == 0:
      log.evaluation(step, {"test_loss": 2.0 / step, "test_accuracy": 0.8 + step / 1000})
      log.note(f"checkpoint saved at step {step}")
  log.close()
  return log


def records(workdir: pathlib.Path) -> list[dict[str, Any]]:
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def accumulator(workdir: pathlib.Path):
  """TensorBoard's own reader over ``<workdir>/tensorboard`` (no TensorFlow needed)."""
  from tensorboard.backend.event_processing import event_accumulator
  acc = event_accumulator.EventAccumulator(str(workdir / "tensorboard"),
                                           size_guidance={event_accumulator.SCALARS: 0})
  acc.Reload()
  return acc


def scalar_steps(acc, tag: str) -> list[int]:
  return [event.step for event in acc.Scalars(tag)]


def test_plain_lines_off_a_terminal(tmp_path, capsys):
  drive(tmp_path, 0, 60)
  out = capsys.readouterr().out
  assert "step 10/60  loss 0.1000  train_accuracy 0.5500" in out
  assert "12,345 images/s" in out
  assert "step 20: test_accuracy 0.8200" in out and "checkpoint saved at step 60" in out
  assert "\r" not in out and "|" not in out  # no bar in a file or a CI log
  assert len(out.splitlines()) == 6 + 3 + 3


def test_log_lines_off_a_terminal_say_elapsed_left_and_total(tmp_path, capsys):
  clock = iter(range(0, 10**6, 2))  # Every reading of the clock is 2 s after the last.
  log = run_log.RunLog(tmp_path, total_steps=60, config=CONFIG)
  log._clock = lambda: float(next(clock))
  log.start(20)  # A resumed run: 40 steps to go, timed from here.
  metrics = {"loss": 0.5, "accuracy": 0.9, "learning_rate": 1e-3, "images_per_second": 100.0}
  log.train(30, metrics)  # 2 s for 10 steps: 30 left, 6 s.
  log.train(60, metrics)  # 4 s for 40 steps: done.
  log.close()
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].endswith("100 images/s  elapsed 00:02  left 00:06  total 00:08"), lines
  assert lines[1].endswith("100 images/s  elapsed 00:04  left 00:00  total 00:04"), lines


def test_event_files_hold_tags_steps_and_hparams(tmp_path):
  drive(tmp_path, 0, 60)
  # The reader must work in this TF-free environment; TensorFlow must never be installed.
  assert importlib.util.find_spec("tensorflow") is None
  acc = accumulator(tmp_path)
  for tag in ("train/loss", "train/accuracy", "train/learning_rate", "train/images_per_second"):
    assert scalar_steps(acc, tag) == [10, 20, 30, 40, 50, 60], tag
  for tag in ("test/loss", "test/accuracy"):
    assert scalar_steps(acc, tag) == [20, 40, 60], tag
  assert acc.Scalars("test/accuracy")[-1].value == pytest.approx(0.86)
  assert acc.Scalars("train/images_per_second")[0].value == pytest.approx(12345.0)
  hparams = acc.PluginTagToContent("hparams")
  assert {"_hparams_/experiment", "_hparams_/session_start_info",
          "_hparams_/session_end_info"} <= set(hparams)
  from tensorboard.plugins.hparams import plugin_data_pb2
  start = plugin_data_pb2.HParamsPluginData.FromString(
      hparams["_hparams_/session_start_info"]).session_start_info
  assert start.hparams["num_iterations"].number_value == 60
  assert start.hparams["model.features"].string_value == "[8, 16]"
  assert start.hparams["model.batch_norm"].bool_value is True
  text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
  assert "| model.dense | `32` |" in text


def test_metrics_jsonl_records(tmp_path):
  drive(tmp_path, 0, 60)
  rows = records(tmp_path)
  assert [(r["kind"], r["step"]) for r in rows][:3] == [("train", 10), ("train", 20),
                                                         ("eval", 20)]
  train = rows[0]
  assert set(train) == {"step", "kind", "loss", "accuracy", "learning_rate",
                        "images_per_second", "time"}
  assert abs(train["time"] - time.time()) < 60
  assert set(rows[2]) == {"step", "kind", "test_loss", "test_accuracy", "time"}


def test_resume_keeps_each_step_once(tmp_path):
  # A run that died at step 50 after its checkpoint at 40, with a torn last line on disk.
  drive(tmp_path, 0, 50)
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 51, "kind": "tr')
  time.sleep(1.1)  # a new second: event files of the two runs are also distinct by name
  drive(tmp_path, 40, 60)
  rows = records(tmp_path)
  keys = [(r["kind"], r["step"]) for r in rows]
  assert len(keys) == len(set(keys))
  assert sorted(s for k, s in keys if k == "train") == [10, 20, 30, 40, 50, 60]
  assert sorted(s for k, s in keys if k == "eval") == [20, 40, 60]
  assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)
  acc = accumulator(tmp_path)
  assert scalar_steps(acc, "train/loss") == [10, 20, 30, 40, 50, 60]
  assert scalar_steps(acc, "test/accuracy") == [20, 40, 60]
  # Also without relying on purge_step: the old file itself lost the steps after 40.
  files = sorted((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
  assert len(files) == 2
  from tensorboard.backend.event_processing import event_file_loader
  old_steps = [e.step for e in event_file_loader.EventFileLoader(str(files[0])).Load()
               if e.HasField("summary")]
  assert old_steps and max(old_steps) == 40


def test_resume_in_the_same_second_keeps_both_event_files(tmp_path):
  drive(tmp_path, 0, 20)
  drive(tmp_path, 20, 40)
  assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 2
  assert scalar_steps(accumulator(tmp_path), "train/loss") == [10, 20, 30, 40]


def test_disabled_log_is_silent_and_writes_nothing(tmp_path, capsys):
  drive(tmp_path / "w", 0, 60, enabled=False)
  assert capsys.readouterr().out == ""
  assert not (tmp_path / "w").exists()


class FakeTerminal(io.StringIO):
  """A stream that says it is a terminal but has no size (like a bare pty)."""

  def isatty(self) -> bool:
    return True


def test_bar_on_a_terminal_keeps_the_log_lines(tmp_path):
  stream = FakeTerminal()
  drive(tmp_path, 20, 60, stream=stream)
  out = stream.getvalue()
  assert "\r" in out and "img/s" in out
  assert re.search(r"\| 20/60 ", out), "the bar starts at the resumed step"
  assert "60/60" in out and "done|" in out and "test 0.8600" in out
  assert "eval|" in out
  # Each log line is whole on its own line, not spliced into the bar.
  lines = [part for line in out.split("\n") for part in line.split("\r")]
  assert "step 30/60  loss 0.0333  train_accuracy 0.6500  lr 1.00e-03  12,345 images/s" in lines
  assert "checkpoint saved at step 40" in lines


def _last_bar(columns: int, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path,
              total: int = 5000) -> str:
  """The bar as last drawn on a terminal ``columns`` wide, mid-run with every field known."""
  monkeypatch.setenv("COLUMNS", str(columns))
  stream = FakeTerminal()
  log = run_log.RunLog(tmp_path, total_steps=total, config=CONFIG)
  log._stream = stream
  log.start(0)
  for step in range(1, total // 2 + 1):
    log.step(step)
  log.evaluation(step, {"test_loss": 0.03, "test_accuracy": 0.9912})
  log.train(step, {"loss": 0.0456, "accuracy": 0.984, "learning_rate": 1e-3,
                   "images_per_second": 15532.0})
  bar = [f for f in re.split(r"[\r\n]", stream.getvalue()) if f.startswith("train|")][-1]
  log.close()
  return bar


def test_bar_fits_80_columns_with_every_field(tmp_path, monkeypatch):
  bar = _last_bar(80, monkeypatch, tmp_path)
  assert len(bar) <= 80, bar
  assert re.fullmatch(r"train\|[^|]{3,}\| 2500/5000 \d\d:\d\d<\d\d:\d\d, loss 0.0456 "
                      r"acc 0.984 test 0.9912 15532 img/s", bar), bar


def test_bar_on_a_narrow_terminal_keeps_the_test_accuracy_longest(tmp_path, monkeypatch):
  seen = {}
  for columns in (70, 60, 45):
    bar = _last_bar(columns, monkeypatch, tmp_path / str(columns))
    assert len(bar) <= columns and re.search(r"train\|[^|]{3,}\| 2500/5000 ", bar), bar
    seen[columns] = bar
  assert "img/s" not in seen[70] and "acc 0.984 test 0.9912" in seen[70]
  assert "acc" not in seen[60] and "loss 0.0456 test 0.9912" in seen[60]
  assert seen[45].endswith(", test 0.9912")


@pytest.mark.parametrize("terminal", [False, True])
def test_step_is_cheap(tmp_path, terminal):
  log = run_log.RunLog(tmp_path, total_steps=10**9, config=CONFIG)
  log._stream = FakeTerminal() if terminal else io.StringIO()
  log.start(0)
  n = 100_000
  t0 = time.perf_counter()
  for step in range(1, n + 1):
    log.step(step)
  per_step = (time.perf_counter() - t0) / n
  log.close()
  assert per_step < 20e-6, f"{per_step * 1e6:.1f} µs per step"


def _run_on_a_pty(args: list[str], env: dict[str, str], timeout: float = 300) -> tuple[int, str]:
  """Runs ``python args`` with stdout on a pseudo-terminal; returns (exit code, output)."""
  master, slave = pty.openpty()
  proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=slave,
                          stderr=subprocess.DEVNULL, env={**os.environ, **env})
  os.close(slave)
  chunks, deadline = [], time.monotonic() + timeout
  try:
    while time.monotonic() < deadline:
      try:
        chunk = os.read(master, 65536)
      except OSError:  # EIO: the child closed the terminal
        break
      if not chunk:
        break
      chunks.append(chunk)
  finally:
    os.close(master)
  return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_real_run_then_resume_on_a_terminal(tmp_path, mnist_dir):
  workdir = tmp_path / "work"
  flags = ["--config=configs/test.py", f"--workdir={workdir}", "--config.checkpoint_every=20",
           "--config.log_every=10"]
  env = {"MNIST_DATA_DIR": str(mnist_dir), "TERM": "xterm"}
  first = run_module("mnist_flax.main", *flags, "--config.num_iterations=40", env=env)
  assert first.returncode == 0, first.stderr
  assert "step 20/40" in first.stdout and "images/s" in first.stdout
  assert "\r" not in first.stdout  # a pipe gets plain lines
  # Make the run resume from 20, so records 30 and 40 must be dropped and written again.
  shutil.rmtree(workdir / "checkpoints" / "40")
  code, out = _run_on_a_pty(["-m", "mnist_flax.main", *flags, "--config.num_iterations=60"], env)
  assert code == 0, out
  assert "resuming from checkpoint at step 20" in out
  assert re.search(r"\| 20/60 ", out) and "60/60" in out and "img/s" in out and "\r" in out
  assert "step 30/60" in out and "final test_accuracy" in out
  rows = records(workdir)
  keys = [(r["kind"], r["step"]) for r in rows]
  assert len(keys) == len(set(keys)), keys
  assert sorted(s for k, s in keys if k == "train") == [10, 20, 30, 40, 50, 60]
  assert sorted(s for k, s in keys if k == "eval") == [20, 40, 60]
  acc = accumulator(workdir)
  assert scalar_steps(acc, "train/loss") == [10, 20, 30, 40, 50, 60]
  assert scalar_steps(acc, "test/accuracy") == [20, 40, 60]
  final = json.loads((workdir / "summary.json").read_text())
  assert acc.Scalars("test/accuracy")[-1].value == pytest.approx(final["test_accuracy"])
