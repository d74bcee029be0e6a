"""The digit gate (mnist_flax/gate.py, model.Gated): "unsure" of what is not a digit, the reader's
answers kept bit for bit.

The checks that run JAX or load MNIST run in a child process (``_in_child``): pytest's own size
is inherited by every later child as its peak memory, which tests/test_infer_hostile.py holds
to 1 GB.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, run_module
from mnist_flax.tools.samples import kinds

READER = {"space_to_depth": 2, "features": (8, 16), "kernel_size": 3,
          "padding": ("VALID", "SAME"), "pool_windows": (2, 3), "dense": 32, "pool": "max",
          "batch_norm": True, "dropout": 0.0, "members": 2}


def _in_child(check: str, *args: str) -> None:
  """Runs ``check`` (a function of this module) on ``args`` in a fresh Python process."""
  code = (f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); import test_gate; "
          f"test_gate.{check}(*sys.argv[1:])")
  result = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]


def _leaves_equal(a, b) -> bool:
  import jax
  import numpy as np
  return jax.tree.structure(a) == jax.tree.structure(b) and all(
      np.array_equal(np.asarray(x), np.asarray(y))
      for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _check_gated_predict() -> None:
  import jax
  import numpy as np
  from mnist_flax import gate, model
  from mnist_flax.constants import NUM_CLASSES
  images = np.random.default_rng(0).random((6, 28, 28), np.float32)
  reader = model.build(READER)
  variables = reader.init(jax.random.key(0), images[:1])
  gate_params = model.build(model.GATE).init(jax.random.key(1), images[:1])["params"]
  config, gated_vars = gate.gated(READER, variables, gate_params)
  net = model.build(config)
  plain = np.asarray(model.predict(reader, variables, images, 0.5))
  probs = np.asarray(model.predict(net, gated_vars, images, 0.5))
  p_digit = np.asarray(net.apply(gated_vars, images, method="digit_probability"))
  assert probs.shape == (6, NUM_CLASSES) and np.all((p_digit > 0) & (p_digit < 1))
  np.testing.assert_allclose(probs.sum(axis=1), p_digit, rtol=1e-5)
  np.testing.assert_allclose(probs / p_digit[:, None], plain, rtol=1e-5)
  assert np.array_equal(model.member_logits(net, gated_vars, images),
                        model.member_logits(reader, variables, images))
  # Taken apart again: the reader's own config and variables, bit for bit.
  back_config, back = gate.reader_of(config, gated_vars)
  assert back_config == READER and _leaves_equal(back, variables)


def test_a_gated_models_rows_sum_to_its_gate_and_keep_the_readers_answer():
  _in_child("_check_gated_predict")


def _check_gated_checkpoint(final: str, before_path: str, figures: str, answer: str) -> None:
  """The gate stored in ``final`` beside the reader of ``before_path``, bit for bit, with its
  ``figures``; ``answer``: infer's --json for test/3.jpg with it."""
  from mnist_flax import checkpoint, gate, model, preprocess
  before_config, before, _, _ = checkpoint.load_verified(before_path)
  config, variables, metadata, _ = checkpoint.load_verified(final)
  assert config["gate"] == json.loads(json.dumps(model.GATE))
  assert metadata["gate"] == json.loads(figures)
  reader_config, reader = gate.reader_of(config, variables)
  assert reader_config == before_config and _leaves_equal(reader, before)
  # infer read with the gate it stored: its rows are scaled by it.
  field = preprocess.preprocess_file(ROOT / "test" / "3.jpg")[None]
  p_digit = float(model.build(config).apply(variables, field, method="digit_probability")[0])
  read = json.loads(answer)
  assert abs(read["digits"][0]["is_digit"] - p_digit) < 1e-5
  assert abs(sum(read["probabilities"]) - p_digit) < 1e-4


