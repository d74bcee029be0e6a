"""Reading phone photos and whole numbers, end to end (issue 13's cases).

Every image is drawn by mnist_flax.tools.samples.photo (pen strokes photographed on paper, never
MNIST) in pytest's tmp_path, and read by one ``infer --json`` process. Each case of
``cases.CASES`` is drawn in several variants (other hands, light, camera); a case
passes when most of its variants are read right.

Run: python -m pytest tests/test_preprocess_photos.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mnist_flax.tools.samples import cases, photo

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = 3
# Cases not yet read reliably (touching digits whose readings the model does not tell apart,
# plates on textured walls): kept as strict xfails, so that one starting to pass is noticed.
KNOWN_HARD = {"1984_touching"}
DIGIT_CASES = [name for name in cases.CASES if not name.startswith("x_")]


def _infer(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "mnist_flax.infer", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def case_answers(tmp_path_factory) -> dict[str, list[tuple[str, dict]]]:
  """For each case: (truth, infer's JSON object) for each variant."""
  folder = tmp_path_factory.mktemp("cases")
  truths = {}
  for name in cases.CASES:
    for variant in range(VARIANTS):
      path = folder / f"{name}_{variant}.jpg"
      path.write_bytes(cases.draw_case(name, variant).jpeg)
      truths[path.name] = (name, cases.CASES[name][0])
  run = _infer("--i", str(folder), "--json")
  assert run.returncode in (0, 5), run.stderr
  out: dict[str, list[tuple[str, dict]]] = {}
  for line in run.stdout.splitlines():
    answer = json.loads(line)
    name, truth = truths[os.path.basename(answer["path"])]
    out.setdefault(name, []).append((truth, answer))
  assert sum(len(v) for v in out.values()) == len(truths)
  return out


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason="not yet read reliably"))
    if name in KNOWN_HARD else name for name in DIGIT_CASES])
def test_photo_case_is_read(case_answers, name):
  answers = case_answers[name]
  right = [a.get("number") == truth for truth, a in answers]
  assert sum(right) >= 2, [(truth, a.get("number"), a.get("probability")) for truth, a in answers]


def test_numbers_come_with_digits_boxes_and_a_product(case_answers, tmp_path):
  for truth, answer in case_answers["2026_ruled"] + case_answers["42_plain"]:
    if answer.get("number") != truth:
      continue
    digits = answer["digits"]
    assert [d["digit"] for d in digits] == [int(c) for c in truth]
    assert answer["digit"] is None  # A number, not one digit.
    product = 1.0
    for d in digits:
      product *= d["probability"]
    assert answer["probability"] == pytest.approx(product, rel=1e-4)
    lefts = [d["box"][0] for d in digits]
    assert lefts == sorted(lefts)  # Left to right.
    with Image.open(ROOT / "test" / "2026_ruled.jpg") as image:
      width, height = image.size
    for d in digits:
      x0, y0, x1, y1 = d["box"]
      assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


def test_number_text_single_and_saved_digits(tmp_path):
  shipped = ROOT / "test" / "42_plain.jpg"
  run = _infer("--i", str(shipped), "--save-preprocessed", str(tmp_path / "seen"))
  assert run.returncode == 0, run.stderr
  assert run.stdout.startswith("The recognized result is 42 and the probability is ")
  assert sorted(p.name for p in (tmp_path / "seen").iterdir()) == [
      "0000_42_plain.jpg_0.png", "0000_42_plain.jpg_1.png"]
  single = _infer("--i", str(shipped), "--single", "--json")
  assert single.returncode == 0, single.stderr
  answer = json.loads(single.stdout)
  assert len(answer["digits"]) == 1 and answer["digit"] in (2, 4)
  assert answer["number"] == str(answer["digit"])


def test_leading_zero_is_kept(tmp_path):
  path = tmp_path / "07.jpg"
  path.write_bytes(photo.render("07", __import__("numpy").random.default_rng(3),
                                surface="plain", ink="marker", light="even",
                                desk=False).jpeg)
  run = _infer("--i", str(path), "--json")
  assert run.returncode == 0, run.stderr
  assert json.loads(run.stdout)["number"] == "07"
