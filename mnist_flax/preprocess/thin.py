"""Thin lines run into thick strokes, cut off: a marker digit touching a rule's remnant, a
margin or the sheet's edge is one piece of ink with it, and would be read as one glyph.

    from mnist_flax.preprocess import thin
    cleaner = thin.lines_off(mask, labels, stats)   # None: no piece has such lines
    solid = thin.freed_solid(tied, labels, stats)   # per piece: freed of the edge, yet solid
    thin.is_line_beside(part, main_part)            # a glyph that is a line beside the digits
    values = thin.ridge(dist)            # a distance map's values along the strokes' middles

``labels``, ``stats``: the mask's 8-connected components (OpenCV's); pieces whose area is 0 in
``stats`` are left out (see digits.find).
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_flax.preprocess import fast

# Thin ink joined to strokes at least _RATIO times as thick and reaching out to _REACH times
# the thick strokes' extent is a line, not part of the digit.
_RATIO, _REACH = 2.0, 1.5
# Printed rules and a sheet's edge are a pixel or two wide: no deeper than this (a finger's
# shadow, tied to the edge by its own blur, is far deeper).
_LINE_DEPTH = 2.0
# A piece that lines tied to the picture's edge is solid, no strokes, when thicker than this
# fraction of its long side: a shadow's corner on the sheet, tied to the desk's grain.
_SOLID = 0.5
# Columns of a distance map start at a multiple of this (see lines_off): OpenCV 5's rows run in
# blocks of 4 floats (a multiple of 8 and 16 as well, for wider SIMD).
_ALIGN = 16
# A glyph beside a number's main digit is a line (a sheet's or a box's edge, a shadow's rim that
# the threshold kept), not a digit, when its strokes are less than _THINNEST as deep as the main
# digit's, or less than _THIN_LINE as deep and straight (its smallest rotated box _STRAIGHT times
# as long as wide). On the generator's numbers, real digits beside the main one measure 0.33 and
# up (0.5 and up when straight); the lines that made "7" read "17" 0.14-0.35.
_THINNEST, _THIN_LINE, _STRAIGHT = 0.25, 0.45, 6.0


def lines_off(mask: np.ndarray, labels: np.ndarray, stats: np.ndarray, drawn: bool = False,
              lit: np.ndarray | None = None) -> np.ndarray | None:
  """``mask`` (its components ``labels``, ``stats``) less the thin lines that thick strokes
  touch (see _RATIO), or None if no piece of ink has any: the digit's row is then built
  from the digit, not from the rule, the margin or the sheet's edge that a stroke touches.

  ``drawn``: a drawing, a scan or a screenshot, where a line is drawn whole across the picture
  (no rules were taken off around the digit, leaving stubs): thin ink reaching no farther than
  _REACH times the strokes' own height or width, whichever is larger, is part of the glyph (a
  bold serif 4's hairline bar and diagonal, half as thick as its stem). Else thin ink run out
  to the picture's edge from strokes clear of it, on the ``lit`` sheet (see paper.Page; a
  desk's grain is not freed), at most _LINE_DEPTH deep, is a line whatever its reach; and thin
  ink clear of the edge, a quarter of it or more deeper than that, is pen strokes, not a line
  (a digit with a blot on it)."""
  ys = np.flatnonzero(mask.any(axis=1))
  if ys.size == 0:
    return None
  # Distances over the ink's rows and columns and a row and a column of paper around them,
  # where the nearest paper is (ink that reaches the picture's edge has paper beyond it all
  # the same). OpenCV's distances along a row depend, in their last bit, on the column's
  # place in its SIMD block (a tie of two paths): the columns start at a multiple of _ALIGN,
  # so every distance is the one over the whole picture.
  xs = np.flatnonzero(mask[int(ys[0]):int(ys[-1]) + 1].any(axis=0))
  y0, x0 = int(ys[0]) - 1, int(xs[0]) - int(xs[0]) % _ALIGN - 1
  rows, cols = np.s_[y0 + 1:int(ys[-1]) + 1], np.s_[x0 + 1:int(xs[-1]) + 1]
  depth = cv2.distanceTransform(np.pad(mask[rows, cols], 1).view(np.uint8), cv2.DIST_L2, 3)
  # A stroke's middle at least _RATIO times as deep as a one- or two-pixel line's
  # (~1.4 pixels deep): thinner strokes cannot be told from the lines.
  deep = depth[1:-1, 1:-1] >= 1.5 * _RATIO
  out = None
  for label in np.unique(labels[rows, cols][deep]):
    x, y, w, h, area = (int(v) for v in stats[label])
    if label == 0 or area == 0:  # The paper, or a piece left out.
      continue
    part = labels[y:y + h, x:x + w] == label
    inner = np.where(part, depth[y - y0:y - y0 + h, x - x0:x - x0 + w], 0)
    deepest = float(inner.max())
    core = (inner >= deepest / _RATIO).astype(np.uint8)
    _, _, reach_w, reach_h = cv2.boundingRect(core)  # The core's extent.
    tied = bool(fast.touches_edge(stats[label:label + 1], mask.shape)[0])
    if w <= _REACH * reach_w and h <= _REACH * reach_h and (drawn or not tied):
      continue  # Within reach of the core already, so of the strokes (a cheap first test).
    r = int(np.ceil(deepest)) + 1
    kept = part & (cv2.dilate(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                              (2 * r + 1, 2 * r + 1))) > 0)
    kx, ky, reach_w, reach_h = cv2.boundingRect(kept.view(np.uint8))
    # In a photo, thin ink run out to the picture's edge from strokes clear of it is a rule's
    # remnant or the sheet's edge, however wide the number it crosses ("1993" across a grid
    # line that Hough missed: the number was left out as touching the edge).
    edge = (not drawn and tied
            and not fast.touches_edge(np.array([[x + kx, y + ky, reach_w, reach_h]]),
                                      mask.shape)[0]
            and (lit is None or bool(lit[y + ky + reach_h // 2, x + kx + reach_w // 2]))
            and float(inner[part & ~kept].max(initial=0.0)) <= _LINE_DEPTH)
    if w <= _REACH * reach_w and h <= _REACH * reach_h and not edge:
      continue  # The thin ink stays within the strokes' reach: a tapering end, a serif.
    if drawn and max(w, h) <= _REACH * max(reach_w, reach_h):
      continue
    # Pen strokes thinner than a blot on them (a 2's inked loop), clear of the picture's edge,
    # are the digit's: a line is a pixel or two thin, or runs out to the edge.
    rest = inner[part & ~kept]
    if (not drawn and not tied and rest.size
        and fast.percentile(rest, 75) > _LINE_DEPTH):
      continue
    if out is None:  # The pieces left out (area 0) stay out.
      out = mask & np.take(stats[:, cv2.CC_STAT_AREA] > 0, labels)
    out[y:y + h, x:x + w] &= ~(part & ~kept)
  return out


def freed_solid(tied: np.ndarray, labels: np.ndarray, stats: np.ndarray) -> np.ndarray:
  """Which pieces of ink (``labels``, ``stats``: the components once lines_off took the lines
  off) are clear of the picture's edge only since, holding ink ``tied`` (bool, per pixel) to it
  before, and solid (see _SOLID): a digit freed of a rule's remnant is strokes, a shadow's
  corner is not."""
  freed = np.bincount(labels[tied], minlength=len(stats)) > 0
  freed &= ~fast.touches_edge(stats, labels.shape)
  freed[0] = False
  solid = np.zeros(len(stats), bool)
  for i in np.flatnonzero(freed):
    x, y, w, h, _ = (int(v) for v in stats[i])
    part = np.pad(labels[y:y + h, x:x + w] == i, 1).astype(np.uint8)
    solid[i] = 2 * float(cv2.distanceTransform(part, cv2.DIST_L2, 3).max()) > _SOLID * max(w, h)
  return solid


def is_line_beside(part: np.ndarray, main: np.ndarray) -> bool:
  """Whether a glyph beside a number's main digit is a line, not a digit (see _THINNEST);
  ``part``, ``main``: their pixels (bool) within their boxes."""
  ratio = _depth(part) / max(_depth(main), 1e-6)
  if ratio < _THINNEST:
    return True
  if ratio >= _THIN_LINE:
    return False
  (_, _), (w, h), _ = cv2.minAreaRect(cv2.findNonZero(part.view(np.uint8)))
  return max(w, h) >= _STRAIGHT * max(min(w, h), 1.0)


def _depth(part: np.ndarray) -> float:
  """How deep a glyph's strokes are: the median distance to the paper along their middles,
  about half their width."""
  values = ridge(cv2.distanceTransform(np.pad(part, 1).view(np.uint8), cv2.DIST_L2, 3))
  return fast.median(values) if values.size else 0.0


def ridge(dist: np.ndarray) -> np.ndarray:
  """A distance map's values along the strokes' middles: where the distance to the paper
  peaks (strokes.width takes a stroke's width from them too)."""
  near = cv2.dilate(dist, np.ones((3, 3), np.uint8))
  near -= 1e-3
  middle = dist >= near
  middle &= dist > 0
  return dist[middle]
