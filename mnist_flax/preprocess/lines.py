"""Ruled lines, squared-paper grids and margins taken out of an ink mask.

    from mnist_flax.preprocess import lines
    mask = lines.remove_rules(mask)     # notebook rules, grid, margin line; crossing strokes kept

Rules are long, thin, straight and nearly horizontal or vertical (a photo tilts them by up to
~15 degrees): found by OpenCV's probabilistic Hough transform, they must span most of the ink's
extent, and a single one must span nearly all of it, so that the bar of a 7 that fills the
picture is never taken for one. Where a digit's stroke crosses a rule, the rule's pixels with
stroke on both sides are put back (a closing across the rule), so the digit stays whole. The
lines of a ruling turn alike (see ruling.py): a digit's straight stroke among them that turns
away from them (a 1 between a form box's sides, a 4's bar) stays, and so does one thicker
than the ruling's lines (a 1 between two grid lines). A few upright lines are a ruling only
with a line across them (a grid, a box): else they are a number's 1s and stems. Finding and
measuring the lines is straight.py's.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from mnist_flax.preprocess import fast, ruling, straight

# A rule spans at least this fraction of the ink's extent (the sheet, in practice), and is this
# many times longer than what is left without the rules (the digits, a number): a "1", or "111",
# is as tall as the ink it belongs to, ruling and margins are far longer than the digits.
_SPAN = 0.4
_LONGER = 1.15  # A ruling's lines cross the sheet; a number may fill most of it.
_LONE_LONGER = 2.5  # For a line alone (a margin): the bar of a 7 is never 2.5x the rest,
_LONE_SPAN = 0.8  # and a margin crosses most of the picture, or of the ruling across it.
_ALIKE = 0.6  # Rules of one ruling are at least this fraction of the longest one.
_EVEN_LINES = 6  # Evenly spaced lines, this many, are a ruling whatever the writing's size.
_STEPS = 3.0  # A digit spans at most this many steps of a ruling; a grid's lines, the sheet.
_MAX_TILT_DEGREES = 15.0
_RUN_GAP = 2.5  # Lines of one ruling: a step apart, two where Hough missed one under writing.
# Hough finds at least this fraction of a ruling's reach (lines fade, hide under writing).
_REACH_SHORT = 1.5
# Thicker than this fraction of the extent is a stroke or a bar, not a printed rule.
_MAX_THICKNESS = 0.03
# A line found once a ruling's rules are gone, over this many times as thick as they are and
# shorter than this fraction of the picture, is a stroke: a 1 or a stem between grid lines
# ("1974" read 974). Long thick lines found then are a sheet's or a shadow's edge, better gone
# (without the length bound: +5 -4 of 3,273 pictures; 0.3: +2 -0; 0.4: +3 -0; 0.5: +2 -1).
_THICKER = 2.0
_SHORT = 0.4
# ... and at least this many pixels thick: the ink along a ruling's lines 1 px thick measured
# up to 5 px where they were left beside writing (a 97 lost its 7 to them); pen strokes 9-11.
_STROKE = 6
# The ink's extent leaves out this fraction of the ink at each end: specks of the desk or the
# picture's edge far from a sheet that fills a part of the picture would make its rules seem
# short beside the extent.
_STRAY = 0.01


# At most this many passes: a dense grid in perspective, with a shadow or a gradient across
# it, still gave up lines in a fourth and a fifth pass (ink tied by them to the number, or to
# the sheet's edge, read as one glyph: 11 numbers and photos of 2,650 more read right, 2 lost
# to a stub and an edge elsewhere; 3-14% more CPU on squared paper).
_PASSES = 5


def _crossed(small: np.ndarray, length: float) -> bool:
  """Whether a nearly horizontal straight line at least _ALIKE of ``length`` runs through the
  shrunk mask (see straight.shrunk)."""
  found = straight.segments(small, _ALIKE * length)
  dx = np.abs(found[:, 2] - found[:, 0])
  dy = np.abs(found[:, 3] - found[:, 1])
  return bool((dy <= math.tan(math.radians(_MAX_TILT_DEGREES)) * dx).any())


def _extent(rest: np.ndarray, vertical: bool, longest: float) -> float:
  """How far the writing that rules would leave (``rest``, strokes they cross kept whole)
  reaches along one axis: the largest piece and the pieces near it, in a chain; infinite where
  there is none, so that a line alone is never a rule. What rules missed or left behind does
  not count: specks and stubs (pieces under a fifth of the largest), long thin pieces (over a
  third of ``longest``, the longest rule, and ten times longer than thick) and pieces at the
  image's border (the sheet's edge, the desk)."""
  _, _, stats, _ = fast.connected_components(rest, connectivity=8)
  x, y, w, h, area = stats[1:].T
  long_side = np.maximum(w, h)
  residue = (long_side >= longest / 3) & (area <= long_side * long_side / 10)
  border = fast.touches_edge(stats[1:], rest.shape)
  keep = ~residue & ~border
  if not keep.any():
    return float("inf")
  keep &= area >= 0.2 * area[keep].max()
  i = int(np.argmax(np.where(keep, area, -1)))
  box = [x[i], y[i], x[i] + w[i], y[i] + h[i]]
  while True:  # Pieces within half the box's size of it join it.
    m = 0.5 * max(box[2] - box[0], box[3] - box[1])
    near = (keep & (x <= box[2] + m) & (x + w >= box[0] - m) & (y <= box[3] + m)
            & (y + h >= box[1] - m))
    grown = [x[near].min(), y[near].min(), (x + w)[near].max(), (y + h)[near].max()]
    if grown == box:
      break
    box = grown
  return float(box[3] - box[1] if vertical else box[2] - box[0])


def _reach_of_ink(mask: np.ndarray) -> tuple[int, int]:
  """The ink's (height, width) without the stray _STRAY of it at either end of each axis."""
  sides = []
  for axis in (1, 0):
    ink = np.cumsum(fast.count_nonzero(mask, axis=axis))
    lo, hi = np.searchsorted(ink, [_STRAY * ink[-1], (1 - _STRAY) * ink[-1]])
    sides.append(int(hi - lo + 1))
  return sides[0], sides[1]


