"""What a training run shows and records while it runs: progress, TensorBoard, metrics.jsonl.

    log = run_log.RunLog(workdir, total_steps=config.num_iterations, config=config_dict)
    log.start(first_step)                       # after restoring, before the first step
    log.step(step)                              # after every step: cheap
    log.train(step, {"loss": ..., "accuracy": ..., "learning_rate": ..., "images_per_second": ...})
    log.evaluation(step, {"test_loss": ..., "test_accuracy": ...})
    log.note("checkpoint saved at step 1000")   # events worth a line
    log.close()

What it shows:

* stdout is a terminal: one tqdm progress bar (step/total, time elapsed<left, loss, accuracy,
  test accuracy, images/s) that starts at the resumed step; the log lines, evaluations and
  checkpoint saves are printed above it with ``tqdm.write`` so they never break it, and the
  bar says "eval" while the run pauses to evaluate and save. The bar is fitted to the
  terminal's width (``shutil.get_terminal_size``, so ``COLUMNS`` counts), re-read at every log
  line: on 80 columns every field shows; on a narrower one the bar keeps a few cells and the
  fields go in the order images/s, accuracy, loss (test accuracy goes last).
* otherwise (CI, a file, a cluster log): the same plain lines at the log interval, no bar, each
  train line ending with the time elapsed in this process, the time left and their sum, the
  whole run's expected time (``elapsed 00:52  left 01:04  total 01:56``); "left" is this
  process's average pace (evaluations included) over the steps still to run.

What it writes, in ``workdir``:

* ``tensorboard/``: TensorBoard event files (``tensorboard --logdir <workdir>/tensorboard``):
  ``train/loss``, ``train/accuracy``, ``train/learning_rate``, ``train/images_per_second`` at
  the log interval, ``test/loss`` and ``test/accuracy`` at each evaluation, the config as
  hyperparameters (HPARAMS tab) and as a ``config`` text table (TEXT tab).
* ``metrics.jsonl``: one JSON object per line for scripts,
  ``{"step": 100, "kind": "train", "loss": ..., "accuracy": ..., ..., "time": <unix seconds>}``
  or ``{"step": 100, "kind": "eval", "test_loss": ..., "test_accuracy": ..., "time": ...}``.

A resumed run continues both without repeating steps: ``start(first_step)`` drops every record
after ``first_step`` from ``metrics.jsonl`` and from the existing event files (both rewritten
atomically; the steps after the checkpoint are about to be trained again), and opens a fresh
event file with ``purge_step`` for readers that know how to purge.

Only process 0 shows or writes anything; the other processes get a silent log (``enabled``).

Why tensorboardX for the event files: it is the maintained, widely used TensorBoard writer that
needs no TensorFlow (pure Python: numpy, protobuf and its own copy of the protos), writes on a
background thread so the training loop does not wait on disk, has ``purge_step`` for resumed
runs and builds the HParams plugin's summaries. The ``tensorboard`` package's own TF-free
writer is internal API and drags in the server (grpcio, werkzeug, ...) at training time.
tensorboardX is imported only when a log is enabled, so ``import mnist_flax.train`` stays light.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import pathlib
import shutil
import struct
import sys
import time
from typing import IO, Any, Mapping

TENSORBOARD_DIR = "tensorboard"
METRICS_FILE = "metrics.jsonl"

# Prefixes of the scalar tags in TensorBoard, so train and test curves group in two cards.
_TRAIN_TAGS = {"loss": "train/loss", "accuracy": "train/accuracy",
               "learning_rate": "train/learning_rate",
               "images_per_second": "train/images_per_second"}
_EVAL_TAGS = {"test_loss": "test/loss", "test_accuracy": "test/accuracy"}
# TFRecord framing of event files: uint64 length, uint32 CRC of it, data, uint32 CRC of data.
_RECORD_HEADER = struct.Struct("<QI")
# The bar: no percentage and no step/s (n/total and images/s say as much), so that on 80
# columns every field fits next to a bar of a few cells.
_BAR_FORMAT = "{desc}|{bar}| {n_fmt}/{total_fmt} {elapsed}<{remaining}{postfix}"
_MIN_BAR = 2  # With 2, a 10,000-step run (configs/shipped.py) shows every field at 80 columns.
_FALLBACK_SIZE = (100, 24)  # a terminal that reports no size (a bare pty, `docker run -t`)
# The bar's fields in the order shown, and in the order they go when the terminal is narrow.
_SHOWN = ("loss", "accuracy", "test", "rate")
_DROPPED_FIRST = ("rate", "accuracy", "loss", "test")
_FILE_COUNTER = itertools.count()


def _is_terminal(stream: IO[str]) -> bool:
  """Whether a progress bar can redraw itself on ``stream`` (a real, non-dumb terminal)."""
  try:
    return stream.isatty() and os.environ.get("TERM", "") != "dumb"
  except (AttributeError, ValueError):  # Closed or replaced streams (pytest capture, pipes).
    return False


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """``{"model": {"dense": 32}}`` -> ``{"model.dense": 32}``; the form HParams can show."""
  flat: dict[str, Any] = {}
  for key, value in config.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping):
      flat.update(_flatten(value, f"{name}."))
    else:
      flat[name] = value
  return flat


def _hparam_value(value: Any) -> bool | int | float | str:
  """HParams takes only bool, number and string; lists and None become their text."""
  if isinstance(value, (bool, str)):
    return value
  if isinstance(value, (int, float)) and math.isfinite(value):
    return value
  return json.dumps(value)


def truncate_metrics(path: pathlib.Path, last_step: int) -> None:
  """Keeps only the records of ``path`` with step <= ``last_step`` (atomic rewrite).

  A torn last line (a run killed mid-write) is dropped too, and so is a line that is not UTF-8
  JSON (damage); the file is left untouched when nothing needs dropping, so a fresh run's
  start costs one read.
  """
  if not path.exists():
    return
  kept, dropped = [], False
  for raw in path.read_bytes().splitlines():
    try:
      line = raw.decode("utf-8")
      record = json.loads(line)
      keep = int(record["step"]) <= last_step
    except (ValueError, KeyError, TypeError):
      keep = False
    if keep:
      kept.append(line + "\n")
    else:
      dropped = True
  if dropped:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(kept))
    os.replace(tmp, path)


def truncate_event_file(path: pathlib.Path, last_step: int) -> None:
  """Drops the events after ``last_step`` from one event file (atomic rewrite of the records).

  Records are copied byte for byte (checksums included); a torn last record is dropped. Done
  on resume so that every TensorBoard reader, including the fast Rust data server that does not
  honour ``purge_step``, sees each step once.
  """
  from tensorboardX.proto import event_pb2
  raw = path.read_bytes()
  kept, offset, dropped = [], 0, False
  while offset + _RECORD_HEADER.size <= len(raw):
    length, _ = _RECORD_HEADER.unpack_from(raw, offset)
    end = offset + _RECORD_HEADER.size + length + 4
    if end > len(raw):
      break
    data = raw[offset + _RECORD_HEADER.size:end - 4]
    try:
      keep = event_pb2.Event.FromString(data).step <= last_step
    except Exception:  # A damaged record: protobuf raises its own DecodeError.
      keep = False
    if keep:
      kept.append(raw[offset:end])
    else:
      dropped = True
    offset = end
  if dropped or offset != len(raw):
    # The temporary name lacks "tfevents" so a live TensorBoard never reads it half-written.
    tmp = path.with_name(f".rewrite-{os.getpid()}.tmp")
    tmp.write_bytes(b"".join(kept))
    os.replace(tmp, path)


class RunLog:
  """Progress on stdout (bar on a terminal, plain lines otherwise) plus TensorBoard and JSONL."""

  def __init__(self, workdir: pathlib.Path, *, total_steps: int,
               config: Mapping[str, Any] | None = None, enabled: bool = True) -> None:
    self.workdir = pathlib.Path(workdir)
    self.total_steps = total_steps
    self.config = dict(config or {})
    self.enabled = enabled
    self._stream: IO[str] = sys.stdout
    self._bar: Any = None  # tqdm.tqdm while a bar is shown
    self._writer: Any = None  # tensorboardX.SummaryWriter once started
    self._metrics: IO[str] | None = None
    self._last_step = 0
    self._first_step = 0
    self._clock = time.monotonic  # Elapsed and left in the log lines (a test sets its own).
    self._start_time = self._clock()
    self._postfix: dict[str, str] = {}
    self._session_end: Any = None  # the HParams "session ended" summary, written when done
    # The steps where train.py pauses to evaluate and save: the bar says so while it waits.
    every = self.config.get("checkpoint_every")
    self._checkpoint_every = every if isinstance(every, int) and every > 0 else 0

  # ---- what is shown -------------------------------------------------------------------------

  def _print(self, text: str) -> None:
    if not self.enabled:
      return
    if self._bar is not None:
      import tqdm
      # Prints above the bar and redraws it, so the bar stays one line at the bottom.
      tqdm.tqdm.write(text, file=self._stream)
    else:
      print(text, file=self._stream, flush=True)

  def _open_bar(self, first_step: int) -> None:
    import tqdm
    # A fixed width, re-read at each log line (_refresh_postfix): tqdm's own dynamic width
    # reads the terminal only, which a bare pty reports as 0x0 (tqdm then draws nothing), and
    # ignores COLUMNS; shutil.get_terminal_size reads both, with a fallback.
    columns, rows = shutil.get_terminal_size(_FALLBACK_SIZE)
    self._bar = tqdm.tqdm(
        total=self.total_steps, initial=first_step, desc="train", unit="step",
        file=self._stream, mininterval=0.2, smoothing=0.1, ncols=columns, nrows=rows,
        bar_format=_BAR_FORMAT)

  def _fitted_postfix(self, columns: int) -> str:
    """The fields that fit on ``columns`` beside the rest of the bar, in order of priority."""
    import tqdm
    bar = self._bar
    info = bar.format_dict
    rate = info["rate"]
    left = (bar.total - bar.n) / rate if rate else 0.0
    # A time string that grows before the next refit (59:59 -> 1:00:00) narrows the bar.
    rest = (len(f"{bar.desc}|| {bar.total}/{bar.total} <")
            + len(tqdm.tqdm.format_interval(info["elapsed"]))
            + len(tqdm.tqdm.format_interval(left)))
    room = columns - rest - _MIN_BAR - len(", ")
    fields = [key for key in _SHOWN if key in self._postfix]
    for key in _DROPPED_FIRST:
      if len(" ".join(self._postfix[k] for k in fields)) <= room:
        break
      if key in fields:
        fields.remove(key)
    return " ".join(self._postfix[k] for k in fields)

  def _refresh_postfix(self) -> None:
    if self._bar is not None:
      columns, rows = shutil.get_terminal_size(_FALLBACK_SIZE)
      self._bar.ncols, self._bar.nrows = columns, rows
      self._bar.set_postfix_str(self._fitted_postfix(columns), refresh=True)

  # ---- what is written -----------------------------------------------------------------------

  def _open_files(self, first_step: int) -> None:
    from tensorboardX import SummaryWriter
    from tensorboardX import summary as tbx_summary
    self.workdir.mkdir(parents=True, exist_ok=True)
    metrics_path = self.workdir / METRICS_FILE
    truncate_metrics(metrics_path, first_step)
    self._metrics = open(metrics_path, "a", buffering=1)  # line-buffered: scripts can tail it
    tb_dir = self.workdir / TENSORBOARD_DIR
    if tb_dir.is_dir():
      for path in sorted(tb_dir.glob("events.out.tfevents.*")):
        truncate_event_file(path, first_step)
    # A fresh event file per start; purge_step hides later steps from older files for readers
    # that purge (step first_step itself was logged before the checkpoint and is kept).
    # tensorboardX names files by the second and opens them with "wb": the suffix keeps a quick
    # restart (or a second log in this process) from overwriting the previous file.
    suffix = f".{os.getpid()}.{next(_FILE_COUNTER):04d}"
    self._writer = SummaryWriter(str(tb_dir), purge_step=first_step + 1 if first_step else None,
                                 flush_secs=10, filename_suffix=suffix)
    hparams = {k: _hparam_value(v) for k, v in _flatten(self.config).items()}
    if hparams:
      exp, start_info, self._session_end = tbx_summary.hparams(
          hparams, {tag: None for tag in (*_EVAL_TAGS.values(), "train/loss")})
      self._writer.file_writer.add_summary(exp, first_step)
      self._writer.file_writer.add_summary(start_info, first_step)
      table = "| field | value |\n|---|---|\n" + "\n".join(
          f"| {k} | `{json.dumps(v)}` |" for k, v in sorted(_flatten(self.config).items()))
      self._writer.add_text("config", table, first_step)

  def _record(self, step: int, kind: str, metrics: Mapping[str, float]) -> None:
    if self._metrics is not None:
      record = {"step": step, "kind": kind, **{k: float(v) for k, v in metrics.items()},
                "time": round(time.time(), 3)}
      self._metrics.write(json.dumps(record) + "\n")
    if self._writer is not None:
      tags = _TRAIN_TAGS if kind == "train" else _EVAL_TAGS
      for key, value in metrics.items():
        self._writer.add_scalar(tags.get(key, f"{kind}/{key}"), float(value), step)

  # ---- the interface train.py calls ----------------------------------------------------------

  def start(self, first_step: int) -> None:
    """Called once, after restoring: ``first_step`` is the step training continues from."""
    self._last_step = self._first_step = first_step
    self._start_time = self._clock()
    if not self.enabled:
      return
    self._open_files(first_step)
    if _is_terminal(self._stream):
      self._open_bar(first_step)

  def step(self, step: int) -> None:
    """Called after every training step; only touches the bar (tqdm redraws at most 5x/s)."""
    bar = self._bar
    last, self._last_step = self._last_step, step
    if bar is None:
      return
    bar.update(step - last)
    if self._checkpoint_every and (step % self._checkpoint_every == 0
                                   or step == self.total_steps):
      bar.set_description_str("eval", refresh=True)

  def train(self, step: int, metrics: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    line = (f"step {step}/{self.total_steps}  loss {metrics['loss']:.4f}  "
            f"train_accuracy {metrics['accuracy']:.4f}  lr {metrics['learning_rate']:.2e}  "
            f"{metrics['images_per_second']:,.0f} images/s")
    self._print(line if self._bar is not None else f"{line}  {self._times(step)}")
    self._record(step, "train", metrics)
    self._postfix["loss"] = f"loss {metrics['loss']:.4f}"
    self._postfix["accuracy"] = f"acc {metrics['accuracy']:.3f}"
    self._postfix["rate"] = f"{metrics['images_per_second']:.0f} img/s"
    self._refresh_postfix()

  def evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    self._print(f"step {step}: test_accuracy {metrics['test_accuracy']:.4f}  "
                f"test_loss {metrics['test_loss']:.4f}")
    self._record(step, "eval", metrics)
    if self._writer is not None:
      self._writer.flush()  # evaluations are rare and what people watch TensorBoard for
    self._postfix["test"] = f"test {metrics['test_accuracy']:.4f}"
    if self._bar is not None:
      self._bar.set_description_str("train", refresh=False)
    self._refresh_postfix()

  def _times(self, step: int) -> str:
    """``elapsed E  left L  total T`` for a log line: what the bar shows, for a file."""
    import tqdm
    elapsed = self._clock() - self._start_time
    done = step - self._first_step
    left = elapsed / done * (self.total_steps - step) if done > 0 else 0.0
    clock = tqdm.tqdm.format_interval
    return f"elapsed {clock(elapsed)}  left {clock(left)}  total {clock(elapsed + left)}"

  def note(self, text: str) -> None:
    self._print(text)

  def close(self) -> None:
    """Flushes and closes everything; safe to call more than once and after errors."""
    if self._bar is not None:
      if self._bar.n >= self.total_steps:
        self._bar.set_description_str("done", refresh=False)
      self._bar.close()
      self._bar = None
    if self._writer is not None:
      if self._last_step >= self.total_steps and self._session_end is not None:
        self._writer.file_writer.add_summary(self._session_end, self._last_step)
      self._writer.close()
      self._writer = None
    if self._metrics is not None:
      self._metrics.close()
      self._metrics = None
