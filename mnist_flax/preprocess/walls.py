"""The walls between a form's cells: thin lines across a row of boxes, for frames.py.

    from mnist_flax.preprocess import walls
    walls.draw(outline, part, corners, width)   # the walls drawn into the box's outline

A form's row of boxes ("2021" written one digit per cell) is one component with its walls.
frames.py takes the box's four sides off and, of the rest, the walls that stand apart; a wall
a digit touches, or one the threshold broke, stayed and was read as a 1 ("2021" read 20211,
"1937" read 19137). Here the walls are found on the box itself: straight lines of ink from
one long side to the other, each as thin as a line with paper beside it, splitting the box
into three or more cells of one width. Measured on 3,273 pictures +5 -0, and held out
(800 numbers, 300 non-digits) +4 -0, non-digits said unsure unchanged. Two cells as well
gave +6 -0 and +5 -0 but read an H and an A on squared paper (a box with a wall) as digits.
A row of cells is also taken off before the rules are (frames.remove_frames with cells_only,
from preprocess.to_digits): a row filling the sheet has long sides that look like rules.
"""

from __future__ import annotations

import cv2
import numpy as np

# A wall's line across the box has ink along _INKED of it, and along _END_INKED of each end's
# _END (it meets both long sides); the ink is looked for a pixel either side of the line.
_INKED, _END, _END_INKED = 0.8, 0.1, 0.9
# Walls part the box into 3 to _MOST_CELLS cells, each at least _NARROWEST_CELL as wide as
# the box is tall (a cell holds a digit).
_MOST_CELLS, _NARROWEST_CELL = 12, 0.45
# A box with cells is at least _LOWEST pixels tall, and _WALLS times as tall as its lines are
# wide: a stroke's own rectangle (a 1's, a marker's bar) has no walls but itself.
_LOWEST, _WALLS = 24, 4
# A wall is no wider along the box than twice its line and two pixels, with paper (ink along
# less than half of the line) on one side or the other of it, a line's width and 3 away.
_BESIDE = 0.5


def draw(outline: np.ndarray, part: np.ndarray, corners: np.ndarray, width: int) -> int:
  """Draws into ``outline`` (uint8) the walls, ``width`` wide, of the box whose component is
  ``part`` (bool) and whose outer ``corners`` are four points in order round it; how many."""
  c = corners.astype(np.float64)
  sides = np.roll(c, -1, axis=0) - c
  lengths = np.hypot(sides[:, 0], sides[:, 1])
  k = 0 if lengths[0] + lengths[2] >= lengths[1] + lengths[3] else 1
  a0, a1 = c[k], c[(k + 1) % 4]  # A long side, and the other one run the same way.
  b0, b1 = c[(k + 3) % 4], c[(k + 2) % 4]
  long_side = 0.5 * (np.hypot(*(a1 - a0)) + np.hypot(*(b1 - b0)))
  across = 0.5 * (np.hypot(*(b0 - a0)) + np.hypot(*(b1 - a1)))
  most = min(_MOST_CELLS, int(long_side / (_NARROWEST_CELL * across)))
  if most < 3 or across < max(_WALLS * width, _LOWEST):
    return 0
  inked = _inked(part, a0, a1, b0, b1, long_side, across, width)
  ts = np.arange(inked.size) / long_side
  found: list[float] = []
  for n in range(3, most + 1):
    near = np.abs(ts[:, None] - np.arange(1, n)[None, :] / n) <= 0.2 / n  # (positions, walls)
    if (near & inked[:, None]).any(axis=0).all():
      found = [float(ts[near[:, i] & inked].mean()) for i in range(n - 1)]
  for t in found:
    p, q = np.rint(a0 + t * (a1 - a0)).astype(int), np.rint(b0 + t * (b1 - b0)).astype(int)
    cv2.line(outline, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), 1, width)
  return len(found)


def _inked(part: np.ndarray, a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray,
           long_side: float, across: float, width: int) -> np.ndarray:
  """At each pixel along the long side a0-a1, whether a wall runs from it to the same place
  on b0-b1 (see the constants)."""
  near = cv2.dilate(part.view(np.uint8), np.ones((3, 3), np.uint8)) > 0
  h, w = near.shape
  ts = np.arange(0, long_side, 1.0) / long_side
  ss = np.linspace(0, 1, max(8, int(across)))
  top, bottom = a0 + ts[:, None] * (a1 - a0), b0 + ts[:, None] * (b1 - b0)
  points = top[:, None, :] + ss[None, :, None] * (bottom - top)[:, None, :]
  x = np.clip(np.rint(points[..., 0]).astype(np.int64), 0, w - 1)
  y = np.clip(np.rint(points[..., 1]).astype(np.int64), 0, h - 1)
  ink = near[y, x]
  end = max(1, int(_END * ss.size))
  cover = ink.mean(axis=1)
  inked = ((cover >= _INKED) & (ink[:, :end].mean(axis=1) >= _END_INKED)
           & (ink[:, -end:].mean(axis=1) >= _END_INKED))
  margin = 2 * width / long_side  # The box's own short sides.
  inked &= (ts > margin) & (ts < 1 - margin)
  steps = np.diff(np.r_[0, inked.astype(np.int8), 0])
  gap = width + 3
  for a, b in zip(np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)):
    if (b - a > 2 * width + 2 or a < gap or b + gap > ts.size
        or min(cover[a - gap], cover[b - 1 + gap]) >= _BESIDE):
      inked[a:b] = False
  return inked
