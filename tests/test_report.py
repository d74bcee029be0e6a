"""The evaluation report: files, valid PNGs of sensible size, scores, the confusion matrix.

Synthetic predictions for the fast tests; one short real training run plus
``python -m mnist_flax.evaluate --json --report DIR`` where MNIST is available.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, run_module
from mnist_flax import errors, evaluate, report

PNGS = ("confusion_matrix.png", "mistakes.png", "training_curves.png")


def fake_result(n: int = 2000, accuracy: float = 0.9, seed: int = 0) -> dict:
  """What ``evaluate.measure`` returns, for a made-up model that is right ``accuracy`` of the time."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, n)
  predicted = np.where(rng.random(n) < accuracy, labels, rng.integers(0, 10, n))
  probabilities = rng.random((n, 10)) * 0.1
  probabilities[np.arange(n), predicted] = rng.uniform(0.3, 1.0, n)
  probabilities /= probabilities.sum(-1, keepdims=True)
  images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
  return {"checkpoint": "fake", "step": 123, "_probabilities": probabilities,
          "_labels": labels, "_images": images, "_recorded": RECORDED,
          "confusion_matrix": report.confusion_matrix(labels, predicted).tolist()}


# What a checkpoint of the run write_metrics describes records: its last evaluation.
RECORDED = {"step": 300, "test_accuracy": 1 - 2.0 / 300, "test_loss": 3.0 / 300}


def write_metrics(path: pathlib.Path) -> None:
  rows = []
  for step in range(10, 310, 10):
    rows.append({"step": step, "kind": "train", "loss": 2.0 / step, "accuracy": 1 - 1.0 / step,
                 "learning_rate": 1e-2 * (1 - step / 300), "images_per_second": 5000.0,
                 "time": 1.0})
    if step % 100 == 0:
      rows.append({"step": step, "kind": "eval", "test_loss": 3.0 / step,
                   "test_accuracy": 1 - 2.0 / step, "time": 1.0})
  path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 31')  # torn tail


def check_png(path: pathlib.Path, min_size=(300, 250), max_size=(1600, 1600)) -> None:
  assert path.stat().st_size < 300_000, f"{path.name}: {path.stat().st_size} bytes"
  with Image.open(path) as image:
    assert image.format == "PNG"
    image.verify()
  with Image.open(path) as image:
    width, height = image.size
    assert min_size[0] <= width <= max_size[0] and min_size[1] <= height <= max_size[1], image.size
    # Not a blank canvas: a picture has both ink and background.
    extrema = image.convert("L").getextrema()
    assert extrema[0] < 100 and extrema[1] > 200, extrema


def test_report_files(tmp_path):
  result = fake_result()
  metrics = tmp_path / "metrics.jsonl"
  write_metrics(metrics)
  out = tmp_path / "report"
  written = report.write_report(out, result, metrics_path=metrics)
  names = {p.name for p in written["files"]}
  assert names == {*PNGS, "per_class.md", "confusion_matrix.csv"}
  for name in PNGS:
    check_png(out / name)
  confusion = written["confusion_matrix"]
  assert confusion.sum() == 2000 and confusion.tolist() == result["confusion_matrix"]
  csv = np.loadtxt(out / "confusion_matrix.csv", delimiter=",", skiprows=1, dtype=np.int64)
  assert (csv[:, 1:] == confusion).all() and csv[:, 0].tolist() == list(range(10))
  assert written["mistakes_shown"] == report.MAX_MISTAKES  # ~200 mistakes, capped


def test_no_training_curves_without_metrics(tmp_path):
  written = report.write_report(tmp_path, fake_result(), metrics_path=tmp_path / "absent.jsonl")
  assert "training_curves.png" not in {p.name for p in written["files"]}
  assert not (tmp_path / "training_curves.png").exists()


