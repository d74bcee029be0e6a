"""The paper stage's stroke measure (preprocess.paper._stroke_width), which sizes the closing
that estimates the paper under the ink: too small, and a thick stroke is read hollow.

Run: python -m pytest tests/test_preprocess_paper.py -q
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_flax.preprocess import paper


def _ring(stroke: int) -> np.ndarray:
  """A 0 drawn ``stroke`` pixels wide in the middle of a 400 x 300 mask."""
  mask = np.zeros((400, 300), np.uint8)
  cv2.ellipse(mask, (150, 200), (70, 110), 0, 0, 360, 1, stroke)
  return mask > 0


def _specks(mask: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
  """``mask`` with ``count`` one-pixel noise specks on its paper, away from its edge."""
  rng = np.random.default_rng(seed)
  out = mask.copy()
  ys, xs = rng.integers(2, mask.shape[0] - 2, count), rng.integers(2, mask.shape[1] - 2, count)
  out[ys, xs] = True
  return out


def test_stroke_width_of_a_clean_stroke():
  assert 14 <= paper._stroke_width(_ring(16)) <= 18


def test_noise_specks_do_not_halve_a_thick_stroke():
  # A photo's grain: thousands of specks, each a ridge a pixel wide, outnumbering the stroke's.
  assert 14 <= paper._stroke_width(_specks(_ring(16), 3000)) <= 18


def test_specks_alone_are_still_measured():
  # Nothing but grain (the ink elsewhere touches the picture's edge): its width, not none.
  mask = _specks(np.zeros((400, 300), bool), 300)
  mask[:, :40] = True  # A shadow band along the edge, left out.
  assert 0 < paper._stroke_width(mask) < 4
