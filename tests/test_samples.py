"""The photo samples: phone photos of handwriting, numbers, printed digits and non-digits.

``python -m mnist_flax.tools.samples DIR --kind KIND`` and
``mnist_flax.tools.samples.photo.render`` draw them from pen strokes (never MNIST). These tests
check behaviour: the same seed gives the same bytes, every name starts with the truth, the
sizes are phone sizes, and each asked-for case is in the picture (ink where the box says, faint
pencil, rulings at their spacing, a shadow edge across the digit, separate pieces, touching neighbours, a printed "1" with a base).

Run: pytest tests/test_samples.py -q
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import run_module
from mnist_flax.tools import samples
from mnist_flax.tools.samples import camera, cases, handwriting, kinds, light, photo

SMALL = (1280, 960)
# A clean view: no roll or perspective, so rows and columns of the photo follow the paper.
STRAIGHT = {"roll": 0.0, "tilt": 0.0}


def _render(truth: str, seed: int, **choices) -> photo.Sample:
  choices.setdefault("size", SMALL)
  return photo.render(truth, np.random.default_rng(seed), **choices)


def _grey(sample: photo.Sample) -> np.ndarray:
  return np.asarray(sample.image().convert("L"), np.float32)


def _crop(a: np.ndarray, box, grow: float = 0.0) -> np.ndarray:
  x0, y0, x1, y1 = box
  gx, gy = int((x1 - x0) * grow), int((y1 - y0) * grow)
  return a[max(0, y0 - gy):y1 + gy, max(0, x0 - gx):x1 + gx]


def _ink_mask(sample: photo.Sample, box) -> np.ndarray:
  """Pixels in ``box`` darker than halfway between the paper around it and the darkest ink."""
  g = _grey(sample)
  inside = _crop(g, box)
  paper = float(np.median(_crop(g, box, 0.5)))
  return inside < (paper + float(np.percentile(inside, 1))) / 2


def _pieces(mask: np.ndarray) -> int:
  """Connected ink pieces, ignoring specks below 2% of the largest."""
  n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
  areas = stats[1:, cv2.CC_STAT_AREA]
  return int((areas >= 0.02 * areas.max()).sum()) if n > 1 else 0


def _truths(folder: Path) -> dict[str, dict]:
  lines = (folder / ".truth.jsonl").read_text().splitlines()
  return {e["file"]: e for e in map(json.loads, lines)}


# --- The command and the folders it writes -------------------------------------------------


def test_command_writes_photos_named_by_their_truth(tmp_path):
  result = run_module("mnist_flax.tools.samples", str(tmp_path), "--kind", "photos",
                      "--count", "12", "--seed", "3")
  assert result.returncode == 0, result.stderr
  files = sorted(tmp_path.glob("*.jpg"))
  assert len(files) == 12 and "wrote 12 images" in result.stdout
  entries = _truths(tmp_path)
  assert set(entries) == {f.name for f in files}
  assert sorted({f.name.split("_")[0] for f in files}) == [str(d) for d in range(10)]
  for f in files:
    entry = entries[f.name]
    assert entry["truth"] == f.name.split("_")[0]
    with Image.open(f) as image:
      assert image.format == "JPEG"
      shown = ImageOps.exif_transpose(image)
      assert list(shown.size) == entry["size"]
    x0, y0, x1, y1 = entry["boxes"][0]
    assert 0 <= x0 < x1 <= shown.size[0] and 0 <= y0 < y1 <= shown.size[1]
    assert 50 <= entry["quality"] <= 90


@pytest.mark.parametrize("kind", ["numbers", "printed", "nondigits"])
def test_each_kind_names_its_truth(tmp_path, kind):
  paths = kinds.make_kind(kind, tmp_path, count=8, seed=1)
  entries = _truths(tmp_path)
  assert len(paths) == len(entries) == 8
  for path in paths:
    truth = path.name.split("_")[0]
    entry = entries[path.name]
    assert entry["truth"] == truth
    if kind == "nondigits":
      assert truth == "x" and path.name.split("_")[1] in handwriting.SHAPES
      assert len(entry["boxes"]) == 1
    else:
      assert truth.isdigit() and len(entry["boxes"]) == len(truth)
      assert (len(truth) >= 2) == (kind == "numbers")
    if kind == "printed":
      assert path.name.split("_")[1].startswith("printed-")


def test_the_cases_of_issue_13_one_photo_each(tmp_path):
  assert samples.main([str(tmp_path), "--kind", "cases"]) == 0
  names = sorted(p.name for p in tmp_path.glob("*.jpg"))
  assert names == sorted(f"{case}.jpg" for case in cases.CASES)
  entries = _truths(tmp_path)
  for case, (truth, choices) in cases.CASES.items():
    entry = entries[f"{case}.jpg"]
    assert case.split("_")[0] == entry["truth"] == (truth if truth.isdigit() else "x")
    for key in ("surface", "ink", "light"):
      if key in choices:
        assert entry[key] == choices[key], (case, key)
    if "desk" in choices and choices.get("surface") != "plate":
      assert entry["desk"] == choices["desk"], case
  assert entries["5_shadow.jpg"]["size"] == [4000, 3000]
  again = cases.draw_case("3_ruled", 1)  # a second photo of the same case
  assert again.truth == "3" and again.tags[:3] == ["ruled", "pen", "even"]
  assert again.jpeg != (tmp_path / "3_ruled.jpg").read_bytes()


def test_same_seed_same_files_and_any_file_can_be_redrawn(tmp_path):
  a = kinds.make_kind("numbers", tmp_path / "a", count=4, seed=7)
  b = kinds.make_kind("numbers", tmp_path / "b", count=4, seed=7)
  c = kinds.make_kind("numbers", tmp_path / "c", count=4, seed=8)
  assert [p.name for p in a] == [p.name for p in b]
  assert all(p.read_bytes() == q.read_bytes() for p, q in zip(a, b))
  assert [p.read_bytes() for p in a] != [p.read_bytes() for p in c]
  again = kinds.draw("numbers", 2, seed=7)
  assert again.name(2) == a[2].name and again.jpeg == a[2].read_bytes()


def test_parallel_drawing_writes_the_same_files(tmp_path):
  one = kinds.make_kind("photos", tmp_path / "one", count=4, seed=2, jobs=1)
  two = kinds.make_kind("photos", tmp_path / "two", count=4, seed=2, jobs=2)
  assert [p.name for p in one] == [p.name for p in two]
  assert all(p.read_bytes() == q.read_bytes() for p, q in zip(one, two))
  assert _truths(tmp_path / "one") == _truths(tmp_path / "two")


def test_rewriting_a_folder_keeps_one_truth_line_per_file(tmp_path):
  kinds.make_kind("nondigits", tmp_path, count=3, seed=0)
  kinds.make_kind("nondigits", tmp_path, count=3, seed=0)
  kinds.make_kind("printed", tmp_path, count=2, seed=0)
  assert len(_truths(tmp_path)) == len(list(tmp_path.glob("*.jpg"))) == 5


def test_plain_kind_is_the_old_behaviour_and_unknown_kinds_are_refused(tmp_path):
  assert samples.main([str(tmp_path / "p"), "--kind", "plain", "--count", "3"]) == 0
  names = sorted(p.name for p in (tmp_path / "p").iterdir())
  assert len(names) == 3 and all(n[0].isdigit() and n[1] == "_" for n in names)
  assert samples.main([str(tmp_path / "q"), "--kind", "video"]) == 2
  assert not (tmp_path / "q").exists()


# --- Sizes and speed -----------------------------------------------------------------------


def test_photo_sizes_are_phone_sizes_up_to_12_megapixels():
  rng = np.random.default_rng(0)
  sizes = [camera.frame_size(rng) for _ in range(300)]
  pixels = [w * h for w, h in sizes]
  assert min(pixels) >= 850_000 and max(pixels) <= 12_000_000
  assert any(w > h for w, h in sizes) and any(h > w for w, h in sizes)
  assert {(4000, 3000), (3000, 4000)} & set(sizes)


def test_a_12_megapixel_photo_is_drawn_in_well_under_a_second():
  _render("7", 0, size=(4000, 3000))  # imports and caches warm
  cpu = []
  for seed in (1, 2):
    start = time.process_time()
    sample = _render("7", seed, size=(4000, 3000), exif=False)
    cpu.append(time.process_time() - start)
  assert sample.image().size == (4000, 3000)
  assert min(cpu) < 1.0, cpu


# --- What the photos show ------------------------------------------------------------------


@pytest.mark.parametrize("ink", ["marker", "pen", "ballpoint"])
def test_the_digit_is_dark_ink_inside_its_box_and_nowhere_else(ink):
  s = _render("3", 4, surface="plain", ink=ink, light="even", desk=False)
  assert s.tags[:3] == ["plain", ink, "even"] and "desk" not in s.tags
  g = _grey(s)
  paper = float(np.median(g))
  box = s.info["boxes"][0]
  assert np.percentile(_crop(g, box), 2) < paper - 60
  outside = g.copy()
  x0, y0, x1, y1 = box
  outside[y0:y1, x0:x1] = paper
  assert np.percentile(outside, 0.01) > paper - 60


def test_faint_pencil_is_faint_but_there():
  ratios = []
  for seed in range(8):
    s = _render(str(seed), seed, surface="plain", ink="pencil", light="even", desk=False)
    g = _grey(s)
    box = s.info["boxes"][0]
    paper = float(np.median(_crop(g, box, 0.5)))
    ink = float(np.percentile(_crop(g, box), 3))
    assert ink < paper - 5, (seed, paper, ink)  # visible
    ratios.append(ink / paper)
  # Mostly faint: typically ~0.9 of the paper's level (225 on 245), never black.
  assert 0.82 <= float(np.median(ratios)) <= 0.97 and min(ratios) > 0.45, ratios


def _period(profile: np.ndarray, lo: float, hi: float) -> tuple[int, float]:
  """The lag in [lo, hi] where the detrended profile best repeats, and how well (-1..1)."""
  x = profile - cv2.GaussianBlur(profile.reshape(-1, 1), (0, 0), 25).ravel()
  x = (x - x.mean()) / (x.std() + 1e-6)
  lags = range(max(2, int(lo)), int(hi) + 1)
  scores = [float(np.mean(x[:-lag] * x[lag:])) for lag in lags]
  best = int(np.argmax(scores))
  return list(lags)[best], scores[best]


@pytest.mark.parametrize("seed", [0, 1])
def test_ruled_and_squared_paper_show_their_lines_at_their_spacing(seed):
  found = {}
  for surface in ("plain", "ruled", "squared"):
    s = _render("5", seed, surface=surface, ink="pen", light="even", desk=False, **STRAIGHT)
    g = _grey(s)
    x0, y0, x1, y1 = s.info["boxes"][0]
    g[:, max(0, x0 - 10):x1 + 10] = np.nan  # away from the digit's columns
    rows = np.nanmean(g, axis=1)
    cols = np.nanmean(_grey(s)[:max(1, y0 - 10)], axis=0) if y0 > 100 else np.nanmean(
        _grey(s)[y1 + 10:], axis=0)
    mm = s.info["px_per_mm"]
    # Rules repeat every 8-10 mm, the grid every 5 mm; search below twice the period.
    lo, hi = (3 * mm, 7 * mm) if surface == "squared" else (6 * mm, 14 * mm)
    found[surface] = (_period(rows, lo, hi), _period(cols, lo, hi), mm)
  (lag, score), _, mm = found["ruled"]
  assert score > 0.5 and 7.5 * mm <= lag <= 10.5 * mm, found["ruled"]
  (rlag, rscore), (clag, cscore), mm = found["squared"]
  assert rscore > 0.5 and cscore > 0.5, found["squared"]
  assert abs(rlag - 5 * mm) <= 0.6 * mm and abs(clag - 5 * mm) <= 0.6 * mm, found["squared"]
  assert found["plain"][0][1] < 0.4 and found["plain"][1][1] < 0.4, found["plain"]


def _paper_spread(s: photo.Sample) -> float:
  """Darkest / brightest paper level around the digit, the ink removed by a max filter."""
  g = _grey(s)
  x0, y0, x1, y1 = s.info["boxes"][0]
  region = _crop(g, (x0, y0, x1, y1), 0.15)
  k = max(3, int(0.25 * min(x1 - x0, y1 - y0)) | 1)
  paper = cv2.dilate(region, np.ones((k, k), np.uint8))
  return float(np.percentile(paper, 3) / np.percentile(paper, 97))


def test_a_hard_shadow_across_the_digit_splits_its_paper_and_one_beside_it_does_not():
  for seed in range(5):
    across = _render("4", seed, surface="plain", ink="pen", light="shadow-hard-across",
                     desk=False)
    beside = _render("4", seed, surface="plain", ink="pen", light="shadow-hard-beside",
                     desk=False)
    even = _render("4", seed, surface="plain", ink="pen", light="even", desk=False)
    assert _paper_spread(across) < 0.8, (seed, across.info)
    assert _paper_spread(beside) > 0.85, (seed, beside.info)
    assert _paper_spread(even) > 0.85, (seed, even.info)


def test_asking_for_the_desk_shows_the_sheets_edge():
  shown = [_render("2", seed, surface="ruled", desk=True).info["desk"] for seed in range(8)]
  hidden = [_render("2", seed, surface="ruled", ink="pen", desk=False).info["desk"]
            for seed in range(8)]
  assert sum(shown) >= 6 and sum(hidden) <= 2, (shown, hidden)


def test_a_number_is_its_digits_left_to_right_and_touching_ones_overlap():
  for seed in range(4):
    s = _render("2026", seed, surface="plain", ink="pen", touching=False, **STRAIGHT)
    boxes = s.info["boxes"]
    assert s.name(0).startswith("2026_") and len(boxes) == 4
    assert all(a[2] <= b[0] for a, b in zip(boxes, boxes[1:])), boxes
  overlaps = 0
  for seed in range(4):
    s = _render("1984", seed, surface="plain", ink="pen", touching=True, **STRAIGHT)
    assert "touching" in s.tags
    boxes = s.info["boxes"]
    centres = [(b[0] + b[2]) / 2 for b in boxes]
    assert centres == sorted(centres)
    overlaps += any(a[2] > b[0] for a, b in zip(boxes, boxes[1:]))
  assert overlaps >= 3


def test_a_leading_zero_is_kept_in_the_name():
  s = _render("07", 0, surface="ruled")
  assert s.truth == "07" and s.name(5).startswith("07_") and len(s.info["boxes"]) == 2


@pytest.mark.parametrize("digit", ["5", "7"])
def test_digits_written_in_separate_pieces(digit):
  for seed in range(3):
    whole = _render(digit, seed, surface="plain", ink="pen", light="even", desk=False,
                    pieces=False, broken=False, fraction=0.3, **STRAIGHT)
    apart = _render(digit, seed, surface="plain", ink="pen", light="even", desk=False,
                    pieces=True, broken=False, fraction=0.3, **STRAIGHT)
    assert "pieces" in apart.tags and "pieces" not in whole.tags
    assert _pieces(_ink_mask(whole, whole.info["boxes"][0])) == 1
    assert _pieces(_ink_mask(apart, apart.info["boxes"][0])) >= 2


def test_broken_strokes_leave_gaps():
  counts = [_pieces(_ink_mask(s, s.info["boxes"][0])) for s in (
      _render("2", seed, surface="plain", ink="pen", light="even", desk=False, broken=True,
              fraction=0.3, **STRAIGHT) for seed in range(3))]
  assert all(c >= 2 for c in counts), counts


def test_a_printed_one_with_a_flag_and_a_base():
  s = _render("1", 0, printed=True, font="flagbase", light="even", desk=False, **STRAIGHT)
  assert s.tags[0] == "printed-flagbase"
  ink = _ink_mask(s, s.info["boxes"][0])
  h, w = ink.shape
  width = lambda rows: max(int(np.ptp(np.nonzero(r)[0])) + 1 if r.any() else 0 for r in rows)
  assert width(ink[int(0.93 * h):]) > 0.6 * w  # the base
  assert width(ink[int(0.45 * h):int(0.55 * h)]) < 0.35 * w  # the stem
  stem_left = min(np.nonzero(r)[0].min() for r in ink[int(0.45 * h):int(0.55 * h)] if r.any())
  flag_left = min(np.nonzero(r)[0].min() for r in ink[:int(0.25 * h)] if r.any())
  assert flag_left < stem_left - 0.15 * w  # the flag reaches left


@pytest.mark.parametrize("shape", handwriting.SHAPES)
def test_non_digits_are_named_x(shape):
  s = _render(shape, 0)
  assert s.truth == "x" and s.tags[0] == shape and s.name(3).startswith(f"x_{shape}_")
  assert s.info["truth"] == "x" and len(s.info["boxes"]) == 1


def test_a_plate_and_a_form_box_frame_the_digit():
  plate = _render("4", 0, surface="plate")
  assert {"plate", "wall"} <= set(plate.tags) and "desk" not in plate.tags
  form = _render("4", 0, surface="form", ink="pen", light="even", desk=False)
  plain = _render("4", 0, surface="plain", ink="pen", light="even", desk=False)
  for s, framed in ((form, True), (plain, False)):
    g = _grey(s)
    box = s.info["boxes"][0]
    around = _crop(g, box, 0.6).copy()
    x0, y0, x1, y1 = box
    gx, gy = int((x1 - x0) * 0.6), int((y1 - y0) * 0.6)
    around[min(gy, y0):min(gy, y0) + y1 - y0, min(gx, x0):min(gx, x0) + x1 - x0] = 255
    dark = around < np.median(g) - 50  # printed lines near the digit, outside its box
    assert bool(dark.sum() > 0.1 * (x1 - x0)) == framed, s.tags


def test_a_hands_shadow_falls_over_part_of_the_digit_or_beside_it():
  # shadow-hand: a palm and fingers or a phone, 25-55% dark with a soft edge, its far end over
  # part of the digit's box or clear of it.
  shape = (450, 600)
  box = np.array([[250, 180], [350, 180], [350, 300], [250, 300]], float)
  seen = set()
  for seed in range(12):
    lit, info = light.illuminate(np.random.default_rng(seed), "shadow-hand", shape, 1.0, box,
                                 np.ones(shape, np.float32))
    grey = lit.mean(axis=2)
    rel = grey / np.percentile(grey, 95)
    digit = rel[180:300, 250:350]
    assert 0.25 <= info["shadow_strength"] <= 0.55 and 0.35 <= rel.min() <= 0.8, info
    assert 0.01 <= (rel < 0.85).mean() <= 0.5, info  # part of the picture, not all of it
    what, where = info["shadow_of"].split("-")
    seen.add(what)
    if where == "over":
      assert digit.min() < 0.8, info
    else:
      assert digit.min() > 0.9, info
  assert seen == {"hand", "phone"}