def test_curves_of_another_run_are_left_out_and_said(tmp_path):
  metrics = tmp_path / "metrics.jsonl"
  write_metrics(metrics)
  out = tmp_path / "report"
  out.mkdir()
  (out / "training_curves.png").write_bytes(b"an earlier report's curves")
  result = dict(fake_result(), _recorded=dict(RECORDED, test_accuracy=0.5))
  written = report.write_report(out, result, metrics_path=metrics)
  assert "training_curves.png" not in {p.name for p in written["files"]}
  assert not (out / "training_curves.png").exists()  # Not left to pass for this model's.
  assert written["curves_left_out"] == (f"{metrics} is another run's: its test accuracy at "
                                        "step 300 is 0.9933, the checkpoint's 0.5000")
  assert report.write_report(out, fake_result(), metrics_path=metrics)["curves_left_out"] is None


@pytest.mark.parametrize("recorded, why", [
    (dict(RECORDED, step=250), "no evaluation at step 250, the checkpoint's"),
    (dict(RECORDED, test_loss=RECORDED["test_loss"] * 1.001), "another run's"),
    ({"step": 0}, "the checkpoint records no test evaluation"),
])
def test_of_run_refuses_metrics_that_do_not_match(tmp_path, recorded, why):
  write_metrics(tmp_path / "metrics.jsonl")
  records, left_out = report.of_run(report.read_metrics(tmp_path / "metrics.jsonl"), recorded)
  assert records == [] and why in left_out


def test_of_run_keeps_the_run_up_to_the_checkpoint_step(tmp_path):
  write_metrics(tmp_path / "metrics.jsonl")
  records = report.read_metrics(tmp_path / "metrics.jsonl")
  at_200 = {"step": 200, "test_accuracy": 1 - 2.0 / 200, "test_loss": 3.0 / 200}
  kept, left_out = report.of_run(records, at_200)
  assert left_out is None and max(r["step"] for r in kept) == 200
  assert len(kept) == len([r for r in records if r["step"] <= 200]) < len(records)


def test_mistakes_most_confident_first_and_capped():
  result = fake_result(n=600, accuracy=0.5)
  probs, labels = result["_probabilities"], result["_labels"]
  predicted = probs.argmax(-1)
  wrong = set(np.flatnonzero(predicted != labels).tolist())
  assert len(wrong) > report.MAX_MISTAKES
  shown = report.mistakes(labels, probs)
  assert len(shown) == report.MAX_MISTAKES and set(shown.tolist()) <= wrong
  confidences = probs[shown, predicted[shown]]
  assert (np.diff(confidences) <= 0).all()
  # Nothing left out is more confident than the least confident one shown.
  rest = np.array(sorted(wrong - set(shown.tolist())))
  assert probs[rest, predicted[rest]].max() <= confidences[-1]
  assert len(report.mistakes(labels, probs, limit=10_000)) == len(wrong)


def test_no_mistakes_still_draws(tmp_path):
  result = fake_result(n=50, accuracy=1.0)
  assert report.plot_mistakes(result["_images"], result["_labels"], result["_probabilities"],
                              tmp_path / "m.png") == 0
  check_png(tmp_path / "m.png", min_size=(300, 50))


def test_per_class_scores_by_hand():
  confusion = np.zeros((10, 10), np.int64)
  confusion[0, 0], confusion[0, 1] = 8, 2    # 10 zeros: 8 right, 2 called "1"
  confusion[1, 1], confusion[1, 0] = 9, 1    # 10 ones: 9 right, 1 called "0"
  scores = report.per_class_scores(confusion)
  assert scores[0]["precision"] == pytest.approx(8 / 9)
  assert scores[0]["recall"] == pytest.approx(8 / 10)
  assert scores[0]["f1"] == pytest.approx(2 * (8 / 9) * 0.8 / (8 / 9 + 0.8))
  assert scores[1]["precision"] == pytest.approx(9 / 11) and scores[1]["support"] == 10
  assert scores[5] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0.0}
  text = report.per_class_markdown(confusion)
  assert "| 0 | 0.8889 | 0.8000 | 0.8421 | 10 |" in text
  assert "**accuracy** | | | 0.8500 | 20 |" in text
  assert "macro avg" in text and "weighted avg" in text


def test_read_metrics_keeps_last_record_per_step(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 10, "kind": "train", "loss": 1}\n{"step": 10, "kind": "train", '
                  '"loss": 2}\n{"step": 10, "kind": "eval", "test_loss": 3}\nnot json\n')
  rows = report.read_metrics(path)
  assert [(r["kind"], r.get("loss")) for r in rows] == [("eval", None), ("train", 2)]