class _Found(NamedTuple):
  """Long thin lines found in one direction (see _lines)."""

  segments: np.ndarray  # (N, 4), refined to the ink at full size and drawn across the picture.
  lengths: np.ndarray  # (N,) as Hough found them.
  band_width: int  # Of a band that covers them all.
  clipped: np.ndarray  # The segments cut to the ink found (see straight.clipped).
  thickness: int  # The ink's along all of them (see straight.thickness).
  each: np.ndarray  # (N,) the ink's along each one, where it was found.


def _lines(mask8: np.ndarray, small: np.ndarray, vertical: bool, extent: int,
           across: int, lone: float) -> _Found | None:
  """Long thin lines in one direction, found on the mask shrunk (``small``, see
  straight.shrunk) and refined to the ink at full size (see straight.refine); None if there
  are none. ``extent``: how far the ink reaches along the lines, ``across``: across them;
  ``lone``: how long a line alone must be (see _lone)."""
  if extent < 40:
    return None
  segments = straight.segments(small, _SPAN * extent)
  dx = np.abs(segments[:, 2] - segments[:, 0])
  dy = np.abs(segments[:, 3] - segments[:, 1])
  along, off = (dy, dx) if vertical else (dx, dy)
  keep = off <= math.tan(math.radians(_MAX_TILT_DEGREES)) * along
  if not keep.any():
    return None
  lengths = np.hypot(dx, dy)[keep]
  if keep.sum() < 3 and lengths.max() < lone:
    return None  # Neither a ruling nor a margin (see _remove_rules_once): a digit's strokes.
  kept = segments[keep]
  segments, sources = straight.refine(mask8, kept, vertical)
  if sources.size == 0:
    return None
  counts = straight.across(mask8, vertical)
  thick = straight.thickness(counts[straight.band(mask8.shape, segments, 1, vertical)])
  if thick > max(3, _MAX_THICKNESS * across):
    return None  # A thick bar: a stroke of the digit, not printed ruling.
  clipped = straight.clipped(segments, kept[sources], vertical)
  return _Found(segments, lengths[sources], thick + 2 + (thick % 2 == 0), clipped, thick,
                straight.each_thickness(counts, clipped))


def _without(mask: np.ndarray, band: np.ndarray, width: int, vertical: bool) -> np.ndarray:
  """``mask`` without its pixels in ``band``, but where a stroke crosses it: ink on both sides
  of the band, put back by a closing across it."""
  kept = mask > band  # Ink off the band (in place from here on: whole-picture copies cost).
  reach = width + 4
  kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (reach, 1) if vertical else (1, reach))
  bridged = cv2.morphologyEx(kept.view(np.uint8), cv2.MORPH_CLOSE, kernel).view(bool)
  bridged &= band  # The rule's ink where a stroke crosses it.
  bridged &= mask
  kept |= bridged
  return kept


