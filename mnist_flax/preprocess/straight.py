"""Straight lines in an ink mask, for lines.py: found by Hough on the mask shrunk, refined to
the ink at full size, drawn and measured.

    from mnist_flax.preprocess import straight
    small = straight.shrunk(mask8)                         # once per pass, for both directions
    found = straight.segments(small, span)                 # (N, 4) x0, y0, x1, y1, full size
    lines, sources = straight.refine(mask8, found, vertical)  # one per line, across the picture
    inked = straight.clipped(lines, found[sources], vertical)  # cut to where their ink is
    counts = straight.across(mask8, vertical)
    straight.thickness(counts[straight.band(mask8.shape, lines, 1, vertical)])  # all of them
    straight.each_thickness(counts, inked)                 # each one's

Segments are (N, 4) int arrays x0, y0, x1, y1; ``vertical`` says which way the lines run
(within lines.py's tilt).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from mnist_flax.preprocess import fast

# Lines are looked for on the mask shrunk by this factor (Hough's cost grows with the ink).
SHRINK = 4


def shrunk(mask8: np.ndarray) -> np.ndarray:
  """The mask at 1/SHRINK (uint8 0/1), for both directions' Hough."""
  h, w = mask8.shape
  small = cv2.resize(mask8 * np.uint8(255), (max(1, w // SHRINK), max(1, h // SHRINK)),
                     interpolation=cv2.INTER_AREA)  # Any ink in a block: a 1-px rule stays.
  return (small > 0).astype(np.uint8)


def segments(small: np.ndarray, span: float) -> np.ndarray:
  """(N, 4) x0, y0, x1, y1 of straight runs of ink at least ``span`` pixels long, found on the
  shrunk mask (see shrunk)."""
  span /= SHRINK
  found = cv2.HoughLinesP(small, 1, math.pi / 360,
                          threshold=max(10, int(0.5 * span)), minLineLength=span,
                          maxLineGap=max(2, int(0.03 * span)))
  if found is None:
    return np.zeros((0, 4), np.int32)
  return found.reshape(-1, 4) * SHRINK + SHRINK // 2


def band(shape: tuple[int, ...], segments: np.ndarray, width: int, vertical: bool) -> np.ndarray:
  """A band ``width`` pixels wide (across the lines) around the segments."""
  drawn = np.zeros(shape, np.uint8)
  for x0, y0, x1, y1 in segments:
    cv2.line(drawn, (int(x0), int(y0)), (int(x1), int(y1)), 1, 1)
  if width > 1:
    size = (width, 1) if vertical else (1, width)
    drawn = cv2.dilate(drawn, cv2.getStructuringElement(cv2.MORPH_RECT, size))
  return drawn.view(bool)  # 0 and 1: no comparison needed.


def refine(mask8: np.ndarray, segments: np.ndarray,
           vertical: bool) -> tuple[np.ndarray, np.ndarray]:
  """Segments found on the shrunk mask, made one per line (Hough finds a line in pieces), each
  fitted (robustly, so a stroke crossing it does not pull it) to the middle of the ink within
  SHRINK pixels of it, and drawn across the whole picture: a rule's ends hide under the
  writing or fade, or Hough stops short of them; its line does not bend. Returns the lines
  and the index of the segment each one comes from."""
  grid = mask8.T if vertical else mask8  # Lines run along grid's rows from here on.
  h, w = grid.shape
  if vertical:
    segments = segments[:, [1, 0, 3, 2]]
  x0, y0, x1, y1 = segments.T.astype(np.float64)
  slope = (y1 - y0) / np.where(x1 == x0, 1e-9, x1 - x0)
  middle = y0 + slope * (w / 2 - x0)  # Where each segment's line crosses the middle column.
  order = np.argsort(middle)
  kept: list[int] = []
  for i in order:  # One per line: the longest of the segments within a band of each other.
    if kept and middle[i] - middle[kept[-1]] <= 2 * SHRINK + 1:
      if abs(x1[i] - x0[i]) > abs(x1[kept[-1]] - x0[kept[-1]]):
        kept[-1] = i
      continue
    kept.append(i)
  reach = SHRINK + 2
  offsets = np.arange(-reach, reach + 1)
  # Every second column of every line, all lines at once (their ink's middles are sums of
  # whole numbers, exact in any order); each line fitted on its own.
  spans = [np.arange(int(min(x0[i], x1[i])), int(max(x0[i], x1[i])) + 1, 2) for i in kept]
  spans = [xs[(xs >= 0) & (xs < w)] for xs in spans]
  line = np.repeat(np.array(kept, int), [len(xs) for xs in spans])
  all_xs = np.concatenate(spans)
  ys = np.rint(y0[line] + slope[line] * (all_xs - x0[line])).astype(np.int64)[:, None] + offsets
  inside = (ys >= 0) & (ys < h)
  ink = np.where(inside, grid[np.clip(ys, 0, h - 1), all_xs[:, None]], 0).astype(np.float32)
  weights = ink.sum(axis=1)
  middles = (ink * ys).sum(axis=1) / np.maximum(weights, 1)
  ends = np.cumsum([len(xs) for xs in spans])
  out, sources = [], []
  for i, xs, end in zip(kept, spans, ends):
    run = np.s_[end - len(xs):end]
    hit = weights[run] > 0
    if hit.sum() < 10:
      continue
    points = np.stack([xs[hit], middles[run][hit]], 1)
    vx, vy, px, py = cv2.fitLine(points.astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
    if abs(vx) < 1e-6:
      continue
    left, right = -px / vx, (w - 1 - px) / vx  # From the first column to the last.
    a, b = [px + left * vx, py + left * vy], [px + right * vx, py + right * vy]
    out.append([a[1], a[0], b[1], b[0]] if vertical else [*a, *b])
    sources.append(i)
  return np.round(np.array(out, np.float64).reshape(-1, 4)).astype(np.int32), np.array(sources, int)


def clipped(lines: np.ndarray, found: np.ndarray, vertical: bool) -> np.ndarray:
  """The refined ``lines`` (across the picture) cut to where Hough found their ink (``found``):
  a stroke's line, drawn across the picture, would cut the other digits of a number."""
  a = 1 if vertical else 0  # The coordinate along the lines.
  lo = np.minimum(found[:, a], found[:, a + 2]).astype(np.float64)
  hi = np.maximum(found[:, a], found[:, a + 2]).astype(np.float64)
  p0, p1 = lines[:, :2].astype(np.float64), lines[:, 2:].astype(np.float64)
  run = np.where(p1[:, a] == p0[:, a], 1e-9, p1[:, a] - p0[:, a])
  ends = [p0 + ((t - p0[:, a]) / run)[:, None] * (p1 - p0) for t in (lo, hi)]
  return np.round(np.concatenate(ends, axis=1)).astype(np.int32)


def length(segments: np.ndarray) -> np.ndarray:
  """Each segment's length."""
  return np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])


def across(mask8: np.ndarray, vertical: bool) -> np.ndarray:
  """At each pixel, the ink within 8 pixels across lines of the direction (uint16)."""
  window = (17, 1) if vertical else (1, 17)  # (width, height): across the line.
  return cv2.boxFilter(mask8, cv2.CV_16U, window, normalize=False)


def thickness(counts: np.ndarray) -> int:
  """The thickness of ink along a line: the median of its ``counts`` (see across) where
  they are not 0 (ink within 8 pixels across it)."""
  counts = counts[counts > 0]
  return int(fast.median(counts)) if counts.size else 1


def each_thickness(counts: np.ndarray, segments: np.ndarray) -> np.ndarray:
  """Each segment's own thickness (see thickness) on ``counts`` (see across), sampled every
  second pixel along it."""
  h, w = counts.shape
  out = np.ones(len(segments), int)
  for i, (x0, y0, x1, y1) in enumerate(segments.astype(np.float64)):
    t = np.linspace(0, 1, max(2, int(math.hypot(x1 - x0, y1 - y0) / 2)))
    xs = np.clip(np.rint(x0 + t * (x1 - x0)).astype(np.intp), 0, w - 1)
    ys = np.clip(np.rint(y0 + t * (y1 - y0)).astype(np.intp), 0, h - 1)
    out[i] = thickness(counts[ys, xs])
  return out