def test_unwritable_report_dir_is_a_workdir_error(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("")
  with pytest.raises(errors.WorkdirError, match="cannot write the report"):
    evaluate._write_report(str(blocker / "report"), fake_result(n=20), tmp_path / "final")


def test_training_does_not_import_matplotlib_or_tensorflow():
  code = ("import sys, mnist_flax.train, mnist_flax.infer; "
          "bad = [m for m in sys.modules if m.split('.')[0] in "
          "('matplotlib', 'tensorflow', 'tensorboard', 'tensorboardX')]; print(bad)")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       check=True).stdout
  assert out.strip() == "[]"


def test_evaluate_report_on_a_real_checkpoint(tmp_path, mnist_dir):
  workdir = tmp_path / "work"
  env = {"MNIST_DATA_DIR": str(mnist_dir)}
  trained = run_module("mnist_flax.main", "--config=configs/test.py", f"--workdir={workdir}",
                       "--config.num_iterations=40", "--config.checkpoint_every=20",
                       "--config.log_every=10", env=env)
  assert trained.returncode == 0, trained.stderr
  out = tmp_path / "report"
  result = run_module("mnist_flax.evaluate", "--checkpoint", str(workdir / "checkpoints/final"),
                      "--json", "--report", str(out), env=env)
  assert result.returncode == 0, result.stderr
  measured = json.loads(result.stdout)  # still exactly one JSON object on stdout
  confusion = np.array(measured["confusion_matrix"])
  assert confusion.sum() == 10000
  csv = np.loadtxt(out / "confusion_matrix.csv", delimiter=",", skiprows=1, dtype=np.int64)
  assert (csv[:, 1:] == confusion).all()  # the counts the PNG was drawn from
  assert np.trace(confusion) == round(measured["test_accuracy"] * 10000)
  for name in PNGS:
    check_png(out / name)
  per_class = (out / "per_class.md").read_text()
  assert f"| **accuracy** | | | {measured['test_accuracy']:.4f} | 10000 |" in per_class
  assert per_class.count("\n| ") >= 13
  # Not told where MNIST is: the folder training read, recorded in the checkpoint's metadata.
  again = run_module("mnist_flax.evaluate", "--checkpoint", str(workdir / "checkpoints/final"),
                     "--json", env={"MNIST_DATA_DIR": ""})
  assert again.returncode == 0, again.stderr
  assert json.loads(again.stdout)["data_dir"] == str(mnist_dir.absolute())


_PROMOTE_RECORDING = """
import json, sys
import jax
import numpy as np
from mnist_flax import checkpoint, config, model
model_config = config.load_config_file(sys.argv[1]).model.to_dict()
variables = jax.device_get(model.build(model_config).init(jax.random.key(0),
                                                          np.zeros((1, 28, 28), np.float32)))
checkpoint.promote_final(sys.argv[2], variables, dict(json.loads(sys.argv[3]), model=model_config))
"""


def test_evaluate_report_leaves_out_another_runs_curves(tmp_path, mnist_dir):
  # The issue: a workdir's metrics.jsonl from another run than the checkpoint's was drawn, and
  # its title showed that run's accuracy. Here the checkpoint recorded 0.5 at step 300.
  workdir = tmp_path / "work"
  made = subprocess.run([sys.executable, "-c", _PROMOTE_RECORDING, str(ROOT / "configs/test.py"),
                         str(workdir), json.dumps(dict(RECORDED, test_accuracy=0.5))],
                        cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert made.returncode == 0, made.stderr
  write_metrics(workdir / "metrics.jsonl")
  out = tmp_path / "report"
  result = run_module("mnist_flax.evaluate", "--checkpoint", str(workdir / "checkpoints/final"),
                      "--data_dir", str(mnist_dir), "--report", str(out))
  assert result.returncode == 0, result.stderr
  assert result.stdout.splitlines()[-1] == (
      f"note: training curves left out: {workdir / 'metrics.jsonl'} is another run's: its test "
      "accuracy at step 300 is 0.9933, the checkpoint's 0.5000")
  assert (out / "confusion_matrix.png").is_file() and not (out / "training_curves.png").exists()
