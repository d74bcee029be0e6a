"""Draws one handwritten-looking digit as a plain image (the pictures apps and scanners make).

A drawing takes a digit's strokes (``strokes``), jitters the control points and applies a
random slant, rotation, size, position and stroke width, then renders the strokes with PIL at
a supersampled resolution so the edges are anti-aliased. ``formats`` saves such drawings as
files; the tests draw their own digits with it.

    import numpy as np
    from mnist_flax.tools import samples
    image = samples.draw_digit(3, np.random.default_rng(0), size=(280, 280))
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from mnist_flax.tools.samples.strokes import ASPECT, SKELETONS, catmull_rom, skeleton

Colour = int | tuple[int, ...]
_MAX_SUPERSAMPLED = 4096


def _coverage(digit: int, rng: np.random.Generator, size: tuple[int, int], *,
              stroke_width: float | None, height: float | None,
              centre: tuple[float, float] | None, slant: float | None, jitter: float,
              crossbar_7: bool, closed_4: bool | None, flag_1: bool | None) -> np.ndarray:
  """Renders the digit as ink coverage: float32 (h, w) in [0, 1], anti-aliased."""
  w, h = size
  digit_h = (height if height is not None else rng.uniform(0.6, 0.8)) * h
  digit_w = digit_h * ASPECT[digit] * rng.uniform(0.85, 1.15)
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
  for stroke in skeleton(digit, rng, crossbar_7, closed_4, flag_1):
    width = stroke_width * rng.uniform(0.9, 1.1) * ss
    polyline = []
    previous_end = None
    for piece in stroke:
      points = np.array(piece, dtype=np.float64) + rng.normal(0, jitter, (len(piece), 2))
      if previous_end is not None:
        points[0] = previous_end  # Pieces meet at a corner, without a gap.
      previous_end = points[-1]
      polyline.append(catmull_rom(points))
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
  if digit not in SKELETONS:
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
