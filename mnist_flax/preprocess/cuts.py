"""Where a glyph may be touching digits cut apart: paths from its top row to its bottom one.

    from mnist_flax.preprocess import cuts
    lean = cuts.slant(mask)                 # columns per row the writing leans (0 upright)
    for path in cuts.paths(mask, lean):     # left to right; [] for a glyph that is one digit
      left = np.arange(mask.shape[1]) < path[:, None]   # the ink left of the cut, row by row

A path is the first column right of the cut on every row. Paths are the cheapest ways through
the glyph's ink (and, in a number or a glyph wide enough for two digits, its holes) within
stretches of its columns (a seam: one column sideways per row at most), looked for on the glyph
sheared upright by the writing's slant, so they bend around a digit that leans into its
neighbour; a path that only shaves a rim, runs through a loop, or (in a narrow glyph) crosses
more than one stroke is no cut between digits. In a number, a glyph whose left side is a
straight stroke with more ink beyond it (a "1" run into the next digit, or through its loop,
where no seam parts them) is also cut along that stroke's inner edge. ``digits`` turns the
paths into the pieces the model reads.
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_flax.preprocess import fast

# From this many heights wide, a glyph may be touching digits: two narrow 8s that touch are
# ~0.8 heights wide. From _NARROW_TOUCHING, a "1" run into a 9 (~0.5-0.65), but so are a bold
# printed 6 and 9, whose halves read as a 1 and a 3: only a cut crossing one stroke parts those
# (one across a 6's or a 0's loop crosses two; ink less than _ONE_TOUCH heights apart is one).
TOUCHING_ASPECT, _NARROW_TOUCHING, _ONE_TOUCH = 0.75, 0.5, 0.05
# A glyph standing alone (not in a number of two or more) narrower than TOUCHING_ASPECT is
# cut only where, sheared upright, some column crosses none of its ink with at least
# _ALONE_SHARE of the ink and ink on at least _ALONE_TALL of the rows on either side: two
# digits written close, gathered as one glyph ("11" read 4). A "1" beside an 8, the inkiest
# digit (about four heights of stroke to its one), holds a fifth of "18"; two digits are each
# about as tall as the glyph. A path is kept only with that share on either side too. Not
# where the two touch: two strokes joined by a bar at the top or bottom are a Pi, an h, a U,
# a "[ ]" or an open 0 as often as a "17", "61" or "11" (on a red team's 3,442 pictures such
# cuts read 24 U-shaped 0s and open 4s as 11 and 61, and 16 letters surely as numbers; cuts
# only where paper parts them: no digit read otherwise, 7 non-digits surely read 11, each two
# upright strokes, "||", "ll", "[ ]").
# On 3,273 pictures +2 -0, held out and fresh seeds +6 -0, non-digits said unsure unchanged;
# the benchmark's 1,000 drawings get no cut, and the model as many readings as before.
_ALONE_SHARE, _ALONE_TALL = 0.15, 0.6
# Below this many heights wide, a cut runs through no hole at least _HOLE of the glyph's box:
# it would cut a loop open (a bold 0 read as "11", an 8 as "125"), not part touching digits.
_LOOP_CUT, _HOLE = 1.0, 0.02
# A path pays this much per pixel of hole it crosses (as for ink): where two digits share a
# stroke ("00", "08", "19" written fast), the cheapest path would cross a loop's middle (its
# top and bottom strokes only), not run down the shared stroke. Not in a glyph alone from
# TOUCHING_ASPECT to _LOOP_CUT wide: a path there that goes around a loop instead of through
# it (and is dropped) runs down the side of a bold 0, whose sliver the model reads as a 1.
# (A narrow glyph's path that runs down one of its own strokes shaves a sliver shorter than a
# digit, which preprocess.choose counts as unlikely.)
_HOLE_COST = 1.0
# Cut paths are tried every _CUT_STEP heights across a glyph (none nearer its sides than
# _CUT_MARGIN), each within _CUT_REACH heights either way, on the glyph shrunk to _CUT_ROWS rows
# (a path's bends need no finer grain); a sideways step costs _SIDESTEP of a pixel's ink, so
# paths run straight where ink does not decide. Of the paths crossing less ink than their
# neighbours, at most _CUTS_PER_HEIGHT per height of the glyph's width are kept, the cheapest
# (two per digit's width: the gap on either side of a "1").
_CUT_STEP, _CUT_MARGIN, _CUT_REACH = 0.06, 0.1, 0.12
_CUT_ROWS = 48
_SIDESTEP = 0.05
_CUTS_PER_HEIGHT = 2
# Paths less than this many heights apart (on average over the rows) are the same cut.
_SAME = 0.05
# Writing leans at most this many columns per row (a slant estimate beyond is a shape's, not
# a hand's); a cut leaves at least _LEAST_SIDE of the glyph's ink on either side.
_MAX_SLANT, _LEAST_SIDE = 0.4, 0.03
# A "1" run into the digit after it, in a number ("1963" read 963: seams part the two only
# where the 1 stands clear of the 9's loop): the glyph's left edge straight (within
# _ONE_STRAIGHT heights) over at least _ONE_TALL of its height (a 9's tail reaches lower),
# leaning at most _ONE_SLOPE columns per row, a stroke at most _ONE_THIN heights wide and, as
# pens go, at least _ONE_AS_THICK as thick as the other strokes (a form box's side beside a
# digit measured 0.2-0.5, 1s 0.86-1.46), with the other digit's ink beyond it on _ONE_BESIDE of
# its rows; seams less than _ONE_NEAR heights right of its edge cut the 1. A glyph alone is
# not looked at (letters A, K, M were read as 14 and 15), nor a glyph's right side (a 9's or
# a 7's stem: "09" read 01). On 3,273 pictures +10 -1; held out (800 numbers, 300
# non-digits) +6 -1, non-digits said unsure unchanged.
_ONE_STRAIGHT, _ONE_TALL, _ONE_SLOPE, _ONE_THIN, _ONE_AS_THICK, _ONE_BESIDE, _ONE_NEAR = (
    0.03, 0.6, 0.6, 0.15, 0.7, 0.7, 0.05)


def _seams(ink: np.ndarray, bands: list[tuple[int, int]]) -> list[np.ndarray]:
  """For each band (lo, hi), the path from the top row to the bottom one, a column per row,
  moving at most one column from a row to the next and staying in columns lo <= x < hi, that
  crosses the least ``ink`` (in [0, 1]) plus _SIDESTEP per step sideways; of equal ways, the
  leftmost step. All bands in one pass over the rows: the rows are a Python loop, the bands
  ride along in NumPy."""
  h, w = ink.shape
  if not bands:
    return []
  cols = np.arange(w)
  limits = np.array(bands)
  outside = (cols < limits[:, :1]) | (cols >= limits[:, 1:])  # (bands, w)
  own = np.where(outside[None], np.inf, ink[:, None, :])  # (h, bands, w), float32
  # acc[y]: the least cost of a path down to each column of row y; a column of inf either side.
  acc = np.empty((h, len(bands), w + 2))
  acc[:, :, 0] = acc[:, :, -1] = np.inf
  acc[0, :, 1:-1] = own[0]
  # Rounding keeps order: min(a + s, b + s) is min(a, b) + s, bit for bit.
  for y in range(1, h):
    above = acc[y - 1]
    way = np.minimum(above[:, :-2], above[:, 2:])
    way += _SIDESTEP
    np.minimum(way, above[:, 1:-1], out=way)
    np.add(own[y], way, out=acc[y, :, 1:-1])
  # Back up from each band's cheapest end, each step the first of the cheapest ways in.
  paths = np.empty((len(bands), h), np.int64)
  paths[:, -1] = np.argmin(acc[-1, :, 1:-1], axis=1)
  band = np.arange(len(bands))[:, None]
  ways = np.arange(3)
  sidestep = np.array([_SIDESTEP, 0.0, _SIDESTEP])
  for y in range(h - 1, 0, -1):
    came = acc[y - 1][band, paths[:, y, None] + ways] + sidestep
    paths[:, y - 1] = paths[:, y] + np.argmin(came, axis=1) - 1
  return list(paths)


def slant(mask: np.ndarray) -> float:
  """How far the ink leans right per row down the page (0 upright; a "/" leans right): the
  regression of its columns on its rows, as MNIST's deskewing takes it."""
  m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
  return float(np.clip(-m["mu11"] / m["mu02"], -_MAX_SLANT, _MAX_SLANT)) if m["mu02"] > 0 else 0.0


