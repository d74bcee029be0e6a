"""Draws handwritten-looking digits, so the project needs no dataset for its own images.

Each digit 0-9 is a skeleton of pen strokes (smooth curves through control points, with
corners where the pen changes direction). A drawing jitters the control points and applies a
random slant, rotation, size, position and stroke width, then renders the strokes with PIL at
a supersampled resolution so the edges are anti-aliased. Nothing is cut from MNIST.

    import numpy as np
    from mnist_flax.tools import samples
    image = samples.draw_digit(3, np.random.default_rng(0), size=(280, 280))

    python -m mnist_flax.tools.samples test                      # the committed sample set
                                                                 # (with sample_scenes.COMMITTED)
    python -m mnist_flax.tools.samples /tmp/bench --count 1000 --seed 0   # a benchmark folder
    python -m mnist_flax.tools.samples /tmp/photos --kind photos --count 200 --seed 0

Kinds (``--kind``, default plain):

plain      drawings as apps and scanners save them, in every format and mode (this module)
photos     phone photos (JPEG, 1.2-12 MP) of one handwritten digit on plain, ruled or squared
           paper, in a form's box or on a house-number plate; marker, pen, blue ballpoint or
           faint pencil; even light, gradients, soft and hard shadows; the desk; tilt
numbers    such photos of several digits side by side: "42", "2026", "07", years
printed    such photos of a printed digit (Pillow's font; a "1" with a flag and a base)
nondigits  such photos of a letter, a scribble or a smiley (names start with ``x_``)
cases      one such photo for each failure listed in issue 13 (``3_ruled.jpg``,
           ``5_shadow.jpg``, ``2026_ruled.jpg``, ``x_A.jpg``, ...)

The photo kinds are drawn by ``sample_scenes`` (what is written and where, file names),
``sample_photos`` (camera, light, desk, sensor) and ``sample_marks`` (strokes in mm).

Every file name starts with the truth (``3.jpg``, ``7_transparent.png``,
``4_0123_photo.jpg``, ``2026_ruled_pen_even_0012.jpg``, ``x_A_plain_pen_even_0003.jpg``),
which is how the benchmark knows the true label.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mnist_flax import errors

__all__ = ["KINDS", "draw_digit", "make_samples", "main"]

KINDS = ("plain", "photos", "numbers", "printed", "nondigits", "cases")

_Point = tuple[float, float]
# A stroke is one pen-down movement: pieces are smooth curves joined at sharp corners.
_Stroke = list[list[_Point]]
Colour = int | tuple[int, ...]

# Skeletons in a unit box: x to the right, y downwards, both in [0, 1]. Shapes follow common
# MNIST handwriting: 7 without a crossbar, 1 as one stroke, 4 with an open top, 9 with a
# round loop and a straight tail, 5 with a flat bar and a sharp corner (unlike the 3).
_SKELETONS: dict[int, list[_Stroke]] = {
    0: [[[(0.55, 0.0), (0.2, 0.12), (0.04, 0.5), (0.2, 0.9), (0.5, 1.0), (0.8, 0.88),
          (0.96, 0.5), (0.82, 0.12), (0.55, 0.0), (0.38, 0.06)]]],
    1: [[[(0.55, 0.0), (0.5, 0.5), (0.45, 1.0)]]],
    2: [[[(0.06, 0.26), (0.3, 0.03), (0.65, 0.0), (0.9, 0.2), (0.82, 0.46), (0.45, 0.76),
          (0.04, 1.0)], [(0.04, 1.0), (0.5, 0.97), (0.98, 0.98)]]],
    3: [[[(0.08, 0.13), (0.45, 0.0), (0.85, 0.12), (0.8, 0.34), (0.42, 0.48)],
         [(0.42, 0.48), (0.85, 0.6), (0.92, 0.82), (0.6, 1.0), (0.3, 0.98), (0.04, 0.85)]]],
    4: [[[(0.32, 0.0), (0.04, 0.62)], [(0.04, 0.62), (0.5, 0.63), (1.0, 0.6)]],
        [[(0.74, 0.1), (0.71, 0.55), (0.68, 1.0)]]],
    5: [[[(0.2, 0.02), (0.15, 0.46)],
         [(0.15, 0.46), (0.45, 0.37), (0.8, 0.45), (0.92, 0.7), (0.72, 0.95), (0.4, 1.0),
          (0.04, 0.88)]],
        [[(0.2, 0.02), (0.55, 0.0), (0.92, 0.0)]]],
    6: [[[(0.8, 0.02), (0.45, 0.15), (0.18, 0.5), (0.14, 0.8), (0.4, 1.0), (0.74, 0.93),
          (0.84, 0.7), (0.6, 0.5), (0.3, 0.55), (0.15, 0.72)]]],
    7: [[[(0.04, 0.04), (0.5, 0.02), (0.96, 0.0)], [(0.96, 0.0), (0.66, 0.45), (0.42, 1.0)]]],
    8: [[[(0.76, 0.1), (0.5, 0.0), (0.22, 0.1), (0.26, 0.3), (0.5, 0.47), (0.8, 0.66),
          (0.8, 0.9), (0.5, 1.0), (0.18, 0.88), (0.22, 0.65), (0.5, 0.47), (0.74, 0.3),
          (0.78, 0.12), (0.62, 0.02)]]],
    9: [[[(0.86, 0.2), (0.6, 0.02), (0.26, 0.05), (0.14, 0.28), (0.38, 0.47), (0.72, 0.42),
          (0.86, 0.2)], [(0.86, 0.2), (0.8, 0.6), (0.7, 1.0)]]],
}
_FLAG_1: _Stroke = [[(0.18, 0.22), (0.55, 0.0)], [(0.55, 0.0), (0.5, 0.5), (0.45, 1.0)]]
_CLOSED_4: list[_Stroke] = [[[(0.7, 0.0), (0.04, 0.64)], [(0.04, 0.64), (1.0, 0.62)]],
                           [[(0.7, 0.0), (0.69, 0.55), (0.68, 1.0)]]]
_CROSSBAR_7: _Stroke = [[(0.32, 0.53), (0.82, 0.5)]]
# Width of each digit relative to its height, as handwriting tends to have it.
_ASPECT = {0: 0.72, 1: 0.34, 2: 0.68, 3: 0.64, 4: 0.74, 5: 0.64, 6: 0.64, 7: 0.64, 8: 0.6,
           9: 0.6}
_MAX_SUPERSAMPLED = 4096


def _catmull_rom(points: np.ndarray, samples_per_segment: int = 12) -> np.ndarray:
  """Returns a dense polyline through ``points`` (a smooth curve, not a polygon)."""
  if len(points) < 3:
    t = np.linspace(0.0, 1.0, samples_per_segment + 1)[:, None]
    return points[0] + t * (points[-1] - points[0])
  padded = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
  t = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)[:, None]
  out = []
  for i in range(1, len(padded) - 2):
    p0, p1, p2, p3 = padded[i - 1:i + 3]
    out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 +
                      (-p0 + 3 * p1 - 3 * p2 + p3) * t**3))
  out.append(points[-1:])
  return np.vstack(out)


def _skeleton(digit: int, rng: np.random.Generator, crossbar_7: bool,
              closed_4: bool | None, flag_1: bool | None) -> list[_Stroke]:
  strokes = _SKELETONS[digit]
  if digit == 1 and (rng.random() < 0.35 if flag_1 is None else flag_1):
    strokes = [_FLAG_1]
  if digit == 4 and (rng.random() < 0.3 if closed_4 is None else closed_4):
    strokes = _CLOSED_4
  if digit == 7 and crossbar_7:
    strokes = strokes + [_CROSSBAR_7]
  return strokes


def _coverage(digit: int, rng: np.random.Generator, size: tuple[int, int], *,
              stroke_width: float | None, height: float | None,
              centre: tuple[float, float] | None, slant: float | None, jitter: float,
              crossbar_7: bool, closed_4: bool | None, flag_1: bool | None) -> np.ndarray:
  """Renders the digit as ink coverage: float32 (h, w) in [0, 1], anti-aliased."""
  w, h = size
  digit_h = (height if height is not None else rng.uniform(0.6, 0.8)) * h
  digit_w = digit_h * _ASPECT[digit] * rng.uniform(0.85, 1.15)
  if stroke_width is None:
    stroke_width = digit_h * rng.uniform(0.07, 0.12)
  if centre is None:
    centre = (0.5 + rng.normal(0, 0.03), 0.5 + rng.normal(0, 0.03))
  if slant is None:
    slant = rng.normal(0.12, 0.1)
  angle = rng.normal(0.0, 0.05)
  rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
  # Supersampling gives anti-aliased edges from PIL's aliased line drawing.
  ss = int(max(1, min(4, _MAX_SUPERSAMPLED // max(w, h))))
  canvas = Image.new("L", (w * ss, h * ss), 0)
  draw = ImageDraw.Draw(canvas)
  for stroke in _skeleton(digit, rng, crossbar_7, closed_4, flag_1):
    width = stroke_width * rng.uniform(0.9, 1.1) * ss
    polyline = []
    previous_end = None
    for piece in stroke:
      points = np.array(piece, dtype=np.float64) + rng.normal(0, jitter, (len(piece), 2))
      if previous_end is not None:
        points[0] = previous_end  # Pieces meet at a corner, without a gap.
      previous_end = points[-1]
      polyline.append(_catmull_rom(points))
    line = np.vstack(polyline) - 0.5
    line = line * [digit_w, digit_h]
    line[:, 0] -= slant * line[:, 1]  # Positive slant leans the top to the right.
    line = line @ rotation.T + [centre[0] * w, centre[1] * h]
    xy = [tuple(p) for p in (line * ss).tolist()]
    draw.line(xy, fill=255, width=max(1, round(width)), joint="curve")
    r = width / 2
    for x, y in (xy[0], xy[-1]):  # Round caps, as a pen leaves them.
      draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
  if ss > 1:
    canvas = canvas.resize((w, h), Image.Resampling.BOX)
  return np.asarray(canvas, dtype=np.float32) / 255.0


def _channels(colour: Colour) -> tuple[int, ...]:
  return (colour,) if isinstance(colour, int) else tuple(colour)


def draw_digit(digit: int, rng: np.random.Generator, *, size: tuple[int, int] = (280, 280),
               ink: Colour = (0, 0, 0), paper: Colour = (255, 255, 255),
               stroke_width: float | None = None, height: float | None = None,
               centre: tuple[float, float] | None = None, slant: float | None = None,
               jitter: float = 0.025, crossbar_7: bool = False, closed_4: bool | None = None,
               flag_1: bool | None = None) -> Image.Image:
  """Draws one handwritten-looking ``digit`` on a fresh image.

  Args:
    digit: 0-9.
    rng: all randomness comes from here, so a seeded generator repeats the drawing.
    size: (width, height) of the image in pixels.
    ink, paper: an int (grey, gives mode L), an RGB triple (mode RGB) or an RGBA quadruple
      (mode RGBA). ``paper=(0, 0, 0, 0)`` draws on a transparent sheet, as drawing apps
      save it: the colour channels are the ink colour and alpha carries the strokes.
    stroke_width: pen width in pixels; random (7-12% of the digit height) if None.
    height: digit height as a fraction of the image height; random 0.6-0.8 if None.
    centre: digit centre as fractions (x, y) of the image size; near the middle if None.
    slant: horizontal shear, positive leans right; random (mostly right) if None.
    jitter: control-point noise as a fraction of the digit size (the "handwriting").
    crossbar_7, closed_4, flag_1: style variants; None picks 4 and 1 variants at random.
  """
  if digit not in _SKELETONS:
    raise ValueError(f"digit must be 0-9, got {digit!r}")
  ink_c, paper_c = _channels(ink), _channels(paper)
  if len(ink_c) != len(paper_c) or len(ink_c) not in (1, 3, 4):
    raise ValueError("ink and paper must both be grey ints, RGB or RGBA tuples")
  cover = _coverage(digit, rng, size, stroke_width=stroke_width, height=height,
                    centre=centre, slant=slant, jitter=jitter, crossbar_7=crossbar_7,
                    closed_4=closed_4, flag_1=flag_1)[..., None]
  ink_a, paper_a = np.array(ink_c, np.float32), np.array(paper_c, np.float32)
  if len(ink_c) == 4:
    # Premultiplied "over": the stroke colour survives where the sheet is transparent.
    a_ink, a_paper = cover * ink_a[3] / 255, (1 - cover) * paper_a[3] / 255
    alpha = a_ink + a_paper
    rgb = np.where(alpha > 0, (a_ink * ink_a[:3] + a_paper * paper_a[:3]) /
                   np.maximum(alpha, 1e-6), ink_a[:3])
    out = np.concatenate([rgb, alpha * 255], axis=-1)
  else:
    out = paper_a * (1 - cover) + ink_a * cover
  out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
  mode = {1: "L", 3: "RGB", 4: "RGBA"}[len(ink_c)]
  return Image.fromarray(out[..., 0] if mode == "L" else out, mode)


# --- Styles: how a drawing becomes a file somebody might really have. ---------------------


def _photo(image: Image.Image, rng: np.random.Generator, noise: float = 0.04) -> Image.Image:
  """Makes a clean RGB drawing look like a phone photo of paper: light falloff, noise."""
  a = np.asarray(image.convert("RGB"), np.float32) / 255
  h, w = a.shape[:2]
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  angle = rng.uniform(0, 2 * np.pi)
  ramp = ((x / w - 0.5) * np.cos(angle) + (y / h - 0.5) * np.sin(angle))
  vignette = ((x / w - 0.5)**2 + (y / h - 0.5)**2)
  light = 0.92 + rng.uniform(0.2, 0.4) * ramp - rng.uniform(0.2, 0.5) * vignette
  a = a * light[..., None] + rng.normal(0, noise, a.shape).astype(np.float32)
  return Image.fromarray(np.clip(a * 255, 0, 255).astype(np.uint8), "RGB")


def _frame(image: Image.Image, rng: np.random.Generator) -> Image.Image:
  """Adds a thin rectangle near the edges, as a screenshot of a drawing canvas has."""
  image = image.copy()
  inset, width = int(rng.integers(0, 6)), int(rng.integers(1, 3))
  w, h = image.size
  colour = (90, 90, 90) if image.mode == "RGB" else 90
  ImageDraw.Draw(image).rectangle((inset, inset, w - 1 - inset, h - 1 - inset),
                                  outline=colour, width=width)
  return image


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, fmt, **params)
  return buffer.getvalue()


def _gif_ready(image: Image.Image) -> Image.Image:
  # An adaptive palette keeps anti-aliased edges; the default web palette would posterise.
  return image if image.mode in ("1", "L", "P") else image.convert(
      "P", palette=Image.Palette.ADAPTIVE, colors=64)


def _bytes_for(image: Image.Image, ext: str) -> bytes:
  if ext == "jpg":
    return _encode(image.convert("RGB") if image.mode not in ("L", "CMYK") else image,
                   "JPEG", quality=88)
  if ext == "gif":
    return _encode(_gif_ready(image), "GIF")
  if ext == "bmp":
    return _encode(image.convert("RGB") if image.mode == "RGBA" else image, "BMP")
  return _encode(image, "PNG", optimize=True)


def _exif_rotated_jpeg(image: Image.Image) -> bytes:
  """Stores the pixels turned 90 degrees left, with EXIF orientation 6 to turn them back."""
  exif = Image.Exif()
  exif[0x0112] = 6  # Orientation: display after rotating 90 degrees clockwise.
  return _encode(image.convert("RGB").transpose(Image.Transpose.ROTATE_90), "JPEG",
                 quality=88, exif=exif.tobytes())


def _animated_gif(digit: int, rng: np.random.Generator, size: tuple[int, int]) -> bytes:
  """A few frames; the first is the digit, the others are the digit redrawn (a wiggle)."""
  frames = [_gif_ready(draw_digit(digit, rng, size=size, ink=0, paper=255))
            for _ in range(3)]
  return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=300,
                 loop=0)


def _gray16_png(image: Image.Image) -> bytes:
  a = np.asarray(image.convert("L"), np.uint16) * 257
  return _encode(Image.fromarray(a), "PNG")  # uint16 arrays become mode I;16.


def _size(rng: np.random.Generator, low: int = 120, high: int = 420) -> tuple[int, int]:
  side = int(rng.integers(low, high))
  return side, int(side * rng.uniform(0.85, 1.2))


def _paper_and_ink(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
  papers = [(255, 255, 255), (245, 240, 225), (230, 235, 245), (250, 245, 200),
            (225, 225, 225)]
  inks = [(0, 0, 0), (20, 30, 120), (30, 30, 30), (60, 60, 70), (120, 20, 20)]
  return (papers[rng.integers(len(papers))], inks[rng.integers(len(inks))])


# Each style returns (file bytes, extension); ``ext`` is a suggestion some styles override.
_StyleFn = Callable[[int, np.random.Generator, str], tuple[bytes, str]]


def _style_clean(d: int, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
  paper, ink = _paper_and_ink(rng)
  return _bytes_for(draw_digit(d, rng, size=_size(rng), ink=ink, paper=paper), ext), ext


def _style_black_on_white(d: int, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
  return _bytes_for(draw_digit(d, rng, size=_size(rng), ink=0, paper=255), ext), ext


def _style_white_on_black(d: int, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
  return _bytes_for(draw_digit(d, rng, size=_size(rng), ink=255, paper=0), ext), ext


def _style_marker(d: int, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
  size = _size(rng)
  image = draw_digit(d, rng, size=size, ink=(10, 10, 10), paper=(250, 250, 250),
                     height=0.72, stroke_width=size[1] * rng.uniform(0.1, 0.14))
  return _bytes_for(image, ext), ext


def _style_thin_pen(d: int, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
  size = _size(rng, 300, 700)
  image = draw_digit(d, rng, size=size, ink=(40, 40, 40), paper=(255, 255, 255),
                     stroke_width=rng.uniform(1.5, 3.0))
  return _bytes_for(image, ext), ext


def _style_photo(d: int, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
  paper, ink = _paper_and_ink(rng)
  image = _photo(draw_digit(d, rng, size=_size(rng, 300, 640), ink=ink, paper=paper), rng)
  return _encode(image, "JPEG", quality=70), "jpg"


def _style_offcentre(d: int, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
  side = int(rng.integers(700, 1001))
  centre = (rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85))
  image = draw_digit(d, rng, size=(side, side), ink=0, paper=255,
                     height=rng.uniform(0.1, 0.2), centre=centre)
  # One-bit BMPs keep a big canvas small on disk; other formats compress well anyway.
  return _bytes_for(image.convert("1") if ext == "bmp" else image, ext), ext


def _style_transparent(d: int, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
  ink = (0, 0, 0, 255) if rng.random() < 0.7 else (255, 255, 255, 255)
  image = draw_digit(d, rng, size=_size(rng), ink=ink, paper=(0, 0, 0, 0))
  return _encode(image, "PNG"), "png"


def _style_transparent_palette(d: int, rng: np.random.Generator,
                               ext: str) -> tuple[bytes, str]:
  """A palette image whose background index is transparent (a common GIF/PNG export)."""
  image = draw_digit(d, rng, size=_size(rng), ink=0, paper=255).convert(
      "P", palette=Image.Palette.ADAPTIVE, colors=16)
  background = image.getpixel((0, 0))
  fmt = "GIF" if ext == "gif" else "PNG"
  return _encode(image, fmt, transparency=background), "gif" if fmt == "GIF" else "png"


def _style_palette(d: int, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
  paper, ink = _paper_and_ink(rng)
  image = draw_digit(d, rng, size=_size(rng), ink=ink, paper=paper)
  fmt = {"gif": "GIF", "bmp": "BMP"}.get(ext, "PNG")
  return _encode(image.convert("P", palette=Image.Palette.ADAPTIVE, colors=32), fmt), (
      ext if ext in ("gif", "bmp") else "png")


def _style_frame(d: int, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
  image = _frame(draw_digit(d, rng, size=_size(rng), ink=0, paper=255), rng)
  return _bytes_for(image, ext), ext


def _style_gray16(d: int, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
  return _gray16_png(draw_digit(d, rng, size=_size(rng), ink=0, paper=255)), "png"


def _style_cmyk(d: int, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
  paper, ink = _paper_and_ink(rng)
  image = draw_digit(d, rng, size=_size(rng), ink=ink, paper=paper).convert("CMYK")
  return _encode(image, "JPEG", quality=85), "jpg"


def _style_exif(d: int, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
  paper, ink = _paper_and_ink(rng)
  return _exif_rotated_jpeg(draw_digit(d, rng, size=_size(rng), ink=ink, paper=paper)), "jpg"


def _style_animated(d: int, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
  return _animated_gif(d, rng, _size(rng)), "gif"


def _style_bilevel(d: int, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
  image = draw_digit(d, rng, size=_size(rng), ink=0, paper=255).convert("1")
  return _bytes_for(image, ext), ext


_BENCHMARK_STYLES: dict[str, _StyleFn] = {
    "clean": _style_clean, "black_on_white": _style_black_on_white,
    "white_on_black": _style_white_on_black, "marker": _style_marker,
    "thin_pen": _style_thin_pen, "photo": _style_photo, "offcentre": _style_offcentre,
    "transparent": _style_transparent, "transparent_palette": _style_transparent_palette,
    "palette": _style_palette, "frame": _style_frame, "gray16": _style_gray16,
    "cmyk": _style_cmyk, "exif_rotated": _style_exif, "animated": _style_animated,
    "bilevel": _style_bilevel,
}

# The committed set: (file name, style). Each digit appears in every format at least
# once; the named files are the examples the README and the tests of the commands use.
_COMMITTED: list[tuple[str, str]] = [
    # JPEG
    *[(f"{d}.jpg", "black_on_white") for d in range(10)],
    ("5_offcentre_big_canvas.jpg", "offcentre"), ("8_photo_noise.jpg", "photo"),
    ("6_cmyk.jpg", "cmyk"), ("9_exif_rotated.jpg", "exif_rotated"),
    ("1_blue_ink.jpg", "clean"), ("4_photo_noise.jpg", "photo"),
    # PNG
    ("0_white_on_black.png", "white_on_black"), ("1_palette.png", "palette"),
    ("2_gray16.png", "gray16"), ("3_black_on_white.png", "black_on_white"),
    ("4_frame.png", "frame"), ("5_transparent_palette.png", "transparent_palette"),
    ("6_thin_pen.png", "thin_pen"), ("7_transparent.png", "transparent"),
    ("8_black_on_white.png", "black_on_white"), ("9_white_on_black.png", "white_on_black"),
    # GIF
    ("0_animated.gif", "animated"), ("1_black_on_white.gif", "black_on_white"),
    ("2_white_on_black.gif", "white_on_black"), ("3_palette.gif", "palette"),
    ("4_transparent_palette.gif", "transparent_palette"), ("5_black_on_white.gif",
                                                           "black_on_white"),
    ("6_white_on_black.gif", "white_on_black"), ("7_palette.gif", "palette"),
    ("8_black_on_white.gif", "black_on_white"), ("9_frame.gif", "frame"),
    # BMP
    ("0_bilevel.bmp", "bilevel"), ("1_white_on_black.bmp", "white_on_black"),
    ("2_marker.bmp", "marker"), ("3_bilevel.bmp", "bilevel"),
    ("4_black_on_white.bmp", "black_on_white"), ("5_marker.bmp", "marker"),
    ("6_bilevel.bmp", "bilevel"), ("7_black_on_white.bmp", "black_on_white"),
    ("8_bilevel.bmp", "bilevel"), ("9_palette.bmp", "palette"),
]


def _make_one(name: str, style: str, rng: np.random.Generator) -> tuple[bytes, str]:
  digit, ext = int(name[0]), name.rsplit(".", 1)[1]
  if name == "3.jpg":
    # The headline example: a clean, upright, clearly written 3.
    image = draw_digit(3, rng, size=(280, 280), ink=0, paper=255, height=0.7,
                       centre=(0.5, 0.5), slant=0.08, jitter=0.01, stroke_width=22)
    return _encode(image, "JPEG", quality=90), ext
  if name == "5_offcentre_big_canvas.jpg":
    image = draw_digit(5, rng, size=(1000, 1000), ink=(15, 15, 15), paper=(255, 255, 255),
                       height=0.14, centre=(0.72, 0.3), stroke_width=12)
    return _encode(image, "JPEG", quality=85), ext
  data, got_ext = _BENCHMARK_STYLES[style](digit, rng, ext)
  if got_ext != ext:
    raise AssertionError(f"style {style} cannot write {name}")
  return data, ext


def make_samples(out_dir: str | Path, *, count: int | None = None,
                 seed: int = 0) -> list[Path]:
  """Writes sample images into ``out_dir`` and returns their paths.

  Without ``count``: the committed sample set (every digit in JPEG, PNG, GIF and BMP plus
  the named special cases). With ``count``: that many varied images for a benchmark,
  digits balanced, styles and formats random; names are ``<digit>_<index>_<style>.<ext>``.
  The same seed always writes the same files.
  """
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  written = []
  if count is None:
    for i, (name, style) in enumerate(_COMMITTED):
      data, _ = _make_one(name, style, np.random.default_rng([seed, i]))
      (out / name).write_bytes(data)
      written.append(out / name)
    return written
  styles = sorted(_BENCHMARK_STYLES)
  for i in range(count):
    rng = np.random.default_rng([seed, 1, i])  # Per-file streams: any file can be redone.
    digit = i % 10
    style = styles[rng.integers(len(styles))]
    ext = ("jpg", "png", "gif", "bmp")[rng.integers(4)]
    data, ext = _BENCHMARK_STYLES[style](digit, rng, ext)
    path = out / f"{digit}_{i:04d}_{style}.{ext}"
    path.write_bytes(data)
    written.append(path)
  return written


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m mnist_flax.tools.samples",
      description="Draw handwritten-looking digit images (no dataset needed).")
  parser.add_argument("out_dir", help="folder to write into (created if missing)")
  parser.add_argument("--kind", choices=KINDS, default="plain",
                      help="what to draw (default plain; see the module docstring)")
  parser.add_argument("--count", type=int, default=None,
                      help="write this many varied images instead of the committed set "
                      "(photo kinds: default 100; cases: default one per case)")
  parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
  args = parser.parse_args(argv)
  if args.count is not None and args.count < 0:
    parser.error("--count must be >= 0")
  try:
    if args.kind == "plain":
      paths = make_samples(args.out_dir, count=args.count, seed=args.seed)
      if args.count is None:  # The committed set has phone photos of issue 13's cases too.
        from mnist_flax.tools import sample_scenes
        paths += sample_scenes.write_committed(args.out_dir)
    else:
      from mnist_flax.tools import sample_scenes  # OpenCV is only needed for the photo kinds.
      default = len(sample_scenes.CASES) if args.kind == "cases" else 100
      paths = sample_scenes.make_kind(args.kind, args.out_dir,
                                      count=default if args.count is None else args.count,
                                      seed=args.seed)
  except OSError as e:
    # An output folder we cannot write is the same situation as an unwritable workdir.
    return errors.report(errors.WorkdirError(
        f"cannot write to {args.out_dir}: {e.strerror or e}"), parser.prog)
  print(f"wrote {len(paths)} images to {args.out_dir}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
