"""An evaluation report with pictures: ``python -m mnist_flax.evaluate --report DIR``.

    from mnist_flax import evaluate, report
    result = evaluate.measure(checkpoint_path, data_dir)
    written = report.write_report(out_dir, result, metrics_path=report.metrics_of(checkpoint_path))

writes into ``out_dir``:

* ``confusion_matrix.png``: true digit (rows) against predicted digit (columns) with the count
  in every non-empty cell; correct predictions in blue, mistakes in red on a logarithmic scale
  so that a single confusion stands out next to the ~1000 correct ones.
* ``confusion_matrix.csv``: the same counts, for scripts.
* ``mistakes.png``: the misclassified test digits, most confident mistakes first (at most
  ``MAX_MISTAKES``), each titled ``true→predicted`` with the probability the model gave its
  wrong answer and the image's index in the test split.
* ``per_class.md``: precision, recall, F1 and support per digit, with accuracy and the macro
  and weighted averages.
* ``training_curves.png``: loss, accuracy and learning rate against the step, drawn from the
  run's ``metrics.jsonl`` (``<workdir>/metrics.jsonl`` beside ``<workdir>/checkpoints/final``)
  when there is one and it is the record of the run that wrote the checkpoint (``of_run``);
  otherwise left out, and ``write_report`` says why in one line.

matplotlib is imported here only, inside the functions that draw, and drives Agg figures
directly (no pyplot, no GUI backend), so training and inference never load it.
"""

from __future__ import annotations

import io
import json
import math
import os
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np

from mnist_flax.constants import NUM_CLASSES
from mnist_flax.run_log import METRICS_FILE

MAX_MISTAKES = 100
# What a checkpoint and its run's metrics.jsonl both record of the last evaluation.
_RUN_KEYS = ("test_accuracy", "test_loss")
# PNGs are quantized to a palette when that keeps them readable and under this size.
MAX_PNG_BYTES = 300_000


def metrics_of(checkpoint_path: pathlib.Path) -> pathlib.Path:
  """Where a run keeps its metrics: ``<workdir>/metrics.jsonl`` for ``<workdir>/checkpoints/final``."""
  return pathlib.Path(checkpoint_path).absolute().parent.parent / METRICS_FILE


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
  """Counts of (true, predicted) pairs: rows are the true digit, columns the prediction."""
  confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
  np.add.at(confusion, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
  return confusion


def per_class_scores(confusion: np.ndarray) -> list[dict[str, float]]:
  """Precision, recall, F1 and support per digit (0 where a ratio has nothing to divide)."""
  rows = []
  for d in range(len(confusion)):
    hits = float(confusion[d, d])
    support = float(confusion[d].sum())
    predicted = float(confusion[:, d].sum())
    precision = hits / predicted if predicted else 0.0
    recall = hits / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    rows.append({"precision": precision, "recall": recall, "f1": f1, "support": support})
  return rows


def per_class_markdown(confusion: np.ndarray, title: str = "Per-digit scores") -> str:
  """The ``per_class.md`` table: one row per digit, then accuracy and the two averages."""
  scores = per_class_scores(confusion)
  total = int(confusion.sum())
  accuracy = float(np.trace(confusion)) / total if total else 0.0
  lines = [f"# {title}", "",
           f"{total} test images, {total - int(np.trace(confusion))} wrong: "
           f"accuracy {accuracy:.4f}.", "",
           "| digit | precision | recall | F1 | support |",
           "|---:|---:|---:|---:|---:|"]
  for d, s in enumerate(scores):
    lines.append(f"| {d} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | "
                 f"{int(s['support'])} |")
  for name, weights in (("macro avg", np.ones(len(scores))),
                        ("weighted avg", np.array([s["support"] for s in scores]))):
    weights = weights / weights.sum() if weights.sum() else weights
    avg = {k: float(sum(w * s[k] for w, s in zip(weights, scores)))
           for k in ("precision", "recall", "f1")}
    lines.append(f"| **{name}** | {avg['precision']:.4f} | {avg['recall']:.4f} | "
                 f"{avg['f1']:.4f} | {total} |")
  lines.append(f"| **accuracy** | | | {accuracy:.4f} | {total} |")
  lines += ["", "Precision: of the images predicted as this digit, the share that are it. "
            "Recall: of the images of this digit, the share predicted as it. "
            "F1: their harmonic mean. Support: images of this digit in the test split.", ""]
  return "\n".join(lines)


def _save(fig: Any, path: pathlib.Path, dpi: int) -> None:
  """Saves ``fig`` as PNG, quantized to a palette if the full-colour file would be large."""
  from PIL import Image
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
  data = buffer.getvalue()
  if len(data) > MAX_PNG_BYTES // 2:
    # Plots use few colours: a 256-colour palette looks the same at a fraction of the size.
    image = Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=256)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    data = buffer.getvalue()
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_bytes(data)
  os.replace(tmp, path)


