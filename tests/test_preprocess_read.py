"""Tests for mnist_flax.preprocess.read: legal files the safeguards must not refuse.

Run: python -m pytest tests/test_preprocess_read.py -q
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_flax import preprocess
from mnist_flax.tools import samples


def _rle8_bmp(path: Path, width: int = 4000, height: int = 3000) -> Path:
  """A valid run-length-encoded 8-bit BMP (about 100 KB for 12 MP): a dark bar on white.

  Its decoder reads two bytes at a time, which a crawl guard counting tiny reads would take
  for a parser stepping through junk.
  """
  rows = bytearray()
  for y in range(height):
    for x in range(0, width, 255):
      n = min(255, width - x)
      dark = height // 3 <= y < 2 * height // 3 and width // 2 - 300 <= x < width // 2 + 300
      rows += bytes([n, 0 if dark else 255])
    rows += b"\x00\x00"  # End of line.
  rows += b"\x00\x01"  # End of bitmap.
  palette = b"".join(bytes([v, v, v, 0]) for v in range(256))
  offset = 14 + 40 + len(palette)
  header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(rows), 2835, 2835, 256, 0)
  path.write_bytes(struct.pack("<2sIHHI", b"BM", offset + len(rows), 0, 0, offset) + header
                   + palette + bytes(rows))
  return path


def test_run_length_bmp_of_12_megapixels_is_read(tmp_path: Path):
  path = _rle8_bmp(tmp_path / "1_rle8.bmp")
  assert path.stat().st_size < 150_000
  start = time.monotonic()
  image = preprocess.open_image(path)
  assert image.size == (4000, 3000) and time.monotonic() - start < 3.0
  assert preprocess.read_digits(path)  # The bar is read as ink: something is found.


def test_png_with_a_large_colour_profile_is_read(tmp_path: Path):
  drawing = samples.draw_digit(3, np.random.default_rng(0), size=(280, 280))
  path = tmp_path / "3_icc.png"
  drawing.convert("RGB").save(path, icc_profile=os.urandom(1_500_000))
  with Image.open(path) as check:
    assert len(check.info["icc_profile"]) == 1_500_000
  assert preprocess.preprocess_file(path).shape == (28, 28)


def test_boxes_are_in_the_files_pixels_when_a_big_jpeg_is_decoded_reduced(tmp_path: Path):
  """A 12 MP JPEG is decoded at a fraction of its size (Pillow's draft); the digit's box is
  still where the digit is in the file, as it is for the same picture as a PNG."""
  pixels = np.full((3000, 4000), 235, np.uint8)
  pixels[1100:1900, 1960:2040] = 20  # A "1": a bar 80 px wide, 800 px tall.
  boxes = {}
  for fmt in ("jpg", "png"):
    path = tmp_path / f"one.{fmt}"
    Image.fromarray(pixels).convert("RGB").save(path)
    (digit,) = preprocess.read_digits(path)
    boxes[fmt] = np.array(digit.box)
  assert np.abs(boxes["jpg"] - (1960, 1100, 2040, 1900)).max() <= 8, boxes
  assert np.abs(boxes["jpg"] - boxes["png"]).max() <= 8, boxes
