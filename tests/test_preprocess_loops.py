"""A digit's own loop is no frame (preprocess.frames.remove_frames): round digits on plain paper
keep their strokes, and a thin 0 as tall as the form's cell it touches is not one of its walls.

Run: python -m pytest tests/test_preprocess_loops.py -q
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mnist_flax.preprocess import frames


def _zero(shape: tuple[int, int], centre: tuple[int, int], axes: tuple[int, int], angle: float,
          width: int) -> np.ndarray:
  """A mask holding a 0: an ellipse's outline ``width`` pixels thick."""
  mask = np.zeros(shape, np.uint8)
  cv2.ellipse(mask, centre, axes, angle, 0, 360, 1, width)
  return mask > 0


# Loops that were taken for a frame: upright ones for lines along the ink's extent (a
# screenshot's border), tilted ones for a box's outline through four points of their hull.
@pytest.mark.parametrize("axes, angle, width, pair", [
    ((10, 30), 0.0, 2, False), ((20, 30), 0.0, 3, False), ((20, 22), 25.0, 3, False),
    ((14, 22), 10.0, 3, False), ((10, 30), 25.0, 2, False), ((10, 30), 10.0, 3, True),
    ((20, 30), 0.0, 3, True)])
def test_round_digits_keep_their_ink(axes: tuple[int, int], angle: float, width: int,
                                     pair: bool) -> None:
  mask = _zero((200, 260), (100, 100), axes, angle, width)
  if pair:  # "00" written touching.
    mask |= _zero((200, 260), (100 + 2 * axes[0] - 1, 100), axes, angle, width)
  out, _ = frames.remove_frames(mask)
  assert out.sum() >= 0.95 * mask.sum()


def test_thin_zero_touching_its_cell_stays() -> None:
  # A form's cell (walls 9 pixels thick) and a thin 0 as tall as its inside, touching its top
  # and bottom walls: the walls go, the 0 stays.
  box = np.zeros((260, 220), np.uint8)
  cv2.rectangle(box, (44, 44), (175, 215), 1, 9)
  zero = _zero(box.shape, (110, 130), (30, 82), 0.0, 2)
  out, _ = frames.remove_frames((box > 0) | zero)
  assert (out & zero).sum() >= 0.9 * zero.sum()
  assert (out & ~zero).sum() <= 0.15 * box.sum()