def plot_confusion(confusion: np.ndarray, path: pathlib.Path) -> None:
  """``confusion_matrix.png``: counts in cells, blue diagonal, log-scaled red mistakes."""
  from matplotlib.colors import LogNorm
  from matplotlib.figure import Figure
  n = len(confusion)
  total = int(confusion.sum())
  correct = int(np.trace(confusion))
  eye = np.eye(n, dtype=bool)
  off = np.ma.masked_where(eye | (confusion == 0), confusion)
  diag = np.ma.masked_where(~eye, confusion)
  fig = Figure(figsize=(6.6, 5.8))
  ax = fig.add_subplot()
  worst = max(int(off.max()) if off.count() else 1, 2)
  # vmin below 1 so that a single mistake still gets a visible tint, not near-white.
  errors_image = ax.imshow(off, cmap="Reds", norm=LogNorm(vmin=0.4, vmax=worst))
  ax.imshow(diag, cmap="Blues", vmin=0, vmax=max(int(confusion.max()), 1) * 1.6)
  for t in range(n):
    for p in range(n):
      count = int(confusion[t, p])
      if not count:
        continue
      dark = (t == p) or count > worst ** 0.6
      ax.text(p, t, str(count), ha="center", va="center", fontsize=9 if count < 1000 else 8,
              fontweight="bold" if t == p else "normal", color="white" if dark else "black")
  ax.set_xticks(range(n))
  ax.set_yticks(range(n))
  ax.set_xlabel("predicted", fontsize=12)
  ax.set_ylabel("true", fontsize=12)
  ax.xaxis.set_label_position("top")
  ax.xaxis.tick_top()
  # Thin grid lines between cells make rows and columns easy to follow.
  ax.set_xticks(np.arange(-0.5, n), minor=True)
  ax.set_yticks(np.arange(-0.5, n), minor=True)
  ax.grid(which="minor", color="#dddddd", linewidth=0.6)
  ax.tick_params(which="minor", length=0)
  ax.set_title(f"{total} test images: {correct} correct ({correct / max(total, 1):.2%}), "
               f"{total - correct} wrong", fontsize=11, pad=10, y=-0.1)
  bar = fig.colorbar(errors_image, ax=ax, fraction=0.046, pad=0.03)
  ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= worst]
  bar.set_ticks(ticks, labels=[str(t) for t in ticks])
  bar.minorticks_off()
  bar.set_label("mistakes per cell (log scale)")
  fig.tight_layout()
  _save(fig, path, dpi=100)


def mistakes(labels: np.ndarray, probabilities: np.ndarray,
             limit: int = MAX_MISTAKES) -> np.ndarray:
  """Indices of the misclassified images, most confident mistake first, at most ``limit``."""
  predicted = probabilities.argmax(-1)
  wrong = np.flatnonzero(predicted != labels)
  confidence = probabilities[wrong, predicted[wrong]]
  # Stable sort, so equal confidences keep test-split order and the picture is reproducible.
  return wrong[np.argsort(-confidence, kind="stable")][:limit]


def plot_mistakes(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                  path: pathlib.Path, limit: int = MAX_MISTAKES) -> int:
  """``mistakes.png``: the most confident mistakes first; returns how many are shown."""
  from matplotlib.figure import Figure
  predicted = probabilities.argmax(-1)
  wrong = np.flatnonzero(predicted != labels)
  shown = mistakes(labels, probabilities, limit)
  columns = 10
  rows = max(1, math.ceil(len(shown) / columns))
  heading = 0.75  # inches above the grid for the two-line explanation
  fig = Figure(figsize=(columns * 0.95, rows * 1.12 + heading))
  fig.suptitle(f"{len(shown)} of {len(wrong)} mistakes on the test split, most confident first\n"
               "above each digit: true→predicted and the probability given to the prediction; "
               "below: its index in the test split", fontsize=9, y=1 - 0.08 / fig.get_figheight(),
               va="top")
  if not len(shown):
    fig.text(0.5, 0.4, "no mistakes on the test split", ha="center", fontsize=12)
  for i, index in enumerate(shown):
    ax = fig.add_subplot(rows, columns, i + 1)
    ax.imshow(images[index], cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(f"{labels[index]}→{predicted[index]}  "
                 f"{probabilities[index, predicted[index]]:.0%}", fontsize=9, pad=2,
                 color="#b00000")
    ax.set_xlabel(f"#{index}", fontsize=7, labelpad=1, color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])
  fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=1 - heading / fig.get_figheight(),
                      wspace=0.08, hspace=0.42)
  _save(fig, path, dpi=80)
  return len(shown)


