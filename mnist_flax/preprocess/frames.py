"""Frames and boxes around the digit taken out of an ink mask (after lines.remove_rules).

    from mnist_flax.preprocess import frames
    mask, _ = frames.remove_frames(mask)   # a screenshot's border, a form's box, a plate's frame

Frames are closed boxes of four thin sides around the digit: a component that holds another
inside its box and has ink along at least three sides of it (not one that a corner of the
picture cuts: the desk), or lines along the edges of the ink's extent (a screenshot's border)
with a clear gap inside them.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from mnist_flax.preprocess import fast, walls

# How much of a box's hull the polygon of its four corners holds (hull area / polygon area):
# a drawn, printed or photographed box's is about 1 (measured 1.01-1.10 on forms and plates);
# a round digit's hull against its rectangle about pi/4, against four points on it well over 1.
_CORNERS_FILL = (0.9, 1.15)
# A box's hull has four corners, each side at least this fraction of its rectangle's shorter
# side (a box seen in perspective is foreshortened a little); a 7's hull is a triangle, and
# its serif, or a hook, makes a fourth corner a few pixels from another (its bar was taken for
# a box's top and cut off: "74" read 14).
_SHORTEST_SIDE = 0.3
# A component whose ink fills more of its box than this is solid, no box (a blot, a plate's
# face). A form's small box with a digit touching it, its sides thick at the working size,
# fills 0.36-0.54 of it: at 0.35 the box stayed and was read, "5" as 0 (0.5: +6 -1 on 3,273
# pictures; 0.6 and 0.75: +8 -1, the loss a touching "64" whose shadow's blob changed).
_SOLID = 0.6
# A box has ink along at least this fraction of each side of its rectangle. In a drawing, a
# component is checked for a box a digit touches only then: else each digit is (15% more CPU).
_SIDE_INKED = 0.7
# What a frame's side frames spans at most this fraction of its length.
_FRAMED = 0.9
# A wall between a form's cells runs within this of the box's sides (a box seen in
# perspective turns its sides a few degrees apart).
_WALL_TURN = math.radians(6.0)


def _edge_lines(coverage: np.ndarray, length: int) -> tuple[int | None, int | None]:
  """Thin, nearly full-length lines near both ends of one axis (a frame's sides).

  Returns, for the low and the high end, the index up to which everything is frame (the line
  included), or None. A line must be thin and have little ink just inside it, so that the bar of
  a tightly cropped 7 is not mistaken for a frame.
  """
  band = min(length, max(2, int(0.15 * length)))
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
  cov_r = fast.count_nonzero(mask, axis=1) / w
  cov_c = fast.count_nonzero(mask, axis=0) / h
  top, bottom = _edge_lines(cov_r, h)
  left, right = _edge_lines(cov_c, w)
  # A frame's side runs into its corners, the ends of the ink's extent; the top of a round
  # digit's loop (a 0, an 8) is as full a line of its box, but curves away from them.
  end = max(2, int(0.03 * max(h, w)))
  if top is not None and not _reaches_ends(mask[:top + 1], end):
    top = None
  if bottom is not None and not _reaches_ends(mask[bottom:], end):
    bottom = None
  if left is not None and not _reaches_ends(mask[:, :left + 1].T, end):
    left = None
  if right is not None and not _reaches_ends(mask[:, right:].T, end):
    right = None
  # A frame's side runs past what it frames, the ink between the sides (the 1 that starts a
  # number, and the 4's stem that ends it, are as tall as the digits between them: "17804"
  # read 7806).
  r0, r1 = (0 if top is None else top + 1), (h if bottom is None else bottom)
  c0, c1 = (0 if left is None else left + 1), (w if right is None else right)
  framed = mask[r0:r1, c0:c1]
  top = None if top is not None and not _shorter(framed.T, mask[:top + 1].T) else top
  bottom = None if bottom is not None and not _shorter(framed.T, mask[bottom:].T) else bottom
  left = None if left is not None and not _shorter(framed, mask[:, :left + 1]) else left
  right = None if right is not None and not _shorter(framed, mask[:, right:]) else right
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


def _shorter(inside: np.ndarray, line: np.ndarray) -> bool:
  """Whether the ink ``inside`` a frame's sides spans well less of the length of ``line``, one
  of them (both along axis 0)."""
  rows, along = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(line.any(axis=1))
  return rows.size == 0 or rows[-1] - rows[0] < _FRAMED * (along[-1] - along[0])


def _reaches_ends(rows: np.ndarray, end: int) -> bool:
  """Whether the ink of ``rows`` (a frame's side, along its length) lies within ``end`` pixels
  of both its ends."""
  return bool(rows[:, :end].any() and rows[:, -end:].any())


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


def _outer_points(part: np.ndarray) -> np.ndarray:
  """The points of a region's outer contours: what its hull and minimum-area rectangle depend
  on, a fraction of its pixels."""
  contours, _ = cv2.findContours(part.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
  return np.concatenate(contours)


def _shortest_side(corners: np.ndarray) -> float:
  """The length of a polygon's shortest side."""
  return float(np.hypot(*(np.roll(corners, -1, axis=0) - corners).T).min())


def _box_outline(part: np.ndarray, cells_only: bool = False) -> np.ndarray | None:
  """Where a rectangle's outline (turned any way) runs through a component (its pixels, cut to
  its box), if the component holds one: the sides of its minimum-area rectangle, mostly drawn.
  A digit touching the box stays part of the component; only the outline is returned."""
  points = _outer_points(part)
  (cx, cy), (rw, rh), angle = cv2.minAreaRect(points)
  if min(rw, rh) < 12:
    return None
  outline = np.zeros(part.shape, np.uint8)
  # The box's corners: its hull's four (a box seen in perspective is no rectangle), else the
  # minimum-area rectangle's.
  hull = cv2.convexHull(points)
  corners = cv2.approxPolyDP(hull, 0.02 * cv2.arcLength(hull, True), True).reshape(-1, 2)
  if len(corners) != 4 or _shortest_side(corners) < _SHORTEST_SIDE * min(rw, rh):
    # (Four corners, one side a serif's length: a triangle, a 7's hull, not a box's.)
    corners = cv2.boxPoints(((cx, cy), (rw, rh), angle)).astype(np.int32)
  # A box's hull is its four corners' polygon; a round digit's (a 0, a 6's or 9's loop) fills
  # pi/4 of its rectangle, or overflows four points taken on it: its strokes, not a frame.
  fill = cv2.contourArea(hull) / max(cv2.contourArea(corners.astype(np.float32)), 1.0)
  if not _CORNERS_FILL[0] <= fill <= _CORNERS_FILL[1]:
    return None
  band = max(3, int(0.06 * min(rw, rh)))
  # Drawn along 70% of its length: found by thinning the band's coverage to the outline's own
  # one-pixel path.
  path = np.zeros(part.shape, np.uint8)
  cv2.polylines(path, [corners], True, 1, 1)
  near = cv2.dilate(part.astype(np.uint8), np.ones((5, 5), np.uint8))
  if (near & path).sum() < 0.7 * path.sum():
    return None
  width = max(band, _wall(part, near, corners, path, band))
  cv2.polylines(outline, [corners], True, 1, width)
  # A form's row of cells: the walls between them (with cells_only, a box without is none).
  if walls.draw(outline, part, corners, width) == 0 and cells_only:
    return None
  # What the band misses of a box drawn by hand or seen in perspective is the box too: pieces
  # left that never get two bands from its path (a digit touching the box reaches inside);
  # so are walls standing apart (of two cells): thin lines across the whole box. A digit's
  # stroke that crosses a side stays whole, and with it what it holds outside the box.
  rest = (part & ((outline == 0) | _crossings(part, outline > 0, corners, width))).astype(np.uint8)
  count, labels, stats, _ = fast.connected_components(rest, connectivity=8)
  far = cv2.distanceTransform(1 - path, cv2.DIST_L2, 3) > 2 * band
  inside = np.bincount(labels[far & (rest > 0)], minlength=count) > 0
  _, _, w, h, area = stats.T
  long_side = np.maximum(w, h)
  apart = np.flatnonzero(inside & (long_side >= 0.7 * min(rw, rh)) &
                         (area <= 1.5 * band * long_side))
  sides = np.roll(corners, -1, axis=0) - corners
  turns = np.arctan2(sides[:, 1], sides[:, 0])
  if apart.size:  # A wall stays within the box; a 1 that crosses a side reaches beyond it.
    within = np.zeros(part.shape, np.uint8)
    cv2.fillPoly(within, [corners.astype(np.int32)], 1)
    within = cv2.dilate(within, np.ones((width + 3, width + 3), np.uint8))
    beyond = np.bincount(labels[(within == 0) & (rest > 0)], minlength=count)
    apart = apart[beyond[apart] == 0]
  for i in apart:
    # A wall is straight: thin across its own rectangle, where a thin-stroked 0 or 8 as
    # tall as the box is as wide as a digit; and it runs along two of the box's sides, where
    # a 1's or a 7's stroke across the box leans.
    (_, _), (ww, wh), turn = cv2.minAreaRect(_outer_points(labels == i))
    along = math.radians(turn if ww >= wh else turn + 90)
    if min(ww, wh) <= 2 * band and _parallel_to(along, turns):
      inside[i] = False
  inside[0] = False
  return part & ~inside[labels]


def _parallel_to(turn: float, turns: np.ndarray) -> bool:
  """Whether a line turned ``turn`` (radians) runs within _WALL_TURN of one of ``turns``."""
  off = np.abs((turns - turn + math.pi / 2) % math.pi - math.pi / 2)
  return bool((off <= _WALL_TURN).any())


def _crossings(part: np.ndarray, outline: np.ndarray, corners: np.ndarray, width: int
               ) -> np.ndarray:
  """The pixels of ``outline`` (the box's sides, ``width`` wide, between ``corners``) where a
  stroke crosses a side: the component ``part`` has ink off the outline just beyond both
  edges of the side there, within a side's width of each other along it (a stroke crosses
  at a slant)."""
  off = (part & ~outline).astype(np.uint8)
  h, w = part.shape
  out = np.zeros(part.shape, bool)
  beyond = width / 2 + np.array([1.0, 2.0, 3.0])  # Just off the band, across the side.
  for a, b in zip(corners.astype(np.float64), np.roll(corners, -1, axis=0).astype(np.float64)):
    length = float(np.hypot(*(b - a)))
    if length < 1:
      continue
    t = (b - a) / length
    n = np.array([-t[1], t[0]])
    u = np.arange(int(length) + 1, dtype=np.float64)
    met = []
    for sign in (1.0, -1.0):
      x = np.rint(a[0] + u[:, None] * t[0] + sign * beyond * n[0]).astype(np.int64)
      y = np.rint(a[1] + u[:, None] * t[1] + sign * beyond * n[1]).astype(np.int64)
      inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
      ink = (inside & (off[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)] > 0)).any(axis=1)
      met.append(cv2.dilate(ink.astype(np.uint8)[None], np.ones((1, width), np.uint8))[0] > 0)
    crossed = met[0] & met[1]
    # A stroke lying along the side (a 7's bar under the top): the ink across the band runs
    # further than the side's own (a printed side is as thick all along) for a stretch longer
    # than the band is wide, away from the corners (where the next side runs across).
    across = np.arange(-(width // 2) - 2, width // 2 + 3, dtype=np.float64)
    x = np.rint(a[0] + u[:, None] * t[0] + across * n[0]).astype(np.int64)
    y = np.rint(a[1] + u[:, None] * t[1] + across * n[1]).astype(np.int64)
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    run = (inside & part[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)]).sum(axis=1)
    own = float(np.median(run))
    lying = (run >= own + max(2.0, own / 2)).astype(np.uint8)[None]
    lying = cv2.morphologyEx(lying, cv2.MORPH_OPEN, np.ones((1, width), np.uint8))[0] > 0
    lying[:width] = lying[-width:] = False
    crossed |= lying
    if not crossed.any():
      continue
    side = np.zeros(part.shape, np.uint8)
    cv2.line(side, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), 1, width)
    ys, xs = np.nonzero((side > 0) & outline)
    along = np.rint((xs - a[0]) * t[0] + (ys - a[1]) * t[1]).astype(np.int64)
    keep = crossed[np.clip(along, 0, u.size - 1)]
    out[ys[keep], xs[keep]] = True
  return out


def _wall(part: np.ndarray, near: np.ndarray, corners: np.ndarray, path: np.ndarray,
          band: int) -> int:
  """The walls' thickness plus a pixel (four times the median distance to the paper of their
  pixels along ``path``, the outer edge the corners trace), as the width of the band to take
  them off with, where all four sides are drawn along their whole length (``near``: the
  component, dilated as for the 70% test); else 0. A wall thicker than the band left its inner
  sliver with a digit touching it, read as a 1 beside it; a digit whose rectangle looks drawn
  (a 9's loop and tail along its sides) never fills all four sides, and keeps the narrow band."""
  for a, b in zip(corners, np.roll(corners, -1, axis=0)):
    side = np.zeros(part.shape, np.uint8)
    cv2.line(side, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), 1, 1)
    if (near & side).sum() < 0.95 * side.sum():
      return 0
  along = cv2.dilate(path, np.ones((band, band), np.uint8)) > 0
  # Paper around the box (its walls run along the cut's edge).
  padded = cv2.copyMakeBorder(part.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
  depth = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1][along & part]
  return int(np.ceil(4.0 * float(np.median(depth)))) + 1 if depth.size else 0


