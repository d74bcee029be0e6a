"""Tests for the shortcuts the preprocessing takes on clean pictures: each gives the answer of the
whole computation it saves, bit for bit (the fields and boxes must not move).

Run: PYTHONPATH=$PWD /work/main/.venv/bin/pytest tests/test_preprocess_exact.py -q
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_flax.preprocess import cuts, thin


def _strokes(rng: np.random.Generator, h: int, w: int, x0: int, x1: int) -> np.ndarray:
  """A bool mask of random lines and rings between columns x0 and x1 (strokes of any width)."""
  m = np.zeros((h, w), np.uint8)
  for _ in range(int(rng.integers(1, 6))):
    cv2.line(m, (int(rng.integers(x0, x1)), int(rng.integers(0, h))),
             (int(rng.integers(x0, x1)), int(rng.integers(0, h))), 1, int(rng.integers(1, 25)))
    cv2.circle(m, (int(rng.integers(x0, x1)), int(rng.integers(0, h))),
               int(rng.integers(3, 60)), 1, int(rng.integers(1, 15)))
  return m.astype(bool)


def test_distances_over_aligned_columns_are_the_whole_pictures() -> None:
  # thin.lines_off measures depth over the ink's columns only, from a multiple of thin._ALIGN:
  # OpenCV's distances then match those over the whole picture in every bit.
  rng = np.random.default_rng(1)
  for _ in range(200):
    h, w = int(rng.integers(40, 500)), int(rng.integers(40, 1000))
    a = int(rng.integers(0, w - 20))
    mask = _strokes(rng, h, w, a, int(rng.integers(a + 10, w)))
    whole = cv2.distanceTransform(np.pad(mask, 1).view(np.uint8), cv2.DIST_L2, 3)
    xs = np.flatnonzero(mask.any(axis=0))
    x0 = int(xs[0]) - int(xs[0]) % thin._ALIGN
    part = cv2.distanceTransform(np.pad(mask[:, x0:int(xs[-1]) + 1], 1).view(np.uint8),
                                 cv2.DIST_L2, 3)
    assert np.array_equal(part.view(np.uint32),
                          whole[:, x0:x0 + part.shape[1]].view(np.uint32)), (h, w, x0)


def _cheapest_paths(ink: np.ndarray, bands: list[tuple[int, int]]) -> list[list[int]]:
  """cuts._seams the plain way: per band, row by row and column by column in Python floats
  (float64, as the seams add up), the first of equal ways in (left, straight, right)."""
  h, w = ink.shape
  out = []
  for lo, hi in bands:
    cost = [[float(ink[0, x]) if lo <= x < hi else np.inf for x in range(w)]]
    came = [[0] * w]
    for y in range(1, h):
      row, steps = [], []
      for x in range(w):
        ways = [cost[-1][x - 1] + cuts._SIDESTEP if x > 0 else np.inf, cost[-1][x],
                cost[-1][x + 1] + cuts._SIDESTEP if x + 1 < w else np.inf]
        best = min(range(3), key=lambda i: (ways[i], i))
        row.append((float(ink[y, x]) if lo <= x < hi else np.inf) + ways[best])
        steps.append(best - 1)
      cost.append(row)
      came.append(steps)
    path = [min(range(w), key=lambda x: (cost[-1][x], x))]
    for y in range(h - 1, 0, -1):
      path.append(path[-1] + came[y][path[-1]])
    out.append(path[::-1])
  return out


def test_seams_are_the_cheapest_paths_ties_to_the_left() -> None:
  rng = np.random.default_rng(2)
  for i in range(60):
    h, w = int(rng.integers(2, 30)), int(rng.integers(3, 40))
    ink = rng.random((h, w), dtype=np.float32)
    if i % 2:  # Few levels: many ties.
      ink = np.round(ink * 2).astype(np.float32) / 2
    bands = [(max(1, c - 4), min(w - 1, c + 5)) for c in range(1, w - 1, max(1, w // 6))]
    found = cuts._seams(ink, bands)
    assert [list(p) for p in found] == _cheapest_paths(ink, bands), (h, w)
    assert all(p.dtype == np.int64 for p in found)
