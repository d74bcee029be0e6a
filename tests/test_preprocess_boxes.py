"""A form's box taken off a digit that touches it, and a number's own strokes left as they are
(preprocess.frames.remove_frames).

Run: python -m pytest tests/test_preprocess_boxes.py -q
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mnist_flax.preprocess import frames


def _boxed_two(wall: int, foot: int) -> tuple[np.ndarray, np.ndarray]:
  """A mask holding a box (outer edge 60..219 both ways, walls ``wall`` pixels thick) and a 2
  drawn 6 pixels wide whose foot runs along row 209 - ``foot`` (on the bottom wall, or just
  inside it); and the 2's own pixels."""
  two = np.array([[100, 95], [150, 85], [170, 120], [95, 210 - foot], [180, 209 - foot]])
  digit = np.zeros((300, 300), np.uint8)
  cv2.polylines(digit, [two.reshape(-1, 1, 2)], False, 1, 6)
  box = np.zeros_like(digit)
  cv2.rectangle(box, (60 + wall // 2, 60 + wall // 2), (219 - wall // 2, 219 - wall // 2), 1,
                wall)
  return (digit | box) > 0, digit > 0


@pytest.mark.parametrize("wall, foot", [(7, 0), (9, 3), (3, 0), (5, 6)])
def test_box_goes_whole_from_a_digit_touching_it(wall: int, foot: int) -> None:
  mask, digit = _boxed_two(wall, foot)
  out, _ = frames.remove_frames(mask)
  # The 2 stays, but for what of its foot lies on the wall.
  assert (out & digit).sum() >= 0.7 * digit.sum()
  # Nothing of the walls is left: a thick wall's inner sliver beside the 2 would read as a 1.
  assert (out & ~digit).sum() == 0


def test_a_number_starting_with_a_1_and_ending_with_a_4s_stem_is_no_frame() -> None:
  # "17804" printed, alone on the mask once a ruling is gone: the 1 and the 4's stem are
  # full-height lines at both ends of the ink's extent, and were stripped as a frame's sides
  # (read 7806). A frame's side runs past what it frames; the digits between are as tall.
  mask = np.zeros((200, 500), np.uint8)
  cv2.line(mask, (60, 50), (60, 150), 1, 6)                     # 1
  cv2.line(mask, (100, 52), (160, 52), 1, 6)                    # 7
  cv2.line(mask, (160, 52), (120, 150), 1, 6)
  cv2.circle(mask, (215, 75), 24, 1, 6)                         # 8
  cv2.circle(mask, (215, 124), 26, 1, 6)
  cv2.ellipse(mask, (300, 100), (30, 50), 0, 0, 360, 1, 6)      # 0
  cv2.line(mask, (390, 50), (350, 120), 1, 6)                   # 4
  cv2.line(mask, (350, 120), (410, 120), 1, 6)
  cv2.line(mask, (400, 50), (400, 150), 1, 6)
  out, _ = frames.remove_frames(mask.astype(bool))
  assert out.sum() == mask.sum()


def test_two_lines_along_a_digits_top_and_bottom_are_a_frame() -> None:
  # A screenshot's lines above and below a 1: each side spans the whole width, and the ink
  # between them (the 1) far less of it.
  mask = np.zeros((200, 200), np.uint8)
  mask[0:2] = mask[-2:] = 1
  cv2.line(mask, (100, 50), (100, 150), 1, 8)
  out, _ = frames.remove_frames(mask.astype(bool))
  assert not out[:2].any() and not out[-2:].any() and out[50:150, 100].all()
