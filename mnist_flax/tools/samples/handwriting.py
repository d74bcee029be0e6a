"""Handwriting on a sheet, in millimetres: pens, and the digits, numbers and shapes they write.

The unit-box strokes of ``strokes`` (digits) and of ``LETTERS`` (non-digits) are placed on
the sheet with the same jitter and slant as the plain drawings, a pen width at every point
(uneven pressure) and, when asked, pen lifts: a digit in separate pieces (``digit(...,
pieces=True)``), a pencil line that skips (``broken``), neighbours that touch (``number(...,
touching=True)``). ``PENS`` says what each ink looks like (width, usual digit height, texture,
pressure). The result is ``marks.Marks``, which ``photo.render`` lays on a sheet.

    import numpy as np
    from mnist_flax.tools.samples import handwriting
    rng = np.random.default_rng(0)
    marks = handwriting.digit(5, rng, centre=(0, 0), height=30, pen=0.8, pieces=True)
    both, digits = handwriting.number("42", rng, centre=(0, 0), height=30, pen=0.8, spacing=0.2)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mnist_flax.tools.samples.marks import Box, Marks, Stroke, circle
from mnist_flax.tools.samples.strokes import ASPECT, UnitStroke, catmull_rom, skeleton

INKS = ("marker", "pen", "ballpoint", "pencil")


@dataclasses.dataclass(frozen=True)
class Pen:
  """What one kind of pen leaves: its ink, its width and the digit sizes people write with it."""
  colour: tuple[int, int, int]
  width: tuple[float, float]  # mm
  height: tuple[float, float]  # digit height, mm
  texture: str  # one of the textures ``camera`` deposits: marker, solid, ballpoint, pencil
  pressure: float  # how much the width wavers along a stroke


PENS: dict[str, Pen] = {
    "marker": Pen((28, 28, 34), (1.5, 4.5), (25, 90), "marker", 0.05),
    "pen": Pen((30, 30, 42), (0.4, 1.0), (8, 45), "solid", 0.08),
    "ballpoint": Pen((40, 58, 150), (0.3, 0.7), (6, 35), "ballpoint", 0.12),
    "pencil": Pen((225, 225, 228), (0.35, 0.9), (6, 40), "pencil", 0.15),
}


# Letters and marks that are not digits, in a unit box, with their width / height.
_LETTERS: dict[str, tuple[float, list[UnitStroke]]] = {
    "A": (0.8, [[[(0.0, 1.0), (0.5, 0.0)], [(0.5, 0.0), (1.0, 1.0)]],
                [[(0.22, 0.62), (0.78, 0.6)]]]),
    "E": (0.6, [[[(0.95, 0.0), (0.05, 0.02)], [(0.05, 0.02), (0.05, 1.0)],
                 [(0.05, 1.0), (0.95, 0.98)]], [[(0.05, 0.5), (0.7, 0.48)]]]),
    "H": (0.7, [[[(0.05, 0.0), (0.05, 1.0)]], [[(0.95, 0.0), (0.95, 1.0)]],
                [[(0.05, 0.5), (0.95, 0.48)]]]),
    "K": (0.7, [[[(0.05, 0.0), (0.05, 1.0)]],
                [[(0.9, 0.0), (0.08, 0.58)], [(0.08, 0.58), (0.35, 0.45), (0.95, 1.0)]]]),
    "M": (0.9, [[[(0.0, 1.0), (0.06, 0.0)], [(0.06, 0.0), (0.5, 0.7)],
                 [(0.5, 0.7), (0.94, 0.0)], [(0.94, 0.0), (1.0, 1.0)]]]),
    "W": (1.0, [[[(0.0, 0.0), (0.25, 1.0)], [(0.25, 1.0), (0.5, 0.3)],
                 [(0.5, 0.3), (0.75, 1.0)], [(0.75, 1.0), (1.0, 0.0)]]]),
    "X": (0.75, [[[(0.0, 0.0), (1.0, 1.0)]], [[(1.0, 0.0), (0.0, 1.0)]]]),
}
LETTERS = tuple(_LETTERS)
SHAPES = (*LETTERS, "scribble", "smiley")


def pen_colour(ink: str, rng: np.random.Generator,
               faint: bool | None = None) -> tuple[int, int, int]:
  """The colour of ``ink`` in one photo: a pen's varies a little, a pencil is faint or firm."""
  if ink == "pencil":  # graphite, a little cool; grain leaves ~60% of it: ~225 on 245
    faint = rng.random() < 0.7 if faint is None else faint
    r = rng.uniform(0.76, 0.9) if faint else rng.uniform(0.5, 0.76)
    return (int(255 * r), int(255 * r), min(255, int(255 * r * 1.02)))
  c = np.array(PENS[ink].colour) + rng.integers(-8, 9, 3)
  return tuple(int(v) for v in np.clip(c, 0, 255))


