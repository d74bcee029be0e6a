"""Turns a person's image file into the 28x28 arrays the MNIST model was trained on.

    from mnist_flax import preprocess
    x = preprocess.preprocess_file("test/3.jpg")          # float32 (28, 28); NoDigitFound if empty
    found = preprocess.read_digits("my_number.jpg")       # one Digit per digit, left to right
    found[0].field, found[0].box                          # (28, 28) array; box in the file's pixels
    preprocess.save_preprocessed(x, "out/3.png")          # what the model saw, as an 8-bit PNG

The stages, one module each, in the order the pixels go through them:

  read        the file, by content (JPEG, PNG, GIF, BMP), first frame, EXIF orientation, safely
  gray        any mode and size to one luminance array at the working size
  paper       polarity, lighting and shadows divided out, the sheet found, ink thresholded
  lines       ruled lines, grids and margins removed, crossing strokes kept
  frames      frames and boxes around the digit removed (a form's cells, a screenshot's border)
  digits      the digit, or the row of digits of a number, split where digits touch
  normalise   each digit to MNIST's 20x20 box, centred by mass in 28x28

Errors are the project's: InputNotFound (missing path, broken symbolic link), ImageError (not a
readable JPEG/PNG/GIF/BMP, too large, truncated, a directory, a FIFO or device, a symbolic link
loop, unreadable, stalling the decoder), NoDigitFound (nothing on it). Messages are one line and
name the file, with bytes that are not UTF-8 and control characters escaped.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_flax.errors import NoDigitFound, shown_path
from mnist_flax.preprocess import digits, frames, gray, lines, normalise, paper
from mnist_flax.preprocess.read import MAX_PIXELS, SUPPORTED_FORMATS, open_image

__all__ = ["SUPPORTED_FORMATS", "MAX_PIXELS", "Digit", "open_image", "to_grayscale_ink",
           "to_digits", "choose", "to_mnist", "read_digits", "preprocess_file", "save_preprocessed"]


@dataclasses.dataclass(frozen=True)
class Digit:
  """One digit found in an image: what the model sees, and where it is in the image.

  ``split_of`` >= 0 marks a piece of another reading of the digit at that index, as touching
  digits (``reading`` tells the readings apart); ``choose`` picks between the readings.
  """

  field: np.ndarray  # float32 (28, 28) in [0, 1], MNIST's white ink on black.
  box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the (upright) image's pixels.
  split_of: int = -1
  reading: int = 0


def to_grayscale_ink(image: Image.Image) -> np.ndarray:
  """Float32 (H, W) in [0, 1] at working size, the ink high and the paper low, whatever the
  polarity of the image (decided from its pixels, never from a flag)."""
  lum, _ = gray.luminance(image)
  return lum if not paper.ink_is_dark(lum) else 1.0 - lum


def to_digits(image: Image.Image, single: bool = False) -> list[Digit]:
  """The digits in ``image``, left to right ([] if none; at most one with ``single``)."""
  lum, scale = gray.luminance(image)
  dx = dy = 0
  page = paper.find_ink_clean(lum)
  if page is not None:  # A drawing, a scan, a screenshot: no rules, plates or shadows.
    mask, components = frames.remove_frames(page.mask, touching=False)
  else:
    page = paper.find_ink(lum)
    if page is None:
      return []
    plate = paper.find_plate(page.mask)
    if plate is not None:  # Read on the plate, as if it were the whole picture.
      dx, dy, x1, y1 = plate
      page = paper.find_ink(lum[dy:y1, dx:x1], plate=True)
      if page is None:
        return []
    mask, components = frames.remove_frames(lines.remove_rules(page.mask))
  out: list[Digit] = []

  def add(glyph: digits.Glyph, split_of: int = -1, reading: int = 0) -> None:
    x0, y0, x1, y1 = glyph.box
    x0, x1, y0, y1 = x0 + dx, x1 + dx, y0 + dy, y1 + dy
    box = (int(x0 * scale), int(y0 * scale), min(image.size[0], round(x1 * scale)),
           min(image.size[1], round(y1 * scale)))
    out.append(Digit(normalise.to_field(page.ink, glyph), box, split_of, reading))

  for glyph in digits.find(mask, single=single, lit=page.lit, components=components):
    whole = len(out)
    add(glyph)
    for r, pieces in enumerate(glyph.readings, 1):
      for piece in pieces:
        add(piece, whole, r)
  return out


def choose(found: list[Digit], confidence: np.ndarray) -> list[int]:
  """Which of ``found`` make the answer, left to right, given the model's confidence in each
  (its top probability): of each glyph's readings (whole, or as 2, 3, ... touching digits), the
  most likely one, the product of its digits' confidences."""
  chosen: list[int] = []
  for i, digit in enumerate(found):
    if digit.split_of >= 0:
      continue
    readings: dict[int, list[int]] = {0: [i]}
    for j, d in enumerate(found):
      if d.split_of == i:
        readings.setdefault(d.reading, []).append(j)
    chosen.extend(max(readings.values(), key=lambda r: float(np.prod(confidence[r]))))
  return chosen


def to_mnist(image: Image.Image) -> np.ndarray | None:
  """The one digit of ``image`` as float32 (28, 28) in [0, 1], or None if there is none."""
  found = to_digits(image, single=True)
  return found[0].field if found else None


def read_digits(path: str | os.PathLike, single: bool = False) -> list[Digit]:
  """open_image + to_digits; raises NoDigitFound instead of answering [].

  Raises:
    InputNotFound, ImageError: see open_image.
    NoDigitFound: the image has nothing on it that looks like a digit.
  """
  # A draft decode for big JPEGs: the pipeline works at gray.WORK_SIDE anyway.
  found = to_digits(open_image(path, draft_side=gray.WORK_SIDE), single=single)
  if not found:
    raise NoDigitFound(f"no digit found in {shown_path(path)}")
  return found


def preprocess_file(path: str | os.PathLike) -> np.ndarray:
  """The one digit of an image file: float32 (28, 28) in [0, 1] (see read_digits)."""
  return read_digits(path, single=True)[0].field


def save_preprocessed(array: np.ndarray, path: str | os.PathLike) -> None:
  """Writes a [0, 1] array (what the model saw) as an 8-bit greyscale PNG."""
  a = np.asarray(array, dtype=np.float32)
  if a.ndim != 2:
    raise ValueError(f"expected a 2-D array, got shape {a.shape}")
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  pixels = np.rint(np.clip(np.nan_to_num(a), 0.0, 1.0) * 255).astype(np.uint8)
  Image.fromarray(pixels, "L").save(path, "PNG")
