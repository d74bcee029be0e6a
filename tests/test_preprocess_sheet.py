"""The sheet in a photo: a light sheet on a dark desk is no clean drawing, its rim is no digit,
the answer is not built around a rule's stub on a lit strip, and a grained desk's ink is left
out (preprocess.sheet, clean, digits.find).

Run: python -m pytest tests/test_preprocess_sheet.py -q
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import draw_samples, read_numbers

from mnist_flax.preprocess import clean, digits, gray, paper, read, sheet

# Generator photos of a light sheet on a dark desk, small in the frame: the clean path (a
# threshold for drawings and scans) took the sheet for one light stroke on a dark ground and
# read "2", "111" and "1171".
SHEETS_ON_DESKS = [("numbers", 101, 7), ("numbers", 152, 7), ("printed", 165, 21)]
# A number in a shadow beside a lit strip of squared paper whose grid left stubs there: the
# answer was built around a stub (a 3x29 piece passes for a thin "1"), "32" read "5"; and a 6
# on a lit patch read "2" from a stub.
STUBS_ON_LIT = [("numbers", 1, 7), ("photos", 36, 9001)]
# A ruled sheet on a wood desk: the ruling inked the sheet's blocks as the grain does, so the
# desk's streaks stayed, one glyph with "426" (read "8"); asked again once the rules are gone.
GRAINED_DESKS = [("numbers", 15, 11)]


def _lum(path: Path) -> np.ndarray:
  return gray.luminance(read.open_image(path, draft_side=gray.WORK_SIDE))[0]


@pytest.fixture(scope="module")
def desk_photos(tmp_path_factory) -> list[tuple[Path, str]]:
  """The generator photos above, SHEETS_ON_DESKS first, in one folder: (path, truth)."""
  return draw_samples(tmp_path_factory.mktemp("desks"),
                      SHEETS_ON_DESKS + STUBS_ON_LIT + GRAINED_DESKS)


def test_a_sheet_on_a_dark_desk_is_read_as_a_photo(desk_photos) -> None:
  for path, _ in desk_photos[:len(SHEETS_ON_DESKS)]:
    lum = _lum(path)
    assert paper.is_sheet_on_desk(lum), path.name
    assert clean.find_ink(lum) is None, path.name


def test_a_bold_light_digit_on_black_stays_a_clean_drawing() -> None:
  # A white-on-black drawing's 8 is solid enough to pass for a small sheet (ink_is_dark), but
  # fills half its hull: it is strokes, and the clean path reads it.
  lum = np.zeros((280, 280), np.float32)
  cv2.circle(lum, (140, 90), 48, 1.0, 26)
  cv2.circle(lum, (140, 190), 56, 1.0, 26)
  assert not paper.is_sheet_on_desk(lum)
  page = clean.find_ink(lum)
  assert page is not None and page.mask[90, 140 - 48]


def test_the_generator_photos_are_read_right(desk_photos) -> None:
  truths = {path.name: truth for path, truth in desk_photos}
  assert read_numbers(desk_photos[0][0].parent) == truths


def _rim_and_seven() -> tuple[np.ndarray, np.ndarray]:
  """An ink mask: a sheet's rim the threshold kept along its left, bottom and right edges (one
  piece, not touching the picture's edge), a 7 written inside; and the lit sheet."""
  mask = np.zeros((600, 800), np.uint8)
  quad = np.array([[90, 110], [550, 185], [522, 548], [82, 580]], np.int32)
  cv2.polylines(mask, [quad[[0, 3, 2, 1]]], False, 1, 5)  # left, bottom, right
  cv2.polylines(mask, [np.array([[332, 292], [432, 286], [350, 452]], np.int32)], False, 1, 7)
  lit = np.zeros(mask.shape, np.uint8)
  cv2.fillConvexPoly(lit, quad + np.array([[4, 4], [-4, 4], [-4, -4], [4, -4]]), 1)
  return mask.astype(bool), lit.astype(bool)


def test_a_sheets_rim_is_not_part_of_the_digit() -> None:
  # The rim, placed first (the larger piece), took the 7 as a piece lying within its columns:
  # one glyph the size of the sheet, read "11".
  mask, lit = _rim_and_seven()
  glyphs = digits.find(mask, lit=lit)
  assert len(glyphs) == 1
  x0, y0, x1, y1 = glyphs[0].box
  assert 320 <= x0 and x1 <= 445 and 280 <= y0 and y1 <= 460


def test_a_digit_across_the_sheets_outline_is_kept() -> None:
  # Ink that crosses the outline (writing off the sheet's edge, a digit cut by a shadow's
  # edge) lies only partly along it; a short stroke along it (a "1" beside a shadow's edge) is
  # shorter than a rim.
  mask, lit = _rim_and_seven()
  mask[:] = False
  cv2.line(mask.view(np.uint8), (60, 300), (200, 330), 1, 7)   # across the left edge
  cv2.line(mask.view(np.uint8), (86, 380), (84, 440), 1, 5)    # along it, a digit's height
  labels, stats = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)[1:3]
  assert sheet.rim_off(mask, labels, stats, lit) is None


def test_the_answer_is_not_built_around_a_stub_on_a_lit_strip() -> None:
  # STUBS_ON_LIT's "32", drawn: the number off the lit strip, a grid's stub on it.
  mask = np.zeros((640, 480), bool)
  mask[388:466, 196:252] = True      # the 3 (area as the digits', shape aside)
  mask[394:480, 245 + 8:298] = True  # the 2
  mask[14:43, 150:153] = True        # a grid stub on the lit strip
  lit = np.zeros_like(mask)
  lit[:300] = True
  glyphs = digits.find(mask, lit=lit)
  assert [g.box[0] for g in glyphs] == [196, 253]


def test_a_grained_desks_ink_is_off_the_sheets() -> None:
  # Streaks over most of the desk around a sheet holding a ring; one streak runs a little onto
  # the sheet, the ring a little off it: each goes with where most of it lies.
  mask = np.zeros((400, 600), np.uint8)
  lit = np.zeros_like(mask)
  lit[100:300, 150:450] = 1
  for x in range(5, 600, 12):
    cv2.line(mask, (x, 0), (x + 20, 399), 1, 3)
  mask[lit > 0] = 0
  mask[60:100, 250:350] = 0  # Bare desk where the ring runs off the sheet.
  cv2.line(mask, (140, 150), (170, 150), 1, 3)                     # a streak's end on the sheet
  cv2.ellipse(mask, (300, 120), (30, 40), 0, 0, 360, 1, 4)          # its top a little off it
  mask, lit = mask.astype(bool), lit.astype(bool)
  assert sheet.on_grain(mask, lit)
  labels, stats = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)[1:3]
  kept = sheet.off_desk(mask, labels, stats, lit)
  assert kept[120, 270] and kept[80, 300]   # the ring, also where it is off the sheet
  assert not kept[150, 140] and not kept[10, 10]
  assert not sheet.on_grain(np.zeros_like(mask), lit)