def _check_same_checkpoint(final: str, before_path: str) -> None:
  from mnist_flax import checkpoint
  before_config, before, _, _ = checkpoint.load_verified(before_path)
  config, variables, metadata, _ = checkpoint.load_verified(final)
  assert config == before_config and "gate" not in metadata and _leaves_equal(variables, before)


def test_the_gate_command_adds_a_gate_and_removes_it_keeping_the_reader(tmp_path, mnist_dir,
                                                                          random_checkpoint):
  final = tmp_path / "run" / "checkpoints" / "final"
  shutil.copytree(random_checkpoint, final)
  result = run_module("mnist_flax.gate", "--checkpoint", str(final), "--steps", "20",
                      "--nondigits", "70", "--printed", "70", "--json",
                      env={"MNIST_DATA_DIR": str(mnist_dir)})
  assert result.returncode == 0, result.stderr
  figures = json.loads(result.stdout)
  assert figures["held_out_mnist"] == 10000 and "20 steps" in figures["trained_on"]
  out = run_module("mnist_flax.infer", "--json", "--checkpoint", str(final),
                   str(ROOT / "test" / "3.jpg"))
  assert out.returncode == 0, out.stderr
  _in_child("_check_gated_checkpoint", str(final), str(random_checkpoint), result.stdout,
            out.stdout)
  result = run_module("mnist_flax.gate", "--checkpoint", str(final), "--remove")
  assert result.returncode == 0 and result.stdout.strip().endswith("gate removed")
  _in_child("_check_same_checkpoint", str(final), str(random_checkpoint))
  # Again: nothing to remove, nothing written.
  stamp = (final / "MANIFEST").stat().st_mtime_ns
  result = run_module("mnist_flax.gate", "--checkpoint", str(final), "--remove")
  assert result.returncode == 0 and "no gate to remove" in result.stdout
  assert (final / "MANIFEST").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("args, code", [
    (["--steps", "0"], 2), (["--steps", "10" * 12], 2), (["--validation", "0"], 2),
    (["--validation", "60000"], 2), (["--nondigits", "x"], 2), (["--seed", "-1"], 2),
    (["--lookalikes", "-1"], 2)])
def test_the_gate_command_refuses_bad_arguments_in_one_line(args, code, random_checkpoint):
  result = run_module("mnist_flax.gate", "--checkpoint", str(random_checkpoint), *args)
  assert result.returncode == code and len(result.stderr.strip().splitlines()) == 1
  assert "Traceback" not in result.stderr


def test_the_gate_command_refuses_a_missing_checkpoint(tmp_path):
  result = run_module("mnist_flax.gate", "--checkpoint",
                      str(tmp_path / "run" / "checkpoints" / "final"))
  assert result.returncode == 3 and len(result.stderr.strip().splitlines()) == 1


def _check_shipped_gate(mnist_dir: str) -> None:
  import numpy as np
  from mnist_flax import checkpoint, data, extra_data, model
  config, variables, _, _ = checkpoint.load_verified(ROOT / "checkpoints" / "final")
  net = model.build(config)
  p_of = lambda images: np.concatenate([np.asarray(net.apply(
      variables, images[i:i + 1000].astype(np.float32) / 255, method="digit_probability"))
      for i in range(0, len(images), 1000)])
  # Seed 5: neither the seed it trained on (0) nor the one it was checked on (1).
  images, labels = extra_data.make(300, 100, 5)
  p = p_of(images)
  non = labels == extra_data.NOT_A_DIGIT
  assert (p[non] < 0.5).mean() >= 0.95 and (p[~non] < 0.5).mean() <= 0.1
  # The "A", read as 4 by the reader: doubted, and MNIST's 4s are not.
  assert (p_of(extra_data.lookalikes(200, 5)) < 0.5).mean() >= 0.9
  mnist = data.load(mnist_dir)
  p = p_of(mnist.test_images)
  assert (p < 0.5).sum() <= 50  # Of the 10,000 handwritten test digits (14 of them today).
  assert (p[mnist.test_labels == 4] < 0.5).sum() <= 5


