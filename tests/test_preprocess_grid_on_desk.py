"""A squared sheet photographed on a desk loses both directions of its grid
(preprocess.lines.remove_rules): its vertical lines fall short of the ink's extent, which the
desk's edge stretches, but not of its horizontal rules' reach.

Run: python -m pytest tests/test_preprocess_grid_on_desk.py -q
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_flax.preprocess import lines


def test_grid_below_a_desk_edge_goes_whole() -> None:
  shape = (1000, 800)
  # The desk's edge across the top of the picture, ragged: pieces of it stay after its line
  # goes, and the ink's extent with them.
  edge = np.zeros(shape, np.uint8)
  cv2.line(edge, (0, 6), (799, 10), 1, 3)
  for x in range(0, 800, 12):
    cv2.line(edge, (x, 8), (x, 20), 1, 3)
  across = np.zeros(shape, np.uint8)
  for y in range(660, 1000, 40):
    cv2.line(across, (100, y), (790, y + 4), 1, 2)
  down = np.zeros(shape, np.uint8)
  for x in range(100, 800, 40):  # 340 pixels long: under 40% of the ink's extent (990).
    cv2.line(down, (x, 650), (x + 3, 990), 1, 2)
  seven = np.zeros(shape, np.uint8)
  cv2.polylines(seven, [np.array([[330, 722], [420, 718], [370, 900]]).reshape(-1, 1, 2)],
                False, 1, 6)
  mask = (edge | across | down | seven) > 0
  out = lines.remove_rules(mask)
  assert (out & (down > 0) & (seven == 0)).sum() <= 0.1 * down.sum()  # Before: 99% left.
  assert (out & (across > 0) & (seven == 0)).sum() <= 0.15 * across.sum()
  assert (out & (seven > 0)).sum() >= 0.85 * seven.sum()
