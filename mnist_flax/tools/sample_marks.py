"""What is written or printed on a page, in millimetres, and its ink coverage on a raster.

The photo renderer (``mnist_flax.tools.sample_photos``) places these marks on a sheet and
photographs it. A mark is made of

- strokes: pen movements, a polyline in sheet millimetres (x right, y down) with a pen
  width at every point; handwritten digits come from the skeletons in ``samples.py``
  (never from MNIST), with the same jitter and slant, and numbers, letters, scribbles,
  smileys, form boxes and plate frames are strokes too;
- polygons: filled shapes (the printed "1" with a flag and a base, screw heads);
- glyphs: printed text in Pillow's own font (``ImageFont.load_default``, Aileron), so no
  system font is needed.

``rasterize`` turns marks into anti-aliased ink coverage (uint8, 255 = full ink) on a raster
aligned with the sheet, which the photo renderer then warps into the camera's view.
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mnist_flax.tools import samples

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclasses.dataclass
class Stroke:
  points: np.ndarray  # (n, 2) millimetres on the sheet
  width: np.ndarray  # (n,) pen width in millimetres


@dataclasses.dataclass
class Glyph:
  """Printed text whose digits are ``height`` mm tall, centred on ``centre``."""
  text: str
  centre: tuple[float, float]
  height: float
  bold: float = 0.0  # extra outline, as a fraction of the height

  def char_boxes(self) -> list[Box]:
    """Each character's ink box in mm, as ``rasterize`` prints it."""
    font, size = _font(_REF), _REF
    mm = self.height / (_digit_height_ratio() * size)  # mm per font pixel
    whole = font.getbbox(self.text, anchor="ls")
    ox = self.centre[0] - (whole[0] + whole[2]) / 2 * mm
    oy = self.centre[1] - (whole[1] + whole[3]) / 2 * mm
    pad = self.bold * self.height
    boxes = []
    for i, ch in enumerate(self.text):
      at = font.getlength(self.text[:i])
      b = font.getbbox(ch, anchor="ls")
      boxes.append((ox + (at + b[0]) * mm - pad, oy + b[1] * mm - pad,
                    ox + (at + b[2]) * mm + pad, oy + b[3] * mm + pad))
    return boxes


@dataclasses.dataclass
class Marks:
  strokes: list[Stroke] = dataclasses.field(default_factory=list)
  polygons: list[np.ndarray] = dataclasses.field(default_factory=list)  # (n, 2) mm each
  glyphs: list[Glyph] = dataclasses.field(default_factory=list)

  def extend(self, other: Marks) -> Marks:
    self.strokes += other.strokes
    self.polygons += other.polygons
    self.glyphs += other.glyphs
    return self

  def shift(self, dx: float, dy: float) -> Marks:
    """Moves every mark by (dx, dy) mm, in place (marks shared with others move too)."""
    for s in self.strokes:
      s.points += (dx, dy)
    for p in self.polygons:
      p += (dx, dy)
    for g in self.glyphs:
      g.centre = (g.centre[0] + dx, g.centre[1] + dy)
    return self

  def points(self) -> np.ndarray:
    """Points on the marks' outer edge (mm): what a tight box in the photo is made from."""
    parts = list(self.polygons)
    for s in self.strokes:
      r = s.width[:, None] / 2
      parts += [s.points + r * (1, 0), s.points - r * (1, 0), s.points + r * (0, 1),
                s.points - r * (0, 1)]
    for g in self.glyphs:
      for x0, y0, x1, y1 in g.char_boxes():
        parts.append(np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]))
    return np.vstack(parts)

  def box(self) -> Box:
    """The marks' extent in mm, pen width included."""
    p = self.points()
    return (float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()),
            float(p[:, 1].max()))


# A stroke in a unit box: pieces (lists of points) that meet at corners.
_Unit = list[list[tuple[float, float]]]

# Letters and marks that are not digits, in a unit box, with their width / height.
_LETTERS: dict[str, tuple[float, list[_Unit]]] = {
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


def _circle(cx: float, cy: float, rx: float, ry: float, n: int = 14,
            start: float = -0.3) -> list[tuple[float, float]]:
  t = start + np.linspace(0, 2 * np.pi, n + 1)
  return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in t] + [
      (cx + rx * np.cos(t[1] + 0.2), cy + ry * np.sin(t[1] + 0.2))]


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


def _detached(digit: int, strokes: list[_Unit], gx: float, gy: float) -> tuple[
    list[_Unit], bool]:
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