def _resample(line: np.ndarray, step: float) -> np.ndarray:
  """Points every ``step`` along the polyline (same shape, even spacing)."""
  seg = np.hypot(*np.diff(line, axis=0).T)
  s = np.concatenate([[0.0], np.cumsum(seg)])
  n = max(2, int(np.ceil(s[-1] / step)) + 1)
  t = np.linspace(0.0, s[-1], n)
  return np.column_stack([np.interp(t, s, line[:, 0]), np.interp(t, s, line[:, 1])])


def _cut(n: int, gaps: list[tuple[float, float]]) -> list[slice]:
  """The runs of an evenly spaced n-point polyline left outside the (start, end) fractions."""
  t = np.linspace(0.0, 1.0, n)
  keep = np.ones(n, bool)
  for a, b in gaps:
    keep &= ~((t >= a) & (t <= b))
  runs, start = [], None
  for i, k in enumerate([*keep, False]):
    if k and start is None:
      start = i
    elif not k and start is not None:
      if i - start >= 2:
        runs.append(slice(start, i))
      start = None
  return runs


def _detached(digit: int, strokes: list[UnitStroke], gx: float, gy: float) -> tuple[
    list[UnitStroke], bool]:
  """Rewrites a digit's strokes so that it has separate pieces, as people often write it.

  ``gx``, ``gy``: the gap between pieces in unit widths and heights (a pen width included).
  Returns the strokes and whether a generic pen lift (a gap cut later) is still wanted.
  """
  if digit == 5:  # The flag drawn on its own, right of and above the downstroke's top.
    flag = [[(0.2 + gx, 0.02 - gy / 2), (0.55 + gx / 2, -gy / 2), (0.95, -gy / 2)]]
    return [strokes[0], flag], False
  if digit == 7:  # The bar, then the stem starting below its end (a crossbar stays).
    return [[[(0.04, 0.04), (0.5, 0.02), (0.96 - gx, 0.0)]],
            [[(0.98, gy * 1.5), (0.66, 0.45), (0.42, 1.0)]], *strokes[1:]], False
  if digit == 1 and len(strokes[0]) == 2:  # The flag lifted off the stem.
    return [[[(0.1, 0.22 + gy), (0.55 - gx, 0.02 + gy)]],
            [[(0.55, 0.0), (0.5, 0.5), (0.45, 1.0)]]], False
  if digit == 9:  # Loop first, then the tail, starting a little away from it.
    return [strokes[0], [[(0.86 + gx, 0.2 + gy), (0.8, 0.6), (0.7, 1.0)]]], False
  if digit == 4:  # The upright starts below the diagonal's reach.
    return [strokes[0], [[(0.74, 0.1 + gy), (0.71, 0.55), (0.68, 1.0)]]], False
  return strokes, digit != 1  # elsewhere a gap where the pen lifted (a plain 1 has none)


