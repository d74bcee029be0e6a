"""The sheet in an ink mask: where it is when no shade tells it, its rim, a grained desk around it.

    from mnist_flax.preprocess import sheet
    lit = sheet.enclosed(mask)                       # a sheet a patterned desk's ink encloses
    rimless = sheet.rim_off(mask, labels, stats, lit)   # None: nothing lies along its outline
    if sheet.on_grain(mask, lit):                    # a grained desk around the lit sheet
      mask = sheet.off_desk(mask, labels, stats, lit)  # then only ink mostly on it counts

``lit`` is where the sheet most likely is (paper.Page.lit, or ``enclosed``); ``labels``,
``stats``: the mask's 8-connected components (OpenCV's).
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_flax.preprocess import fast

# A sheet enclosed by a patterned desk (see enclosed) covers this much of the picture, at
# least and at most.
_ENCLOSED_LEAST, _ENCLOSED = 0.05, 0.8
_RIM_GAP = 0.01  # Gaps in the ink around it this fraction of the long side wide are closed.
# The sheet's rim is the band from _RIM_IN inside the lit sheet's outline to _RIM_OUT outside
# it (fractions of the picture's long side; the lit sheet is found on a closing at half size,
# a little inside the paper's edge). A piece of ink with _ON_RIM of its pixels there, and
# _RIM_LONG times as long as the band is wide, is the sheet's edge (or a shadow's) that the
# threshold kept, not writing: a digit crosses the band, a "1" beside a shadow's edge is
# shorter. On a red team's sheets on a textured desk, the rim joined the digit into one glyph
# ("7" read 11, "917" read 11); on the generator's 2,450 pictures one "1" drawn along a
# shadow's edge was lost, and 3 or 6 for _RIM_LONG change one answer.
_RIM_IN, _RIM_OUT = 0.01, 0.02
_ON_RIM, _RIM_LONG = 0.8, 4.0
# A desk's grain: ink (at least _GRAIN_INK of a block, _GRAIN_BLOCKS along the long side) in
# at least _GRAIN of its blocks around a lit sheet that has little (see on_grain).
_GRAIN = 0.6
_GRAIN_INK = 0.02
_GRAIN_BLOCKS = 32


def enclosed(mask: np.ndarray) -> np.ndarray | None:
  """Where the sheet is on a desk as light as paper but patterned (stripes, checks: ink to the
  threshold, the sheet found by no shade): the largest region free of ink, with the writing
  inside it, when the desk's ink encloses it (clear of the picture's edge) and it is at most
  _ENCLOSED of the picture. None otherwise (a sheet filling the picture, or cut by a shadow's
  edges, which may hold the digit on either side)."""
  # Ink widened a little first: the sheet's own rim, with gaps, would let it run out into the
  # clear stripes of the desk.
  k = 2 * int(_RIM_GAP * max(mask.shape)) + 1
  wide = cv2.dilate(mask.view(np.uint8), np.ones((k, k), np.uint8))
  count, labels, stats, _ = fast.connected_components(wide == 0, connectivity=4)
  if count < 2:
    return None
  i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
  if fast.touches_edge(stats[i:i + 1], mask.shape)[0]:
    return None
  x, y, w, h, _ = (int(v) for v in stats[i])
  contours, _ = cv2.findContours((labels[y:y + h, x:x + w] == i).view(np.uint8),
                                 cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
  sheet = np.zeros(mask.shape, np.uint8)
  cv2.drawContours(sheet, contours, -1, 1, thickness=cv2.FILLED, offset=(x, y))
  area = cv2.countNonZero(sheet)
  if not _ENCLOSED_LEAST * mask.size <= area <= _ENCLOSED * mask.size:
    return None
  return sheet.view(bool) if mask[sheet.view(bool)].any() else None  # Writing on it.


def rim_off(mask: np.ndarray, labels: np.ndarray, stats: np.ndarray, lit: np.ndarray
            ) -> np.ndarray | None:
  """``mask`` less the pieces of ink that lie along the outline of the ``lit`` sheet (inside
  the picture; see _ON_RIM): its edge, or a shadow's, that the threshold kept; None if there
  are none."""
  side = max(mask.shape)
  # At half size, as the lit sheet was found (see paper._background): a tenth of the cost.
  half = lit.view(np.uint8)[::2, ::2]
  out, inner = (cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
                for k in (2 * max(1, int(f * side / 2)) + 1 for f in (_RIM_OUT, _RIM_IN)))
  # Eroded, the sheet does not shrink from the picture's edge (OpenCV's default border).
  rim = (cv2.dilate(half, out) > cv2.erode(half, inner)).view(np.uint8)
  rim = cv2.resize(rim, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST)
  on = rim.view(bool) & mask
  if not on.any():
    return None
  on_rim = np.bincount(labels[on], minlength=len(stats))
  long_side = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
  edge = ((on_rim >= _ON_RIM * stats[:, cv2.CC_STAT_AREA])
          & (long_side >= _RIM_LONG * (_RIM_IN + _RIM_OUT) * side))
  edge[0] = False
  if not edge.any():
    return None
  return mask & ~fast.gather(edge, labels, stats)


def on_grain(mask: np.ndarray, lit: np.ndarray) -> bool:
  """Whether the lit sheet lies on a grained desk: ink in most blocks of the rest of the picture
  (see _GRAIN), as a desk's grain is, and not in the sheet's (a shadow on paper holds no more ink
  than the lit paper does; a ruling is on both sides, which is why this is asked again once the
  rules are gone)."""
  side = max(2, -(-max(mask.shape) // _GRAIN_BLOCKS))
  if 2 * min(mask.shape) <= side:
    return False  # A strip under half a block thin: no blocks to tell a grain by.
  inked, within = (cv2.resize(m.astype(np.float32), None, fx=1 / side, fy=1 / side,
                              interpolation=cv2.INTER_AREA) for m in (mask, lit))
  inked = inked > _GRAIN_INK
  rest, sheet = inked[within < 0.1], inked[within > 0.9]
  return rest.size > 0 and rest.mean() >= _GRAIN and sheet.size > 0 and sheet.mean() < _GRAIN / 2


def mostly_on(mask: np.ndarray, labels: np.ndarray, count: int, lit: np.ndarray) -> np.ndarray:
  """Per label (``count`` of them, background 0 never), whether the piece's pixels in ``mask``
  lie mostly on the ``lit`` sheet."""
  keep = np.bincount(labels[mask & lit], minlength=count) >= 0.5 * np.bincount(
      labels[mask], minlength=count)
  keep[0] = False
  return keep


def off_desk(mask: np.ndarray, labels: np.ndarray, stats: np.ndarray, lit: np.ndarray
             ) -> np.ndarray:
  """``mask`` less its pieces (``labels``, ``stats``) lying mostly off the ``lit`` sheet."""
  return fast.gather(mostly_on(mask, labels, len(stats), lit), labels, stats)
