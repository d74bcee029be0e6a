"""Renders the images of ``mnist_flax.extra_data``: non-digits and printed digits as 28x28 fields.

    from mnist_flax import extra_render
    field = extra_render.nondigit(index, seed)   # uint8 (28, 28): a letter, symbol or mark
    field = extra_render.printed(index, seed)    # uint8 (28, 28): the digit index % 10, printed

Each comes from its own random stream of ``(seed, kind, index)``. What is drawn and why is
``extra_data``'s docstring; this module is how.
"""

from __future__ import annotations

import functools
import pathlib

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mnist_flax.preprocess import normalise
from mnist_flax.preprocess.digits import Glyph

# Letters and symbols no one reads as a digit; left out: O o D Q C c (0), I l i j J | / ( ) ! (1),
# Z z (2), S s $ (5), B & (8), G b (6), g q (9), T t (7), y (4), ? (2, 7); Greek beta, delta, xi,
# phi likewise.
LETTERS = "AEFHKLMNPRUVWXYaefhkmnpruvwx#%@*+=<>~^"
GREEK = "ΔΛΞΠΣΨΩαλμπω"  # Only in fonts that have them (DejaVu, Liberation), not Pillow's own.
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
_SIZE = 48  # Font size in pixels: glyphs ~35 px tall on a _CANVAS-square canvas.
_CANVAS = 120
_NONDIGITS, _PRINTED, _LOOKALIKES = 0, 1, 2  # Random streams.
# No filled blobs: an oblong one, thinned to MNIST's pen by normalise, is a "1", a round one a
# heavy "0".
_MARKS = ("scribble", "loops", "spiral", "zigzag", "hatching", "star", "face", "arc")
# OpenCV's stroke fonts: letters drawn as pen lines, as a hand writes them (not outlines).
_HERSHEY = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
            cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
            cv2.FONT_HERSHEY_SCRIPT_COMPLEX)


@functools.lru_cache(maxsize=None)
def font_files() -> tuple[str, ...]:
  """The system fonts used besides Pillow's own: DejaVu and Liberation, sorted, when present."""
  found = []
  for folder in _FONT_DIRS:
    found += [str(p) for p in pathlib.Path(folder).glob("*.ttf") if "Math" not in p.name]
  return tuple(sorted(found))


@functools.lru_cache(maxsize=None)
def _font(path: str) -> ImageFont.FreeTypeFont:
  return ImageFont.load_default(_SIZE) if path == "" else ImageFont.truetype(path, _SIZE)


def _print(text: str, path: str, bold: int) -> np.ndarray:
  """``text`` printed white on black, centred on the canvas: float32 in [0, 1]."""
  image = Image.new("L", (_CANVAS, _CANVAS), 0)
  ImageDraw.Draw(image).text((_CANVAS / 2, _CANVAS / 2), text, fill=255, font=_font(path),
                             anchor="mm", stroke_width=bold, stroke_fill=255)
  return np.asarray(image, np.float32) / 255.0


