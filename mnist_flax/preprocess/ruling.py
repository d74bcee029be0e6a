"""The geometry of one ruling (a notebook's rules, one direction of a grid), for lines.py.

    from mnist_flax.preprocess import ruling
    keep = ruling.parallel(segments, vertical)            # lines that turn as most others do
    grid = ruling.Ruling(reach, segments[keep], vertical, thickness)
    grid.holds(candidates, inked)                          # lines that run as its rules do

A ruling's lines are parallel, or fan out slowly in perspective (a step's turn is well under a
degree at the generator's 12 degrees of tilt, a few across the sheet). A digit's straight
stroke found among them (a 1 between a form box's sides, a 4's bar left between two rules)
turns away from them by more than that: it is kept.
Segments are (N, 4) x0, y0, x1, y1 arrays, drawn across the picture (see straight.refine).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

# A line turned further than this from its ruling's lines (see _turns) is no rule of it.
_TURN = math.radians(2.0)


def _along(segments: np.ndarray, vertical: bool) -> tuple[np.ndarray, np.ndarray]:
  """Each segment's line as across = a + b * along: (a, b), along the lines' own axis."""
  p = segments.astype(np.float64)
  if vertical:
    p = p[:, [1, 0, 3, 2]]
  x0, y0, x1, y1 = p.T
  slope = (y1 - y0) / np.where(x1 == x0, 1e-9, x1 - x0)
  return y0 - slope * x0, slope


def _middle(segments: np.ndarray, vertical: bool) -> np.ndarray:
  """Where along the lines each segment's middle lies."""
  a = 1 if vertical else 0
  return (segments[:, a] + segments[:, a + 2]).astype(np.float64) / 2


def _turns(at: np.ndarray, angle: np.ndarray) -> np.ndarray:
  """The straight line angle = a + b * position that most of the lines (angles, positions
  across them at one place along them) lie within _TURN of, fitted to those by least squares:
  lines through one vanishing point turn in proportion to how far across they lie. The line
  through each pair of them is tried (a sheet's edge or a stroke among them is left out)."""
  if at.size < 3 or np.ptp(at) == 0:
    return np.array([0.0, float(np.median(angle))])
  i, j = np.triu_indices(at.size, 1)
  apart = at[j] - at[i]
  i, j, apart = i[apart != 0], j[apart != 0], apart[apart != 0]
  b = (angle[j] - angle[i]) / apart
  a = angle[i] - b * at[i]
  near = np.abs(angle[None, :] - (a[:, None] + b[:, None] * at[None, :])) <= _TURN
  count = near.sum(axis=1)
  # Of lines fitted as well, the ones that fan out least: a ruling's lines are near parallel.
  best = near[int(np.argmin(np.where(count == count.max(), np.abs(b), np.inf)))]
  return np.polyfit(at[best], angle[best], 1)


def parallel(segments: np.ndarray, vertical: bool) -> np.ndarray:
  """Which lines turn as most of the others do, within _TURN (see _turns); every line where
  there are fewer than three."""
  if len(segments) < 3:
    return np.ones(len(segments), bool)
  offset, slope = _along(segments, vertical)
  angle = np.arctan(slope)
  at = offset + slope * float(np.median(_middle(segments, vertical)))
  return np.abs(angle - np.polyval(_turns(at, angle), at)) <= _TURN


@dataclasses.dataclass(frozen=True)
class Ruling:
  """The rules found of one ruling: how far apart its outermost lie (``reach``), the lines
  themselves (see straight.refine), ``vertical`` or not, and how thick their ink is."""

  reach: int
  lines: np.ndarray
  vertical: bool
  thickness: int

  def holds(self, segments: np.ndarray, inked: np.ndarray) -> np.ndarray:
    """Which lines run as this ruling's rules do, where their ink is (``inked``: the segments
    cut to it): turned no more than _TURN from the turn its rules have there (see _turns)."""
    offset, slope = _along(self.lines, self.vertical)
    c_offset, c_slope = _along(segments, self.vertical)
    out = np.zeros(len(segments), bool)
    for i, t in enumerate(_middle(inked, self.vertical)):
      at = offset + slope * t
      here = c_offset[i] + c_slope[i] * t
      expected = float(np.polyval(_turns(at, np.arctan(slope)), here))
      out[i] = abs(math.atan(c_slope[i]) - expected) <= _TURN
    return out