def remove_frames(mask: np.ndarray, drawn: bool = False, cells_only: bool = False
                  ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
  """``mask`` without frames and boxes around the digit (see the module docstring), also those
  the digit touches; in a drawing (``drawn``: a scan, a screenshot), those only where ink runs
  along every side of the box's rectangle (see _SIDE_INKED); with ``cells_only``, only a form's
  rows of cells (boxes with walls: see walls.py), and no picture's border. Also returns the
  result's connected components (labels, stats) when they are known (nothing was removed after
  they were found), for digits.find."""
  out = mask.copy()
  ys, xs = np.nonzero(out.any(axis=1))[0], np.nonzero(out.any(axis=0))[0]
  if ys.size == 0:
    return out, None
  box = int(ys[0]), int(xs[0]), int(ys[-1]) + 1, int(xs[-1]) + 1
  if not cells_only:
    _strip_border(out, *box)
  labels, stats = _components_in(out, *box)
  known = True
  for i in 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:4]:
    x, y, w, h, area = (int(v) for v in stats[i])
    if w < 20 or h < 20 or area > _SOLID * w * h:
      continue  # Small or solid: not a box.
    if (x == 0 or x + w == mask.shape[1]) and (y == 0 or y + h == mask.shape[0]):
      # Cut by a corner of the picture: a striped desk's, not a box around a digit (cut as
      # one, its ends freed from the edge joined the number: 3 of 3,273 pictures).
      continue
    inside = _holds_inside(stats, i)
    part = labels[y:y + h, x:x + w] == i
    if drawn and not (inside or _inked_round(part)):
      continue  # Cheaply no box (most digits): a side of its rectangle has no ink along it.
    outline = _box_outline(part, cells_only)
    # A box around something: a digit touching it (in the component) or inside it. In a
    # drawing, a digit may be drawn square itself (a screen's 8): what is left must be as tall
    # as a digit in the box, not one bar.
    if drawn and not inside and outline is not None and _low(part & ~outline, part):
      outline = None
    if outline is not None and (inside or (part & ~outline).sum() > 0.05 * area):
      out[y:y + h, x:x + w] &= ~outline
      known = False
  return out, ((labels, stats) if known else None)


