"""remove_frames labels the mask's components in the ink's box only (frames._components_in):
the labels and statistics must be exactly OpenCV's for the whole mask, whatever the box. And
what is a box: not a striped desk cut by the picture's corners; a form's small box with a
digit touching it, though its ink fills half its rectangle.

Run: python -m pytest tests/test_preprocess_frames.py -q
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import ROOT, draw_samples, read_numbers
from mnist_flax.preprocess import clean, fast, frames, gray, lines, paper
from mnist_flax.preprocess.read import open_image


def _same_as_whole(mask: np.ndarray) -> None:
  ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
  box = int(ys[0]), int(xs[0]), int(ys[-1]) + 1, int(xs[-1]) + 1
  _, labels, stats, _ = fast.connected_components(mask, connectivity=8)  # OpenCV's, 16-bit.
  got_labels, got_stats = frames._components_in(mask, *box)
  assert got_labels.dtype == labels.dtype and got_stats.dtype == stats.dtype
  np.testing.assert_array_equal(got_labels, labels)
  np.testing.assert_array_equal(got_stats, stats)


@pytest.mark.parametrize("threads", [1, 2])
def test_components_in_the_box_are_opencvs_for_random_masks(threads: int) -> None:
  rng = np.random.default_rng(threads)
  before = cv2.getNumThreads()
  cv2.setNumThreads(threads)
  try:
    for _ in range(400):
      h, w = (int(v) for v in rng.integers(3, 200, 2))
      top, bottom = sorted(int(v) for v in rng.integers(0, h + 1, 2))
      left, right = sorted(int(v) for v in rng.integers(0, w + 1, 2))
      mask = np.zeros((h, w), bool)
      # Specks, strokes and solid ink; odd and even corners; rows and columns all ink.
      mask[top:bottom, left:right] = rng.random((bottom - top, right - left)) < rng.choice(
          [0.05, 0.4, 0.9, 1.0])
      if rng.random() < 0.3:
        mask[int(rng.integers(0, h)), :] = True
      if rng.random() < 0.3:
        mask[:, int(rng.integers(0, w))] = True
      if mask.any():
        _same_as_whole(mask)
  finally:
    cv2.setNumThreads(before)


def test_components_in_the_box_are_opencvs_for_the_sample_images() -> None:
  checked = 0
  for path in sorted((ROOT / "test").iterdir()):
    lum, _ = gray.luminance(open_image(path, draft_side=gray.WORK_SIDE))
    for page in (clean.find_ink(lum), paper.find_ink(lum)):
      if page is not None and page.mask.any():
        _same_as_whole(page.mask)
        _same_as_whole(lines.remove_rules(page.mask))
        checked += 1
  assert checked >= 50


def test_a_striped_desk_cut_by_the_pictures_corners_is_no_frame() -> None:
  # A sheet on a striped tablecloth: the stripes cut by the picture's corners have ink along
  # three sides of their boxes, and were cut as boxes around the sheet's digits, their ends
  # freed from the edge to join the number ("4" read 44, "48648" read 8648 on a red team's
  # photos).
  h, w = 600, 800
  yy, xx = np.mgrid[0:h, 0:w]
  mask = ((xx + yy) % 80) < 40
  sheet = np.zeros((h, w), np.uint8)
  cv2.fillConvexPoly(sheet, np.array([[140, 190], [600, 100], [660, 460], [190, 550]], np.int32), 1)
  mask &= sheet == 0
  cv2.putText(mask.view(np.uint8), "221503", (300, 380), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 1, 3)
  out, _ = frames.remove_frames(mask)
  _, labels, stats, _ = fast.connected_components(mask, connectivity=8)
  x, y, bw, bh = (stats[:, i] for i in range(4))
  cornered = ((x == 0) | (x + bw == w)) & ((y == 0) | (y + bh == h))
  cornered[0] = False
  assert cornered.sum() >= 4
  kept = np.take(cornered, labels)
  assert (out[kept] == mask[kept]).all()


# Generator photos of a digit touching a form's small box, its sides thick at the working
# size: the box with the digit filled 0.36-0.54 of its rectangle, taken for solid, kept and
# read ("5" as 0, "8" as 0, "1" as 0).
BOXES_TOUCHED = [("photos", 105, 5152), ("photos", 65, 13), ("photos", 78, 9001),
                 ("photos", 71, 31337)]


def test_a_small_box_a_digit_touches_is_taken_off() -> None:
  mask = np.zeros((140, 120), np.uint8)
  cv2.rectangle(mask, (20, 20), (90, 120), 1, 7)                         # the box
  cv2.polylines(mask, [np.array([(75, 35), (40, 35), (38, 65), (70, 68), (74, 95),
                                 (40, 116)], np.int32)], False, 1, 8)    # a 5 run into it
  mask = mask.astype(bool)
  x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
  assert mask.sum() > 0.35 * w * h  # As solid as the photos' boxes.
  out, _ = frames.remove_frames(mask)
  assert not out[20:24, 25:85].any() and not out[60:100, 17:24].any()  # top and left sides
  assert out[35, 50] and out[68, 55]  # the 5's bar and middle


def test_photos_of_digits_touching_a_small_box_are_read(tmp_path) -> None:
  photos = draw_samples(tmp_path, BOXES_TOUCHED)
  assert read_numbers(tmp_path) == {path.name: truth for path, truth in photos}


def test_a_1_across_a_box_and_out_of_it_is_no_wall(tmp_path) -> None:
  # The generator's 1 in a form's box, through its bottom side: straight, upright and nearly
  # as tall as the box, it was taken for a wall between two cells and went with the box; the
  # box was read as a 0. A wall stays within the box.
  drawn = draw_samples(tmp_path, [("photos", 271, 13)])
  assert [truth for _, truth in drawn] == ["1"]
  assert read_numbers(tmp_path) == {drawn[0][0].name: "1"}


# Generator photos of a form's box, evenly lit and so read as drawings, a 7 run across its
# side: the drawing path took off only boxes with a digit inside, and the box was read with
# the 7 ("0", "17").
BOXES_CROSSED = [("photos", 187, 9001), ("photos", 137, 31337)]


def test_in_a_drawing_a_box_a_digit_crosses_is_taken_off() -> None:
  mask = np.zeros((160, 140), np.uint8)
  cv2.rectangle(mask, (20, 20), (110, 140), 1, 3)                          # the box
  cv2.polylines(mask, [np.array([(40, 40), (95, 38), (60, 152)], np.int32)], False, 1, 6)
  cv2.line(mask, (55, 95), (90, 95), 1, 5)                   # a 7, its stem across the bottom
  out, _ = frames.remove_frames(mask.astype(bool), drawn=True)
  assert not out[19:22, 30:35].any() and not out[60:100, 19:22].any()  # top and left sides
  assert out[39, 70] and out[95, 80] and out[148, 62]  # the 7's bar, its cross and its foot


def test_in_a_drawing_a_digit_is_no_box_nor_a_square_8(monkeypatch) -> None:
  looked = []
  box_outline = frames._box_outline
  monkeypatch.setattr(frames, "_box_outline",
                      lambda part, *rest: looked.append(1) or box_outline(part, *rest))
  seven = np.zeros((160, 140), np.uint8)  # No ink along its rectangle's left side.
  cv2.polylines(seven, [np.array([(30, 20), (120, 20), (60, 150)], np.int32)], False, 1, 6)
  out, _ = frames.remove_frames(seven.astype(bool), drawn=True)
  assert (out == seven.astype(bool)).all() and not looked
  eight = np.zeros((160, 140), np.uint8)  # A screen's 8: a box with a bar, no digit in it.
  cv2.rectangle(eight, (40, 30), (100, 130), 1, 8)
  cv2.line(eight, (40, 80), (100, 80), 1, 8)
  out, _ = frames.remove_frames(eight.astype(bool), drawn=True)
  assert (out == eight.astype(bool)).all() and looked


def test_evenly_lit_photos_of_a_7_across_its_box_are_read(tmp_path) -> None:
  photos = draw_samples(tmp_path, BOXES_CROSSED)
  assert read_numbers(tmp_path) == {path.name: truth for path, truth in photos}