def unit_strokes_to_mm(unit: list[UnitStroke], rng: np.random.Generator, *,
                       centre: tuple[float, float], height: float, width: float,
                       pen: float, slant: float = 0.0, angle: float = 0.0,
                       jitter: float = 0.025, pressure: float = 0.1,
                       gaps: int = 0, gap_size: float = 0.06) -> list[Stroke]:
  """Places unit-box strokes on the sheet: jitter, slant, rotation, pen width, pen lifts.

  ``gaps`` pen lifts per stroke (each ``gap_size`` of the height long) break the line, as a
  pencil that skips or a fast hand leaves it.
  """
  rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
  out, placed = [], {}
  for stroke in unit:
    polyline, previous_end = [], None
    for piece in stroke:
      points = np.array(piece, np.float64) + rng.normal(0, jitter, (len(piece), 2))
      start = tuple(piece[0])
      if previous_end is not None:
        points[0] = previous_end
      elif start in placed:  # a stroke starting where another did (a 5's flag) stays joined
        points[0] = placed[start]
      placed.setdefault(start, points[0])
      previous_end = points[-1]
      polyline.append(catmull_rom(points))
    line = (np.vstack(polyline) - 0.5) * [width, height]
    line[:, 0] -= slant * line[:, 1]
    line = line @ rotation.T + centre
    line = _resample(line, height / 80)
    runs = [line]
    if gaps and len(line) > 12:
      cuts = []
      for _ in range(gaps):
        a = rng.uniform(0.1, 0.9)
        half = (gap_size * height + pen) / max(1e-6, _length(line)) / 2
        cuts.append((a - half, a + half))
      runs = [line[r] for r in _cut(len(line), cuts)]
    for run in runs:
      t = np.linspace(0.0, 1.0, len(run))
      wobble = 1 + pressure * np.sin(2 * np.pi * (t * rng.uniform(0.5, 2) + rng.random()))
      out.append(Stroke(run, pen * wobble))
  return out


def _length(line: np.ndarray) -> float:
  return float(np.hypot(*np.diff(line, axis=0).T).sum())


def digit(d: int, rng: np.random.Generator, *, centre: tuple[float, float], height: float,
          pen: float, slant: float | None = None, pieces: bool = False, broken: bool = False,
          pressure: float = 0.1, jitter: float = 0.025) -> Marks:
  """A handwritten digit ``height`` mm tall centred on ``centre`` (mm), pen ``pen`` mm wide.

  ``pieces``: written with a pen lift (a 5's flag on its own, a 7's separate bar, a 9's tail
  apart from the loop, a gap elsewhere); ``broken``: a pencil line that skips in places.
  """
  crossbar = d == 7 and rng.random() < 0.25
  unit = [[list(p) for p in s] for s in skeleton(d, rng, crossbar, None, None)]
  lift = False
  width = height * ASPECT[d] * rng.uniform(0.85, 1.15)
  if pieces:  # gaps of a pen width (round ends) plus 3-8%, and room for the jitter
    unit, lift = _detached(d, unit, pen / width + rng.uniform(0.03, 0.08) + 0.04,
                           pen / height + rng.uniform(0.03, 0.08) + 0.03)
  slant = rng.normal(0.12, 0.1) if slant is None else slant
  strokes = unit_strokes_to_mm(unit, rng, centre=centre, height=height, width=width, pen=pen,
                               slant=slant, angle=rng.normal(0, 0.05), jitter=jitter,
                               pressure=pressure, gaps=int(lift))
  if broken:
    strokes = [s for st in strokes for s in _break(st, rng, height)]
  return Marks(strokes)


def _break(stroke: Stroke, rng: np.random.Generator, height: float) -> list[Stroke]:
  """A pencil line that skips: 1-2 gaps in a long stroke (short ones stay whole)."""
  length = _length(stroke.points)
  n = int(rng.integers(1, 3))
  gap = rng.uniform(0.03, 0.07, n) * height + stroke.width.mean()  # caps eat a pen width
  if length < 0.4 * height:
    return [stroke]
  centres = rng.uniform(0.15, 0.85, n)
  runs = _cut(len(stroke.points), list(zip(centres - gap / 2 / length,
                                           centres + gap / 2 / length)))
  return [Stroke(stroke.points[r], stroke.width[r]) for r in runs]


