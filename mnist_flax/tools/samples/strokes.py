"""The strokes of handwritten digits: skeletons in a unit box and the smooth curves through them.

The first step of every sample picture (never MNIST). Each digit 0-9 is a list of strokes
(one pen-down movement each) made of pieces (control points of a smooth curve) that meet at
sharp corners, in a unit box. ``skeleton`` picks a digit's strokes with its style variants
(a 1 with a flag, a closed 4, a 7 with a crossbar); ``catmull_rom`` turns a piece's control
points into a dense polyline. ``drawing`` renders them as plain images; ``handwriting`` puts
them on a sheet in millimetres for the photos.

    import numpy as np
    from mnist_flax.tools.samples import strokes
    unit = strokes.skeleton(7, np.random.default_rng(0), True, None, None)  # with a crossbar
    line = strokes.catmull_rom(np.array(unit[0][0]))  # (n, 2) points along the first piece
"""

from __future__ import annotations

import numpy as np

_Point = tuple[float, float]
# A stroke is one pen-down movement: pieces are smooth curves joined at sharp corners.
UnitStroke = list[list[_Point]]

# Skeletons in a unit box: x to the right, y downwards, both in [0, 1]. Shapes follow common
# MNIST handwriting: 7 without a crossbar, 1 as one stroke, 4 with an open top, 9 with a
# round loop and a straight tail, 5 with a flat bar and a sharp corner (unlike the 3).
SKELETONS: dict[int, list[UnitStroke]] = {
    0: [[[(0.55, 0.0), (0.2, 0.12), (0.04, 0.5), (0.2, 0.9), (0.5, 1.0), (0.8, 0.88),
          (0.96, 0.5), (0.82, 0.12), (0.55, 0.0), (0.38, 0.06)]]],
    1: [[[(0.55, 0.0), (0.5, 0.5), (0.45, 1.0)]]],
    2: [[[(0.06, 0.26), (0.3, 0.03), (0.65, 0.0), (0.9, 0.2), (0.82, 0.46), (0.45, 0.76),
          (0.04, 1.0)], [(0.04, 1.0), (0.5, 0.97), (0.98, 0.98)]]],
    3: [[[(0.08, 0.13), (0.45, 0.0), (0.85, 0.12), (0.8, 0.34), (0.42, 0.48)],
         [(0.42, 0.48), (0.85, 0.6), (0.92, 0.82), (0.6, 1.0), (0.3, 0.98), (0.04, 0.85)]]],
    4: [[[(0.32, 0.0), (0.04, 0.62)], [(0.04, 0.62), (0.5, 0.63), (1.0, 0.6)]],
        [[(0.74, 0.1), (0.71, 0.55), (0.68, 1.0)]]],
    5: [[[(0.2, 0.02), (0.15, 0.46)],
         [(0.15, 0.46), (0.45, 0.37), (0.8, 0.45), (0.92, 0.7), (0.72, 0.95), (0.4, 1.0),
          (0.04, 0.88)]],
        [[(0.2, 0.02), (0.55, 0.0), (0.92, 0.0)]]],
    6: [[[(0.8, 0.02), (0.45, 0.15), (0.18, 0.5), (0.14, 0.8), (0.4, 1.0), (0.74, 0.93),
          (0.84, 0.7), (0.6, 0.5), (0.3, 0.55), (0.15, 0.72)]]],
    7: [[[(0.04, 0.04), (0.5, 0.02), (0.96, 0.0)], [(0.96, 0.0), (0.66, 0.45), (0.42, 1.0)]]],
    8: [[[(0.76, 0.1), (0.5, 0.0), (0.22, 0.1), (0.26, 0.3), (0.5, 0.47), (0.8, 0.66),
          (0.8, 0.9), (0.5, 1.0), (0.18, 0.88), (0.22, 0.65), (0.5, 0.47), (0.74, 0.3),
          (0.78, 0.12), (0.62, 0.02)]]],
    9: [[[(0.86, 0.2), (0.6, 0.02), (0.26, 0.05), (0.14, 0.28), (0.38, 0.47), (0.72, 0.42),
          (0.86, 0.2)], [(0.86, 0.2), (0.8, 0.6), (0.7, 1.0)]]],
}
_FLAG_1: UnitStroke = [[(0.18, 0.22), (0.55, 0.0)], [(0.55, 0.0), (0.5, 0.5), (0.45, 1.0)]]
_CLOSED_4: list[UnitStroke] = [[[(0.7, 0.0), (0.04, 0.64)], [(0.04, 0.64), (1.0, 0.62)]],
                               [[(0.7, 0.0), (0.69, 0.55), (0.68, 1.0)]]]
_CROSSBAR_7: UnitStroke = [[(0.32, 0.53), (0.82, 0.5)]]
# Width of each digit relative to its height, as handwriting tends to have it.
ASPECT = {0: 0.72, 1: 0.34, 2: 0.68, 3: 0.64, 4: 0.74, 5: 0.64, 6: 0.64, 7: 0.64, 8: 0.6,
          9: 0.6}


def catmull_rom(points: np.ndarray, samples_per_segment: int = 12) -> np.ndarray:
  """Returns a dense polyline through ``points`` (a smooth curve, not a polygon)."""
  if len(points) < 3:
    t = np.linspace(0.0, 1.0, samples_per_segment + 1)[:, None]
    return points[0] + t * (points[-1] - points[0])
  padded = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
  t = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)[:, None]
  out = []
  for i in range(1, len(padded) - 2):
    p0, p1, p2, p3 = padded[i - 1:i + 3]
    out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 +
                      (-p0 + 3 * p1 - 3 * p2 + p3) * t**3))
  out.append(points[-1:])
  return np.vstack(out)


def skeleton(digit: int, rng: np.random.Generator, crossbar_7: bool,
             closed_4: bool | None, flag_1: bool | None) -> list[UnitStroke]:
  """The strokes of ``digit``; a None style variant (4, 1) is drawn from ``rng``."""
  strokes = SKELETONS[digit]
  if digit == 1 and (rng.random() < 0.35 if flag_1 is None else flag_1):
    strokes = [_FLAG_1]
  if digit == 4 and (rng.random() < 0.3 if closed_4 is None else closed_4):
    strokes = _CLOSED_4
  if digit == 7 and crossbar_7:
    strokes = strokes + [_CROSSBAR_7]
  return strokes

