"""A line beside a number's digits is no digit (preprocess.thin.is_line_beside, digits.find).

A sheet's or a box's edge, or a shadow's rim the threshold kept, standing beside a marker digit
was read as a "1" in front of it ("17" for a 7). Digits written with the same pen keep theirs.

Run: python -m pytest tests/test_preprocess_thin.py -q
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from mnist_flax.preprocess import digits, read_digits, thin, to_digits
from mnist_flax.tools.samples import kinds


def _stroke(points: list[tuple[int, int]], width: int, size: tuple[int, int] = (200, 200)
            ) -> np.ndarray:
  """A polyline ``width`` pixels wide, as a bool mask cut to its box."""
  a = np.zeros(size, np.uint8)
  cv2.polylines(a, [np.array(points, np.int32)], False, 1, width)
  x, y, w, h = cv2.boundingRect(a)
  return a[y:y + h, x:x + w] > 0


SEVEN = [(40, 40), (140, 40), (80, 180)]


# OpenCV's line thickness t draws strokes about t + 2 pixels wide (t = 1: one pixel).
@pytest.mark.parametrize("points, thickness, is_line", [
    ([(100, 10), (100, 190)], 1, True),             # a sheet's edge: a hairline
    ([(100, 10), (130, 190)], 2, True),             # slanting, a third as thick: straight
    ([(20, 100), (100, 20), (180, 100)], 1, True),  # a box's corner: bent, but a hairline
    ([(100, 10), (100, 190)], 10, False),           # a "1" in the same marker
    ([(100, 10), (105, 190)], 6, False),            # a "1" a little lighter than the 7
    ([(20, 100), (100, 20), (180, 100)], 2, False),  # bent, a third as thick: a stroke
])
def test_line_beside_a_marker_digit(points, thickness, is_line):
  seven = _stroke(SEVEN, 10)
  assert thin.is_line_beside(_stroke(points, thickness), seven) is is_line


def _page(beside_width: int) -> Image.Image:
  """A marker 7 on white paper, a straight line ``beside_width`` pixels wide on its left."""
  a = np.full((600, 800), 235, np.uint8)
  cv2.polylines(a, [np.array([(360, 200), (480, 200), (400, 420)], np.int32)], False, 30, 14)
  cv2.line(a, (250, 180), (230, 430), 30, beside_width)
  rng = np.random.default_rng(0)
  noisy = cv2.GaussianBlur(a.astype(np.float32), (3, 3), 0) + rng.normal(0, 2, a.shape)
  return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "L")


def test_a_thin_line_beside_a_digit_is_left_out_and_a_stroke_is_not():
  line = [d for d in to_digits(_page(4)) if d.split_of < 0]
  one = [d for d in to_digits(_page(14)) if d.split_of < 0]
  assert len(line) == 1 and line[0].box[0] > 300  # The 7 alone.
  assert len(one) == 2  # The "1" in the same marker is a digit: "17".


@pytest.mark.parametrize("kind, index, seed", [
    ("photos", 127, 13),     # a marker 7 on a sheet, the sheet's edge beside it: was "17"
    ("photos", 130, 5152),   # a marker 0, the edge of a hard shadow beside it: was "10"
])
def test_generator_photos_with_an_edge_beside_the_digit(tmp_path, kind, index, seed):
  sample = kinds.draw(kind, index, seed)
  path = tmp_path / sample.name(index)
  path.write_bytes(sample.jpeg)
  glyphs = [d for d in read_digits(path) if d.split_of < 0]
  assert len(glyphs) == len(sample.info["truth"]) == 1


def test_a_digits_strokes_are_kept_beside_a_blot_on_it() -> None:
  # A 2 in pen (strokes 7 px wide) whose loop at the foot filled with ink (a blot 30 px
  # across): its strokes are thinner than half the blot, and reach far beyond it, so they were
  # cut off as a line run into a thick stroke, and the foot read alone ("7323" read 733).
  # A line is a pixel or two thin; pen strokes are the digit's.
  mask = np.zeros((300, 300), np.uint8)
  cv2.ellipse(mask, (150, 90), (45, 40), 0, 180, 360, 1, 7)        # The 2's arc,
  cv2.line(mask, (195, 90), (110, 215), 1, 7)                       # its diagonal,
  cv2.line(mask, (110, 215), (215, 215), 1, 7)                      # its foot,
  cv2.circle(mask, (115, 205), 15, 1, -1)                           # a blot on the turn.
  (glyph,) = digits.find(mask.astype(bool))
  x0, y0, x1, y1 = glyph.box
  assert y0 < 60 and x1 > 210, glyph.box