def may_touch(shape: tuple[int, ...]) -> bool:
  """Whether a glyph of ``shape`` (height, width) is wide enough to be touching digits, those
  that ``paths`` looks for cuts in (see _NARROW_TOUCHING)."""
  h, w = shape
  return w >= _NARROW_TOUCHING * h


def paths(mask: np.ndarray, lean: float = 0.0, alone: bool = False) -> list[np.ndarray]:
  """Where a glyph may be cut into touching digits: paths top to bottom, left to right, each
  as the first column right of the cut on every row of ``mask``; [] for a glyph too narrow to
  be more than one digit (than a "1" run into another: _NARROW_TOUCHING). A glyph ``alone``
  (not in a number of two glyphs or more) and narrower than TOUCHING_ASPECT is cut only where
  paper parts two digits' shares of its ink (see _ALONE_SHARE), and never along a "1" (see
  _with_one).
  Paths bend, so digits that lean into each other (a "1" under a 9's loop, a 2's foot under
  the next digit) come apart where they touch, not through one of them; they are looked for on
  the glyph sheared upright by the writing's ``lean`` (see slant), as the gap between slanted
  digits slants with them."""
  h, w = mask.shape
  found = _paths(mask, lean, alone)
  if alone and lean and w < TOUCHING_ASPECT * h:
    # Alone, a glyph has no neighbours to tell the writer's slant, and its own moments lean
    # with how two digits sit in it (a 7's diagonal beside an upright 1): upright paths too.
    found += [p for p in _paths(mask, 0.0, alone)
              if all(np.abs(p - q).mean() >= _SAME * h for q in found)]
    found.sort(key=lambda p: float(p.mean()))
  return found


