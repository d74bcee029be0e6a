"""The walls between a form's cells (preprocess.walls): taken off with the box, also where a
digit touches one, and never found in a box of one or two cells or in a stroke.

Run: python -m pytest tests/test_preprocess_walls.py -q
"""

from __future__ import annotations

import cv2
import numpy as np
from conftest import draw_samples, read_numbers

from mnist_flax.preprocess import frames

_WALLS = (135, 250, 365)


def _form(touching: bool, walls: tuple[int, ...] = _WALLS) -> np.ndarray:
  """A row of boxes 460 x 120 (lines 3 px), a 0 in each cell, and a label's word beside it (a
  box that is the ink's whole extent is a screenshot's border); with ``touching``, the 0 of the
  second cell leans on the wall at x=250 (one component with it)."""
  mask = np.zeros((240, 640), np.uint8)
  cv2.rectangle(mask, (530, 190), (610, 220), 1, -1)
  cv2.rectangle(mask, (20, 40), (480, 160), 1, 3)
  for x in walls:
    cv2.line(mask, (x, 40), (x, 160), 1, 3)
  edges = (20, *walls, 480)
  for left, right in zip(edges, edges[1:]):
    middle = (left + right) // 2
    if touching and right == 250:
      middle = right - 36
    cv2.ellipse(mask, (middle, 100), (33, 42), 0, 0, 360, 1, 6)
  return mask.astype(bool)


def _left_along(mask: np.ndarray, x: int) -> int:
  """Ink left within 3 pixels of the wall at column x, away from the digits' rows."""
  return int(mask[46:60, x - 3:x + 4].sum() + mask[140:155, x - 3:x + 4].sum())


def test_a_wall_a_digit_touches_goes_with_the_box() -> None:
  out, _ = frames.remove_frames(_form(touching=True))
  assert [_left_along(out, x) for x in _WALLS] == [0, 0, 0]
  assert out[60:140, 60:95].any()  # The 0s stay.


def test_a_box_of_two_cells_keeps_what_is_between_them() -> None:
  # Its "wall" may be a 1 written in a box (or an H's stem): only rows of three cells or more
  # are looked at here. (Standing apart, it goes as before: see frames._box_outline.)
  out, _ = frames.remove_frames(_form(touching=True, walls=(250,)))
  assert _left_along(out, 250) > 0


def test_forms_whose_walls_a_digit_touches_are_read(tmp_path) -> None:
  # The generator's "2021" and "1937" in a row of boxes: read 20211 and 19137 before.
  drawn = draw_samples(tmp_path, [("numbers", 76, 7), ("numbers", 182, 11)])
  assert [truth for _, truth in drawn] == ["2021", "1937"]
  read = read_numbers(tmp_path)
  assert [read[path.name] for path, _ in drawn] == ["2021", "1937"]


def test_cells_only_takes_a_row_of_cells_and_leaves_a_plain_box() -> None:
  # Taken before the rules are (preprocess.to_digits), while the box's long sides hold it
  # together; a box of one cell, or a ruling, is for the later passes.
  out, _ = frames.remove_frames(_form(touching=True), cells_only=True)
  assert [_left_along(out, x) for x in _WALLS] == [0, 0, 0]
  plain = _form(touching=False, walls=())
  out, _ = frames.remove_frames(plain, cells_only=True)
  assert (out == plain).all()


def test_forms_whose_long_sides_look_like_rules_are_read(tmp_path) -> None:
  # The generator's "1948" and "721" in a row of boxes filling the sheet: remove_rules took the
  # box's long sides and left its walls, read 11191481 and 1712111 before.
  drawn = draw_samples(tmp_path, [("numbers", 58, 31337), ("numbers", 51, 31337)])
  assert [truth for _, truth in drawn] == ["1948", "721"]
  read = read_numbers(tmp_path)
  assert [read[path.name] for path, _ in drawn] == ["1948", "721"]