def test_the_shipped_gate_doubts_non_digits_it_never_saw_and_few_digits(mnist_dir):
  _in_child("_check_shipped_gate", str(mnist_dir))


def test_infer_says_unsure_of_photographed_letters_and_scribbles_not_of_digits(tmp_path):
  for i in range(8):
    (tmp_path / f"x_{i}.jpg").write_bytes(kinds.draw("nondigits", i, seed=91).jpeg)
    (tmp_path / f"d_{i}.jpg").write_bytes(kinds.draw("photos", i, seed=91).jpeg)
  result = run_module("mnist_flax.infer", "--json", str(tmp_path))
  answers = [json.loads(line) for line in result.stdout.splitlines()]
  unsure = {a["path"].rsplit("/", 1)[1][0]: 0 for a in answers}
  for a in answers:
    unsure[a["path"].rsplit("/", 1)[1][0]] += (a.get("probability") or 0) < 0.5
  # Without the gate: 0 of these 8 non-digits were unsure.
  assert unsure["x"] >= 5 and unsure["d"] <= 1, answers


def test_the_gate_changes_no_reading_only_how_sure_it_is(tmp_path):
  # Numbers whose pieces the reader's answers and the gated ones would choose apart (read
  # 21726, 0 and 20 when the gate weighs in): infer chooses by the reader's answers alone.
  samples = [(11, 65), (11, 52), (7, 45), (7, 13)]
  for seed, index in samples:
    (tmp_path / f"{seed}_{index}.jpg").write_bytes(kinds.draw("numbers", index, seed).jpeg)
  ungated = tmp_path / "run" / "checkpoints" / "final"
  shutil.copytree(ROOT / "checkpoints" / "final", ungated)
  assert run_module("mnist_flax.gate", "--checkpoint", str(ungated), "--remove").returncode == 0
  reads = [[json.loads(line) for line in run_module(
      "mnist_flax.infer", "--json", *extra, *sorted(map(str, tmp_path.glob("*.jpg")))
  ).stdout.splitlines()] for extra in ([], ["--checkpoint", str(ungated)])]
  assert [a["number"] for a in reads[0]] == [a["number"] for a in reads[1]]
  assert all(g["probability"] <= u["probability"] + 1e-6 for g, u in zip(*reads))


def test_infer_says_unsure_of_photographed_smileys(tmp_path):
  # The generator's smileys the gate let through, read surely as 0 (0.6-0.99): the eyes and
  # mouth inside the outline ring the glyph (preprocess.digits.ringed).
  for index in (198, 145, 127, 154, 116):
    sample = kinds.draw("nondigits", index, seed=14)
    assert sample.name(index).startswith("x_smiley")
    (tmp_path / sample.name(index)).write_bytes(sample.jpeg)
  result = run_module("mnist_flax.infer", "--json", str(tmp_path))
  answers = [json.loads(line) for line in result.stdout.splitlines()]
  assert len(answers) == 5 and all(a["probability"] < 0.5 for a in answers), answers


def test_a_ringed_glyph_is_a_digit_at_most_ringed_digit_likely():
  import numpy as np
  from mnist_flax import infer, preprocess
  field = np.zeros((28, 28), np.float32)
  found = [preprocess.Digit(field, (0, 0, 10, 10), ringed=True),
           preprocess.Digit(field, (20, 0, 30, 10))]
  probs = np.full((2, 10), 0.001)
  probs[:, 0] = 0.95
  answer, chosen = infer.image_answer(preprocess, "x.jpg", found, probs, 1)
  assert answer["number"] == "00" and chosen == [0, 1]
  assert abs(answer["digits"][0]["is_digit"] - infer.RINGED_DIGIT) < 1e-6
  assert abs(answer["digits"][1]["is_digit"] - 0.959) < 1e-6
