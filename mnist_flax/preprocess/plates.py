"""What a plate, a card or a form's cell looks like: shape tests on regions of a mask, and the
plate a digit is painted on.

    from mnist_flax.preprocess import plates
    plate = plates.find_plate(page.mask)   # ((x0, y0, x1, y1), face) inside a plate, or None
    plate = plates.find_outlined(lum)      # the same, the plate found by its outline instead
    plates.face_is_light(lum[y0:y1, x0:x1])  # its polarity, a shadow across it divided out
    plates.is_plate(part)        # part: bool (h, w), a region's pixels within its box
    plates.filled(part)          # the region with everything inside its outline
    plates.convex_hull(part)     # its outline's convex hull (OpenCV points)
    plates.holds_ink(labels, stats, i), plates.cell_beside(stats[i], stats[j])

Used by paper.ink_is_dark (a dark plate on a light wall is no ink) and by preprocess.to_digits,
which reads on the plate found here as if it were the whole picture (paper.find_ink(inside,
plate=face)); a form's cells are not plates.
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_flax.preprocess import fast

# A plate is solid: its thickest part is at least this fraction of its short side.
_PLATE_DEPTH = 0.25
# A plate's face whose outline dark digits notch (see _notched_plate): its convex hull fills
# at least _BOXY of the rectangle around it (0.96-1.0 on the generator's plates, at most 0.85
# for a marker's digits), and the face at least _NOTCHED_SOLID of its hull (0.51-0.74; a form's
# row of boxes 0.32).
_BOXY, _NOTCHED_SOLID = 0.95, 0.5
_PLAIN, _NOTCHED = "plain", "notched"  # How find_plate found a plate.
# Otsu's smaller side of a plate's box, over this fraction of the box's short side from its
# other side somewhere, is a shadow across it, not paint: then the box divided by its median
# over _SHADE_MEDIAN of that side is split instead. Strokes of bold printed digits measure
# 0.09-0.11; hard shadows across a plate or a form's box taken for one 0.17-0.32. On 3,273
# pictures +11 -0 (the red team's non-digits said unsure 22 -> 21 of 33), held out +4 -0;
# without the depth test +11 -1 and +4 -2, bold printed digits read as the paper (the
# threshold was set after seeing those two held-out losses).
_SHADE_DEPTH, _SHADE_MEDIAN = 0.15, 0.5


def is_plate(part: np.ndarray, solid_ok: bool = False) -> bool:
  """Whether a region (its pixels within its box) is a plate or a card with something painted
  on it: its outline a quadrilateral (seen in perspective; a thick 0 or 8 is rounder), mostly
  solid, with holes (the painted digit, a painted frame) of at least a twentieth of it; or,
  with ``solid_ok``, none (a light plate painted darker than itself is one region of ink)."""
  part8 = part.astype(np.uint8)
  contours, _ = cv2.findContours(part8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
  outline = max(contours, key=cv2.contourArea)
  hull = cv2.convexHull(outline)
  corners = cv2.approxPolyDP(hull, 0.03 * cv2.arcLength(hull, True), True)
  within = np.zeros_like(part8)
  cv2.drawContours(within, [outline], -1, 1, thickness=cv2.FILLED)
  inside = float(within.sum())
  solid = float((part8 & within).sum())
  if not (4 <= len(corners) <= 5 and inside >= 0.9 * cv2.contourArea(hull)
          and 0.35 * inside <= solid <= (inside if solid_ok else 0.95 * inside)):
    return False
  # Solid as a plate is (a thick 0 or 8 is only a stroke wide anywhere): somewhere more than
  # a third of its short side from any hole or edge.
  depth = 2.0 * float(cv2.distanceTransform(part8, cv2.DIST_L2, 3).max())
  return depth >= _PLATE_DEPTH * min(part.shape)


def face_is_light(lum: np.ndarray, face: np.ndarray | None = None) -> bool:
  """Whether a plate's face, most of its box (``lum``: the box's luminance in [0, 1]; ``face``:
  bool, where the face is, if not everywhere), is lighter than what is painted on it: Otsu's
  lighter side is the larger one, once a shadow across the box is divided out (see
  _SHADE_DEPTH). The wall in a tilted plate's corners is taken for the face's own level: a
  light card's box on a dark desk is a quarter desk."""
  if face is not None and face.any() and not face.all():
    lum = np.where(face, lum, np.float32(fast.median(lum[face])))
  lum8 = np.clip(lum * 255 + 0.5, 0, 255).astype(np.uint8)
  light, lit = _otsu_light(lum8)
  smaller = 1 - light if lit else light
  short = min(lum8.shape)
  if cv2.distanceTransform(smaller, cv2.DIST_L2, 3).max() <= _SHADE_DEPTH * short:
    return lit
  level = cv2.medianBlur(lum8, max(3, int(_SHADE_MEDIAN * short) // 2 * 2 + 1))
  even = cv2.divide(lum8, level, scale=128)  # 128 where the face is at its own level.
  return _otsu_light(even)[1]


def _otsu_light(lum8: np.ndarray) -> tuple[np.ndarray, bool]:
  """Otsu's lighter side of ``lum8`` (uint8 0/1), and whether it is the larger one."""
  _, light = cv2.threshold(lum8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
  return light, cv2.countNonZero(light) >= 0.5 * light.size


def filled(part: np.ndarray) -> np.ndarray:
  """A region (its pixels within its box) with everything inside its outer outline."""
  out = np.zeros(part.shape, np.uint8)
  contours, _ = cv2.findContours(part.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
  cv2.drawContours(out, contours, -1, 1, thickness=cv2.FILLED)
  return out > 0


def _notched_plate(part: np.ndarray) -> bool:
  """Whether a region (its pixels within its box) is a light plate's face whose outline dark
  digits touching its painted border notch: its convex hull a rectangle (seen in perspective;
  a thick digit's is round or slanting), at least _NOTCHED_SOLID of it the region's own (a
  form's row of boxes is lines), and a plate once the notches are filled."""
  hull = convex_hull(part)
  (_, _), (w, h), _ = cv2.minAreaRect(hull)
  area = cv2.contourArea(hull)
  return (area >= _BOXY * w * h and int(part.sum()) >= _NOTCHED_SOLID * area
          and is_plate(_notches_filled(part), solid_ok=True))


def _notches_filled(part: np.ndarray) -> np.ndarray:
  """A light plate's face (its pixels within its box) with the notches that dark digits
  touching its painted border cut into its outline filled: the face within its convex hull."""
  hull = np.zeros(part.shape, np.uint8)
  cv2.drawContours(hull, [convex_hull(part)], -1, 1, thickness=cv2.FILLED)
  return part | ((hull > 0) & ~filled(part))


def convex_hull(part: np.ndarray) -> np.ndarray:
  """The convex hull of a region's outline (its pixels within its box)."""
  contours, _ = cv2.findContours(part.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
  return cv2.convexHull(np.concatenate(contours))


def holds_ink(labels: np.ndarray, stats: np.ndarray, i: int) -> bool:
  """Whether region i (of ``labels``, stats x, y, w, h) lacks two hundredths of its convex
  hull: a cell with something written in it (inside, or touching its walls), not a blank
  brick."""
  x, y, w, h = (int(v) for v in stats[:4])
  part = labels[y:y + h, x:x + w] == i
  hull = convex_hull(part)
  return cv2.contourArea(hull) - int(part.sum()) >= 0.02 * cv2.contourArea(hull)


def cell_beside(a: np.ndarray, b: np.ndarray) -> bool:
  """Whether two regions' stats (x, y, w, h, area) are alike in size and side by side, or one
  above the other, a line's width apart: neighbouring cells of one grid."""
  (ax, ay, aw, ah, aa), (bx, by, bw, bh, ba) = (a[:5], b[:5])
  gap_x = max(bx - (ax + aw), ax - (bx + bw))
  gap_y = max(by - (ay + ah), ay - (by + bh))
  near = 0.25 * min(aw, ah, bw, bh)
  # Not one inside the other (a plate's inner panel within its rim): neither holds the other's
  # centre.
  apart = not (ax <= bx + bw / 2 <= ax + aw and ay <= by + bh / 2 <= ay + ah) and not (
      bx <= ax + aw / 2 <= bx + bw and by <= ay + ah / 2 <= by + bh)
  return bool(apart and 0.5 <= aa / max(ba, 1) <= 2.0 and gap_x <= near and gap_y <= near)


# A box's lines that reach this many times its width or height beyond it are a form's row of
# cells (the writing's other digits in the cells beside it), not a plate's painted border.
_ROW_OF_CELLS = 1.6


def _cell_of_row(mask: np.ndarray, box: np.ndarray) -> bool:
  """Whether the ink around a region (``box``: its stats x, y, w, h) is a form's row of boxes:
  its largest piece just outside the region, clear of the picture's edge (a wall's mortar, a
  shadow, reach it), stretches far beyond it."""
  x, y, w, h = (int(v) for v in box[:4])
  m = max(4, int(0.08 * min(w, h)))
  x0, y0 = max(0, x - m), max(0, y - m)
  x1, y1 = min(mask.shape[1], x + w + m), min(mask.shape[0], y + h + m)
  _, labels, stats, _ = fast.connected_components(mask, connectivity=8)
  ring = labels[y0:y1, x0:x1].copy()
  ring[y + m - y0:y + h - m - y0, x + m - x0:x + w - m - x0] = 0
  ids, counts = np.unique(ring[ring > 0], return_counts=True)
  if ids.size == 0:
    return False
  j = int(ids[np.argmax(counts)])
  if fast.touches_edge(stats[j:j + 1], mask.shape)[0]:
    return False
  return bool(stats[j, 2] > _ROW_OF_CELLS * w or stats[j, 3] > _ROW_OF_CELLS * h)


def find_plate(mask: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
  """The box (x0, y0, x1, y1) inside a plate (see is_plate) of at
  least 1% of the picture, and the plate's face within it (bool, the box's shape: a tilted
  plate's box holds wall in its corners); None if there is none.

  The plate is looked for as "ink" (a dark plate on a light wall), then as the paper between
  the ink, away from the picture's edge (a plate inside its painted border on a wall whose
  mortar or grain is the picture's ink): there among all regions of 1% of the picture or more,
  as a wall's bricks are as large as a small plate's panel, and as many as there are."""
  for solid, border_ok in ((mask, True), (~mask, False)):
    # Opened first: thin lines touching the plate (a brick wall's mortar) come off it.
    solid = cv2.morphologyEx(solid.view(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    if cv2.countNonZero(solid) < 0.01 * mask.size:
      continue
    count, labels, stats, _ = fast.connected_components(solid, connectivity=8)
    order = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])
    order = order[:3] if border_ok else order[stats[order, cv2.CC_STAT_AREA] >= 0.01 * mask.size]

    def on_border(i: int) -> bool:
      x, y, w, h = (int(v) for v in stats[i, :4])
      return x == 0 or y == 0 or x + w == mask.shape[1] or y + h == mask.shape[0]

    def plate(i: int) -> str | None:
      """_PLAIN or _NOTCHED if region i is a plate, else None."""
      x, y, w, h, area = (int(v) for v in stats[i])
      if not border_ok and on_border(i):
        return None
      part = labels[y:y + h, x:x + w] == i
      if border_ok:  # A dark plate's rim, parted from its panel by a painted line, holds it.
        part = filled(part) & (solid[y:y + h, x:x + w] > 0)
      if int(part.sum()) < 0.01 * mask.size:
        return None
      # Ink without holes is a plate only clear of the picture's edge (a shadow or the desk
      # reaches it); the caller reads on it only if ink is found there.
      inner = border_ok and not on_border(i)
      if is_plate(part, solid_ok=inner):
        return _PLAIN
      return _NOTCHED if inner and _notched_plate(part) else None

    for i in order:
      kind = plate(i)
      if kind:
        # One of a row of cells, each holding something (a form's boxes, a digit in each),
        # is no plate: the number is read across them all. A region cut by the picture's edge
        # is no cell (a brick there lacks a corner, as if it held ink).
        if any(cell_beside(stats[i], stats[j]) and not on_border(j)
               and holds_ink(labels, stats[j], j) for j in order if j != i):
          break
        if not border_ok and _cell_of_row(mask, stats[i]):
          break
        x, y, w, h, _ = (int(v) for v in stats[i])
        inset = max(2, int(0.03 * min(w, h)))  # The plate's own edge is not read.
        face = filled(labels[y:y + h, x:x + w] == i)
        face = (_notches_filled(face) if kind == _NOTCHED else face).astype(np.uint8)
        face = cv2.erode(face, np.ones((2 * inset + 1, 2 * inset + 1), np.uint8), borderValue=0)
        return ((x + inset, y + inset, x + w - inset, y + h - inset),
                face[inset:h - inset, inset:w - inset] > 0)
  return None


# find_outlined looks for outlines on the picture reduced to this long side: a plate of 0.4% of
# it is still 25 pixels across.
_OUTLINE_SIDE = 400
# Canny's thresholds on the 8-bit picture: a plate's edge against a wall is tens of levels.
_EDGE_LOW, _EDGE_HIGH = 20, 60
# An outline encloses this share of the picture (a small plate on a large wall up to a card
# filling half the frame), is this convex and fills its rotated rectangle this much (rounded
# corners, perspective), and is at most this many times as long as wide (a street-name sign).
_OUTLINE_LEAST, _OUTLINE_MOST = 0.004, 0.5
_OUTLINE_CONVEX, _OUTLINE_BOXY, _OUTLINE_LONG = 0.9, 0.85, 5.0
# Inside it (less its rim), paint is at least this share of the face, at least this many
# 8-bit levels from it: a brick's or a tile's own texture is a few levels.
_PAINT_SHARE, _PAINT_CONTRAST = 0.04, 40
# See _painted_plate. Asked where find_plate finds none (and the picture is no sheet on a
# desk), on 1,600 pictures +6 -0 (plates on brick walls, small ones), held out +4 -0, fresh
# +1 -0; without these two tests and find_outlined's row-of-cells one, +11 -17 (a form's cell
# read alone, a bold printed 8 read as its holes).
_PAINT_THICK, _FACE_APART = 0.3, 25


def _painted_plate(small8: np.ndarray, face: np.ndarray, rim: int, level: float,
                   light_face: bool, short: float) -> bool:
  """Whether an outline's inside (``face``, uint8 on ``small8``; Otsu's ``level`` parts face
  from paint) is a plate's face with a digit painted on it, not a bold printed digit (its
  paint, the digit's holes, is a blob: at most _PAINT_THICK of the short side thick on a
  plate) nor a form's box (its face is the paper outside it: at least _FACE_APART levels apart
  on a plate)."""
  kernel = np.ones((2 * rim + 1, 2 * rim + 1), np.uint8)
  core = cv2.erode(face, kernel) > 0
  paint = (small8 <= level) if light_face else (small8 > level)
  paint = (paint & core).view(np.uint8)
  if 2.0 * float(cv2.distanceTransform(paint, cv2.DIST_L2, 3).max()) > _PAINT_THICK * short:
    return False
  # Beyond the outline's own line (a form's box is drawn a few pixels thick).
  outside = (cv2.dilate(face, np.ones((8 * rim + 1, 8 * rim + 1), np.uint8)) > 0) & (
      cv2.dilate(face, np.ones((4 * rim + 1, 4 * rim + 1), np.uint8)) == 0)
  inside = core & (paint == 0)
  if not outside.any() or not inside.any():
    return False
  return abs(fast.median(small8[inside]) - fast.median(small8[outside])) >= _FACE_APART


def find_outlined(lum: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
  """find_plate's answer for a plate found by its outline in the picture (``lum``: luminance in
  [0, 1]) rather than in its ink: the largest closed edge, clear of the picture's edge, that is
  a convex quadrilateral (see _OUTLINE_CONVEX) with something painted on it (see
  _PAINT_CONTRAST). Asked where find_plate finds none: a plate whose border, or the wall's
  mortar, joins its ink to the wall's."""
  h, w = lum.shape
  f = min(1.0, _OUTLINE_SIDE / max(h, w))
  size = (max(1, round(w * f)), max(1, round(h * f)))
  small = cv2.resize(lum, size, interpolation=cv2.INTER_AREA) if f < 1 else lum
  small8 = cv2.GaussianBlur(np.clip(small * 255 + 0.5, 0, 255).astype(np.uint8), (3, 3), 0)
  edges = cv2.dilate(cv2.Canny(small8, _EDGE_LOW, _EDGE_HIGH), np.ones((3, 3), np.uint8))
  contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
  whole = small8.size
  found = []
  for c in contours:
    area = cv2.contourArea(c)
    if not _OUTLINE_LEAST * whole <= area <= _OUTLINE_MOST * whole:
      continue
    (_, _), (rw, rh), _ = cv2.minAreaRect(c)
    if (area < _OUTLINE_CONVEX * cv2.contourArea(cv2.convexHull(c))
        or area < _OUTLINE_BOXY * rw * rh or max(rw, rh) > _OUTLINE_LONG * min(rw, rh)):
      continue
    x, y, bw, bh = cv2.boundingRect(c)
    if x <= 1 or y <= 1 or x + bw >= small8.shape[1] - 1 or y + bh >= small8.shape[0] - 1:
      continue
    face = np.zeros(small8.shape, np.uint8)
    cv2.drawContours(face, [c], -1, 1, thickness=cv2.FILLED)
    rim = max(2, int(0.06 * min(rw, rh)))
    values = small8[cv2.erode(face, np.ones((2 * rim + 1, 2 * rim + 1), np.uint8)) > 0]
    if values.size < 50:
      continue
    level, _ = cv2.threshold(values.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    light = values > level
    share = float(light.mean())
    if (min(share, 1 - share) < _PAINT_SHARE
        or float(values[light].mean()) - float(values[~light].mean()) < _PAINT_CONTRAST):
      continue
    if not _painted_plate(small8, face, rim, level, share >= 0.5, min(rw, rh)):
      continue
    found.append((area, c, (x, y, bw, bh), min(rw, rh)))
  if not found:
    return None
  found.sort(key=lambda one: -one[0])
  _, c, (x, y, bw, bh), short = found[0]
  # A plate hangs alone; painted outlines of its size beside it (not its own border inside
  # it) are a form's row of cells, a digit in each, read across them all.
  for area, _, (ox, oy, ow, oh), _ in found[1:]:
    inside = x <= ox + ow / 2 <= x + bw and y <= oy + oh / 2 <= y + bh
    if not inside and area >= 0.5 * found[0][0]:
      return None
  # Back at the working size: the face within its box, less the plate's own edge.
  face = np.zeros((h, w), np.uint8)
  cv2.drawContours(face, [np.round(c / f).astype(np.int32)], -1, 1, thickness=cv2.FILLED)
  inset = max(2, int(0.03 * short / f))
  x0, y0 = int(x / f) + inset, int(y / f) + inset
  x1, y1 = min(w, int((x + bw) / f) - inset), min(h, int((y + bh) / f) - inset)
  if x1 - x0 < 8 or y1 - y0 < 8:
    return None
  face = cv2.erode(face, np.ones((2 * inset + 1, 2 * inset + 1), np.uint8), borderValue=0)
  return (x0, y0, x1, y1), face[y0:y1, x0:x1] > 0
