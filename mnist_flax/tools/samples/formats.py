"""The ``plain`` kind: drawings saved as the files people really have, in every format and mode.

Each style turns a drawing (``drawing.draw_digit``) into file bytes: JPEG, PNG, GIF or BMP;
grey, RGB, CMYK, 16-bit, one-bit, palette, transparent, animated, EXIF-rotated, a photo-like
falloff with noise, a canvas frame. ``make_samples`` writes the committed set (the files in
test/, every digit in every format, named examples the README uses) or a benchmark folder of
varied files. Every name starts with the truth (``3.jpg``, ``7_transparent.png``,
``4_0123_photo.jpg``).

    from mnist_flax.tools import samples
    samples.make_samples("/tmp/bench", count=1000, seed=0)   # or: python -m ... DIR --count N
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mnist_flax.tools.samples.drawing import draw_digit


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


def _encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
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