def _pen(text: str, rng: np.random.Generator) -> np.ndarray:
  """``text`` in a random stroke font (italic a third of the time) with a random pen width."""
  font = int(_HERSHEY[int(rng.integers(len(_HERSHEY)))]) | (
      cv2.FONT_ITALIC if rng.random() < 1 / 3 else 0)
  width = int(rng.integers(2, 7))
  (w, h), _ = cv2.getTextSize(text, font, 1.0, width)
  scale = _SIZE * 0.7 / max(h, 1)
  (w, h), base = cv2.getTextSize(text, font, scale, width)
  canvas = np.zeros((_CANVAS, _CANVAS), np.uint8)
  cv2.putText(canvas, text, ((_CANVAS - w) // 2, (_CANVAS + h) // 2), font, scale, 255, width,
              cv2.LINE_AA)
  return canvas.astype(np.float32) / 255.0


def _draw(lines: list[np.ndarray], width: int) -> np.ndarray:
  """Polylines (points in [-1, 1], the glyph's box) drawn with a pen ``width`` px wide."""
  canvas = np.zeros((_CANVAS, _CANVAS), np.uint8)
  scale, mid = _SIZE * 0.38, _CANVAS / 2
  for points in lines:
    pts = np.round((points * scale + mid) * 16).astype(np.int32)  # 4 bits of sub-pixel shift
    cv2.polylines(canvas, [pts], False, 255, width, cv2.LINE_AA, shift=4)
  return canvas.astype(np.float32) / 255.0


def _curve(rng: np.random.Generator, knots: int) -> np.ndarray:
  """A smooth random curve through ``knots`` points of the box (Chaikin's corner cutting)."""
  p = rng.uniform(-1, 1, (knots, 2))
  for _ in range(4):
    q = p[:-1] * 0.75 + p[1:] * 0.25
    r = p[:-1] * 0.25 + p[1:] * 0.75
    p = np.concatenate([p[:1], np.stack([q, r], 1).reshape(-1, 2), p[-1:]])
  return p


def _mark(kind: str, rng: np.random.Generator) -> list[np.ndarray]:
  """The strokes of one mark of ``kind`` (one of _MARKS), in the box [-1, 1]^2."""
  t = np.linspace(0, 1, 120)
  if kind == "scribble":  # Enough turns that no digit's path fits it.
    return [_curve(rng, int(rng.integers(7, 13)))]
  if kind == "loops":  # A cursive row of loops (a prolate cycloid): eeee, llll.
    n, d = rng.uniform(2.5, 5), rng.uniform(1.3, 2.2)
    a = t * n * 2 * np.pi
    x, y = a - d * np.sin(a), -d * np.cos(a)
    x = (x - x.min()) / (x.max() - x.min()) * 2 - 1
    return [np.stack([x, y / d * rng.uniform(0.3, 0.6)], 1)]
  if kind == "spiral":
    a = t * rng.uniform(2.2, 4) * 2 * np.pi
    r = 0.15 + 0.85 * t
    return [np.stack([r * np.cos(a), r * np.sin(a) * rng.uniform(0.6, 1.0)], 1)]
  if kind == "zigzag":
    n = int(rng.integers(5, 10))
    x = np.linspace(-1, 1, n) + rng.uniform(-0.1, 0.1, n)
    y = np.where(np.arange(n) % 2, 1.0, -1.0) * rng.uniform(0.4, 1.0, n)
    return [np.stack([x, y], 1)]  # Not upright: a short one standing reads as a 3.
  if kind == "hatching":  # Parallel strokes, crossed by a second set half the time.
    out = []
    for angle in [rng.uniform(0, np.pi)] + ([rng.uniform(0, np.pi)] if rng.random() < 0.5 else []):
      c, s = np.cos(angle), np.sin(angle)
      for off in np.linspace(-0.8, 0.8, int(rng.integers(3, 7))):
        ends = np.array([[-1.0, off], [1.0, off]])
        out.append(ends @ np.array([[c, s], [-s, c]]))
    return out
  if kind == "star":  # Three to six strokes through the middle.
    out = []
    for angle in np.linspace(0, np.pi, int(rng.integers(3, 7)), endpoint=False):
      angle += rng.uniform(-0.15, 0.15)
      out.append(np.array([[np.cos(angle), np.sin(angle)], [-np.cos(angle), -np.sin(angle)]]))
    return out
  if kind == "arc":  # A mouth alone, wider than tall: what is left of a face cut apart.
    m = np.linspace(-1, 1, 40)
    return [np.stack([m, rng.choice([1.0, -1.0]) * rng.uniform(0.2, 0.6) * (1 - m ** 2)], 1)]
  # A face: a ring (whole, or part of it: a face cut apart), two eyes, a mouth that smiles,
  # frowns or is flat.
  start, span = rng.uniform(0, 2 * np.pi), rng.choice([2 * np.pi, rng.uniform(3.5, 2 * np.pi)])
  a = np.linspace(start, start + span, 90)
  ring = np.stack([np.cos(a), np.sin(a) * rng.uniform(0.85, 1.15)], 1)
  eyes = [np.array([[x, -0.3], [x + 0.02, -0.28]]) for x in (-0.35, 0.35)]
  m = np.linspace(-0.45, 0.45, 20)
  mouth = np.stack([m, 0.35 + rng.choice([1.0, -1.0, 0.0]) * (0.2 - m ** 2)], 1)
  return [ring, *eyes, mouth]


def _affine(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """A random rotation, shear and aspect about the canvas's centre (print is slanted, photos
  are taken askew), then a random blur (focus, a cheap camera)."""
  angle = np.deg2rad(rng.uniform(-12, 12))
  shear = rng.uniform(-0.3, 0.3)
  aspect = np.exp(rng.uniform(-0.3, 0.3))
  c, s = np.cos(angle), np.sin(angle)
  m = np.array([[c, -s], [s, c]]) @ np.array([[aspect, shear], [0.0, 1.0 / aspect]])
  mid = np.array([_CANVAS / 2, _CANVAS / 2])
  warp = np.hstack([m, (mid - m @ mid)[:, None]])
  out = cv2.warpAffine(ink, warp, (_CANVAS, _CANVAS), flags=cv2.INTER_LINEAR)
  # A smooth random bend (a 4x4 grid of pushes, up to ~3 px at this size): no two hands, and
  # no two prints on a curled page, draw a letter the same.
  push = [cv2.resize(rng.normal(0, rng.uniform(0, 1.9), (4, 4)).astype(np.float32),
                     (_CANVAS, _CANVAS), interpolation=cv2.INTER_CUBIC) for _ in range(2)]
  grid = np.arange(_CANVAS, dtype=np.float32)
  out = cv2.remap(out, grid[None, :] + push[0], grid[:, None] + push[1], cv2.INTER_LINEAR)
  sigma = rng.uniform(0, 1.2)
  return cv2.GaussianBlur(out, (0, 0), sigma) if sigma > 0.4 else out


def _field(ink: np.ndarray) -> np.ndarray | None:
  """The ink as the model sees it (``normalise.to_field``), uint8; None if there is none."""
  mask = ink > 0.35
  ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
  if ys.size == 0:
    return None
  y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
  glyph = Glyph((int(x0), int(y0), int(x1), int(y1)), mask[y0:y1, x0:x1].astype(np.uint8))
  return np.round(normalise.to_field(ink, glyph) * 255).astype(np.uint8)


def _fonts(rng: np.random.Generator) -> tuple[str, int]:
  """A font (``""``: Pillow's own, a third of the time) and a bold outline in pixels."""
  files = font_files()
  path = "" if not files or rng.random() < 1 / 3 else files[int(rng.integers(len(files)))]
  return path, int(rng.choice([0, 0, 0, 2, 3]))


def _nondigit(rng: np.random.Generator) -> np.ndarray:
  path, bold = _fonts(rng)
  r = rng.random()
  if r < 0.3:
    chars = LETTERS + (GREEK if path else "")
    return _print(chars[int(rng.integers(len(chars)))], path, bold)
  if r < 0.55:
    return _pen(LETTERS[int(rng.integers(len(LETTERS)))], rng)
  if r < 0.6:  # Two letters in one blob: a word's fragment read as one glyph.
    return _print("".join(LETTERS[int(i)] for i in rng.integers(0, 26, 2)), path, bold)
  kind = _MARKS[int(rng.integers(len(_MARKS)))]
  return _draw(_mark(kind, rng), int(rng.integers(2, 9)))


def _hand_a(rng: np.random.Generator) -> np.ndarray:
  """A capital A as hands draw it: two legs from an apex (sharp or round, closed or crossing at
  the top) and a bar between them at any height, some bars running past a leg."""
  apex = np.array([rng.uniform(-0.3, 0.3), -1.0])
  feet = [np.array([-rng.uniform(0.45, 0.95), 1.0]), np.array([rng.uniform(0.45, 0.95), 1.0])]
  overshoot = rng.uniform(0, 0.25)
  left = np.stack([feet[0], apex + [0.0, rng.uniform(-0.1, 0.15)]])
  right = np.stack([apex + [-overshoot, 0.0], feet[1]])
  t = rng.uniform(0.35, 0.75)  # The bar's height along the legs.
  ends = [apex + t * (foot - apex) for foot in feet]
  reach = rng.uniform(-0.1, 0.35, 2) * [-1, 1]
  bar = np.stack([ends[0] + [reach[0], rng.normal(0, 0.05)], ends[1] + [reach[1], 0.0]])
  return _draw([left, right, bar], int(rng.integers(2, 9)))


def _lookalike(rng: np.random.Generator) -> np.ndarray:
  """A letter that MNIST's readers take for a digit, as the issue's "A" read as 4: drawn by
  hand (_hand_a) half the time, else printed or in a stroke font."""
  r = rng.random()
  if r < 0.5:
    return _hand_a(rng)
  if r < 0.75:
    return _pen("A", rng)
  path, bold = _fonts(rng)
  return _print("A", path, bold)


def _printed(digit: int, rng: np.random.Generator) -> np.ndarray:
  path, bold = _fonts(rng)
  if digit == 4 and rng.random() < 0.25:  # Open 4, as some typefaces and signs print it.
    return _draw([np.array([[0.1, -1.0], [-0.7, 0.35], [0.8, 0.35]]),
                  np.array([[0.35, -0.4], [0.35, 1.0]])], int(rng.integers(3, 9)))
  ink = _print(str(digit), path, bold) if rng.random() < 0.8 else _pen(str(digit), rng)
  if digit == 7 and rng.random() < 0.3:  # The European 7's bar, across the stem's middle.
    ys, xs = np.nonzero(ink > 0.5)
    y = int((ys.min() + ys.max()) / 2)
    w = max(3, int(np.sqrt((ink > 0.5).sum() / max(ys.max() - ys.min(), 1))))
    xm = int(np.mean(xs[np.abs(ys - y) <= 1]))
    half = (xs.max() - xs.min()) // 3
    ink = np.maximum(ink, cv2.line(np.zeros_like(ink), (xm - half, y), (xm + half, y), 1.0, w))
  return ink


def _one(kind: int, index: int, seed: int) -> np.ndarray:
  rng = np.random.default_rng([seed, 7919, kind, index])
  while True:  # Rare: a blur or warp that leaves no ink; draw again from the same stream.
    ink = (_nondigit(rng) if kind == _NONDIGITS else _lookalike(rng) if kind == _LOOKALIKES
           else _printed(index % 10, rng))
    field = _field(_affine(ink, rng))
    if field is not None:
      return field


def nondigit(index: int, seed: int) -> np.ndarray:
  """The ``index``-th non-digit of ``seed``: uint8 (28, 28), white ink on black."""
  return _one(_NONDIGITS, index, seed)


def printed(index: int, seed: int) -> np.ndarray:
  """The ``index``-th printed digit of ``seed`` (the digit ``index % 10``), as ``nondigit``."""
  return _one(_PRINTED, index, seed)


def lookalike(index: int, seed: int) -> np.ndarray:
  """The ``index``-th letter of ``seed`` that readers take for a digit (an "A"), as ``nondigit``."""
  return _one(_LOOKALIKES, index, seed)
