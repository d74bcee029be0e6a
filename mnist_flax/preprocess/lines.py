"""Ruled lines, squared-paper grids, margins and frames taken out of an ink mask.

    from mnist_flax.preprocess import lines
    mask = lines.remove_rules(mask)     # notebook rules, grid, margin line; crossing strokes kept
    mask = lines.remove_frames(mask)    # a screenshot's border, a form's box, a plate's frame

Rules are long, thin, straight and nearly horizontal or vertical (a photo tilts them by up to
~15 degrees): found by OpenCV's probabilistic Hough transform, they must span most of the ink's
extent, and a single one must span nearly all of it, so that the bar of a 7 that fills the
picture is never taken for one. Where a digit's stroke crosses a rule, the rule's pixels with
stroke on both sides are put back (a closing across the rule), so the digit stays whole.

Frames are closed boxes of four thin sides around the digit: a component that holds another
inside its box and has ink along at least three sides of it, or lines along the edges of the
ink's extent (a screenshot's border) with a clear gap inside them.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# A rule spans at least this fraction of the ink's extent (the sheet, in practice), and is this
# many times longer than what is left without the rules (the digits, a number): a "1", or "111",
# is as tall as the ink it belongs to, ruling and margins are far longer than the digits.
_SPAN = 0.55
_LONGER = 1.6
_LONE_LONGER = 2.5  # For a line alone (a margin): the bar of a 7 is never 2.5x the rest.
_MAX_TILT_DEGREES = 15.0
# Thicker than this fraction of the extent is a stroke or a bar, not a printed rule.
_MAX_THICKNESS = 0.03


# Lines are looked for on the mask shrunk by this factor (Hough's cost grows with the ink).
_SHRINK = 4


def _segments(mask8: np.ndarray, span: float) -> np.ndarray:
  """(N, 4) x0, y0, x1, y1 of straight runs of ink at least ``span`` pixels long."""
  h, w = mask8.shape
  small = cv2.resize(mask8, (max(1, w // _SHRINK), max(1, h // _SHRINK)),
                     interpolation=cv2.INTER_AREA)  # Any ink in a block: a 1-px rule stays.
  span /= _SHRINK
  found = cv2.HoughLinesP((small > 0).astype(np.uint8), 1, math.pi / 360,
                          threshold=max(10, int(0.5 * span)), minLineLength=span,
                          maxLineGap=max(2, int(0.03 * span)))
  if found is None:
    return np.zeros((0, 4), np.int32)
  return found.reshape(-1, 4) * _SHRINK + _SHRINK // 2


def _thickness(mask8: np.ndarray, drawn: np.ndarray, vertical: bool) -> int:
  """The thickness of the ink along drawn lines: the median count of ink pixels across them."""
  window = (17, 1) if vertical else (1, 17)  # (width, height): across the line.
  counts = cv2.boxFilter(mask8, cv2.CV_16U, window, normalize=False)[drawn > 0]
  counts = counts[counts > 0]
  return int(np.median(counts)) if counts.size else 1


def _extent(mask: np.ndarray, vertical: bool) -> float:
  """How far the ink of ``mask`` reaches along one axis (robustly: 2nd to 98th percentile);
  infinite where there is none, so that a line alone is never a rule."""
  coords = np.nonzero(mask)[0 if vertical else 1]
  if coords.size < 20:
    return float("inf")
  lo, hi = np.percentile(coords, (2, 98))
  return float(hi - lo + 1)


def _rule_band(mask8: np.ndarray, vertical: bool, extent: int,
               across: int) -> tuple[np.ndarray, float, int] | None:
  """Where long thin lines in one direction are (a band around them), the longest one's length
  and how many separate lines there are; None if there are none. ``extent``: how far the ink reaches along the lines,
  ``across``: across them."""
  if extent < 40:
    return None
  segments = _segments(mask8, _SPAN * extent)
  dx = np.abs(segments[:, 2] - segments[:, 0])
  dy = np.abs(segments[:, 3] - segments[:, 1])
  along, off = (dy, dx) if vertical else (dx, dy)
  keep = off <= math.tan(math.radians(_MAX_TILT_DEGREES)) * along
  if not keep.any():
    return None
  drawn = np.zeros_like(mask8)
  for x0, y0, x1, y1 in segments[keep]:
    cv2.line(drawn, (int(x0), int(y0)), (int(x1), int(y1)), 1, 1)
  thick = _thickness(mask8, drawn, vertical)
  if thick > max(3, _MAX_THICKNESS * across):
    return None  # A thick bar: a stroke of the digit, not printed ruling.
  grow = thick + _SHRINK + 2  # Room for the positions found at 1/_SHRINK.
  kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (grow, 1) if vertical else (1, grow))
  # Lines apart by more than their thickness are separate lines (rules), not one line's pieces.
  middles = np.sort((segments[keep][:, 0] + segments[keep][:, 2] if vertical
                     else segments[keep][:, 1] + segments[keep][:, 3]) / 2)
  separate = 1 + int((np.diff(middles) > 2 * grow).sum())
  return cv2.dilate(drawn, kernel) > 0, float(np.hypot(dx, dy)[keep].max()), separate


def remove_rules(mask: np.ndarray) -> np.ndarray:
  """``mask`` without ruled lines, grid lines and margin lines (see the module docstring)."""
  ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
  if ys.size == 0:
    return mask
  height, width = int(ys[-1] - ys[0] + 1), int(xs[-1] - xs[0] + 1)
  mask8 = mask.astype(np.uint8)
  found = {vertical: _rule_band(mask8, vertical, *((height, width) if vertical else (width, height)))
           for vertical in (False, True)}
  bands = [hit[0] for hit in found.values() if hit is not None]
  if not bands:
    return mask
  rest = mask & ~np.logical_or.reduce(bands)
  out = mask
  for vertical, hit in found.items():
    if hit is None:
      continue
    band, longest, separate = hit
    if longest < (_LONGER if separate > 1 else _LONE_LONGER) * _extent(rest, vertical):
      continue  # No longer than what it would leave: strokes of the digits ("1", "111").
    rule = band & out
    kept = out & ~rule
    # A stroke crossing the rule has ink on both sides of it: close across, keep those pixels.
    reach = 2 * _thickness(mask8, band.astype(np.uint8), vertical) + 5
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (reach, 1) if vertical else (1, reach))
    bridged = cv2.morphologyEx(kept.astype(np.uint8), cv2.MORPH_CLOSE, kernel) > 0
    out = kept | (rule & bridged)
  return out


def _edge_lines(coverage: np.ndarray, length: int) -> tuple[int | None, int | None]:
  """Thin, nearly full-length lines near both ends of one axis (a frame's sides).

  Returns, for the low and the high end, the index up to which everything is frame (the line
  included), or None. A line must be thin and have little ink just inside it, so that the bar of
  a tightly cropped 7 is not mistaken for a frame.
  """
  band = max(2, int(0.15 * length))
  thick = max(2, int(0.04 * length))
  found: list[int | None] = []
  for order in (np.arange(length), np.arange(length)[::-1]):
    cut = None
    i = 0
    while i < band:
      if coverage[order[i]] >= 0.6:
        j = i
        while j + 1 < length and coverage[order[j + 1]] >= 0.6:
          j += 1
        inside = coverage[order[j + 1:j + 3]]
        if j - i + 1 <= thick and (inside.size == 0 or inside.max() < 0.5):
          cut = j
        i = j + 1
      else:
        i += 1
    found.append(None if cut is None else int(order[cut]))
  return found[0], found[1]


def _inside_border(mask: np.ndarray) -> tuple[slice, slice]:
  """The region inside thin lines along the edges of ``mask`` (a frame), as two slices.

  Lines on two or more sides are a frame. A single line counts only if a clear gap separates it
  from the rest, as the bar of a 7 touching the crop is never separated.
  """
  h, w = mask.shape
  cov_r = mask.sum(axis=1) / w
  cov_c = mask.sum(axis=0) / h
  top, bottom = _edge_lines(cov_r, h)
  left, right = _edge_lines(cov_c, w)
  if sum(s is not None for s in (top, bottom, left, right)) == 1:
    gap = max(2, int(0.03 * max(h, w)))
    if top is not None and cov_r[top + 1:top + 1 + gap].max(initial=0) > 0:
      top = None
    if bottom is not None and cov_r[max(0, bottom - gap):bottom].max(initial=0) > 0:
      bottom = None
    if left is not None and cov_c[left + 1:left + 1 + gap].max(initial=0) > 0:
      left = None
    if right is not None and cov_c[max(0, right - gap):right].max(initial=0) > 0:
      right = None
  r0 = 0 if top is None else top + 1
  r1 = h if bottom is None else bottom
  c0 = 0 if left is None else left + 1
  c1 = w if right is None else right
  if r1 - r0 < 3 or c1 - c0 < 3:
    return slice(0, h), slice(0, w)
  return slice(r0, r1), slice(c0, c1)


def _strip_border(mask: np.ndarray, top: int, left: int, bottom: int, right: int) -> bool:
  """Clears the frame lines along the edges of the box [top:bottom, left:right] of ``mask``
  (in place); whether there were any."""
  box = mask[top:bottom, left:right]
  rows, cols = _inside_border(box)
  if (rows.stop - rows.start, cols.stop - cols.start) == box.shape:
    return False
  inside = np.zeros_like(box)
  inside[rows, cols] = True
  box &= inside
  return True


def remove_frames(mask: np.ndarray) -> np.ndarray:
  """``mask`` without frames and boxes around the digit (see the module docstring)."""
  out = mask.copy()
  ys, xs = np.nonzero(out.any(axis=1))[0], np.nonzero(out.any(axis=0))[0]
  if ys.size == 0:
    return out
  _strip_border(out, int(ys[0]), int(xs[0]), int(ys[-1]) + 1, int(xs[-1]) + 1)
  for _ in range(2):  # A plate's frame inside a border: peel twice at most.
    count, labels, stats, _ = cv2.connectedComponentsWithStats(out.astype(np.uint8), connectivity=8)
    if count < 3:
      return out
    changed = False
    for i in 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:3]:
      x, y, w, h, area = (int(v) for v in stats[i])
      if w < 20 or h < 20 or area > 0.35 * w * h:
        continue  # Small or solid: not a box.
      inner = stats[1:, :]
      holds = ((inner[:, 0] > x) & (inner[:, 1] > y) & (inner[:, 0] + inner[:, 2] < x + w) &
               (inner[:, 1] + inner[:, 3] < y + h) & (inner[:, 4] >= 0.05 * area))
      if not holds.any():
        continue
      part = labels[y:y + h, x:x + w] == i
      band_r, band_c = max(2, h // 8), max(2, w // 8)
      sides = (part[:band_r].any(axis=0).mean(), part[-band_r:].any(axis=0).mean(),
               part[:, :band_c].any(axis=1).mean(), part[:, -band_c:].any(axis=1).mean())
      if sum(s >= 0.6 for s in sides) >= 3:
        out[y:y + h, x:x + w] &= ~part
        changed = True
    if not changed:
      break
  return out
