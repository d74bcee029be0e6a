"""How thick the strokes are, for the paper stage's estimate of the paper under the ink (a grey
closing: too narrow, and a thick stroke is read hollow; too wide, and a shadow's band is ink).

    from mnist_flax.preprocess import strokes
    strokes.width(mask)    # mask: bool (H, W); a typical stroke width in pixels, 0.0 if unknown
    strokes.lift_thick(lum8, closed, wide, dip, ratio, sheet)   # thick strokes filled in
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from mnist_flax.preprocess import fast, thin
from mnist_flax.preprocess.gather import is_speck

# The inside of a stroke too thick for the narrow closing is at least this much darker than the
# paper around it (relative): the paper's mottle, a soft shade or a grey desk's grain are less.
_THICK_DEPTH = 0.3
# A region reaching the picture's edge (a shadow, the desk) is a stroke only this much darker:
# a shadow takes at most about half the paper's light, a marker's ink nearly all of it.
_INK_DEPTH = 0.75
# Off the sheet, a thick stroke's inside is at most this fraction of the paper right beside it
# (a soft shadow's blob on a wall is 0.6-0.7 of it; a pen or marker in a hard shadow 0.1-0.3).
_OFF_SHEET_DEPTH = 0.5
# ... and at least this fraction of the long side thick: a thinner dip is a rule's or an edge's.
_OFF_SHEET_THICK = 0.01
# A stroke is at most this fraction as thick as it is long: a solid patch (a blank grey plate, a
# dark blot) is no stroke.
_STROKE_SHAPE = 0.5
# A stroke cut by the picture's edge meets it across its width (at a slant, a few times that); a
# strip of the desk between the sheet and the edge, narrower than the wide closing (which the
# edge's replicated border bridges), lies along it, more than _ALONG_EDGE times its thickness,
# and is no more than _DESK_DARK times darker than the desk where the wide closing shows it
# (a tight crop's marker 0 lies along the edge too, far darker than the paper-only closing).
# Lifted, the strip was ink beside a sheet on a dark desk, and swallowed the number ("9503"
# read 21); 2.5 or 8 change one answer in 3,273 pictures.
_ALONG_EDGE, _DESK_DARK = 4.0, 1.5


def width(mask: np.ndarray) -> float:
  """A typical stroke width of the ink in ``mask``, in pixels: twice the distance to the
  nearest paper along the strokes' middles (where that distance peaks), at its 75th percentile,
  so that thin rules do not hide a marker's width, nor a blob a pen's. Ink that touches the
  picture's edge (a shadow band, the desk) is left out: a shadow across the picture has more
  middle than a digit, and its width would let the closing fill it in. When all ink touches it
  (a shadow whose edge crosses the digit joins its strokes to it), 0: the narrowest closing,
  parts of strokes too thick for it then found by lift_thick."""
  _, labels, stats, _ = fast.connected_components(mask, connectivity=8)
  w, h = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
  border = fast.touches_edge(stats, mask.shape)
  border[0] = True
  if border.all():
    return 0.0
  # Noise specks too, when there are strokes: a photo's grain leaves hundreds, each a ridge a
  # pixel or two wide, which halved a thick stroke's width and left the stroke hollow.
  side = max(mask.shape)
  strokes = ~border & ~is_speck(stats[:, cv2.CC_STAT_AREA], np.maximum(w, h), side)
  mask8 = fast.gather(strokes if strokes.any() else ~border, labels, stats).view(np.uint8)
  values = thin.ridge(cv2.distanceTransform(mask8, cv2.DIST_L2, 3))
  return 2.0 * fast.percentile(values, 75) if values.size else 0.0


def _regions(dip: np.ndarray, closed: np.ndarray, wide: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """The regions of ``dip`` (labels, stats), the paper's level around each (the wide closing's
  mean over it), their own (the narrow closing's mean), which reach the picture's edge, and
  which are dark enough to be thick strokes: at least _THICK_DEPTH darker than the ``wide``
  closing in the ``closed`` one, and _INK_DEPTH when they reach the edge (a shadow or the desk
  does; a thick digit cropped tightly is as dark as ink)."""
  count, labels, stats, _ = fast.connected_components(dip, connectivity=8)
  area = np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
  # Sums over the dip only (label 0, the rest, is never lifted).
  flat = labels[dip]
  paper = np.bincount(flat, wide[dip], minlength=count) / area
  inside = np.bincount(flat, closed[dip], minlength=count) / area
  edge = fast.touches_edge(stats, dip.shape)
  thick = inside < np.where(edge, 1 - _INK_DEPTH, 1 - _THICK_DEPTH) * paper
  thick[0] = False
  return labels, stats, paper, inside, edge, thick


def _along_edge(labels: np.ndarray, i: int) -> int:
  """How many of region i's pixels lie on the picture's edge."""
  return int(np.count_nonzero(labels[0] == i) + np.count_nonzero(labels[-1] == i)
             + np.count_nonzero(labels[:, 0] == i) + np.count_nonzero(labels[:, -1] == i))


def lift_thick(lum8: np.ndarray, closed: np.ndarray, wide: np.ndarray, dip: np.ndarray,
               ratio: float, sheet: Callable[[], np.ndarray | None]) -> np.ndarray:
  """A narrow closing (uint8) with the strokes too thick for it lifted to the ``wide`` one: the
  regions where it ``dip``s (``ratio`` times darker than ``wide``) clear of the picture's edge
  (a shadow or the desk reaches it), at least _THICK_DEPTH darker than the wide closing, with
  paper beside them as light as that around them or well lighter than their inside (ink is
  darker than the paper on both sides of a stroke, also across a hard shadow's edge; a shadow's
  corner, narrower than the wide closing, goes on into more shadow), mostly on the ``sheet()``
  (None: everywhere; asked only when needed) or else thick and as dark as ink against the paper
  beside them (a bold digit inside a hard shadow, off the lit part of the sheet), not lying
  along the picture's edge (see _ALONG_EDGE), and shaped like strokes (see _STROKE_SHAPE)
  unless ringed by ink in ``lum8`` (the picture the closings were taken of)."""
  shade = dip  # Where the narrow closing dips: the ring around a region lies outside it.
  labels, stats, paper, inside, edge, thick = _regions(dip, closed, wide)
  pale = edge & ~thick
  pale[0] = False
  if pale.any():
    # A bold stroke inside a shadow's band is one region with the band, which reaches the
    # picture's edge and is no darker than a shadow as a whole: of such a region, the parts as
    # dark as ink and clear of the edge are judged as regions of their own.
    banded = fast.gather(pale, labels, stats)
    dip = dip & ~(banded & (closed.astype(np.float32) >= np.float32(1 - _INK_DEPTH) * wide))
    labels, stats, paper, inside, edge, thick = _regions(dip, closed, wide)
    thick &= ~(edge & (np.bincount(labels[dip & banded], minlength=len(stats)) > 0))
  x, y, w, h, area = (stats[:, i] for i in range(5))
  count = len(stats)
  if not thick.any():
    return closed
  on = sheet()
  on_sheet = np.ones(count, bool) if on is None else (
      np.bincount(labels[on & dip], minlength=count) >= 0.5 * area)
  lift = np.zeros(dip.shape, np.uint8)
  side = max(dip.shape)
  desk = fast.percentile(wide[::4, ::4], 1)  # Where the wide closing shows a dark desk.
  for i in np.flatnonzero(thick & (on_sheet | ~edge)):
    # The region and the ring a few pixels around it, within its box.
    x0, y0 = max(0, x[i] - 3), max(0, y[i] - 3)
    box = np.s_[y0:y[i] + h[i] + 3, x0:x[i] + w[i] + 3]
    part = (labels[box] == i).astype(np.uint8)
    ring = (cv2.dilate(part, np.ones((7, 7), np.uint8)) > 0) & ~shade[box]
    beside = closed[box][ring]
    level = np.float32(paper[i] / ratio)
    # Paper beside a stroke is lit like the paper around it or, where a hard shadow's edge
    # crosses the stroke, still well lighter than the stroke's inside; a shadow's corner goes
    # on into shadow as dark as itself.
    light = level if edge[i] else min(level, np.float32(inside[i] / (1 - _THICK_DEPTH)))
    if np.count_nonzero(beside < light) >= 0.2 * max(1, beside.size):
      continue
    # Off the (lit) sheet, only what is as dark as ink against the paper right beside it: a
    # bold digit inside a hard shadow; a soft shadow's blob on a wall is not.
    thickness = 2.0 * float(cv2.distanceTransform(np.pad(part, 1), cv2.DIST_L2, 3).max())
    if (edge[i] and _along_edge(labels, i) > _ALONG_EDGE * thickness
        and inside[i] * _DESK_DARK >= desk):
      continue
    if not on_sheet[i] and (thickness < _OFF_SHEET_THICK * side or not beside.size
                            or inside[i] >= _OFF_SHEET_DEPTH * fast.median(beside)):
      continue
    # A patch inside ink (what the narrow closing leaves of a large light plate's face) is
    # lifted whatever its shape: the plate finder looks for the plate whole.
    held = np.count_nonzero(lum8[box][ring] < level) >= 0.5 * np.count_nonzero(ring)
    if held or thickness <= _STROKE_SHAPE * max(w[i], h[i]):
      lift[box] |= part
  if not lift.any():
    return closed
  # A little wider: the stroke's blurred edge is just short of the dip.
  lift = cv2.dilate(lift, np.ones((5, 5), np.uint8)) > 0
  return np.where(lift, np.maximum(closed, wide), closed)
