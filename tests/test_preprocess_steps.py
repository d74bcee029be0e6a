"""The sheet's edge on a desk of about its shade is no ink (preprocess.paper._off_steps).

Run: python -m pytest tests/test_preprocess_steps.py -q
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from mnist_flax import errors
from mnist_flax.preprocess import gray, paper, read_digits, to_digits


def _sheet_on_desk() -> tuple[Image.Image, np.ndarray, np.ndarray]:
  """A small tilted sheet on a desk a little darker than it, in light falling off to one side,
  its edge a thin dark line (the shading a camera sees there), a pen 7 on it; the sheet's
  corners and the 7's pixels."""
  rng = np.random.default_rng(3)
  h, w = 800, 600
  a = np.full((h, w), 150, np.uint8)  # The desk.
  sheet = np.array([[180, 220], [400, 200], [420, 520], [200, 540]], np.int32)
  cv2.fillConvexPoly(a, sheet, 215)
  cv2.polylines(a, [sheet], True, 110, 3)
  seven = np.zeros_like(a)
  cv2.polylines(seven, [np.array([[270, 340], [340, 335], [300, 460]], np.int32)], False, 1, 5)
  a[seven > 0] = 60
  f = cv2.GaussianBlur(a.astype(np.float32), (5, 5), 0)
  f *= np.linspace(1.0, 0.8, h, dtype=np.float32)[:, None]
  f += rng.normal(0, 3, f.shape).astype(np.float32)
  image = Image.fromarray(np.clip(f + 0.5, 0, 255).astype(np.uint8), "L")
  return image, sheet, seven > 0


def test_sheet_outline_is_not_ink_and_the_digit_is():
  image, sheet, seven = _sheet_on_desk()
  lum, _ = gray.luminance(image)
  page = paper.find_ink(lum)
  assert page is not None
  outline = np.zeros(seven.shape, np.uint8)
  cv2.polylines(outline, [sheet], True, 1, 3)
  outline = outline > 0
  assert page.mask[outline].mean() < 0.1  # The sheet's edge: a step in the paper, no ink.
  assert page.mask[seven].mean() > 0.9
  found = to_digits(image, single=True)
  assert len(found) == 1
  ys, xs = np.nonzero(seven)
  bx0, by0, bx1, by1 = found[0].box
  assert abs(bx0 - xs.min()) <= 4 and abs(bx1 - 1 - xs.max()) <= 4
  assert abs(by0 - ys.min()) <= 4 and abs(by1 - 1 - ys.max()) <= 4


def test_a_blank_sheet_on_a_desk_has_no_digit(tmp_path):
  """All the "ink" is the sheet's outline, which is no ink: no digit, not an error."""
  rng = np.random.default_rng(0)
  a = np.full((1500, 2000), 150, np.float32) + rng.normal(0, 6, (1500, 2000))
  a[200:1300, 300:1700] = 235 + rng.normal(0, 3, (1100, 1400))
  a = cv2.GaussianBlur(a, (5, 5), 0)
  path = tmp_path / "blank_sheet.jpg"
  Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).convert("RGB").save(path, quality=85)
  with pytest.raises(errors.NoDigitFound):
    read_digits(path)
