"""Which side of a photo is ink (preprocess.paper.ink_is_dark): the lit part of a sheet mostly in
a hard shadow is paper, however ragged the shadow's edge makes it.

A shadow over most of a sheet left Otsu's lighter side small and ragged (under 40% of its box),
so it was taken for light strokes, the picture turned over, and the lit paper read as ink
("869" read 5). A region a disc 40% of the picture's short side fits in, beside one shade over
half the picture, is lit paper; chalk strokes are never that deep, and a dark plate on a lit
wall is no such shade.

Run: python -m pytest tests/test_preprocess_polarity.py -q
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import draw_samples, read_numbers

from mnist_flax.preprocess import gray, paper, read

# Generator photos of a sheet mostly in a hard shadow (read 8, 2 and 5 before), and plates on a
# wall with a hard shadow, whose polarity must not change (read right before and after).
IN_SHADE = [("photos", 26, 5152), ("photos", 127, 9001), ("numbers", 130, 9001)]
PLATES = [("photos", 3, 13), ("numbers", 31, 11), ("photos", 54, 31337)]


def _shaded_sheet() -> np.ndarray:
  """A sheet in shadow (0.3) but for a lit square (0.85) 260 px wide in a corner and a lit
  strip 20 px wide along two of its edges (the sun through a window's frame), a stroke in the
  square: the lit part fills a fifth of its box."""
  lum = np.full((600, 800), 0.3, np.float32)
  lum[:260, :260] = 0.85
  lum[:20, :] = 0.85
  lum[:, 780:] = 0.85
  cv2.line(lum, (120, 60), (140, 200), 0.1, 6)
  return lum


def test_the_lit_part_of_a_shaded_sheet_is_paper() -> None:
  assert paper.ink_is_dark(_shaded_sheet())


def test_chalk_strokes_on_a_board_are_light_ink() -> None:
  board = np.full((600, 800), 0.15, np.float32)
  cv2.circle(board, (400, 220), 90, 0.9, 14)
  cv2.circle(board, (400, 420), 110, 0.9, 14)
  cv2.line(board, (40, 40), (760, 40), 0.9, 14)  # An underline across the board.
  assert not paper.ink_is_dark(board)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[tuple[Path, str]]:
  return draw_samples(tmp_path_factory.mktemp("polarity"), IN_SHADE + PLATES)


def test_shaded_sheets_are_dark_ink_and_every_photo_is_read(photos) -> None:
  for path, _ in photos[:len(IN_SHADE)]:
    lum = gray.luminance(read.open_image(path, draft_side=gray.WORK_SIDE))[0]
    assert paper.ink_is_dark(lum), path.name
  assert read_numbers(photos[0][0].parent) == {path.name: truth for path, truth in photos}