def _on_edge(segments: np.ndarray, shape: tuple[int, ...], vertical: bool) -> np.ndarray:
  """Which lines (drawn across the picture, see straight.refine) run along its edge: within
  straight.SHRINK pixels of the same side at both ends."""
  across = (segments[:, [0, 2]] if vertical else segments[:, [1, 3]]).astype(np.int64)
  side, near = shape[1 if vertical else 0] - 1, straight.SHRINK
  return (across <= near).all(axis=1) | (across >= side - near).all(axis=1)


def _gaps(segments: np.ndarray, vertical: bool, band_width: int) -> np.ndarray:
  """The gaps between separate lines, across them."""
  middles = np.sort((segments[:, 0] + segments[:, 2] if vertical
                     else segments[:, 1] + segments[:, 3]) / 2)
  gaps = np.diff(middles)
  return gaps[gaps > band_width]


def _ruling(segments: np.ndarray, vertical: bool, band_width: int) -> bool:
  """Whether segments make ruled paper: at least three separate lines (a "111" is protected
  otherwise: it leaves no writing to be longer than, see _extent)."""
  return _gaps(segments, vertical, band_width).size >= 2


def _reach(segments: np.ndarray, vertical: bool) -> int:
  """How far apart the outermost lines of a ruling lie (across them): its longest run of lines
  at most _RUN_GAP steps apart (a desk's or sheet's edge beyond it is no rule of it)."""
  middles = np.sort((segments[:, 0] + segments[:, 2] if vertical
                     else segments[:, 1] + segments[:, 3]) / 2)
  gaps = np.diff(middles)
  if gaps.size == 0:
    return 0
  breaks = np.flatnonzero(gaps > _RUN_GAP * float(np.median(gaps)))
  starts, ends = np.r_[0, breaks + 1], np.r_[breaks, middles.size - 1]
  return int((middles[ends] - middles[starts]).max())


def _step(rules: ruling.Ruling) -> float:
  """The usual distance between neighbouring lines of a ruling (0 if none is measured)."""
  gaps = _gaps(rules.lines, rules.vertical, 2)
  return float(np.median(gaps)) if gaps.size else 0.0


def _even(segments: np.ndarray, vertical: bool, band_width: int) -> bool:
  """Whether segments are a ruling beyond doubt: _EVEN_LINES lines or more, most of them evenly
  spaced, some perhaps missed by Hough (a number's strokes are neither that many nor that
  even). What a dense grid leaves of itself can make the writing seem as long as its lines."""
  gaps = _gaps(segments, vertical, band_width)
  if gaps.size < _EVEN_LINES - 1:
    return False
  step = float(np.median(gaps[gaps <= 1.5 * gaps.min()]))
  steps = gaps / step
  return float(np.mean(np.abs(steps - np.round(steps)) <= 0.2)) >= 0.8


def remove_rules(mask: np.ndarray) -> np.ndarray:
  """``mask`` without ruled lines, grid lines and margin lines (see the module docstring)."""
  # Hough's sampling misses some lines of a dense grid; they stand out once the others are gone.
  # Lines left in a direction once ruled are that ruling's, held to its test, not a margin's.
  if not mask.any():
    return mask
  # Measured once: what later passes leave is the writing and a few lines, not the sheet.
  sheet = _reach_of_ink(mask)
  out: np.ndarray = mask
  ruled: dict[bool, ruling.Ruling] = {}
  for _ in range(_PASSES):
    cleaner = _remove_rules_once(out, ruled, sheet)
    if cleaner is out:
      break
    out = cleaner
  return out


def _lone(shape: tuple[int, ...], vertical: bool, ruled: dict[bool, ruling.Ruling]) -> float:
  """How long a line alone (a margin) must be: it crosses most of the picture, or, on a sheet
  ruled across it that fills only part of the picture, most of that ruling's reach."""
  side = float(shape[0 if vertical else 1])
  if (not vertical) in ruled:
    side = min(side, float(ruled[not vertical].reach))
  return _LONE_SPAN * side


