"""Pixels of any mode and size to one luminance array at the pipeline's working size.

    from mnist_flax.preprocess import gray
    lum, scale = gray.luminance(image)  # float32 (H, W) in [0, 1]; file px = working px * scale

Big images are shrunk first, by exact box averaging in strips (a 64 MP photo never gets a second
full-size copy); 16-bit and float modes are averaged in numpy. Transparent images are flattened
onto a backdrop that contrasts with their opaque part, so strokes on a transparent sheet become
ink whatever colour they are.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image

from mnist_flax.errors import ImageError
from mnist_flax.preprocess.read import one_line

# Long side the pipeline works at. A 12 MP phone photo (4000 px) decodes at 1/4 scale straight
# to it (JPEG draft), and a digit that fills a tenth of such a photo still spans ~75 px, enough
# for ruled lines and strokes to stay apart.
WORK_SIDE = 1000

_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _unit_float(a: np.ndarray, mode: str) -> np.ndarray:
  """Pixel values of a 16-bit, 32-bit integer or float mode as float32 in [0, 1]."""
  if mode.startswith("I;16"):
    return (np.asarray(a, dtype=np.float32) / 65535.0).astype(np.float32)
  if mode == "I":
    a = np.asarray(a, dtype=np.float64)
    # 16-bit PNGs open as mode I on older Pillows; 8-bit data converted to I stays <= 255.
    scale = 65535.0 if a.size and a.max() > 255 else 255.0
    return np.clip(a / scale, 0, 1).astype(np.float32)
  a = np.nan_to_num(np.asarray(a, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
  lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
  if lo < 0 or hi > 1:
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
  return a


def _gray_and_alpha(image: Image.Image) -> tuple[Image.Image | np.ndarray, Image.Image | None]:
  """Luminance, as an 8-bit L image (float32 in [0, 1] for 16-bit and float modes), and alpha
  as an 8-bit L image (None if opaque by mode)."""
  mode = image.mode
  if mode in _WIDE_MODES:
    return _unit_float(np.asarray(image), mode), None
  # Straight to L where Pillow converts directly (but palettes, see below): the same
  # luminance weights as through RGB (checked equal on every mode of the generated samples),
  # without the intermediate copies.
  if mode == "P" and "transparency" in image.info:
    image, mode = image.convert("RGBA"), "RGBA"
  if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
    rgba = image if mode == "RGBA" else image.convert("RGBA")
    return rgba.convert("L"), rgba.getchannel("A")
  if mode == "P":  # Through RGB: the same values, and 1.7x faster than Pillow's P to L.
    image = image.convert("RGB")
  if image.mode != "L":
    try:
      image = image.convert("L")  # 1, RGB, CMYK, YCbCr, ...
    except (ValueError, OSError):
      try:
        image = image.convert("RGB").convert("L")
      except (ValueError, OSError) as e:
        raise ImageError(f"unsupported image mode {image.mode}: {one_line(e)}") from None
  return image, None


def _composite(gray: Image.Image, alpha: Image.Image) -> Image.Image:
  """Flattens a transparent image (8-bit luminance and alpha) onto a backdrop that contrasts
  with what is opaque.

  Drawing apps save strokes on a transparent sheet with arbitrary (often black) colour under
  the transparent pixels, so the colour there means nothing. Compositing the opaque part over
  the opposite of its own colour turns the strokes into ink whatever colour they are.
  """
  a = np.asarray(alpha)
  weight = int(a.sum(dtype=np.uint64))
  if weight <= 0:
    return Image.new("L", gray.size, 0)
  # The alpha-weighted mean luminance, exactly: 8-bit products fit in 16 bits.
  mean = int((np.asarray(gray).astype(np.uint16) * a).sum(dtype=np.uint64)) / weight / 255
  backdrop = 255 if mean < 0.5 else 0
  return Image.composite(gray, Image.new("L", gray.size, backdrop), alpha)


# Pixels per strip when shrinking a big image: mode conversions run strip by strip, so a
# 64 MP image never has a second full-size copy (a converted RGBa copy alone is 256 MB).
_STRIP_PIXELS = 4_000_000


def _strips(image: Image.Image, factor: int) -> Iterator[tuple[int, Image.Image]]:
  """(top row, strip) pairs: whole rows of factor x factor blocks, about _STRIP_PIXELS each,
  so reducing strip by strip gives exactly the blocks of reducing the whole image."""
  w, h = image.size
  rows = factor * max(1, _STRIP_PIXELS // (w * factor))
  if rows >= h:  # One strip: the image itself, not a copy.
    yield 0, image
    return
  for top in range(0, h, rows):
    yield top, image.crop((0, top, w, min(h, top + rows)))


def _box_reduce(a: np.ndarray, factor: int) -> np.ndarray:
  """Image.reduce for a 2-D array of any dtype, as float32 block means.

  Pillow's reduce refuses 16-bit modes, and a float copy of the whole image is what made
  64 MP 16-bit PNGs slow; numpy's mean with a float32 accumulator casts block by block.
  Partial blocks at the right and bottom edges average the pixels they have, as reduce does.
  """
  h, w = a.shape
  fh, fw = h // factor, w // factor
  hf, wf = fh * factor, fw * factor
  out = np.empty((-(-h // factor), -(-w // factor)), np.float32)
  out[:fh, :fw] = a[:hf, :wf].reshape(fh, factor, fw, factor).mean(axis=(1, 3), dtype=np.float32)
  if wf < w:
    out[:fh, fw] = a[:hf, wf:].reshape(fh, factor, w - wf).mean(axis=(1, 2), dtype=np.float32)
  if hf < h:
    out[fh, :fw] = a[hf:, :wf].reshape(h - hf, fw, factor).mean(axis=(0, 2), dtype=np.float32)
  if hf < h and wf < w:
    out[fh, fw] = a[hf:, wf:].mean(dtype=np.float32)
  return out


def _reducible(image: Image.Image) -> Image.Image:
  """A mode that reduce() averages correctly: palettes to colour, colour to luminance (a
  third of the data to average), transparency premultiplied (colour under transparent
  pixels is meaningless and must not bleed into the strokes)."""
  mode = image.mode
  if mode == "P":
    image = image.convert("RGBA" if "transparency" in image.info else "RGB")
  elif mode == "PA":
    image = image.convert("RGBA")
  elif mode == "1":
    image = image.convert("L")
  elif mode not in ("L", "LA", "RGB", "RGBA"):
    image = image.convert("RGB")
  if image.mode == "RGB":
    image = image.convert("L")
  if image.mode in ("RGBA", "LA"):
    image = image.convert("RGBa" if image.mode == "RGBA" else "La")
  return image


def _working_image(image: Image.Image) -> Image.Image:
  """Shrinks big images early, by exact box averaging, so a 64 MP photo stays fast.

  Done in strips of whole blocks (see _strips), each brought to a mode reduce() averages
  correctly first (see _reducible); 16-bit and float data are averaged in numpy into F.
  """
  w, h = image.size
  factor = round(max(w, h) / WORK_SIDE)  # Within a third of WORK_SIDE either way.
  if factor < 2:
    return image
  if image.mode in _WIDE_MODES:
    rows = [_box_reduce(np.asarray(strip), factor) for _, strip in _strips(image, factor)]
    return Image.fromarray(_unit_float(np.concatenate(rows), image.mode), "F")
  out: Image.Image | None = None
  for top, strip in _strips(image, factor):
    small = _reducible(strip).reduce(factor)
    if out is None:
      if small.height * factor >= h:  # The only strip.
        out = small
        break
      out = Image.new(small.mode, (-(-w // factor), -(-h // factor)))
    out.paste(small, (0, top // factor))
  assert out is not None  # h >= 1: at least one strip.
  # Premultiplied modes back to straight alpha for to_grayscale_ink.
  straight = {"RGBa": "RGBA", "La": "LA"}.get(out.mode)
  return out.convert(straight) if straight else out


def luminance(image: Image.Image) -> tuple[np.ndarray, float]:
  """(float32 luminance in [0, 1] at most WORK_SIDE on its long side, scale back to the
  image's pixels)."""
  small = _working_image(image)
  scale = image.size[0] / small.size[0]
  gray, alpha = _gray_and_alpha(small)
  if isinstance(gray, np.ndarray):  # 16-bit or float: already [0, 1].
    return gray.astype(np.float32, copy=False), scale
  if alpha is not None and alpha.getextrema()[0] < 250:  # Transparency below 98%.
    gray = _composite(gray, alpha)
  return np.asarray(gray, dtype=np.float32) * np.float32(1 / 255), scale