def read_metrics(path: pathlib.Path) -> list[dict[str, Any]]:
  """Records of a ``metrics.jsonl``, the last one per (kind, step), torn lines skipped."""
  records: dict[tuple[str, int], dict[str, Any]] = {}
  for line in pathlib.Path(path).read_text().splitlines():
    try:
      record = json.loads(line)
      records[(str(record["kind"]), int(record["step"]))] = record
    except (ValueError, KeyError, TypeError):
      continue
  return sorted(records.values(), key=lambda r: (int(r["step"]), str(r["kind"])))


def of_run(records: Sequence[Mapping[str, Any]], recorded: Mapping[str, Any],
           source: str | os.PathLike = METRICS_FILE) -> tuple[list[Mapping[str, Any]], str | None]:
  """The records of the run that wrote a checkpoint, up to its step, or ([], why not).

  ``recorded`` is what the checkpoint's metadata recorded: ``step``, ``test_accuracy`` and
  ``test_loss``. The metrics belong to that run when their evaluation at that step reads the
  same: another run in the same workdir (started over, another seed or config) evaluates
  differently, and drawing its curves would title them with its accuracy, not the model's.
  Records past the step (a later run stopped before it promoted a model) are not this model's.
  """
  step = recorded.get("step")
  if not isinstance(step, int) or not all(
      isinstance(recorded.get(k), (int, float)) for k in _RUN_KEYS):
    return [], f"the checkpoint records no test evaluation to match {source} against"
  at_step = [r for r in records if r.get("kind") == "eval" and int(r["step"]) == step]
  if not at_step:
    return [], (f"{source} is another run's: it has no evaluation at step {step}, the "
                "checkpoint's")
  if not all(isinstance(at_step[-1].get(k), (int, float)) and math.isclose(
      float(at_step[-1][k]), float(recorded[k]), rel_tol=1e-6, abs_tol=1e-9) for k in _RUN_KEYS):
    return [], (f"{source} is another run's: its test accuracy at step {step} is "
                f"{float(at_step[-1].get('test_accuracy', math.nan)):.4f}, the checkpoint's "
                f"{float(recorded['test_accuracy']):.4f}")
  return [r for r in records if int(r["step"]) <= step], None