def number(text: str, rng: np.random.Generator, *, centre: tuple[float, float],
           height: float, pen: float, spacing: float, touching: bool = False,
           pieces: bool = False, broken: bool = False, pressure: float = 0.1,
           slots: list[Box] | None = None) -> tuple[Marks, list[Marks]]:
  """Handwritten digits side by side, left to right; returns the marks and each digit's.

  ``spacing`` is the gap between neighbours as a fraction of the height; ``touching`` makes
  most gaps slightly negative so neighbours run into each other. ``slots`` (the boxes of a
  form) puts one digit in each box instead.
  """
  slant = rng.normal(0.12, 0.08)  # One writer, one slant.
  parts, cursor = [], 0.0
  for i, ch in enumerate(text):
    h = height * rng.uniform(0.9, 1.08)
    if slots is not None:
      x0, y0, x1, y1 = slots[i]
      c = ((x0 + x1) / 2 + rng.normal(0, 0.03 * h), (y0 + y1) / 2 + rng.normal(0, 0.03 * h))
    else:
      c = (0.0, rng.normal(0, 0.03 * height))
    m = digit(int(ch), rng, centre=c, height=h, pen=pen, slant=slant + rng.normal(0, 0.03),
              pieces=pieces and rng.random() < 0.6, broken=broken, pressure=pressure)
    if slots is None:
      x0, _, x1, _ = m.box()
      if i:
        gap = (rng.uniform(-0.07, -0.01) - 0.5 * pen / height if touching and rng.random() < 0.7
               else max(0.03, spacing + rng.normal(0, 0.04)))
        cursor += gap * height
      m.shift(cursor - x0, 0.0)
      cursor += x1 - x0
    parts.append(m)
  if slots is None:
    boxes = np.array([m.box() for m in parts])
    x0, y0 = boxes[:, :2].min(axis=0)
    x1, y1 = boxes[:, 2:].max(axis=0)
    for m in parts:
      m.shift(centre[0] - (x0 + x1) / 2, centre[1] - (y0 + y1) / 2)
  marks = Marks()
  for m in parts:
    marks.extend(m)
  return marks, parts


def shape(kind: str, rng: np.random.Generator, *, centre: tuple[float, float], height: float,
          pen: float, pressure: float = 0.1) -> Marks:
  """A non-digit: a letter from ``LETTERS``, ``"scribble"`` or ``"smiley"``."""
  if kind in _LETTERS:
    aspect, unit = _LETTERS[kind]
    jitter = 0.02
  elif kind == "smiley":
    aspect, jitter = 1.0, 0.012
    unit = [[circle(0.5, 0.5, 0.5, 0.5, 16, rng.uniform(0, 6))],
            [[(0.33, 0.3), (0.34, 0.4)]], [[(0.66, 0.3), (0.67, 0.4)]],
            [[(0.22, 0.6), (0.5, 0.8), (0.78, 0.58)]]]
  elif kind == "scribble":  # a tangle of loops, as a pen doodles or crosses something out
    aspect, jitter = rng.uniform(0.9, 1.8), 0.0
    t = np.linspace(0, 2 * np.pi * rng.uniform(2, 4), int(rng.integers(30, 60)))
    walk = np.zeros((len(t), 2))
    for k in range(1, 4):
      walk += rng.uniform(0.2, 1.0, 2) / k * np.column_stack(
          [np.sin(k * t * rng.uniform(0.7, 1.3) + rng.uniform(0, 6)),
           np.cos(k * t * rng.uniform(0.7, 1.3) + rng.uniform(0, 6))])
    walk += np.cumsum(rng.normal(0, 0.08, walk.shape), axis=0)  # the hand drifts
    walk = (walk - walk.min(0)) / np.maximum(np.ptp(walk, 0), 1e-6)
    unit = [[[tuple(p) for p in walk]]]
  else:
    raise ValueError(f"unknown shape {kind!r}")
  return Marks(unit_strokes_to_mm(unit, rng, centre=centre, height=height,
                                  width=height * aspect, pen=pen, slant=rng.normal(0.08, 0.08),
                                  angle=rng.normal(0, 0.05), jitter=jitter, pressure=pressure))

