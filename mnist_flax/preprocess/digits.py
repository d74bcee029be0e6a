"""Finding the digits in an ink mask: one, or a whole number written left to right.

    from mnist_flax.preprocess import digits
    glyphs = digits.find(mask)                # [] when nothing looks like a digit
    glyphs = digits.find(mask, single=True)   # at most one: the main glyph and its pieces
    glyphs[0].box                             # (x0, y0, x1, y1) in mask pixels, ends exclusive

From OpenCV's connected components, in order:

0. Long pieces along the outline of the lit sheet (its rim, a shadow's edge) are taken off
   (see ``sheet.rim_off``).
1. Specks (too small for a digit of this image) are dropped, and so are thin lines run into
   strokes at least twice as thick and reaching well beyond them, or out to the picture's edge
   (a rule's remnant, a margin or the sheet's edge touching a marker digit; see
   ``thin.lines_off``).
2. Pieces become glyphs: a piece joins the nearest glyph it overlaps in x (a 5's flag, a 7's
   bar, a broken pencil stroke), or one it nearly touches when the two together are no wider
   than a digit; the biggest pieces are placed first, and a piece that joins one glyph and all
   but touches another above or below it ties the two (a 3 cut in three by grid lines). A
   long thin piece (what a rule or a sheet's edge leaves) neither joins a glyph nor takes
   pieces: the digits beside it are not part of it.
3. Glyphs that touch the picture's edge (once thin lines are off: a rule's remnant may tie a
   digit to it) are left out when others do not, and the answer is built around a glyph on the
   lit sheet (see ``find``), or, where no shade tells the sheet, on a sheet that a patterned
   desk's ink encloses (see ``sheet.enclosed``).
4. The number is the row of glyphs around the main one (the most ink, see ``_main``): glyphs
   of a comparable height, chained left and right across gaps of at most about a digit's
   height, each one's middle within the height of the last one taken (a row turned climbs),
   none of them long and thin (a rule's remnant). A digit broken into fragments each too short
   for the row (a pencil "1" that skipped) is gathered from them. Anything else (a doodle
   above, a word below) is not part of the answer, nor is a line far thinner than the main
   glyph's strokes (a sheet's edge beside a marker digit, read as a "1": see
   ``thin.is_line_beside``).
5. A glyph about as wide as it is tall, or wider, may be two or more digits that touch
   (people write fast; a narrower one, a "1" run into its neighbour, where a cut crosses one
   stroke only): it gets cut paths, top to bottom, each crossing the least ink in its
   stretch of columns (of the glyph sheared upright by the row's slant: the gap between
   slanted digits slants too) and free to bend around a digit that leans into its neighbour,
   and the pieces between any two of them that could be one digit (``Glyph.pieces``; the paths
   are ``cuts``'). Which pieces make the glyph is the model's call
   (``mnist_flax.preprocess.choose``): the likeliest row of pieces from the left edge to the
   right one, so a single digit is split only where its pieces read better than it does.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from mnist_flax.preprocess import cuts, fast, sheet, thin

# Long side squared over area: a thin-pen "1" is ~20, a leftover rule or grain 50 and more.
_MAX_ELONGATION = 35.0
# A glyph beside the main one, or a piece of a glyph, may be thinner (a pencil "1" is up to
# ~36) but not a rule's remnant, a margin or a sheet's edge (70-100 and more).
_MATE_ELONGATION = 2 * _MAX_ELONGATION
# Glyphs in a number are at least this fraction of the main glyph's height (a "1" is as tall as
# the others; a dot, a comma or a stray mark is not).
ROW_HEIGHT = 0.6
# ... or this fraction, when upright (at most this fraction as wide as tall) and no thinner
# than a "1" (elongation at most _SHORT_ONE * _MAX_ELONGATION: a 1 of a 1's thickness cut to
# this fraction of its length): a "1" that lost an end, to a pencil's skip or a grid line
# along it (the generator's: 0.52-0.58 of the row, elongation 6-14; a label's letter beside a
# digit 0.45; a sheet's edge left as a hairline beside a pencil 2, elongation 36). Measured
# before the elongation bound: 0.45 +6 -2 on 3,273 pictures, 0.5 +5 -1 (the bound: +0 -0 there).
_SHORT_ONE = 0.5
# Digits in a number are at most this many (main-glyph) heights apart.
_ROW_GAP = 1.2
# Fragments of a broken digit: at most this many, each within _BAND heights of the next (and
# of the row's band); the generator's pen skips twice per stroke at most, and so do people.
_BAND, _MOST_FRAGMENTS = 0.15, 3
# A row of digits is turned at most this much (the slope, about 15 degrees).
_MAX_TILT = 0.27
# A digit is at most this many heights wide (the widest handwritten 0s and 4s are ~1; a
# form's line or a stroke's tail left on one adds a little).
WIDEST_DIGIT = 1.2
# A piece is one digit only up to this many heights wide.
_WIDEST = 1.3
# A piece ties two glyphs into one (see _tied) only this close to both, in heights of the
# shorter.
_TIED = 0.12
# ... and makes a glyph at most this many times as tall as the taller: a digit cut in three by
# grid lines is 1.5 times its two lower pieces, two digits one above the other twice either.
_TIED_TALL = 1.75
# A glyph on the lit sheet is the answer's (see find) with at least this share of the ink of
# the glyph _main would take from all of them.
_LIT_SHARE = 0.05


@dataclasses.dataclass(frozen=True)
class Glyph:
  """One digit: its box (x0, y0, x1, y1; ends exclusive) and its pixels within the box; and,
  where it may be touching digits, its ink cut along ``cuts`` paths into ``pieces``."""

  box: tuple[int, int, int, int]
  mask: np.ndarray
  cuts: int = 0
  # (a, b, piece): the ink between path a and path b, where path 0 is the glyph's left edge and
  # path cuts + 1 its right one; the glyph itself spans (0, cuts + 1).
  pieces: tuple[tuple[int, int, Glyph], ...] = ()


@dataclasses.dataclass
class _Group:
  labels: list[int]
  x0: int
  y0: int
  x1: int
  y1: int
  area: int
  line: bool = False  # A rule's or an edge's remnant: it joins nothing, nothing joins it.

  def add(self, other: _Group) -> None:
    self.labels += other.labels
    self.x0, self.y0 = min(self.x0, other.x0), min(self.y0, other.y0)
    self.x1, self.y1 = max(self.x1, other.x1), max(self.y1, other.y1)
    self.area += other.area

  @property
  def height(self) -> int:
    return self.y1 - self.y0


def is_speck(area: int | np.ndarray, long_side: int | np.ndarray, side: int
             ) -> bool | np.ndarray:
  """Too small to be (part of) a digit in an image whose long side is ``side`` (elementwise for
  arrays)."""
  return (area < 12) | (long_side < max(5, 0.02 * side))


def _groups(stats: np.ndarray, side: int) -> list[_Group]:
  """Pieces (component stats, background row 0 included) gathered into glyphs: each piece,
  biggest first, joins the nearest glyph it may (see _joins), and ties to it the glyphs above
  or below that glyph which it all but touches too (see _tied): a 3 cut in three by a grid
  line, its top and bottom placed before the middle that joins them."""
  order = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA], kind="stable")
  groups: list[_Group] = []
  for label in order:
    x, y, w, h, area = (int(v) for v in stats[label])
    if is_speck(area, max(w, h), side):
      continue
    piece = _Group([int(label)], x, y, x + w, y + h, area,
                   _elongation_of(max(w, h), area) > _MATE_ELONGATION)
    near = sorted((d, i) for i, g in enumerate(groups) if (d := _joins(piece, g)) is not None)
    if not near:
      groups.append(piece)
      continue
    glyph = groups[near[0][1]]
    glyph.add(piece)
    tied = [groups[i] for d, i in near[1:] if _tied(glyph, groups[i], d)]
    for other in tied:
      glyph.add(other)
    groups = [g for g in groups if not any(g is other for other in tied)]
  return groups


def _tied(glyph: _Group, other: _Group, distance: float) -> bool:
  """Whether the piece just joined to ``glyph``, ``distance`` from ``other``, ties the two into
  one: it all but touches ``other``, which lies above or below ``glyph`` (not beside it, as a
  number's next digit does), and the two together are no wider than a digit, nor as tall as
  two (two lines of writing, a flag between them, stay apart)."""
  overlap = min(glyph.x1, other.x1) - max(glyph.x0, other.x0)
  height = max(glyph.y1, other.y1) - min(glyph.y0, other.y0)
  return (distance <= _TIED * min(glyph.height, other.height)
          and overlap >= 0.5 * min(glyph.x1 - glyph.x0, other.x1 - other.x0)
          and max(glyph.x1, other.x1) - min(glyph.x0, other.x0) <= WIDEST_DIGIT * height
          and height <= _TIED_TALL * max(glyph.height, other.height))


def _joins(piece: _Group, g: _Group) -> float | None:
  """How far ``piece`` lies from glyph ``g`` if it joins it, else None."""
  if g.line or piece.line:  # A line neither takes pieces nor joins a glyph it touches.
    return None
  w, h = piece.x1 - piece.x0, piece.height
  overlap = min(piece.x1, g.x1) - max(piece.x0, g.x0)
  gap_y = max(g.y0 - piece.y1, piece.y0 - g.y1, 0)
  gap_x = max(g.x0 - piece.x1, piece.x0 - g.x1, 0)
  union_w = max(piece.x1, g.x1) - min(piece.x0, g.x0)
  union_h = max(piece.y1, g.y1) - min(piece.y0, g.y0)
  # Above or below, within the glyph's columns (a 5's flag, a 7's bar; not a line under a
  # whole number).
  stacked = (overlap >= 0.5 * w and w <= 1.5 * (g.x1 - g.x0) and gap_y <= 0.5 * g.height)
  # A fragment (shorter than the glyph: a broken stroke) joins across a small gap, a
  # full-height piece (a "1" beside a "2") only when it all but touches.
  fragment = h < 0.75 * g.height
  reach = (0.12 if fragment else 0.04) * g.height
  close = gap_x <= reach and gap_y <= reach and union_w <= 0.9 * union_h
  small = (fragment and piece.area < 0.25 * g.area and h < 0.5 * g.height
           and gap_x <= 0.2 * g.height and gap_y <= 0.2 * g.height
           and union_w <= 1.0 * union_h)
  # The nearest glyph it may join: a broken "1"'s foot belongs to its stem, not to the
  # wider neighbour placed first whose box it grazes.
  return float(np.hypot(gap_x, gap_y)) if stacked or close or small else None


def _elongation(g: _Group) -> float:
  """Long side squared over area (see _MAX_ELONGATION)."""
  return _elongation_of(max(g.height, g.x1 - g.x0), g.area)


def _elongation_of(long_side: int, area: int) -> float:
  return long_side * long_side / max(area, 1)


def _main(groups: list[_Group]) -> _Group:
  """The glyph the answer is built around: the one with the most ink, but for long thin ones
  (what rules, a sheet's edge or a desk's grain leave behind) while there are others."""
  shaped = [g for g in groups if _elongation(g) <= _MAX_ELONGATION] or groups
  return max(shaped, key=lambda g: g.area)


def _row(groups: list[_Group], main: _Group) -> list[_Group]:
  """The glyphs in a row with ``main``, left to right: from it outwards, each next one's middle
  within the band of the last one taken (a row photographed turned climbs or falls from digit
  to digit: the first of six printed digits turned 10 degrees sits a digit's height higher than
  the last)."""
  h = main.height
  mates = sorted((g for g in groups if g is main or (
      (ROW_HEIGHT * h <= g.height or (_SHORT_ONE * h <= g.height
                                      and g.x1 - g.x0 <= _SHORT_ONE * g.height
                                      and _elongation(g) <= _SHORT_ONE * _MAX_ELONGATION))
      and g.height <= h / ROW_HEIGHT and _elongation(g) <= _MATE_ELONGATION)),
      key=lambda g: g.x0)
  i = mates.index(main)
  sides = []
  for side in (mates[i - 1::-1] if i else [], mates[i + 1:]):
    taken, last = [], main
    for g in side:
      if not last.y0 - 0.25 * h <= (g.y0 + g.y1) / 2 <= last.y1 + 0.25 * h:
        continue  # Above or below the row: a doodle, a word.
      if max(g.x0 - last.x1, last.x0 - g.x1) > _ROW_GAP * h:
        break
      taken.append(g)
      last = g
    sides.append(taken)
  return sides[0][::-1] + [main] + sides[1]


def _rejoined(groups: list[_Group], row: list[_Group]) -> list[_Group]:
  """``row`` and the digits broken into fragments beside it, left to right: fragments each too
  short for the row (a "1" whose stroke skipped twice), between or beside its glyphs and within
  its band, gathered while they nearly touch; a gathering as tall as a digit of the row is one.
  """
  h = fast.median(np.array([g.height for g in row]))
  # The band follows the row's tilt (a photo turns a number by up to ~15 degrees: its first
  # digit sits a third of a height lower than its fourth).
  centres = np.array([(g.x0 + g.x1) / 2 for g in row])
  tilt = 0.0
  if len(row) > 1:
    middles = np.array([(g.y0 + g.y1) / 2 for g in row])
    tilt = float(np.clip(np.polyfit(centres, middles, 1)[0], -_MAX_TILT, _MAX_TILT))
  top = min(g.y0 - tilt * c for g, c in zip(row, centres)) - _BAND * h
  bottom = max(g.y1 - tilt * c for g, c in zip(row, centres)) + _BAND * h
  left, right = row[0].x0 - _ROW_GAP * h, row[-1].x1 + _ROW_GAP * h

  def within(g: _Group) -> bool:
    shift = tilt * (g.x0 + g.x1) / 2
    return top <= g.y0 - shift and g.y1 - shift <= bottom

  loose = sorted((g for g in groups if g not in row and g.height < ROW_HEIGHT * h
                  and within(g) and left <= g.x0 and g.x1 <= right
                  and all(min(g.x1, r.x1) <= max(g.x0, r.x0) for r in row)),
                 key=lambda g: g.x0)
  gathered: list[list[_Group]] = []
  for g in loose:
    last = gathered[-1][-1] if gathered else None
    if (last is not None and len(gathered[-1]) < _MOST_FRAGMENTS
        and g.x0 - max(f.x1 for f in gathered[-1]) <= _BAND * h
        and max(g.y0 - last.y1, last.y0 - g.y1) <= _BAND * h):
      gathered[-1].append(g)
    else:
      gathered.append([g])
  joined = []
  for pieces in gathered:
    whole = _Group([label for f in pieces for label in f.labels], min(f.x0 for f in pieces),
                   min(f.y0 for f in pieces), max(f.x1 for f in pieces),
                   max(f.y1 for f in pieces), sum(f.area for f in pieces))
    if len(pieces) > 1 and whole.height >= ROW_HEIGHT * h and whole.x1 - whole.x0 <= _WIDEST * h:
      joined.append(whole)
  return sorted(row + joined, key=lambda g: g.x0)


def _pieces(part: np.ndarray, x: int, y: int, lean: float, narrow: bool = True
            ) -> tuple[int, tuple[tuple[int, int, Glyph], ...]]:
  """The cut paths of the glyph whose pixels are ``part`` (corner at x, y) in writing that
  leans by ``lean``, and the pieces between them that could each be one digit (see Glyph)."""
  paths = cuts.paths(part, lean, narrow)
  if not paths:
    return 0, ()
  h, w = part.shape
  columns = np.arange(w)[None, :]
  edges = [np.zeros(h, np.int64), *paths, np.full(h, w)]
  pieces = []
  for a in range(len(edges) - 1):
    for b in range(a + 1, len(edges)):
      if (a, b) == (0, len(edges) - 1):
        continue  # The glyph itself.
      piece = _trimmed(part & (columns >= edges[a][:, None]) & (columns < edges[b][:, None]), x, y)
      if piece is None:
        continue
      if piece.box[2] - piece.box[0] > _WIDEST * h:
        break  # Wider still from further right.
      pieces.append((a, b, piece))
  return len(paths), tuple(pieces)


def find(mask: np.ndarray, single: bool = False, lit: np.ndarray | None = None,
         components: tuple[np.ndarray, np.ndarray] | None = None, drawn: bool = False
         ) -> list[Glyph]:
  """The digits in ``mask`` left to right ([] if none; at most one with ``single``).

  ``lit``: where the sheet most likely is (see paper.Page); ``components``: the mask's
  8-connected components (labels, stats) where already known; ``drawn``: a drawing, a scan or
  a screenshot (see thin.lines_off).
  """
  labels, stats = components or fast.connected_components(mask, connectivity=8)[1:3]
  if len(stats) < 2:
    return []
  h, w = mask.shape
  if lit is None and not drawn:
    lit = sheet.enclosed(mask)
  if lit is not None:  # The sheet's rim (or a shadow's) off first: it would join the digits.
    rimless = sheet.rim_off(mask, labels, stats, lit)
    if rimless is not None:
      mask = rimless
      labels, stats = fast.connected_components(mask, connectivity=8)[1:3]
  # Thin lines off first: a digit that a rule's remnant or a shadow's edge ties to the frame's
  # edge is inside it once they are off.
  thick = thin.lines_off(mask, labels, stats, drawn, lit)
  solid = None
  if thick is not None:
    tied = fast.touches_edge(stats, mask.shape)
    tied[0] = False
    tied = fast.gather(tied, labels, stats)
    _, labels, stats, _ = fast.connected_components(thick, connectivity=8)
    solid = thin.freed_solid(tied, labels, stats)
  ch = stats[:, cv2.CC_STAT_HEIGHT]
  inside = ~fast.touches_edge(stats, mask.shape)
  inside[0] = False
  if solid is not None:
    inside &= ~solid
  if (inside & (ch >= 0.04 * max(h, w))).any():
    # In a photo, what touches the frame's edge is the desk, the sheet's edge or a shadow; a
    # digit written on the sheet is inside it. (Only a crop has its digit touch the edge.)
    stats = stats.copy()
    stats[~inside, cv2.CC_STAT_AREA] = 0  # Left out of every glyph (see is_speck).
  groups = _groups(stats, max(mask.shape))
  if not groups:
    return []
  # The answer is built around a glyph on the lit sheet, if one is digit-sized: what lies off
  # it is likely the desk (though a shadow may hide a digit, which then joins the row). Not
  # around a rule's stub left on a lit strip beside a shadow that holds the number ("32" read
  # from one): a digit has a good share of the ink of the biggest glyph.
  lit_groups = [g for g in groups
                if lit is not None and lit[(g.y0 + g.y1) // 2, (g.x0 + g.x1) // 2]]
  most = _main(groups).area
  on_sheet = any(g.height >= 0.04 * max(h, w) and _elongation(g) <= _MAX_ELONGATION
                 and g.area >= _LIT_SHARE * most for g in lit_groups)
  main = _main(lit_groups if on_sheet else groups)
  row = [main] if single else _rejoined(groups, _row(groups, main))
  parts = [(g, _pixels(g, labels, len(stats))) for g in row]
  if len(parts) > 1:
    main_part = parts[row.index(main)][1]
    parts = [(g, part) for g, part in parts
             if g is main or not thin.is_line_beside(part, main_part)]
  # One writer, one slant: the row's, so that a pair of touching digits, whose own moments
  # lean with how they sit side by side, is cut along its neighbours' slant. Wanted only where
  # a glyph may be touching digits (most are narrower: their moments are not taken).
  narrow = len(parts) > 1
  cut = not single and any(cuts.may_touch(part.shape, narrow) for _, part in parts)
  lean = fast.median(np.array([cuts.slant(part) for _, part in parts])) if cut else 0.0
  glyphs = []
  for g, part in parts:
    whole = _trimmed(part, g.x0, g.y0)
    if whole is not None:
      count, pieces = _pieces(part, g.x0, g.y0, lean, narrow) if cut else (0, ())
      glyphs.append(dataclasses.replace(whole, cuts=count, pieces=pieces))
  return glyphs


def _pixels(g: _Group, labels: np.ndarray, count: int) -> np.ndarray:
  """A glyph's pixels (bool) within its box, given the mask's ``count`` component ``labels``."""
  box = labels[g.y0:g.y1, g.x0:g.x1]
  if len(g.labels) == 1:  # One piece (most glyphs): a comparison, not a lookup per pixel.
    return box == g.labels[0]
  member = np.zeros(count, bool)
  member[g.labels] = True
  return member[box]


def _trimmed(part: np.ndarray, x: int, y: int) -> Glyph | None:
  """The glyph of the ink in ``part`` (whose corner is at x, y), cut to its box."""
  left, top, w, h = cv2.boundingRect(part.view(np.uint8))  # The box of its ink (bool part).
  if w == 0:
    return None
  x0, y0 = x + left, y + top
  return Glyph((x0, y0, x0 + w, y0 + h), part[top:top + h, left:left + w])
