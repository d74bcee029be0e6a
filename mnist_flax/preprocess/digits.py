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
2. Pieces become glyphs (see ``gather.py``): a 5's flag, a 7's bar, a broken stroke join
   their digit; a long thin piece (a rule's remnant) joins nothing.
3. Glyphs that touch the picture's edge (once thin lines are off: a rule's remnant may tie a
   digit to it) are left out when others do not, and the answer is built around a glyph on the
   lit sheet (see ``find``), or, where no shade tells the sheet, on a sheet that a patterned
   desk's ink encloses (see ``sheet.enclosed``).
4. The number is the row of glyphs around the main one (the most ink, see ``_main``): glyphs
   of a comparable height (the main one's, or the others' where it is far taller), chained
   left and right across gaps of at most about a digit's height, each one's middle within the
   height of the last one taken (a row turned climbs), none long and thin (a rule's remnant).
   A digit broken into fragments each too short for the row (a pencil "1" that skipped) is
   gathered from them. Anything else (a doodle above, a word below) is not part of the answer,
   nor is a line far thinner than the main glyph's strokes (a sheet's edge beside a marker
   digit, read as a "1": see ``thin.is_line_beside``). Where the main glyph stands alone, the
   rows around a few other glyphs with a good share of its ink are found too (``Glyph.row`` 1
   and on): the model reads them all, and the surest reading is the answer (see ``_rivals``).
