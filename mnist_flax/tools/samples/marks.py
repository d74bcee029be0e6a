"""What is written or printed on a page, in millimetres, and its ink coverage on a raster.

A ``Marks`` is made of

- strokes: pen movements, a polyline in sheet millimetres (x right, y down) with a pen
  width at every point (``handwriting`` makes digits, numbers, letters, scribbles and
  smileys of them; ``rectangle`` a form's box or a plate's frame);
- polygons: filled shapes (``printed_one``: a printed "1" with a flag and a base; screw heads);
- glyphs: printed text in Pillow's own font (``ImageFont.load_default``, Aileron), so no
  system font is needed.

``rasterize`` turns marks into anti-aliased ink coverage (uint8, 255 = full ink) on a raster
aligned with the sheet, which ``camera.photograph`` then warps into the camera's view.

    from mnist_flax.tools.samples.marks import Glyph, Marks, rasterize
    marks = Marks(glyphs=[Glyph("42", (0.0, 0.0), 20.0)])   # "42" printed 20 mm tall
    cover = rasterize(marks, marks.box(), 10.0)             # at 10 px/mm
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

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


def circle(cx: float, cy: float, rx: float, ry: float, n: int = 14,
           start: float = -0.3) -> list[tuple[float, float]]:
  t = start + np.linspace(0, 2 * np.pi, n + 1)
  return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in t] + [
      (cx + rx * np.cos(t[1] + 0.2), cy + ry * np.sin(t[1] + 0.2))]


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

  def place(poly: list[tuple[float, float]]) -> np.ndarray:
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