def unit_strokes_to_mm(unit: list[_Unit], rng: np.random.Generator, *,
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
      polyline.append(samples._catmull_rom(points))
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
  unit = [[list(p) for p in s] for s in samples._skeleton(d, rng, crossbar, None, None)]
  lift = False
  width = height * samples._ASPECT[d] * rng.uniform(0.85, 1.15)
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
    unit = [[_circle(0.5, 0.5, 0.5, 0.5, 16, rng.uniform(0, 6))],
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


def rectangle(box: Box, pen: float, radius: float = 0.0) -> Stroke:
  """A closed outline (a form's box, a plate's painted frame) as one stroke."""
  x0, y0, x1, y1 = box
  r = min(radius, (x1 - x0) / 2, (y1 - y0) / 2)
  if r <= 0:
    pts = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], np.float64)
  else:
    a = np.linspace(0, np.pi / 2, 8)
    corners = [(x1 - r, y0 + r, -np.pi / 2), (x1 - r, y1 - r, 0.0), (x0 + r, y1 - r, np.pi / 2),
               (x0 + r, y0 + r, np.pi)]
    pts = np.vstack([np.column_stack([cx + r * np.cos(s + a), cy + r * np.sin(s + a)])
                     for cx, cy, s in corners])
    pts = np.vstack([pts, pts[:1]])
  return Stroke(pts, np.full(len(pts), pen))


def rounded_outline(box: Box, radius: float) -> np.ndarray:
  """The outline polygon of a rounded rectangle (a plate), in mm."""
  return rectangle(box, 0.0, radius).points[:-1]


def printed_one(centre: tuple[float, float], height: float, weight: float) -> list[np.ndarray]:
  """A printed "1" with a flag and a base (as in DejaVu or a typewriter), as polygons."""
  sw = weight  # stem width, a fraction of the height
  cx, cy = centre

  def place(poly):
    p = (np.array(poly, np.float64) - [0.5, 0.5]) * height
    return p + [cx, cy]

  stem = [(0.5 - sw / 2, 0.0), (0.5 + sw / 2, 0.0), (0.5 + sw / 2, 1.0), (0.5 - sw / 2, 1.0)]
  a, b = np.array([0.5, sw * 0.4]), np.array([0.2, 0.2])
  n = np.array([-(b - a)[1], (b - a)[0]])
  n = n / np.hypot(*n) * sw * 0.45
  flag = [tuple(a + n), tuple(b + n), tuple(b - n), tuple(a - n)]
  base = [(0.2, 1.0 - sw * 0.9), (0.8, 1.0 - sw * 0.9), (0.8, 1.0), (0.2, 1.0)]
  return [place(stem), place(flag), place(base)]


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
  return ImageFont.load_default(size=size)


_REF = 200  # font size at which glyphs are measured


@functools.lru_cache(maxsize=64)
def _digit_height_ratio() -> float:
  """Height of a digit in Pillow's default font, as a fraction of the font size."""
  box = _font(_REF).getbbox("0123456789", anchor="ls")
  return (box[3] - box[1]) / _REF


def font_aspect(text: str) -> float:
  """Width of printed ``text`` over its digits' height."""
  box = _font(_REF).getbbox(text, anchor="ls")
  return (box[2] - box[0]) / (_REF * _digit_height_ratio())


def rasterize(marks: Marks, box: Box, scale: float) -> np.ndarray:
  """Ink coverage of ``marks`` over ``box`` (mm) at ``scale`` px/mm: uint8, 255 = full ink."""
  x0, y0, x1, y1 = box
  w, h = max(1, int(np.ceil((x1 - x0) * scale))), max(1, int(np.ceil((y1 - y0) * scale)))
  ss = 2 if max(w, h) <= 2000 else 1  # Supersampled where cheap: smooth thin strokes.
  s, one = scale * ss, 8  # cv2 drawing with 3 fractional bits (shift=3)
  canvas = np.zeros((h * ss, w * ss), np.uint8)
  for stroke in marks.strokes:
    pts = np.round((stroke.points - [x0, y0]) * s * one).astype(np.int32)
    widths = stroke.width * s
    for i in range(0, len(pts) - 1, 6):  # Runs of a few points share one width.
      run = pts[i:i + 7]
      width = max(1, int(round(float(widths[i:i + 7].mean()))))
      cv2.polylines(canvas, [run], False, 255, width, cv2.LINE_AA, 3)
  for poly in marks.polygons:
    pts = np.round((poly - [x0, y0]) * s * one).astype(np.int32)
    cv2.fillPoly(canvas, [pts], 255, cv2.LINE_AA, 3)
  if marks.glyphs:
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for g in marks.glyphs:
      size = max(4, int(round(g.height * s / _digit_height_ratio())))
      font = _font(size)
      bx = draw.textbbox((0, 0), g.text, font=font, anchor="ls")
      ox = (g.centre[0] - x0) * s - (bx[0] + bx[2]) / 2
      oy = (g.centre[1] - y0) * s - (bx[1] + bx[3]) / 2
      draw.text((ox, oy), g.text, fill=255, font=font, anchor="ls",
                stroke_width=int(round(g.bold * g.height * s)), stroke_fill=255)
    canvas = np.asarray(image).copy()
  if ss > 1:
    canvas = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
  return canvas