def _inked_round(part: np.ndarray) -> bool:
  """Whether ink runs along each side of a component's rectangle (``part``: its pixels, cut to
  it), within a quarter of its width or height (a box turned or seen in perspective): along
  _SIDE_INKED of each side's length."""
  h, w = part.shape
  bands = (part[:max(1, h // 4)].any(axis=0), part[h - max(1, h // 4):].any(axis=0),
           part[:, :max(1, w // 4)].any(axis=1), part[:, w - max(1, w // 4):].any(axis=1))
  return all(band.mean() >= _SIDE_INKED for band in bands)


def _low(rest: np.ndarray, part: np.ndarray) -> bool:
  """Whether the ink ``rest`` is under half as tall as ``part`` (a digit in its box is more)."""
  return cv2.boundingRect(rest.view(np.uint8))[3] < 0.5 * part.shape[0]


def _holds_inside(stats: np.ndarray, i: int) -> bool:
  """Whether another component of some size lies inside component i's box."""
  x, y, w, h, area = stats[i]
  inner = stats[1:]
  return bool(((inner[:, 0] > x) & (inner[:, 1] > y) & (inner[:, 0] + inner[:, 2] < x + w) &
               (inner[:, 1] + inner[:, 3] < y + h) & (inner[:, 4] >= 0.05 * area)).any())


def _components_in(mask: np.ndarray, top: int, left: int, bottom: int, right: int
                   ) -> tuple[np.ndarray, np.ndarray]:
  """cv2.connectedComponentsWithStats(mask, connectivity=8)'s labels and stats, for a mask
  empty outside the box [top:bottom, left:right]: the same arrays, labelled in the box only
  (OpenCV's statistics cost five times its labels, and most of a drawing is paper)."""
  # From even corners, OpenCV scans the same 2x2 blocks in the same order: the same numbers.
  top, left = top - top % 2, left - left % 2
  part = mask[top:bottom, left:right].astype(np.uint8)
  _, inner, stats, _ = fast.connected_components(part, connectivity=8)
  if part.shape == mask.shape:
    return inner, stats
  labels = np.zeros(mask.shape, inner.dtype)
  labels[top:bottom, left:right] = inner
  stats[1:, cv2.CC_STAT_LEFT] += left
  stats[1:, cv2.CC_STAT_TOP] += top
  # Row 0, the background: the box of the pixels outside every component.
  h, w = mask.shape
  rows, cols = np.ones(h, bool), np.ones(w, bool)
  if (left, right) == (0, w):  # A row of the box may be all ink.
    rows[top:bottom] = (inner == 0).any(axis=1)
  if (top, bottom) == (0, h):
    cols[left:right] = (inner == 0).any(axis=0)
  ys, xs = np.flatnonzero(rows), np.flatnonzero(cols)
  stats[0] = (xs[0], ys[0], xs[-1] + 1 - xs[0], ys[-1] + 1 - ys[0],
              h * w - int(stats[1:, cv2.CC_STAT_AREA].sum()))
  return labels, stats
