"""The paper under the ink: polarity, lighting and shadows divided out, the sheet found.

    from mnist_flax.preprocess import paper
    page = paper.find_ink(lum)      # lum: float32 luminance in [0, 1] (see gray.luminance)
    page.ink                        # float32 (H, W): 0 on paper, ~1 on the darkest ink
    page.mask                       # bool (H, W): the ink, noise and the desk left out
    page is None                    # nothing stands out: a blank, flat or noise-only image

The steps, in order:

1. Polarity: paper is one large solid region, ink thin strokes (see ``ink_is_dark``); white
   chalk on a blackboard and a white-on-black screenshot are turned into dark ink on light
   paper.
2. Lighting: the paper's brightness is estimated by a grey closing (max then min filter) wider
   than any stroke, on a lightly smoothed copy, and divided out. Shadows, soft or hard-edged,
   and gradients are multiplicative, so the division evens them: a shadow's edge is a step in
   the paper level, which the closing keeps, so it never becomes ink.
3. Threshold with hysteresis: the noise level comes from the paper itself (median and MAD of the
   ink map); pixels well above it seed the ink, fainter ones join only when connected to a seed,
   so faint pencil is read and JPEG speckle is not. A hand's or a phone's shadow read as ink
   with them is taken out where the ink is clearly darker than it (see shade.off_shadows).
4. The sheet: in a photo whose border shows the desk, the paper is the largest bright region of
   the background; ink outside it (the desk's texture, the sheet's own edge, a pen) is dropped.
   A desk as light as shadowed paper (wood, a grey top) is told from it by its grain.
5. A plate (a house number, a card): "ink" that is one solid region holding large light shapes
   is the thing the digit is painted on (``plates.find_plate``); the caller reads inside it
   again, the plate's surface taken for the paper whatever its shade
   (``find_ink(inside, plate=face)``).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from mnist_flax.preprocess import fast, plates, shade, strokes
from mnist_flax.preprocess.sheet import mostly_on, on_grain

# The closing that estimates the paper is this fraction of the long side wide: wider than the
# thickest marker stroke of a digit that fills the frame (~1/8 of the side).
_CLOSING_FRACTION = 0.25
# The paper's estimate at the strokes' scale is at most this fraction of the long side wide, or
# 1.5 strokes if more: a shadow's band or corner wider than that stays paper. Parts of strokes
# thicker than it are found where it dips below the widest one (see strokes.lift_thick).
_CLOSING_MOST = 0.05
# The polarity's residual is measured on an image this small (long side): fast and plenty.
POLARITY_SIDE = 160
# Ink must stand this many noise deviations above the paper to seed, and half that to join.
_SEED_SIGMAS = 6.0
_JOIN_SIGMAS = 3.0
# Whatever the noise, ink is at least this much darker than its paper (relative): faint pencil
# on white paper (225 on 245) is 0.08, JPEG ringing around printed text a few hundredths.
_MIN_SEED = 0.06
_MIN_JOIN = 0.035
# The paper is where the background is at least this fraction of the brightest paper: shadowed
# paper stays in (a shadow rarely takes two thirds of the light), a dark desk falls out.
_SHEET_LEVEL = 0.35
# A small light region is a sheet (not chalk) when a disc this fraction of the picture's short
# side fits in it.
_SHEET_DEPTH = 0.15
# A light region that a disc this fraction of the short side fits in (a half disc where it
# meets the picture's edge, which the distance transform does not count), however ragged (a hard
# shadow's fingers cut into it), beside one dark region over _SHADE_SHARE of the picture, is
# the lit part of a shaded sheet: a stroke is never so deep. A shadow over most of a sheet had
# its lit part taken for light ink ("869" read 5, "161" read 6): +5 -0 on 3,273 pictures; 0.3
# the same, 0.6 +4; without the shade condition, +5 -3 (plates on lit walls, whose dark faces
# are at most a quarter of the picture; the shaded sheets' shade 0.63-0.89).
_LIT_DEPTH, _SHADE_SHARE = 0.4, 0.5
# ... and a sheet that is surely one fills at least this share of its convex hull.
_SOLID_SHEET = 0.8
# A step in the paper's level (the sheet's edge on a desk, a hard shadow's edge) is where it
# changes by at least _STEP_RATIO within _STEP_FRACTION of the long side; thin ink that mostly
# lies on such steps is their shading (see _off_steps).
_STEP_RATIO = 1.1
_STEP_FRACTION = 0.009
# _STEPPED[v]: the brightest 8-bit paper level not a step above level v, so that "a > _STEPPED[b]"
# is "a / 255 > _STEP_RATIO * b / 255" in float32 (the same pixels): 8-bit morphology and a
# table are several times faster than float. So are _FLOORED, the ink map's divisor (kept off
# zero), and _ABOVE[v], what a level must exceed to be _STEP_RATIO above v (in float32).
_LEVELS = np.arange(256, dtype=np.float32) * np.float32(1 / 255)
_STEPPED = np.array([np.count_nonzero(_LEVELS <= _STEP_RATIO * v) - 1 for v in _LEVELS], np.uint8)
_FLOORED = np.maximum(_LEVELS, 1e-3)
_ABOVE = np.minimum(np.floor(np.arange(256, dtype=np.float32) * np.float32(_STEP_RATIO)),
                    255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class Page:
  """The ink of one image at working size: ``ink`` in [0, 1] and its binary ``mask``."""

  ink: np.ndarray
  mask: np.ndarray
  lit: np.ndarray | None  # Where the sheet most likely is (see _lit_sheet); None: everywhere.


def _odd(n: float) -> int:
  return max(3, int(n) // 2 * 2 + 1)


def _largest(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int, int]] | None:
  """The largest 4-connected region of ``mask``: its pixels within its box, and its stats
  (x, y, w, h, area); None if ``mask`` is empty."""
  count, labels, stats, _ = fast.connected_components(mask.astype(np.uint8), connectivity=4)
  if count < 2:
    return None
  i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
  x, y, w, h, area = (int(v) for v in stats[i])
  return labels[y:y + h, x:x + w] == i, (x, y, w, h, area)


def ink_is_dark(lum: np.ndarray) -> bool:
  """Whether the ink is darker than the paper, decided from the pixels alone.

  The two sides of Otsu's threshold are told apart by their shape: paper (a sheet, a plate) is
  one large solid region, ink is thin strokes. Mostly light pictures have dark ink, but for a
  dark plate on a light wall; mostly dark ones have light ink, but for a light sheet on a dark
  desk or the lit part of a sheet mostly in shadow.
  """
  small, light = _otsu_light(lum)
  if light is None:  # Nothing stands out: a blank page is blank.
    return float(np.median(small)) > 0.5
  if light.mean() >= 0.5:
    # A dark plate hangs on the wall, clear of the picture's edge; a dark side that reaches the
    # edge is a shadow, the desk or the lens's vignetting around a sheet.
    dark = _largest(1 - light)
    return not (dark is not None and dark[1][4] >= 0.05 * light.size
                and not fast.touches_edge(np.array([dark[1]]), light.shape)[0]
                and plates.is_plate(dark[0]))
  return _desk_sheet(light) is not None


def is_sheet_on_desk(lum: np.ndarray) -> bool:
  """Whether a mostly dark picture is a light sheet on a dark desk, surely: ink_is_dark's
  sheet, and convex (its light fills _SOLID_SHEET of its hull; a bold white-on-black 8 half)."""
  light = _otsu_light(lum)[1]
  if light is None or light.mean() >= 0.5:
    return False
  sheet = _desk_sheet(light)
  if sheet is None:
    return False
  hull = cv2.contourArea(plates.convex_hull(sheet))
  return cv2.countNonZero(sheet.view(np.uint8)) >= _SOLID_SHEET * hull


def _otsu_light(lum: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
  """``lum`` at POLARITY_SIDE, and Otsu's lighter side of it (uint8 0/1; None if nothing
  stands out)."""
  factor = max(1, -(-max(lum.shape) // POLARITY_SIDE))
  small = cv2.resize(lum, (max(1, lum.shape[1] // factor), max(1, lum.shape[0] // factor)),
                     interpolation=cv2.INTER_AREA) if factor > 1 else lum
  small8 = np.clip(small * 255 + 0.5, 0, 255).astype(np.uint8)
  lo, hi = fast.percentile(small8, 1), fast.percentile(small8, 99)
  if hi - lo < 20:
    return small, None
  return small, cv2.threshold(small8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]


def _desk_sheet(light: np.ndarray) -> np.ndarray | None:
  """The sheet (bool, ``light``'s shape) in the lighter side ``light`` (uint8 0/1) of a mostly
  dark picture: its largest region, when that is large, or small but solid (a disc wider than
  any chalk stroke fits in it), or ragged but deep in one large shade (see _LIT_DEPTH); None:
  the light is strokes (chalk), not a sheet or a lit part of one."""
  # Closed first: grid lines cut the paper into cells, which are one sheet.
  sheet = _largest(cv2.morphologyEx(light, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)))
  if sheet is None:
    return None
  part, (x, y, w, h, area) = sheet
  depth = 2.0 * float(cv2.distanceTransform(part.astype(np.uint8), cv2.DIST_L2, 3).max())
  if area < 0.4 * w * h and not (depth >= _LIT_DEPTH * min(light.shape) and _in_shade(light)):
    return None  # Strokes, not a sheet or a lit part of one (a triangle).
  if area < 0.15 * light.size and depth < _SHEET_DEPTH * min(light.shape):
    return None
  out = np.zeros(light.shape, bool)
  out[y:y + h, x:x + w] = part
  return out


def _in_shade(light: np.ndarray) -> bool:
  """Whether one dark region covers most of the picture (``light``: Otsu's lighter side, uint8
  0/1): a shadow over the sheet, or the desk; a dark plate on a lit wall is far smaller."""
  dark = _largest(1 - light)
  return dark is not None and dark[1][4] >= _SHADE_SHARE * light.size


def _closing(small8: np.ndarray, k: int) -> np.ndarray:
  kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
  return cv2.morphologyEx(small8, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)


def _noise(ink: np.ndarray, where: np.ndarray | None) -> tuple[float, float]:
  """The paper's level and noise (median, and MAD as a standard deviation) in an ink map, on an
  even sample of the pixels (of the sheet, where there is one)."""
  step = max(1, int(np.sqrt(ink.size / 40_000)))
  sample = ink[::step, ::step]
  if where is not None:
    sample = sample[where[::step, ::step]]
  if sample.size == 0:
    sample = ink[::step, ::step]
  centre = fast.median(sample)
  return centre, 1.4826 * fast.median(np.abs(sample - centre))


def _background(lum: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
  """The paper's brightness under dark ink at full size (8 bits), the sheet (see _sheet), where it
  most likely is (see _lit_sheet), and where the estimate dips (see _off_steps; None: nowhere).

  A grey closing wider than the strokes (in 8 bits at half size: 10x faster than float at full
  size): first one wider than any stroke could be, which finds the strokes; then, when they are
  thin, one a few strokes wide (at most _CLOSING_MOST), so that a shadow wider than that stays
  in the paper, not ink; strokes too thick for it are lifted to the first (see strokes.lift_thick).
  """
  h, w = lum.shape
  half = (max(1, w // 2), max(1, h // 2))
  small = cv2.resize(lum, half, interpolation=cv2.INTER_AREA)
  # A median first: the closing takes the brightest pixel around, and a camera's sharpening
  # halo beside dark strokes (or a noise spike) would lift the paper there, making ink of it.
  small8 = cv2.medianBlur(np.clip(small * 255 + 0.5, 0, 255).astype(np.uint8), 3)
  widest = _odd(_CLOSING_FRACTION * max(half))
  closed = _closing(small8, widest)
  sheet = _sheet(closed)
  rough = cv2.LUT(closed, _FLOORED)  # 1 - small / it, in place.
  np.subtract(1.0, np.divide(small, rough, out=rough), out=rough)
  centre, sigma = _noise(rough, sheet)
  stroke = strokes.width(rough > centre + max(_SEED_SIGMAS * sigma, _MIN_SEED))
  # A few strokes wide, but no wider than _CLOSING_MOST unless the strokes need it.
  k = _odd(min(widest, max(7, min(4 * stroke + 5,
                                  max(_CLOSING_MOST * max(half), 1.5 * stroke + 5)))))
  dip = None
  if k < widest:
    wide, closed = closed, _closing(small8, k)
    # Where the narrower closing falls well below the widest one, it follows something
    # narrower than a quarter of the picture: a stroke too thick for it, or a shadow.
    dip = wide > cv2.LUT(closed, _ABOVE)
    closed = strokes.lift_thick(small8, closed, wide, dip, _STEP_RATIO,
                                lambda: sheet if sheet is not None else _lit_sheet(wide))
  lit = _lit_sheet(closed)
  full = cv2.resize(closed, (w, h), interpolation=cv2.INTER_LINEAR)
  sheet, lit, dip = (None if m is None else cv2.resize(m.view(np.uint8), (w, h), interpolation=(
      cv2.INTER_NEAREST)).view(bool) for m in (sheet, lit, dip))
  return full, sheet, lit, dip


def _lit_sheet(background: np.ndarray) -> np.ndarray | None:
  """Where the sheet most likely is, for choosing between pieces of ink: the convex hull of the
  brightest region of the background (Otsu's brighter side, at least 15% of the picture); None
  where no such region stands out. A grey desk is not lit paper; paper in a shadow may be
  neither, which is why this only breaks ties (see digits.find)."""
  _, bright = cv2.threshold(background, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
  lo, hi = (float(background[bright == v].mean()) if (bright == v).any() else 0.0 for v in (0, 1))
  if bright.mean() > 0.97 or lo > 0.75 * hi:  # No desk or shade that stands out.
    return None
  outline = _main_outline(bright)
  if outline is None:
    return None
  out = np.zeros_like(bright)
  cv2.fillConvexPoly(out, cv2.convexHull(outline), 1)
  return _without_rim(out)


def _sheet(background: np.ndarray) -> np.ndarray | None:
  """The sheet of paper where the photo shows the desk around it, else None (all paper)."""
  level = fast.percentile(background[::2, ::2], 95)
  paper = (background >= _SHEET_LEVEL * level).astype(np.uint8)
  if paper.mean() > 0.97:
    return None
  outline = _main_outline(paper)
  if outline is None:
    return None  # No sheet stands out (a dark photo): better keep everything.
  # Holes (ink blobs, a dark smudge) belong to the sheet; its rim (the edge's shading) does not.
  filled = np.zeros_like(paper)
  cv2.drawContours(filled, [outline], -1, 1, thickness=cv2.FILLED)
  return _without_rim(filled)


def _main_outline(mask: np.ndarray) -> np.ndarray | None:
  """The outer contour of the largest 4-connected region of ``mask`` (uint8), if it covers at
  least 15% of the picture (a sheet stands out); else None."""
  largest = _largest(mask)
  if largest is None or largest[1][4] < 0.15 * mask.size:
    return None
  part, (x, y, _, _, _) = largest
  contours, _ = cv2.findContours(part.astype(np.uint8), cv2.RETR_EXTERNAL,
                                 cv2.CHAIN_APPROX_SIMPLE)
  return max(contours, key=cv2.contourArea) + np.array([x, y], np.int32)


def _without_rim(region: np.ndarray) -> np.ndarray:
  """A region (uint8) less its rim, 1% of the picture wide: the sheet's edge is shaded."""
  rim = _odd(0.01 * max(region.shape))
  return cv2.erode(region, cv2.getStructuringElement(cv2.MORPH_RECT, (rim, rim))).view(bool)


def find_ink(lum: np.ndarray, plate: np.ndarray | None = None,
             outlined: bool = False) -> Page | None:
  """The ink map and mask of a luminance image; None if nothing stands out from the paper.

  ``plate``: ``lum`` is the box of a plate (see plates.find_plate) and this its face (bool, lum's
  shape), whose surface is most of it (see plates.face_is_light): ink_is_dark would
  take a bold light digit filling a dark plate for a sheet on a desk. Ink off the face (the
  wall in the corners of a tilted plate's box, the plate's rim) is left out. ``outlined``: the
  plate was found by its outline (plates.find_outlined), a card on a desk as often as a plate on
  a wall: its polarity is judged on the face alone (on find_plate's plates, with the wall in the
  corners: +0 -3 on shadowed plates).
  """
  if min(lum.shape) < 3:
    return None
  if plate is not None:  # Judged on the face alone where it was found by its outline.
    dark_ink = plates.face_is_light(lum, plate if outlined else None)
  else:
    dark_ink = ink_is_dark(lum)
  if not dark_ink:
    lum = 1.0 - lum
  background8, sheet, lit, dip = _background(lum)
  if plate is not None:  # The face is the sheet: its noise, and ink only on it.
    sheet = plate if sheet is None else sheet & plate
  ink = cv2.LUT(background8, _FLOORED)  # Then 1 - lum / it, in place: fewer copies.
  np.subtract(1.0, np.divide(lum, ink, out=ink), out=ink)
  # The noise is judged in absolute darkening, where a photo's noise is about even: divided by
  # a shadow's dim paper it is magnified, and the shadowed desk's grain would pass for ink.
  # Both before clipping: paper noise goes either way of the (median-smoothed) paper level.
  dark = cv2.LUT(background8, _LEVELS)
  np.multiply(ink, dark, out=dark)
  centre, sigma = _noise(ink, sheet)
  dark_centre, dark_sigma = _noise(dark, sheet)
  np.clip(ink, 0.0, 1.0, out=ink)
  join = centre + max(_JOIN_SIGMAS * sigma, _MIN_JOIN)
  weak, above = ink > centre + _MIN_JOIN, dark > dark_centre + _JOIN_SIGMAS * dark_sigma
  weak &= above
  count, labels, stats, _ = fast.connected_components(weak, connectivity=8)
  if count < 2:
    return None
  strong = np.greater(ink, centre + _MIN_SEED, out=weak)  # Buffers reused: weak is labelled.
  strong &= np.greater(dark, dark_centre + _SEED_SIGMAS * dark_sigma, out=above)
  seeded = np.bincount(labels[strong], minlength=count) > 0
  seeded[0] = False
  mask = fast.gather(seeded, labels, stats)
  if sheet is not None:
    # A piece of ink counts only where most of it lies on the sheet (counted on seeded ink).
    on_sheet = np.bincount(labels[mask & sheet], minlength=count)
    seeded &= on_sheet >= 0.5 * stats[:, cv2.CC_STAT_AREA]
    mask[mask] = seeded[labels[mask]]
  if plate is not None:
    mask &= plate  # A digit painted up to the rim keeps its strokes, not the rim.
  elif sheet is None and lit is not None and on_grain(mask, lit):
    # A desk as light as shadowed paper: ink counts only where most of it lies on the lit sheet.
    seeded &= mostly_on(mask, labels, count, lit)
    mask &= fast.gather(seeded, labels, stats)
  # Each piece's pixels in the mask: whole components, unless the plate's face cut them.
  areas = np.where(seeded, stats[:, cv2.CC_STAT_AREA], 0) if plate is None else np.bincount(
      labels[mask], minlength=count)
  mask = _off_steps(mask, labels, stats, areas, background8, dip)
  if plate is None and dark_ink:  # Shadows are dark; a plate's digits are wide, rims faint.
    mask = shade.off_shadows(mask, ink)  # A hand's or a phone's shadow beside dark ink.
  if not mask.any():  # Nothing seeded, or all of it the sheet's edge, a shadow's, a rim.
    return None
  # Stretch so the strong ink reaches 1: the normalised strokes then look like MNIST's.
  strokes = ink[mask]
  core = fast.percentile(strokes[::max(1, strokes.size // 20_000)], 90)
  if core - centre < _MIN_SEED:
    return None
  np.divide(np.subtract(ink, join, out=ink), max(core - join, 1e-3), out=ink)  # No copies.
  return Page(ink=np.clip(ink, 0.0, 1.0, out=ink), mask=mask, lit=lit)  # lum float32: ink too.


def _off_steps(mask: np.ndarray, labels: np.ndarray, stats: np.ndarray, areas: np.ndarray,
               background8: np.ndarray, dip: np.ndarray | None) -> np.ndarray:
  """``mask`` less the pixels on or beside steps of the paper's level (see _STEP_RATIO) of each
  piece of ink (``labels``, ``stats``; ``areas``: its pixels in ``mask``) that mostly lies on
  them and is at most twice as thick as a step is wide: the sheet's outline on a desk of about
  its shade, a hard shadow's edge. The rest of such a piece stays (a stroke touching the
  sheet's edge); so does all of a piece that only crosses a step (a digit across a shadow's
  edge), and one whose steps are mostly where the paper's estimate ``dip``s (a stroke too
  thick for the closing, or its fragments)."""
  count = len(stats)
  k = _odd(_STEP_FRACTION * max(mask.shape))
  kernel = np.ones((k, k), np.uint8)
  on = mask & (cv2.dilate(background8, kernel) > cv2.LUT(cv2.erode(background8, kernel), _STEPPED))
  stepped = np.bincount(labels[on], minlength=count)
  edge = stepped >= 0.5 * np.maximum(areas, 1)
  edge[0] = False
  if dip is not None:
    edge &= np.bincount(labels[on & dip], minlength=count) < 0.8 * np.maximum(stepped, 1)
  if not edge.any():
    return mask
  lines = fast.gather(edge, labels, stats)
  lines &= mask
  # Twice the distance to the paper is the thickness; a piece's thickest part decides.
  depth = cv2.distanceTransform(lines.view(np.uint8), cv2.DIST_L2, 3)
  thickest = np.zeros(count, np.float32)
  np.maximum.at(thickest, labels[lines], depth[lines])
  edge &= thickest <= k  # Twice the distance: no thicker than twice a step is wide.
  # The shading runs along the step, a line's width beside where the closing puts it.
  off = fast.gather(edge, labels, stats)
  off &= cv2.dilate(on.view(np.uint8), kernel).view(bool)
  return np.greater(mask, off, out=off)  # mask & ~off, in place.