5. A glyph about as wide as it is tall, or wider, may be two or more digits that touch
   (people write fast; a narrower one, a "1" run into its neighbour, where a cut crosses one
   stroke only; a narrower one standing alone, two digits written close, only where paper
   parts them: see ``cuts``): it gets cut paths, top to bottom, each crossing the least ink in its
   stretch of columns (of the glyph sheared upright by the row's slant: the gap between
   slanted digits slants too) and free to bend around a digit that leans into its neighbour
   (and, in a number, one along a "1" that is the glyph's straight left side: see ``cuts``),
   and the pieces between any two of them that could be one digit (``Glyph.pieces``; the paths
   are ``cuts``'). Which pieces make the glyph is the model's call
   (``mnist_flax.preprocess.choose``): the likeliest row of pieces from the left edge to the
   right one, so a single digit is split only where its pieces read better than it does.
6. A glyph with ink apart from its largest piece inside that piece's loop (a smiley's eyes, a
   plate's frame round its digits) is ``ringed``: no digit looks so, and infer says it is
   likely not one (see ``ringed``).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from mnist_flax.preprocess import cuts, fast, gather, sheet, thin

# Glyphs in a number are at least this fraction of the main glyph's height (a "1" is as tall as
# the others; a dot, a comma or a stray mark is not).
ROW_HEIGHT = 0.6
# ... or this fraction, when upright (at most this fraction as wide as tall) and no thinner
# than a "1" (elongation at most _SHORT_ONE * gather.MAX_ELONGATION): a "1" that lost an end to a
# pencil's skip or a grid line (the generator's: 0.52-0.58 of the row, elongation 6-14; a
# label's letter 0.45; a sheet's edge left as a hairline beside a pencil 2, elongation 36).
# On 3,273 pictures, before the elongation bound: 0.45 +6 -2, 0.5 +5 -1 (the bound: +0 -0).
_SHORT_ONE = 0.5
# ... of the other glyphs' height (median) where the main one is over this many times as tall
# as they are: a line's remnant (a shadow's edge) joined to it ("4442" read 442; on 3,273
# pictures +3 -0; 1.3: +2 -0; always: +3 -1).
_INFLATED = 1.15
# Digits in a number are at most this many (main-glyph) heights apart.
_ROW_GAP = 1.2
# Fragments of a broken digit: at most this many, each within _BAND heights of the next (and
# of the row's band); the generator's pen skips twice per stroke at most, and so do people.
_BAND, _MOST_FRAGMENTS = 0.15, 3
# A row of digits is turned at most this much (the slope, about 15 degrees).
_MAX_TILT = 0.27
# A piece is one digit only up to this many heights wide.
_WIDEST = 1.3
# A glyph on the lit sheet is the answer's (see find) with at least this share of the ink of
# the glyph _main would take from all of them.
_LIT_SHARE = 0.05
# A glyph is digit-sized from this fraction of the picture's long side.
_TALL = 0.04
# A rival row (see _rivals) is headed by a glyph with at least this share of the main one's ink;
# at most MOST_RIVALS of them. One, only where its row had more ink than the main glyph: a
# digit on the sheet beside a bigger blob of the desk's grain or a shadow's band was never read
# ("4" read 7). Three, whatever their ink: on 1,600 pictures +6 -1 (a scribble read surely as a
# 1), held out +3 -0; five the same as three; at 0.15 of the ink, +7 -3.
_RIVAL = 0.3
MOST_RIVALS = 3
# A glyph is ringed (see ringed) with at least this share of its ink inside its largest
# piece's loops. On 1,600 pictures: 35 of 200 non-digits (a smiley's eyes, a scribble's inner
# strokes: 18% of their ink and more), and the answer of 9 of 1,400 pictures of digits, each
# already read wrong (a plate's frame round the digits, a form's box, a grid's cell). A zero
# written with a dot in it (about 7%) and a speck of noise in a loop are less.
_RINGED = 0.1


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
  # 0: the number's row; 1 and on: rival rows, which the model may read better (see _rivals).
  row: int = 0
  # Ink apart from its main stroke inside that stroke's loop (see ringed): no digit is so.
  ringed: bool = False


def _main(groups: list[gather.Group]) -> gather.Group:
  """The glyph the answer is built around: the one with the most ink, but for long thin ones
  (what rules, a sheet's edge or a desk's grain leave behind) while there are others."""
  shaped = [g for g in groups if gather.elongation(g) <= gather.MAX_ELONGATION] or groups
  return max(shaped, key=lambda g: g.area)


def _rivals(groups: list[gather.Group], pool: list[gather.Group], main: gather.Group,
            side: int) -> list[gather.Group]:
  """The glyphs heading other rows for the model to read instead of the main glyph alone (at
  most MOST_RIVALS, the rows with the most ink first; [] where the main glyph has digits beside
  it). A main glyph alone may be a blob of the desk or of a shadow, bigger than any one digit
  of the number written beside it ("1954" read 2), or than the one digit on the sheet: each
  digit-sized glyph in ``pool`` with at least _RIVAL of its ink heads a row, unless it is in
  a row already taken. Ink alone does not tell a digit from a label's letters or a desk's grain
  ("Code 1" read 0000), so the model chooses (see preprocess.choose)."""
  if len(_row(groups, main)) > 1:
    return []
  rows = []
  for g in pool:
    if (g is not main and g.area >= _RIVAL * main.area and g.height >= _TALL * side
        and gather.elongation(g) <= gather.MAX_ELONGATION):
      row = _row(groups, g)
      rows.append((sum(m.area for m in row), g, row))
  rows.sort(key=lambda r: -r[0])
  heads: list[gather.Group] = []
  taken = [main]
  for _, g, row in rows:
    if len(heads) < MOST_RIVALS and not any(m is t for m in row for t in taken):
      heads.append(g)
      taken += row
  return heads


def _row(groups: list[gather.Group], main: gather.Group, tall: int = 0) -> list[gather.Group]:
  """The glyphs in a row with ``main``, left to right: from it outwards, each next one's middle
  within the band of the last one taken (a row photographed turned climbs or falls from digit
  to digit: the first of six printed digits turned 10 degrees sits a digit's height higher than
  the last). A digit is about as tall as ``tall`` (default: ``main``'s height): it sets how
  tall the others are, how far apart and how far up or down."""
  h, t = main.height, tall or main.height
  short_one = _SHORT_ONE * gather.MAX_ELONGATION
  mates = sorted((g for g in groups if g is main or (
      (ROW_HEIGHT * t <= g.height or (_SHORT_ONE * h <= g.height
                                      and g.x1 - g.x0 <= _SHORT_ONE * g.height
                                      and gather.elongation(g) <= short_one))
      and g.height <= t / ROW_HEIGHT and gather.elongation(g) <= gather.MATE_ELONGATION)),
      key=lambda g: g.x0)
  i = mates.index(main)
  sides = []
  for side in (mates[i - 1::-1] if i else [], mates[i + 1:]):
    taken, last = [], main
    for g in side:
      if not last.y0 - 0.25 * t <= (g.y0 + g.y1) / 2 <= last.y1 + 0.25 * t:
        continue  # Above or below the row: a doodle, a word.
      if max(g.x0 - last.x1, last.x0 - g.x1) > _ROW_GAP * t:
        break
      taken.append(g)
      last = g
    sides.append(taken)
  return sides[0][::-1] + [main] + sides[1]


def _rejoined(groups: list[gather.Group], row: list[gather.Group]) -> list[gather.Group]:
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

  def within(g: gather.Group) -> bool:
    shift = tilt * (g.x0 + g.x1) / 2
    return top <= g.y0 - shift and g.y1 - shift <= bottom

  loose = sorted((g for g in groups if g not in row and g.height < ROW_HEIGHT * h
                  and within(g) and left <= g.x0 and g.x1 <= right
                  and all(min(g.x1, r.x1) <= max(g.x0, r.x0) for r in row)),
                 key=lambda g: g.x0)
  gathered: list[list[gather.Group]] = []
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
    whole = gather.Group([label for f in pieces for label in f.labels],
                         min(f.x0 for f in pieces), min(f.y0 for f in pieces),
                         max(f.x1 for f in pieces), max(f.y1 for f in pieces),
                         sum(f.area for f in pieces))
    if len(pieces) > 1 and whole.height >= ROW_HEIGHT * h and whole.x1 - whole.x0 <= _WIDEST * h:
      joined.append(whole)
  return sorted(row + joined, key=lambda g: g.x0)


def _pieces(part: np.ndarray, x: int, y: int, lean: float, alone: bool = False
            ) -> tuple[int, tuple[tuple[int, int, Glyph], ...]]:
  """The cut paths of the glyph whose pixels are ``part`` (corner at x, y) in writing that
  leans by ``lean``, and the pieces between them that could each be one digit (see Glyph)."""
  paths = cuts.paths(part, lean, alone)
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
  """The digits in ``mask`` left to right ([] if none; at most one with ``single``), then those
  of each rival row (``row`` 1 and on; see _rivals).

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
  if (inside & (ch >= _TALL * max(h, w))).any():
    # In a photo, what touches the frame's edge is the desk, the sheet's edge or a shadow; a
    # digit written on the sheet is inside it. (Only a crop has its digit touch the edge.)
    stats = stats.copy()
    stats[~inside, cv2.CC_STAT_AREA] = 0  # Left out of every glyph (see gather.is_speck).
  groups = gather.groups(stats, max(mask.shape))
  if not groups:
    return []
  # The answer is built around a glyph on the lit sheet, if one is digit-sized: what lies off
  # it is likely the desk (though a shadow may hide a digit, which then joins the row). Not
  # around a rule's stub left on a lit strip beside a shadow that holds the number ("32" read
  # from one): a digit has a good share of the ink of the biggest glyph.
  lit_groups = [g for g in groups
                if lit is not None and lit[(g.y0 + g.y1) // 2, (g.x0 + g.x1) // 2]]
  most = _main(groups).area
  on_sheet = any(g.height >= _TALL * max(h, w) and gather.elongation(g) <= gather.MAX_ELONGATION
                 and g.area >= _LIT_SHARE * most for g in lit_groups)
  pool = lit_groups if on_sheet else groups
  main = _main(pool)
  glyphs = _glyphs(groups, main, labels, len(stats), single)
  for k, rival in enumerate([] if single else _rivals(groups, pool, main, max(h, w))):
    glyphs += [dataclasses.replace(g, row=k + 1)
               for g in _glyphs(groups, rival, labels, len(stats), single)]
  return glyphs


def _glyphs(groups: list[gather.Group], main: gather.Group, labels: np.ndarray, count: int,
            single: bool) -> list[Glyph]:
  """The glyphs of the row around ``main`` (just it with ``single``), left to right, cut where
  they may be touching digits; ``labels``: the mask's ``count`` components."""
  row = [main] if single else _row(groups, main)
  tall = int(fast.median(np.array([g.height for g in row if g is not main] or [main.height])))
  if main.height > _INFLATED * tall:  # Its row sets how tall a digit is (see _INFLATED).
    row = _row(groups, main, tall)
  row = row if single else _rejoined(groups, row)
  parts = [(g, _pixels(g, labels, count)) for g in row]
  if len(parts) > 1:
    main_part = parts[row.index(main)][1]
    parts = [(g, part) for g, part in parts
             if g is main or not thin.is_line_beside(part, main_part)]
  # One writer, one slant: the row's, so that a pair of touching digits, whose own moments
  # lean with how they sit side by side, is cut along its neighbours' slant (a glyph alone is
  # cut upright too, see cuts.paths). Wanted only where a glyph may be touching digits.
  alone = len(parts) == 1
  cut = not single and any(cuts.may_touch(part.shape) for _, part in parts)
  lean = fast.median(np.array([cuts.slant(part) for _, part in parts])) if cut else 0.0
  glyphs = []
  for g, part in parts:
    whole = _trimmed(part, g.x0, g.y0)
    if whole is not None:
      paths, pieces = _pieces(part, g.x0, g.y0, lean, alone) if cut else (0, ())
      # One piece of ink (most glyphs) rings nothing: no need to look.
      glyphs.append(dataclasses.replace(whole, cuts=paths, pieces=pieces,
                                        ringed=len(g.labels) > 1 and ringed(whole.mask)))
  return glyphs


def ringed(mask: np.ndarray) -> bool:
  """Whether at least _RINGED of a glyph's ink lies apart from its largest piece, inside a loop
  of it: a face's eyes and mouth in its outline, a scribble's strokes in a ring of it, digits
  inside a plate's frame. A digit's loops (0, 6, 8, 9) hold nothing."""
  count, labels, stats, _ = fast.connected_components(mask, connectivity=8)
  if count < 3:  # One piece (and the paper around it).
    return False
  largest = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
  inside = cuts.holes(largest, least=0.0) & mask
  return int(np.count_nonzero(inside)) >= _RINGED * int(np.count_nonzero(mask))


def _pixels(g: gather.Group, labels: np.ndarray, count: int) -> np.ndarray:
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