def _remove_rules_once(mask: np.ndarray, ruled: dict[bool, ruling.Ruling],
                       sheet: tuple[int, int]) -> np.ndarray:
  """One pass of remove_rules; adds to ``ruled`` the directions (vertical or not) found ruled,
  with the rules found. ``sheet``: the (height, width) of the ink
  first given to remove_rules (see _reach_of_ink)."""
  ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
  if ys.size == 0:
    return mask
  height = min(sheet[0], int(ys[-1] - ys[0] + 1))
  width = min(sheet[1], int(xs[-1] - xs[0] + 1))
  # A grid's lines run as far as the rules across them reach: on a sheet photographed on a desk
  # the ink's extent is the desk's edges', and the grid's other lines, not yet found, fall
  # short of its _SPAN. (Once found, what is left are its leftovers, measured on the ink.)
  along = {True: height, False: width}
  for vertical in (True, False):
    if vertical not in ruled and (not vertical) in ruled:
      along[vertical] = min(along[vertical], int(_REACH_SHORT * ruled[not vertical].reach))
  mask8 = mask.view(np.uint8)  # Only read: the mask's own bytes.
  small = straight.shrunk(mask8)
  found = {vertical: hit for vertical in (False, True) if (hit := _lines(
      mask8, small, vertical, along[vertical], width if vertical else height,
      _lone(mask.shape, vertical, ruled))) is not None}
  if not found:
    return mask
  # What the writing would be without every candidate line, measured to tell rules (far longer
  # than the writing) from the writing's own straight strokes (a 1, a 7's bar, a 4's stem):
  # along one axis, lines across it are taken out whole (so that a grid falls apart), lines
  # along it only where their ink was found (a 1's line drawn across the picture would cut the
  # number's other digits down).
  out = mask
  for vertical, (segments, lengths, band_width, clipped, thick, each) in found.items():
    rest = mask
    for other, hit in found.items():
      drawn = hit.segments if other != vertical else hit.clipped
      band = straight.band(mask.shape, drawn, hit.band_width, other)
      rest = _without(rest, band, hit.band_width, other)
    writing = _extent(rest, vertical, float(lengths.max()))
    # Rules are all about as long (the sheet's width, seen in perspective), the longest far
    # longer than the writing; a digit's own straight stroke (a 4's bar) is shorter.
    rules = lengths >= _ALIKE * lengths.max()
    # A ruling's lines run alike (see ruling.py): a digit's stroke among them turns away.
    # One along the picture's edge (the sheet's, the picture's border) is never a stroke.
    edge = _on_edge(segments, mask.shape, vertical)
    if vertical in ruled:
      # What a ruling left of itself is as thin as its rules; a stroke found among them once
      # they are gone (a 1 between two grid lines) is thicker, and short beside the sheet.
      stroke = ((each > max(_THICKER * ruled[vertical].thickness, _STROKE - 1))
                & (straight.length(clipped) < _SHORT * mask.shape[0 if vertical else 1]))
      rules &= (ruled[vertical].holds(segments, clipped) & ~stroke) | edge
    else:
      rules[rules] = ruling.parallel(segments[rules], vertical) | edge[rules]
    if vertical in ruled or _ruling(segments[rules], vertical, band_width):
      even = _even(segments[rules], vertical, band_width)
      if lengths.max() < _LONGER * writing and not even:
        continue
      # Upright lines, a few and unevenly spaced, with no line across them as long as they are
      # (a grid's, a form box's top), are a number's strokes: the 1s and stems of "1941" on
      # plain paper, far longer than the loop and the bar they leave.
      if (vertical and vertical not in ruled and not even and False not in found
          and False not in ruled and not _crossed(small, float(lengths.max()))):
        continue
      # Lines across a ruling, each no longer than a few of its steps, are the writing's
      # strokes (the 1s of "1971" on ruled paper, found once the rules are gone): a grid's
      # lines cross the sheet (also a sheet only three steps tall).
      if (vertical not in ruled and (not vertical) in ruled
          and lengths[rules].max() <= min(_STEPS * _step(ruled[not vertical]),
                                          _LONE_SPAN * sheet[0 if vertical else 1])):
        continue
      # The ruling as first found (later passes find what it left of itself).
      ruled.setdefault(vertical, ruling.Ruling(_reach(segments[rules], vertical),
                                               segments[rules], vertical, thick))
    else:
      # Not ruled this way: a single line (a margin) crosses the whole picture, or the ruling
      # across it, far longer than the writing.
      rules &= lengths >= max(_LONE_LONGER * writing, _lone(mask.shape, vertical, ruled))
    if rules.any():
      band = straight.band(mask.shape, segments[rules], band_width, vertical)
      out = _without(out, band, band_width, vertical)
  return out