def _paths(mask: np.ndarray, lean: float, alone: bool) -> list[np.ndarray]:
  """paths, sheared upright by ``lean`` only."""
  h, w = mask.shape
  if not may_touch(mask.shape):
    return []
  scale = min(1.0, _CUT_ROWS / h)
  small = cv2.resize(mask.astype(np.float32), (max(1, round(w * scale)), max(1, round(h * scale))),
                     interpolation=cv2.INTER_AREA)
  sh, sw = small.shape
  # Upright: column x of row y moves to x + lean * (y - middle) + pad.
  pad = int(np.ceil(abs(lean) * sh / 2)) + 1
  middle = (sh - 1) / 2
  shift = lean * (np.arange(sh) - middle) + pad
  shear = np.float32([[1, lean, pad - lean * middle], [0, 1, 0]])
  upright = cv2.warpAffine(small, shear, (sw + 2 * pad, sh), flags=cv2.INTER_LINEAR)
  if alone and w < TOUCHING_ASPECT * h and not _parts_in_two(upright):
    return []
  hole = holes(mask)
  cost = upright
  if not alone or w < TOUCHING_ASPECT * h or w >= _LOOP_CUT * h:
    hole_small = cv2.resize(hole.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA)
    cost = upright + _HOLE_COST * cv2.warpAffine(hole_small, shear, (sw + 2 * pad, sh),
                                                 flags=cv2.INTER_LINEAR)
  inked = np.flatnonzero(upright.any(axis=0))
  if inked.size == 0:
    return []
  margin, reach = max(1, round(_CUT_MARGIN * sh)), max(1, round(_CUT_REACH * sh))
  lo, hi = int(inked[0]), int(inked[-1]) + 1
  bands = [(max(lo + 1, c - reach), min(hi - 1, c + reach + 1))
           for c in range(lo + margin, hi - margin, max(1, round(_CUT_STEP * sh)))]
  total = float(upright.sum())
  columns = np.arange(upright.shape[1])[None, :]
  # (mean column, ink and holes crossed, path)
  tried = []
  for path in _seams(cost, bands):
    left = float(upright[columns < path[:, None]].sum())
    if min(left, total - left) >= _LEAST_SIDE * total:  # Ink on both sides: a cut, not a rim.
      tried.append((float(path.mean()), float(cost[np.arange(sh), path].sum()), path))
  kept: list[tuple[float, float, np.ndarray]] = []
  for i, (mean, ink, path) in enumerate(tried):
    # Neighbouring stretches often find the same path through the same gap.
    same = any(np.abs(path - k[2]).mean() < _SAME * sh for k in kept)
    if not same and all(ink <= t[1] for t in tried[max(0, i - 1):i + 2]):
      kept.append((mean, ink, path))
  kept = sorted(kept, key=lambda k: k[1])[:max(1, round(_CUTS_PER_HEIGHT * w / h))]
  rows = np.minimum(np.arange(h) * sh // h, sh - 1)
  paths = [np.clip(np.round((path - shift)[rows] * w / sw), 0, w).astype(np.int64)
           for _, _, path in sorted(kept, key=lambda k: k[0])]
  if w < _LOOP_CUT * h:
    paths = [p for p in paths if not hole[np.arange(h), np.minimum(p, w - 1)].any()]
  if w < TOUCHING_ASPECT * h:
    paths = [p for p in paths if _strokes_crossed(mask, p) <= 1]
    if alone:
      paths = [p for p in paths if _smaller_share(mask, p) >= _ALONE_SHARE]
  return paths if alone else _with_one(mask, paths)


def _parts_in_two(upright: np.ndarray) -> bool:
  """Whether a narrow glyph (sheared upright, shrunk) may be two digits, before any path is
  looked for: some column crosses no stroke, with at least _ALONE_SHARE of the ink and ink on
  _ALONE_TALL of the rows on either side."""
  ink = upright >= 0.5
  rows = len(ink)
  share = np.cumsum(upright.sum(axis=0)) / max(float(upright.sum()), 1e-6)
  left = np.maximum.accumulate(ink, axis=1).sum(axis=0)
  right = np.maximum.accumulate(ink[:, ::-1], axis=1).sum(axis=0)[::-1]
  return bool((~ink.any(axis=0) & (share >= _ALONE_SHARE) & (share <= 1 - _ALONE_SHARE)
               & (left >= _ALONE_TALL * rows) & (right >= _ALONE_TALL * rows)).any())


def _smaller_share(mask: np.ndarray, path: np.ndarray) -> float:
  """The share of the glyph's ink on the side of ``path`` that holds less of it."""
  left = int((mask & (np.arange(mask.shape[1])[None, :] < path[:, None])).sum())
  total = max(int(mask.sum()), 1)
  return min(left, total - left) / total


def _with_one(mask: np.ndarray, paths: list[np.ndarray]) -> list[np.ndarray]:
  """``paths`` and, where the glyph's left side is a "1" run into the digit beside it (see
  _one_edge), the path along the 1's inner edge, in place of the seams that would cut the 1."""
  found = _one_edge(mask)
  if found is None:
    return paths
  one, stroke = found
  h, w = mask.shape
  rest = mask & (np.arange(w)[None, :] >= one[:, None])
  depth = cv2.distanceTransform(np.pad(rest, 1).view(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
  # Twice the depth's 90th percentile: about a stroke's width (0.9 of it), as the 1's own.
  if not rest.any() or stroke < _ONE_AS_THICK * 2 * fast.percentile(depth[rest], 90):
    return paths  # A form box's side, thinner than the pen's strokes.
  beyond = float(one.mean()) + _ONE_NEAR * h
  return [one] + [p for p in paths if float(p.mean()) > beyond]


def _one_edge(mask: np.ndarray) -> tuple[np.ndarray, float] | None:
  """The path (see paths) along the inner edge of a "1" that is the glyph's left side, and the
  1's width (across the rows), if it is one: the glyph's leftmost ink lies on a straight line,
  nearly upright, over most of its height, a thin stroke wide, with paper and then more ink
  (the other digit) beyond it on most of those rows."""
  h, w = mask.shape
  rows = np.flatnonzero(mask.any(axis=1))
  if rows.size < _ONE_TALL * h:
    return None
  edge = mask[rows].argmax(axis=1)
  # Of the lines through two of 16 rows spread over the glyph (at least 0.3 heights apart), the
  # one that most of the edge lies on (the other digit's ink and a 1's flag stray from it),
  # fitted again to the rows near it.
  near = max(2.0, _ONE_STRAIGHT * h)
  picks = np.unique(np.linspace(0, rows.size - 1, 16).astype(int))
  i, j = (picks[k] for k in np.triu_indices(picks.size, 1))
  apart = rows[j] - rows[i] >= 0.3 * h
  if not apart.any():
    return None
  i, j = i[apart], j[apart]
  slope = (edge[j] - edge[i]) / (rows[j] - rows[i])
  off = np.abs(edge[None, :] - edge[i, None] - slope[:, None] * (rows[None, :] - rows[i, None]))
  keep = off[int(np.argmax((off <= near).sum(axis=1)))] <= near
  if keep.sum() < _ONE_TALL * h:
    return None
  a, b = np.polyfit(rows[keep], edge[keep], 1)
  keep = np.abs(edge - (a * rows + b)) <= near
  if keep.sum() < _ONE_TALL * h or abs(a) > _ONE_SLOPE:
    return None
  start = edge[keep]
  ink = np.pad(mask[rows[keep]], ((0, 0), (0, 1)))  # A column of paper after the last.
  columns = np.arange(w + 1)[None, :]
  end = np.argmax(~ink & (columns >= start[:, None]), axis=1)  # Where each row's stroke ends.
  stroke = float(np.median(end - start))
  if stroke > _ONE_THIN * h or (ink & (columns > end[:, None])).any(axis=1).mean() < _ONE_BESIDE:
    return None
  return np.clip(np.rint(a * np.arange(h) + b + stroke + 1), 1, w - 1).astype(np.int64), stroke


def holes(mask: np.ndarray, least: float = _HOLE) -> np.ndarray:
  """A glyph's holes, at least ``least`` of its box each: paper its ink encloses."""
  _, labels, stats, _ = fast.connected_components(np.pad(~mask, 1, constant_values=True),
                                                  connectivity=4)
  hole = stats[:, cv2.CC_STAT_AREA] >= least * mask.size
  hole[[0, labels[0, 0]]] = False  # The ink, and the paper around the glyph.
  return hole[labels[1:-1, 1:-1]]


def _strokes_crossed(mask: np.ndarray, path: np.ndarray) -> int:
  """How many strokes of ``mask`` cut ``path`` crosses: its stretches of rows parting ink from
  ink, those less than _ONE_TOUCH heights apart counted as one (a pixel's jitter)."""
  rows, w = np.arange(len(mask)), mask.shape[1]
  inked = np.flatnonzero(mask[rows, np.maximum(path - 1, 0)] & mask[rows, np.minimum(path, w - 1)])
  return int(inked.size > 0) + int((np.diff(inked) > max(1.0, _ONE_TOUCH * len(mask))).sum())