def plot_training_curves(records: Sequence[Mapping[str, Any]], path: pathlib.Path) -> bool:
  """``training_curves.png``: loss (log scale), accuracy and learning rate by step.

  Returns False (and writes nothing) when there is nothing to draw.
  """
  from matplotlib.figure import Figure
  from matplotlib.ticker import FuncFormatter
  train = [r for r in records if r.get("kind") == "train"]
  test = [r for r in records if r.get("kind") == "eval"]
  if not train and not test:
    return False

  def series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pairs = [(int(r["step"]), float(r[key])) for r in rows
             if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return [s for s, _ in pairs], [v for _, v in pairs]

  fig = Figure(figsize=(13, 4))
  loss_ax, acc_ax, lr_ax = fig.subplots(1, 3)
  for ax, key, label, colour, style in (
      (loss_ax, "loss", "train (batch)", "#1f77b4", "-"),
      (loss_ax, "test_loss", "test", "#d62728", "o-"),
      (acc_ax, "accuracy", "train (batch)", "#1f77b4", "-"),
      (acc_ax, "test_accuracy", "test", "#d62728", "o-")):
    steps, values = series(train if key in ("loss", "accuracy") else test, key)
    if steps:
      ax.plot(steps, values, style, color=colour, label=label, markersize=4, linewidth=1.4)
  loss_ax.set_yscale("log")
  # Plain numbers (0.06, 0.1, 0.2) read faster than 6×10⁻² on a log axis.
  plain = FuncFormatter(lambda value, _: f"{value:g}")
  loss_ax.yaxis.set_major_formatter(plain)
  loss_ax.yaxis.set_minor_formatter(FuncFormatter(
      lambda value, _: f"{value:g}" if value > 0 and round(
          value / 10 ** math.floor(math.log10(value))) in (2, 5) else ""))
  loss_ax.set_title("loss (log scale)")
  acc_ax.set_title("accuracy")
  _zoom_accuracy(acc_ax, train, test)
  steps, rates = series(train, "learning_rate")
  if steps:
    lr_ax.plot(steps, rates, color="#2ca02c", linewidth=1.4)
  lr_ax.set_title("learning rate")
  lr_ax.yaxis.set_major_formatter(plain)
  for ax in (loss_ax, acc_ax, lr_ax):
    ax.set_xlabel("step")
    ax.grid(True, which="major", alpha=0.35)
  for ax in (loss_ax, acc_ax):
    if ax.get_legend_handles_labels()[0]:
      ax.legend(loc="best", fontsize=9)
  if test:
    last = test[-1]
    fig.suptitle(f"final test accuracy {float(last['test_accuracy']):.4f} at step "
                 f"{int(last['step'])}", fontsize=11)
  fig.tight_layout()
  _save(fig, path, dpi=80)
  return True


def _zoom_accuracy(ax: Any, train: Sequence[Mapping[str, Any]],
                   test: Sequence[Mapping[str, Any]]) -> None:
  """Sets the accuracy axis to the range after the first fifth of the run.

  The first steps sit near 10% and would squash the part worth reading (0.95-1.0) into a line.
  """
  steps = [int(r["step"]) for r in (*train, *test)]
  if not steps:
    return
  after = min(steps) + 0.2 * (max(steps) - min(steps))
  values = [float(r[k]) for rows, k in ((train, "accuracy"), (test, "test_accuracy"))
            for r in rows if int(r["step"]) >= after and isinstance(r.get(k), (int, float))
            and math.isfinite(r[k])]
  if values:
    low = min(values)
    ax.set_ylim(max(0.0, low - 0.15 * (1.0 - low) - 0.002), 1.0 + 0.05 * (1.0 - low) + 0.001)


def write_report(directory: str | os.PathLike, result: Mapping[str, Any], *,
                 metrics_path: pathlib.Path | None = None) -> dict[str, Any]:
  """Writes the report for ``evaluate.measure(...)``'s ``result`` into ``directory``.

  Returns ``{"files": [paths written], "confusion_matrix": counts drawn, "mistakes_shown": n,
  "curves_left_out": why training_curves.png is not drawn from ``metrics_path``, or None}``;
  ``result["_recorded"]`` is what the checkpoint recorded (see ``of_run``). Raises OSError when
  ``directory`` cannot be created or written.
  """
  out = pathlib.Path(directory)
  out.mkdir(parents=True, exist_ok=True)
  probabilities = np.asarray(result["_probabilities"])
  labels = np.asarray(result["_labels"], np.int64)
  images = np.asarray(result["_images"])
  confusion = confusion_matrix(labels, probabilities.argmax(-1))
  files = []

  path = out / "confusion_matrix.png"
  plot_confusion(confusion, path)
  files.append(path)
  path = out / "confusion_matrix.csv"
  path.write_text("true\\predicted," + ",".join(map(str, range(NUM_CLASSES))) + "\n" + "".join(
      f"{t}," + ",".join(str(int(c)) for c in row) + "\n" for t, row in enumerate(confusion)))
  files.append(path)
  path = out / "mistakes.png"
  shown = plot_mistakes(images, labels, probabilities, path)
  files.append(path)
  path = out / "per_class.md"
  step = result.get("step")
  title = f"Per-digit scores of {result.get('checkpoint', 'the model')}" + (
      f" (step {step})" if step is not None else "")
  path.write_text(per_class_markdown(confusion, title))
  files.append(path)
  path, left_out = out / "training_curves.png", None
  if metrics_path is not None and pathlib.Path(metrics_path).is_file():
    records, left_out = of_run(read_metrics(metrics_path), result.get("_recorded") or {},
                               metrics_path)
    if records and plot_training_curves(records, path):
      files.append(path)
  if path not in files:
    path.unlink(missing_ok=True)  # An earlier report's curves would pass for this model's.
  return {"files": files, "confusion_matrix": confusion, "mistakes_shown": shown,
          "curves_left_out": left_out}
