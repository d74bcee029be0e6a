"""A ruled sheet that fills only a corner of a photo loses its rules and its margin
(preprocess.lines.remove_rules): specks of the desk at the picture's far edges must not make its
rules seem short beside the ink's extent, and its margin need only cross the ruling, not the
whole picture.

Run: python -m pytest tests/test_preprocess_ruled_sheet_in_corner.py -q
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_flax.preprocess import lines


def test_rules_and_margin_of_a_sheet_in_a_corner_go() -> None:
  shape = (1000, 1000)
  specks = np.zeros(shape, np.uint8)
  for x, y in ((3, 990), (995, 5), (990, 980), (10, 10), (500, 996), (996, 500)):
    cv2.circle(specks, (x, y), 2, 1, -1)
  rules = np.zeros(shape, np.uint8)
  for y in range(120, 480, 24):  # 380 pixels long: under 40% of the specks' extent (993).
    cv2.line(rules, (100, y), (480, y + 6), 1, 2)
  margin = np.zeros(shape, np.uint8)
  cv2.line(margin, (150, 105), (148, 485), 1, 2)
  zero = np.zeros(shape, np.uint8)
  cv2.ellipse(zero, (330, 300), (35, 60), 0, 0, 360, 1, 6)
  mask = (specks | rules | margin | zero) > 0
  out = lines.remove_rules(mask)
  assert (out & (rules > 0) & (zero == 0)).sum() <= 0.1 * rules.sum()
  assert (out & (margin > 0) & (zero == 0)).sum() <= 0.1 * margin.sum()
  assert (out & (zero > 0)).sum() >= 0.85 * zero.sum()
