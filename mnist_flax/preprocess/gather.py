"""Pieces of ink (connected components) gathered into glyphs, for digits.find.

    from mnist_flax.preprocess import gather
    groups = gather.groups(stats, side)   # stats: OpenCV's component stats (row 0: background)
    groups[0].labels, groups[0].height    # the components of one glyph, its box's height
    gather.elongation(groups[0])          # long side squared over area: rules' remnants are long
    gather.is_speck(area, long_side, side)

A piece joins the nearest glyph it overlaps in x (a 5's flag, a 7's bar, a broken pencil
stroke), or one it nearly touches when the two together are no wider than a digit; the biggest
pieces are placed first, and a piece that joins one glyph and all but touches another above or
below it ties the two (a 3 cut in three by grid lines, a 2 whose base broke off). A long thin
piece (what a rule or a sheet's edge leaves) neither joins a glyph nor takes pieces: the digits
beside it are not part of it.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

# Long side squared over area: a thin-pen "1" is ~20, a leftover rule or grain 50 and more.
MAX_ELONGATION = 35.0
# A glyph beside the main one, or a piece of a glyph, may be thinner (a pencil "1" is up to
# ~36) but not a rule's remnant, a margin or a sheet's edge (70-100 and more).
MATE_ELONGATION = 2 * MAX_ELONGATION
# A digit is at most this many heights wide (the widest handwritten 0s and 4s are ~1; a
# form's line or a stroke's tail left on one adds a little).
WIDEST_DIGIT = 1.2
# A piece ties two glyphs into one (see _tied) only this close to both, in sizes (long sides)
# of the smaller: a 2's base, flat, broken off its stroke (read 7) is as near for its width as
# a piece of a 3 cut by a grid line is for its height (over heights: on 3,273 pictures +3 -1,
# held out +4 -0).
_TIED = 0.12
# ... and makes a glyph at most this many times as tall as the taller: a digit cut in three by
# grid lines is 1.5 times its two lower pieces, two digits one above the other twice either.
_TIED_TALL = 1.75
# A piece above or below a glyph joins it across at most half the glyph's height, and at most
# this many of the piece's own long sides (halved): a flag or a bar a grid line cut off lies
# close to its digit for its size; a mark of the desk or a shadow's edge, or a digit above a
# desk's grain that swallowed a whole number, does not. A piece at least half as tall as the
# glyph, _STACK_REACH_TALL. On 3,273 pictures +7 -1, held out +10 -1 (one piece, both 1.0:
# +8 -2, a grid-cut 2 lost its top; both 2.0: +5 -1).
_STACK_REACH, _STACK_REACH_TALL = 2.0, 1.0


@dataclasses.dataclass
class Group:
  """A glyph in the making: its components' labels, its box (ends exclusive) and its ink."""

  labels: list[int]
  x0: int
  y0: int
  x1: int
  y1: int
  area: int
  line: bool = False  # A rule's or an edge's remnant: it joins nothing, nothing joins it.

  def add(self, other: Group) -> None:
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


def groups(stats: np.ndarray, side: int) -> list[Group]:
  """Pieces (component stats, background row 0 included) gathered into glyphs: each piece,
  biggest first, joins the nearest glyph it may (see _joins), and ties to it the glyphs above
  or below that glyph which it all but touches too (see _tied): a 3 cut in three by a grid
  line, its top and bottom placed before the middle that joins them."""
  order = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA], kind="stable")
  groups: list[Group] = []
  for label in order:
    x, y, w, h, area = (int(v) for v in stats[label])
    if is_speck(area, max(w, h), side):
      continue
    piece = Group([int(label)], x, y, x + w, y + h, area,
                  elongation_of(max(w, h), area) > MATE_ELONGATION)
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


def _tied(glyph: Group, other: Group, distance: float) -> bool:
  """Whether the piece just joined to ``glyph``, ``distance`` from ``other``, ties the two into
  one: it all but touches ``other``, which lies above or below ``glyph`` (not beside it, as a
  number's next digit does), and the two together are no wider than a digit, nor as tall as
  two (two lines of writing, a flag between them, stay apart)."""
  overlap = min(glyph.x1, other.x1) - max(glyph.x0, other.x0)
  height = max(glyph.y1, other.y1) - min(glyph.y0, other.y0)
  return (distance <= _TIED * min(_size(glyph), _size(other))
          and overlap >= 0.5 * min(glyph.x1 - glyph.x0, other.x1 - other.x0)
          and max(glyph.x1, other.x1) - min(glyph.x0, other.x0) <= WIDEST_DIGIT * height
          and height <= _TIED_TALL * max(glyph.height, other.height))


def _size(g: Group) -> int:
  """A glyph's long side."""
  return max(g.height, g.x1 - g.x0)


def _joins(piece: Group, g: Group) -> float | None:
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
  # whole number), and near it for its size (see _STACK_REACH).
  sides = _STACK_REACH if h < 0.5 * g.height else _STACK_REACH_TALL
  stacked = (overlap >= 0.5 * w and w <= 1.5 * (g.x1 - g.x0)
             and gap_y <= 0.5 * min(g.height, sides * max(w, h)))
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


def elongation(g: Group) -> float:
  """Long side squared over area (see MAX_ELONGATION)."""
  return elongation_of(max(g.height, g.x1 - g.x0), g.area)


def elongation_of(long_side: int, area: int) -> float:
  return long_side * long_side / max(area, 1)
