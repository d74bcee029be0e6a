"""Turns a person's image file into the 28x28 array the MNIST model was trained on.

The model saw raw MNIST: white ink (high values) on black (0), float32 in [0, 1], the digit
scaled so its bounding box fits 20x20 (aspect kept), then placed so its centre of mass is at
pixel (14, 14) of a 28x28 field. Real files are photos, screenshots and drawings of any size,
mode and polarity, so this module (numpy + PIL only) does, in order:

  open_image        read by content (JPEG, PNG, GIF, BMP), first frame, EXIF orientation,
                    with a pixel limit checked before any pixel is decoded; regular files
                    only (a FIFO or device never blocks), at most 1 GiB, and reads that
                    give up on a decoder crawling through junk or running past 3 s
  to_grayscale_ink  any mode (1, L, LA, P, RGB(A), I;16, I, F, CMYK) -> float ink map;
                    transparency composited, polarity decided from the image itself
  to_mnist          background/lighting removal, noise threshold, frame-line removal,
                    digit selection (connected components), crop, stroke-width
                    normalisation, 20x20 box, centre of mass -> (28, 28), or None

    from mnist_flax import preprocess
    x = preprocess.preprocess_file("test/3.jpg")   # float32 (28, 28); NoDigitFound if empty
    preprocess.save_preprocessed(x, "out/3.png")   # what the model saw, as an 8-bit PNG

Errors are the project's: InputNotFound (missing path, broken symbolic link), ImageError (not
a readable JPEG/PNG/GIF/BMP, too large, truncated, a directory, a FIFO or device, a symbolic
link loop, unreadable, stalling the decoder), NoDigitFound (nothing on it). Messages are one
line and name the file, with bytes that are not UTF-8 and control characters escaped.
"""

from __future__ import annotations

import errno
import functools
import io
import math
import os
import re
import stat
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_flax.errors import ImageError, InputNotFound, NoDigitFound, shown_path

__all__ = ["SUPPORTED_FORMATS", "MAX_PIXELS", "open_image", "to_grayscale_ink", "to_mnist",
           "preprocess_file", "save_preprocessed"]

SUPPORTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
# Pillow calls multi-picture JPEGs (what many phone cameras write) "MPO"; they are JPEGs.
_FORMAT_ALIASES = {"MPO": "JPEG"}
# Checked on the header's size before decoding: 64 MP is a 9000x7000 photo; more is either a
# mistake or a decompression bomb, and a digit never needs it.
MAX_PIXELS = 64_000_000

_WORK_SIDE = 512  # Long side for the pipeline: fast, and a digit still has >= 20 px.
_SMALL_SIDE = 128  # Most pixels along the long side for the background and polarity estimates.
_GRID = 16  # Background blocks along the long side.
_MID_SIDE = 80  # Digit box for stroke-width normalisation (4x the final 20).
_BOX = 20
_FIELD = 28


# --- Reading files -------------------------------------------------------------------------


def _one_line(text: object) -> str:
  return " ".join(str(text).split()) or "unknown error"


# Leading bytes of formats people try, so a file no plugin accepts is named in the message.
_SIGNATURES = (
    (b"\xff\xd8\xff", "a damaged JPEG file"),
    (b"\x89PNG\r\n\x1a\n", "a damaged PNG file"),
    (b"GIF87a", "a damaged GIF file"),
    (b"GIF89a", "a damaged GIF file"),
    (b"%PDF", "a PDF document"),
)


def _sniff(path: Path) -> str:
  """Names what a file that no image plugin recognised seems to be, for the message."""
  try:
    with _open_regular(path, shown_path(path)) as f:
      head = f.read(512)
  except (OSError, ImageError):
    return "unreadable"
  if not head:
    return "an empty file"
  for signature, name in _SIGNATURES:
    if head.startswith(signature):
      return name
  if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
    return "a HEIC/AVIF image (save it as JPEG or PNG)"
  if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
    return "an HTML page"
  if head.lstrip().startswith(b"<"):
    return "XML/SVG or HTML text"
  try:
    head.decode("utf-8")
    return "a text file"
  except UnicodeDecodeError:
    return "a file of unknown type"


# Checked on the file's size before parsing: a 64 MP image is at most 512 MB even as an
# uncompressed 16-bit RGBA PNG; anything bigger is a video, a disk image or a sparse trap.
_MAX_FILE_BYTES = 1 << 30
# Pillow's header parsers step over bytes they do not expect one read at a time, so a JPEG
# or GIF header followed by a gigabyte of zeros keeps them busy for minutes. Real files are
# read in few, large reads (markers, chunks, decoder blocks): this many reads averaging
# under _CRAWL_BYTES bytes is a parser crawling through junk, stopped in a fraction of a
# second.
_CRAWL_READS = 100_000
_CRAWL_BYTES = 16
# Wall-clock backstop for reading and decoding one file, whatever the pattern of reads; a
# legal MAX_PIXELS file decodes in about a second.
_READ_SECONDS = 3.0


class _BudgetedFile:
  """A binary file whose reads fail with ImageError once a parser crawls or overruns.

  Checked on every read: header parsers read a byte at a time and decoders in blocks, so a
  runaway loop is stopped within one block. Everything else is the wrapped file's.
  """

  def __init__(self, raw: BinaryIO, shown: str, seconds: float | None = None):
    self._raw = raw
    self._shown = shown
    self._seconds = _READ_SECONDS if seconds is None else seconds  # Read now: tunable.
    self._deadline = time.monotonic() + self._seconds
    self._reads = 0
    self._bytes = 0

  def _check(self) -> None:
    self._reads += 1
    if self._reads > _CRAWL_READS and self._bytes < _CRAWL_BYTES * self._reads:
      raise ImageError(f"cannot read {self._shown}: damaged, no image data where the format "
                       f"expects it (stopped after {self._bytes:,} bytes)")
    if time.monotonic() > self._deadline:
      raise ImageError(f"gave up reading {self._shown} after {self._seconds:g} s: the file "
                       "is damaged or built to stall a decoder")

  def read(self, size: int = -1) -> bytes:
    self._check()
    data = self._raw.read(size)
    self._bytes += len(data)
    return data

  def readline(self, size: int = -1) -> bytes:
    self._check()
    data = self._raw.readline(size)
    self._bytes += len(data)
    return data

  def readinto(self, buffer: bytearray | memoryview) -> int | None:
    self._check()
    count = self._raw.readinto(buffer)
    self._bytes += count or 0
    return count

  def __getattr__(self, name: str) -> Any:
    return getattr(self._raw, name)


# Files up to this size are read into memory at once (see _open_regular).
_WHOLE_FILE_BYTES = 1 << 22


def _open_regular(path: Path, shown: str) -> BinaryIO:
  """Opens a regular file for reading without ever blocking.

  O_NONBLOCK makes open() return at once even on a FIFO with no writer, and fstat() on the
  opened descriptor (not the name, which could be swapped in between) refuses FIFOs,
  devices (/dev/zero never ends) and sockets.
  """
  flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
  fd = os.open(path, flags)
  try:
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
      raise ImageError(f"{shown} is a directory, not an image file")
    if not stat.S_ISREG(info.st_mode):
      raise ImageError(f"{shown} is not a regular file (a pipe, device or socket)")
    if info.st_size > _MAX_FILE_BYTES:
      raise ImageError(f"{shown} is too big for an image ({info.st_size / 2**30:.1f} GiB, "
                       f"limit {_MAX_FILE_BYTES // 2**30} GiB)")
    if info.st_size <= _WHOLE_FILE_BYTES:  # Read whole: one system call, and the parsers'
      data = os.read(fd, info.st_size)   # many small reads then come from memory.
      os.close(fd)
      fd = -1
      return io.BytesIO(data)
    if hasattr(os, "set_blocking"):
      os.set_blocking(fd, True)  # Regular files ignore it; restored for plain semantics.
    return os.fdopen(fd, "rb")
  except BaseException:
    if fd >= 0:
      os.close(fd)
    raise


def _missing_or_unreadable(path: Path, shown: str, error: OSError) -> Exception:
  """The project error for an input path that could not be opened, saying why."""
  if error.errno == errno.ELOOP:
    return ImageError(f"{shown} is a symbolic link loop (too many levels of symbolic links)")
  if error.errno in (errno.ENOENT, errno.ENOTDIR):
    if os.path.islink(path):
      try:
        target = shown_path(os.readlink(path))
      except OSError:
        target = "?"
      return InputNotFound(f"{shown} is a broken symbolic link: its target {target} does "
                           "not exist")
    return InputNotFound(f"no such file: {shown}")
  return ImageError(f"cannot read {shown}: {_one_line(error.strerror or error)}")


def open_image(path: str | os.PathLike) -> Image.Image:
  """Opens a JPEG, PNG, GIF or BMP by content and returns its first frame, upright.

  Never blocks (FIFOs and devices are refused before reading) and gives up on a file after
  a few seconds of reading, whatever its content.

  Raises:
    InputNotFound: ``path`` does not exist (or is a broken symbolic link).
    ImageError: a directory, FIFO or device, unreadable, a symbolic link loop, another
      format (named in the message), larger than MAX_PIXELS, truncated or corrupt.
  """
  return _open(path)


# Where Pillow's getexif finds an orientation for these formats (EXIF, PNG text, XMP); an
# image with none of them is upright, without the cost of parsing for it.
_ORIENTATION_SOURCES = frozenset({"exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp"})


def _open(path: str | os.PathLike, draft_side: int | None = None) -> Image.Image:
  """open_image; with ``draft_side`` (for to_mnist), colour JPEGs are decoded to luminance
  only, and big ones at a reduced scale (1/2 to 1/8) whose long side is still at least
  ``draft_side``."""
  shown = shown_path(path)
  path = Path(path)
  try:
    f = _open_regular(path, shown)
  except OSError as e:
    raise _missing_or_unreadable(path, shown, e) from None
  supported = ", ".join(SUPPORTED_FORMATS)
  limit = f"limit {MAX_PIXELS // 1_000_000} megapixels"
  with f, warnings.catch_warnings():
    # Pillow warns above its own limit; ours is lower and raises instead.
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    budgeted = _BudgetedFile(f, shown)
    try:
      image = Image.open(budgeted)  # type: ignore[arg-type]  # Duck-typed file.
    except ImageError:
      raise
    except Image.DecompressionBombError as e:
      # Pillow refuses before we see the size; its message carries the pixel count.
      count = re.search(r"\((\d+) pixels\)", str(e))
      size = f"{int(count.group(1)):,} pixels" if count else "over Pillow's limit"
      raise ImageError(f"image too large ({size}, {limit}): {shown}") from None
    except UnidentifiedImageError:
      what = _sniff(path)
      if what.startswith("a damaged"):  # A supported format whose header Pillow rejects.
        raise ImageError(f"cannot read {shown}: {what} (corrupt header)") from None
      raise ImageError(f"{shown} is {what}, not an image in a supported format "
                       f"({supported})") from None
    except Exception as e:  # Plugins raise many types on corrupt headers.
      raise ImageError(f"cannot read {shown}: {_one_line(e)}") from None
    with image:
      fmt = _FORMAT_ALIASES.get(image.format, image.format)
      if fmt not in SUPPORTED_FORMATS:
        raise ImageError(f"{shown} is a {image.format} image, which is not supported "
                         f"(supported: {supported})")
      w, h = image.size
      if w * h > MAX_PIXELS:
        raise ImageError(f"image too large ({w}x{h}, {limit}): {shown}")
      if w == 0 or h == 0:
        raise ImageError(f"image has no pixels ({w}x{h}): {shown}")
      try:
        image.seek(0)  # The first frame of an animation is the picture; others stay unread.
        if draft_side and fmt == "JPEG":
          # libjpeg decodes colour JPEGs straight to luminance (its Y channel, the same
          # weights as convert("L"); 1.8x faster) and scales while decoding (DCT scaling):
          # an 8000x6000 photo decodes several times faster in 1/16 the memory, and the
          # pipeline shrinks it to this side anyway. Up to twice the side, it would halve
          # it: decoded at half scale, the same size, a quarter of the work.
          scale = draft_side / max(w, h)
          if scale <= 0.5:
            request = (math.ceil(w * scale), math.ceil(h * scale))
          elif scale < 1:
            request = (max(1, w // 2), max(1, h // 2))
          else:
            request = None
          image.draft("L", request)
        image.load()
      except ImageError:
        raise
      except Exception as e:  # Truncated data raises OSError, others vary by plugin.
        raise ImageError(f"cannot decode {shown} (truncated or corrupt {fmt}): "
                         f"{_one_line(e)}") from None
      if not _ORIENTATION_SOURCES.isdisjoint(image.info):
        try:
          # In place: a copy of a 64 MP image would double the peak memory. The pixels are
          # loaded, so leaving the with-block (which only drops the file) keeps them.
          ImageOps.exif_transpose(image, in_place=True)
        except Exception:  # A mangled EXIF block should not cost the picture.
          pass
      return image


# --- Pixels to an ink map ------------------------------------------------------------------


def _resize_float(a: np.ndarray, width: int, height: int,
                  resample: Image.Resampling = Image.Resampling.BOX) -> np.ndarray:
  im = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), "F")
  return np.asarray(im.resize((max(1, width), max(1, height)), resample), dtype=np.float32)


def _shrink(a: np.ndarray, side: int) -> np.ndarray:
  """``a`` as float32, box-averaged by _shrink_image to at most ``side`` pixels on its long
  side (``a`` itself if not longer)."""
  if max(a.shape) <= side:
    return a
  image = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), "F")
  return np.asarray(_shrink_image(image, side), dtype=np.float32)


def _shrink_image(image: Image.Image, side: int) -> Image.Image:
  """A single-band image box-averaged by the smallest whole factor that brings its long side
  to ``side`` pixels or fewer (between side/2 and side): Pillow's reduce, 3x faster than a
  resize to exactly ``side``, which the estimates made from it do not need."""
  factor = -(-max(image.size) // side)
  return image.reduce(factor) if factor > 1 else image


# Order statistics by sorting: numpy's partition (behind np.median and np.percentile) slows to
# milliseconds on what these arrays are, a flat background of a few repeated values, while
# sorting does not. Large arrays of values in [-1, 1] are sorted as 16-bit levels (a radix sort,
# 3-5x faster than sorting float32); the statistics then land on a 2**-15 grid, within 2e-5
# of np.median's and np.percentile's (linear), far below any threshold they feed.

_LEVELS = 32767.5  # Levels per unit: [-1, 1] -> 0..65535.


def _sorted_levels(a: np.ndarray) -> np.ndarray:
  """``a`` (values in [-1, 1]; others clipped) as sorted uint16 levels."""
  x = np.clip(a, -1.0, 1.0).ravel()
  x *= _LEVELS
  x += _LEVELS + 0.5  # Truncation below rounds to the nearest level.
  return np.sort(x.astype(np.uint16), kind="stable")  # Radix sort for 16-bit integers.


# Robust statistics (median, MAD, a percentile) of whole images are taken on an even sample of
# at most this many pixels: their sampling error (~1% of the spread) is far below the margins of
# the thresholds they set, and sorting is most of their cost.
_SAMPLE = 8_000


def _sample(a: np.ndarray) -> np.ndarray:
  """A strided view of ``a`` (1-D or 2-D) with at most _SAMPLE elements (``a`` if smaller)."""
  if a.size <= _SAMPLE:
    return a
  if a.ndim == 1:
    return a[::math.ceil(a.size / _SAMPLE)]
  step = math.ceil(math.sqrt(a.size / _SAMPLE))
  return a[::step, ::step]


def _median(a: np.ndarray) -> float:
  """np.median of all of ``a``."""
  a = np.sort(a, axis=None)
  n = a.size
  if n == 0:
    return float("nan")
  k = n // 2
  return float(a[k]) if n % 2 else float((a[k - 1] + a[k]) / 2)


def _middle(a: np.ndarray) -> np.ndarray:
  """np.median(a, axis=-1) of ``a`` already sorted along its last axis."""
  k = a.shape[-1] // 2
  return a[..., k] if a.shape[-1] % 2 else (a[..., k - 1] + a[..., k]) / 2


def _median_and_mad(a: np.ndarray) -> tuple[float, float]:
  """(median(a), median(|a - median|)) of a non-empty array of values in [-1, 1], from one
  16-bit sort (see _sorted_levels)."""
  return _levels_median_and_mad(_sorted_levels(a))


def _levels_median_and_mad(levels: np.ndarray) -> tuple[float, float]:
  """_median_and_mad of the values whose _sorted_levels are ``levels`` (non-empty).

  The deviations below and above the median are two sorted runs of the sorted array, so their
  middle value is found by binary search instead of a second sort.
  """
  x = levels.astype(np.float32)  # Exact: levels are integers below 2**24.
  n = x.size
  k = n // 2
  centre = x[k] if n % 2 else (x[k - 1] + x[k]) / 2
  m = int(np.searchsorted(x, centre, side="left"))
  below = centre - x[:m][::-1]  # Ascending: nearest first.
  above = x[m:] - centre  # Ascending.

  def kth(j: int) -> float:  # The j-th smallest (0-based) of below and above together.
    lo, hi = max(0, j + 1 - above.size), min(j + 1, below.size)
    while lo < hi:  # i: how many come from below; the largest i with below[i-1] <= above[j-i].
      i = (lo + hi + 1) // 2
      if below[i - 1] <= above[j + 1 - i] if j + 1 - i < above.size else True:
        lo = i
      else:
        hi = i - 1
    i = lo
    candidates = []
    if i > 0:
      candidates.append(below[i - 1])
    if j + 1 - i > 0:
      candidates.append(above[j - i])
    return float(max(candidates))

  mad = kth(k) if n % 2 else (kth(k - 1) + kth(k)) / 2
  return float(centre) / _LEVELS - 1.0, mad / _LEVELS


def _percentile(a: np.ndarray, q: float) -> float:
  """np.percentile(a, q) (linear interpolation) of a non-empty array of values in [-1, 1],
  from a 16-bit sort (see _sorted_levels)."""
  return _levels_percentile(_sorted_levels(a), q)


def _levels_percentile(x: np.ndarray, q: float) -> float:
  """_percentile of the values whose _sorted_levels are ``x`` (non-empty)."""
  pos = q / 100 * (x.size - 1)
  lo = int(math.floor(pos))
  hi = min(lo + 1, x.size - 1)
  level = float(x[lo]) + (float(x[hi]) - float(x[lo])) * (pos - lo)
  return level / _LEVELS - 1.0


def _pad(a: np.ndarray, top: int, bottom: int | None = None, left: int | None = None,
         right: int | None = None, edge: bool = False) -> np.ndarray:
  """np.pad of a 2-D array with zeros or (``edge``) by replication, without its overhead."""
  bottom = top if bottom is None else bottom
  left = top if left is None else left
  right = left if right is None else right
  h, w = a.shape
  if edge:
    out = np.empty((h + top + bottom, w + left + right), a.dtype)
  else:
    out = np.zeros((h + top + bottom, w + left + right), a.dtype)
  out[top:top + h, left:left + w] = a
  if edge:
    out[:top, left:left + w] = a[0]
    out[top + h:, left:left + w] = a[-1]
    out[:, :left] = out[:, left:left + 1]
    out[:, left + w:] = out[:, left + w - 1:left + w]
  return out


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
        raise ImageError(f"unsupported image mode {image.mode}: {_one_line(e)}") from None
  return image, None


def _unit8(image: Image.Image) -> np.ndarray:
  """An 8-bit single-band image as float32 in [0, 1], converted in one pass."""
  return np.divide(np.asarray(image), np.float32(255), dtype=np.float32)


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


@functools.lru_cache(maxsize=32)
def _quadratic_design(gh: int, gw: int) -> tuple[np.ndarray, np.ndarray]:
  """(gh*gw, 6): the terms 1, x, y, x^2, xy, y^2 at the centres of a gh x gw block grid; and
  its pseudo-inverse (6, gh*gw), the least-squares fit when every block counts."""
  yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float64)
  yy, xx = (yy + 0.5) / gh - 0.5, (xx + 0.5) / gw - 0.5
  design = np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy], -1).reshape(-1, 6)
  fit_all = np.linalg.pinv(design)
  design.flags.writeable = fit_all.flags.writeable = False  # Shared between calls.
  return design, fit_all


def _smooth_fit(small: np.ndarray, blocks: np.ndarray) -> np.ndarray:
  """A robust quadratic surface through block medians: the paper under uneven light.

  ``blocks`` is _sorted_blocks(small).
  """
  h, w = small.shape
  bs = _block_side(small.shape)
  med = _middle(blocks)
  gh, gw = med.shape
  if gh * gw < 12:
    return np.full_like(small, _median(small))
  if float(med.max()) == float(med.min()):  # Even paper: the fit is that level.
    return np.full_like(small, med[0, 0])
  design, fit_all = _quadratic_design(gh, gw)
  target = med.reshape(-1).astype(np.float64)
  keep = np.ones_like(target, dtype=bool)
  coef = fit_all @ target
  for i in range(4):  # Trimmed refits: ink blocks are outliers and drop out.
    if i:
      # Least squares by the normal equations (6 unknowns, well scaled); dropped blocks are
      # zeroed rather than indexed out, which is cheaper for a grid this small.
      kept = design * keep[:, None]
      try:
        coef = np.linalg.solve(kept.T @ design, kept.T @ target)
      except np.linalg.LinAlgError:
        coef = np.linalg.lstsq(design[keep], target[keep], rcond=None)[0]
    off = np.abs(target - design @ coef)
    spread = 1.4826 * _median(off[keep]) + 1e-3
    new_keep = off < 2.5 * spread
    if np.count_nonzero(new_keep) < 6 or (new_keep == keep).all():
      break
    keep = new_keep
  # The quadratic on the pixel grid, as [1, y, y^2] M [1, x, x^2]^T: two small products.
  c = coef
  terms = np.array([[c[0], c[1], c[3]], [c[2], c[4], 0.0], [c[5], 0.0, 0.0]], np.float32)
  return (_powers(h, bs * gh) @ terms) @ _powers(w, bs * gw).T


@functools.lru_cache(maxsize=64)
def _powers(n: int, extent: int) -> np.ndarray:
  """(n, 3) float32: 1, t, t^2 at the centres of n pixels, with t running -0.5..0.5 over
  ``extent`` pixels (the block grid's padded extent, so pixels line up with block centres)."""
  t = (np.arange(n, dtype=np.float64) + 0.5) / extent - 0.5
  powers = np.stack([np.ones_like(t), t, t * t], axis=1).astype(np.float32)
  powers.flags.writeable = False  # Shared between calls.
  return powers


def _block_side(shape: tuple[int, ...]) -> int:
  """The side of the blocks a small image is cut into: _GRID of them along its long side."""
  return max(1, math.ceil(max(shape) / _GRID))


def _sorted_blocks(small: np.ndarray) -> np.ndarray:
  """``small`` cut into blocks (see _blocks, _block_side), each block's values sorted: the
  polarity's block medians and the background's block low percentiles come from one sort."""
  return np.sort(_blocks(small, _block_side(small.shape)), axis=-1)


def _ink_is_dark(small: np.ndarray, blocks: np.ndarray) -> bool:
  """Decides the polarity: is the ink darker than the paper?

  Ink is the minority that stands out from the smooth paper level, so after removing a
  robust lighting surface the heavier tail of the residual (darker or lighter) is the ink.
  ``small`` is the grey image shrunk (see _shrink_image), ``blocks`` its _sorted_blocks.
  """
  residual = small - _smooth_fit(small, blocks)
  spread = 1.4826 * _median_and_mad(_sample(residual))[1]
  t = max(3 * spread, 0.03)
  dark = float(np.clip(-residual - t, 0, None).sum())
  light = float(np.clip(residual - t, 0, None).sum())
  if dark + light < 1e-3 * residual.size:
    # Nothing stands out: call the paper whatever it mostly is, so a blank page is blank.
    return _median(small) > 0.5
  return dark > light


class _Levels(NamedTuple):
  """An image's values as ``pixels * scale + offset`` in float32, kept as its pixels (uint8 for
  8-bit images) and computed only where needed: most of a big image is never converted."""

  pixels: np.ndarray
  scale: float
  offset: float

  def values(self, region: Any = ...) -> np.ndarray:
    """The values of ``pixels[region]`` (all of them by default), float32."""
    return self.pixels[region] * np.float32(self.scale) + np.float32(self.offset)

  def sample(self) -> np.ndarray:
    """The values of an even sample of the pixels (see _sample), float32."""
    return _Levels(_sample(self.pixels), self.scale, self.offset).values()

  def above(self, level: float) -> np.ndarray:
    """Where the value exceeds ``level``, by one comparison of the pixels: exactly values()'s
    for 8-bit pixels, up to rounding for float ones."""
    if self.pixels.dtype == np.uint8:
      over = np.flatnonzero(_Levels(np.arange(256, dtype=np.uint8), *self[1:]).values() > level)
      if over.size == 0:
        return np.zeros(self.pixels.shape, dtype=bool)
      # Monotonic in the pixel, so the levels above are a run at one end.
      return self.pixels >= int(over[0]) if self.scale > 0 else self.pixels <= int(over[-1])
    threshold = np.float32((level - self.offset) / self.scale)
    return self.pixels > threshold if self.scale > 0 else self.pixels < threshold


def to_grayscale_ink(image: Image.Image) -> np.ndarray:
  """Returns float32 (H, W) in [0, 1] with the ink high and the paper low.

  Handles modes 1, L, LA, P (with or without transparency), RGB, RGBA, I;16, I, F, CMYK.
  Transparent images are composited so their strokes become ink. Black-on-white (or on any
  lighter paper) is inverted; the decision comes from the pixels, never from a flag.
  """
  return _ink_and_paper(image)[0].values()


# Which value of a block's sorted pixels is the paper under it: the 10th percentile of the ink.
_PAPER_QUANTILE = 0.1


def _ink_and_paper(image: Image.Image) -> tuple[_Levels, np.ndarray, tuple[int, int]]:
  """to_grayscale_ink (as _Levels); each block's paper level (the _PAPER_QUANTILE of its ink)
  on the image shrunk (see _shrink_image); and that small image's shape (see _background)."""
  luminance, alpha = _gray_and_alpha(image)
  if isinstance(luminance, np.ndarray):  # 16-bit or float.
    gray, unit = luminance, 1.0
    small = _shrink(gray, _SMALL_SIDE).astype(np.float32, copy=False)
  else:  # 8-bit, the usual: kept 8-bit, and shrunk as 8-bit at half the cost of float.
    if alpha is not None and alpha.getextrema()[0] < 250:  # Transparency below 98%.
      luminance = _composite(luminance, alpha)
    gray, unit = np.asarray(luminance), 255.0
    small = _unit8(_shrink_image(luminance, _SMALL_SIDE))
  if gray.size == 0:
    return _Levels(gray, 1.0 / unit, 0.0), gray, gray.shape
  blocks = _sorted_blocks(small)
  n = blocks.shape[-1]
  k = max(0, int(_PAPER_QUANTILE * n) - 1)
  if _ink_is_dark(small, blocks):
    # Inverting reverses the order: the ink's k-th lowest is one minus the grey's k-th highest.
    paper = np.subtract(1.0, blocks[..., n - 1 - k], dtype=np.float32)
    return _Levels(gray, -1.0 / unit, 1.0), paper, small.shape
  return _Levels(gray, 1.0 / unit, 0.0), blocks[..., k], small.shape


# --- Ink map to the MNIST field ------------------------------------------------------------


def _blocks(a: np.ndarray, bs: int) -> np.ndarray:
  """``a`` cut into bs x bs blocks, shape (gh, gw, bs*bs); edges padded by replication."""
  h, w = a.shape
  gh, gw = math.ceil(h / bs), math.ceil(w / bs)
  a = _pad(a, 0, gh * bs - h, 0, gw * bs - w, edge=True)
  return a.reshape(gh, bs, gw, bs).transpose(0, 2, 1, 3).reshape(gh, gw, bs * bs)


# The pairwise ufunc that builds each reduction _grid_filter takes from shifted slices.
_PAIRWISE = {np.min: np.minimum, np.max: np.maximum, np.mean: np.add}


def _grid_filter(g: np.ndarray, size: int, op: Callable[..., np.ndarray]) -> np.ndarray:
  """Applies a reduction (np.min, np.max, np.mean) over size x size neighbourhoods, edges
  replicated: separably, rows then columns of shifted slices."""
  combine = _PAIRWISE[op]
  h, w = g.shape
  p = _pad(g, size // 2, edge=True)
  rows = p[:h]
  for dy in range(1, size):
    rows = combine(rows, p[dy:dy + h])
  out = rows[:, :w]
  for dx in range(1, size):
    out = combine(out, rows[:, dx:dx + w])
  return out / (size * size) if op is np.mean else out


def _background(shape: tuple[int, int], paper: np.ndarray,
                small_shape: tuple[int, int]) -> np.ndarray | np.float32:
  """The paper level under the ink (lighting, shadows, tint): an array of the image's
  ``shape``, or one number for even paper. ``paper`` and ``small_shape`` are _ink_and_paper's.

  A grey-level opening at the scale of ~1/3 of the image: block low percentiles, then a
  min and a max filter over the block grid. Strokes, even marker-thick ones, are narrower
  than that and vanish; lighting gradients and broad shadows are wider and stay.
  """
  h, w = shape
  sh, sw = small_shape
  bs = _block_side(small_shape)
  steps = [(5, np.min), (5, np.max), (3, np.mean)]
  grid = paper
  # Even paper (most scans and drawings) stays even through the filters: one number, as
  # soon as it shows.
  while float(grid.max()) != float(grid.min()):
    if not steps:
      gh, gw = grid.shape
      # Upsample over the padded extent, then crop, so block centres stay aligned.
      full = _resize_float(grid, round(gw * bs * w / sw), round(gh * bs * h / sh),
                           Image.Resampling.BILINEAR)
      return full[:h, :w]
    size, op = steps.pop(0)
    grid = _grid_filter(grid, size, op)
  return np.float32(grid.flat[0])


def _ink_only(ink: _Levels, paper: np.ndarray,
              small_shape: tuple[int, int]) -> _Levels | None:
  """Background removed, noise thresholded, contrast stretched (values to clip to [0, 1]);
  None if nothing stands out. The arguments are _ink_and_paper's."""
  background = _background(ink.pixels.shape, paper, small_shape)
  if np.ndim(background) == 0:  # Even paper: still the pixels, one level lower.
    d = _Levels(ink.pixels, ink.scale, ink.offset - float(background))
  else:
    d = _Levels(ink.values() - background, 1.0, 0.0)
  sample = d.sample()
  levels = _sorted_levels(sample)
  level, mad = _levels_median_and_mad(levels)
  spread = 1.4826 * mad
  t = level + max(4.0 * spread, 0.05)
  # The sample's levels above t: the top of the same sort.
  above = levels[int(np.searchsorted(levels, (t + 1.0) * _LEVELS, side="right")):]
  if above.size < 8 and sample.size < d.pixels.size:  # A few ink pixels may fall between samples.
    values = d.values()
    above = _sorted_levels(_sample(values[values > t]))
  if above.size < 8:
    return None
  core = _levels_percentile(above, 90)
  if core - level < 0.08:  # A faint smudge is not a digit.
    return None
  stretch = 1.0 / max(core - t, 1e-6)
  return _Levels(d.pixels, d.scale * stretch, (d.offset - t) * stretch)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Horizontal runs of True: (row, start, end exclusive), in row-major order."""
  h, w = mask.shape
  padded = np.zeros((h, w + 2), dtype=bool)
  padded[:, 1:-1] = mask
  flat = np.flatnonzero(padded[:, 1:] != padded[:, :-1])  # 6x faster than np.diff on int8.
  # Every run has one rising and one falling edge, in that order, so they alternate.
  rows, cols = np.divmod(flat, w + 1)
  return rows[0::2], cols[0::2], cols[1::2]


def _components(mask: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray, int]:
  """8-connected components with numpy only: runs linked row to row, then union-find.

  Returns the runs, each run's component label and the number of components.
  """
  rows, starts, ends = _runs(mask)
  n = rows.size
  if n == 0:
    return (rows, starts, ends), rows, 0
  key = mask.shape[1] + 2  # Row-major keys keep every row's runs in one sorted block.
  start_key, end_key = rows * key + starts, rows * key + ends - 1
  # For each run, the runs of the next row that touch it (diagonals included) are a
  # contiguous range, found by binary search.
  lo = np.searchsorted(end_key, (rows + 1) * key + starts - 1, side="left")
  hi = np.searchsorted(start_key, (rows + 1) * key + ends, side="right")
  counts = np.maximum(hi - lo, 0)
  a = np.repeat(np.arange(n), counts)
  # For each pair, lo of its run plus its place among that run's pairs.
  b = np.repeat(lo - (np.cumsum(counts) - counts), counts) + np.arange(a.size)
  parent = np.arange(n)
  while a.size:
    pa, pb = parent[a], parent[b]
    differ = pa != pb
    if not differ.any():
      break
    low = np.minimum(pa, pb)[differ]
    np.minimum.at(parent, pa[differ], low)
    np.minimum.at(parent, pb[differ], low)
    while True:  # Pointer jumping until every run points at its root (checked every 2nd).
      grand = parent[parent]
      great = grand[grand]
      if (great == grand).all():
        parent = great
        break
      parent = great
  if parent.max() == 0:  # One component (the usual): every run's root is run 0.
    return (rows, starts, ends), np.zeros(n, dtype=np.intp), 1
  _, labels = np.unique(parent, return_inverse=True)
  return (rows, starts, ends), labels, int(labels.max()) + 1


def _paint(shape: tuple[int, int], rows: np.ndarray, starts: np.ndarray,
           ends: np.ndarray) -> np.ndarray:
  h, w = shape
  flat = np.zeros(h * w + 1, dtype=np.int32)
  np.add.at(flat, rows * w + starts, 1)
  np.add.at(flat, rows * w + ends, -1)
  return np.cumsum(flat[:-1]).reshape(h, w) > 0


def _edge_band(length: int) -> int:
  """How far from each end of an axis of ``length`` pixels a frame line is looked for."""
  return max(2, int(0.15 * length))


def _edge_lines(coverage: np.ndarray, length: int) -> tuple[int | None, int | None]:
  """Thin, nearly full-length lines near both ends of one axis (a frame's sides).

  Returns, for the low and the high end, the index up to which everything is frame (the
  line included), or None. A line must be thin and have little ink just inside it, so
  that the bar of a tightly cropped 7 is not mistaken for a frame.
  """
  band = _edge_band(length)
  thick = max(2, int(0.04 * length))
  found: list[int | None] = []
  for order in (np.arange(length), np.arange(length)[::-1]):
    cut = None
    if not (coverage[order[:band]] >= 0.6).any():  # The usual: no line near this end.
      found.append(None)
      continue
    i = 0
    while i < band:
      if coverage[order[i]] >= 0.6:
        j = i
        while j + 1 < length and coverage[order[j + 1]] >= 0.6:
          j += 1
        inside = coverage[order[j + 1:j + 3]]
        if j - i + 1 <= thick and (inside.size == 0 or inside.max() < 0.5):
          cut = j
        i = j + 1
      else:
        i += 1
    found.append(None if cut is None else int(order[cut]))
  return found[0], found[1]


def _line_counts(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """How many pixels are set in each row and in each column of ``mask``."""
  # Summed as bytes into 16-bit counts (a working image is at most _WORK_SIDE pixels across):
  # 3x as fast as count_nonzero.
  counts = mask.view(np.uint8)
  total = np.uint16 if max(mask.shape) < 2**16 else np.int64
  return counts.sum(axis=1, dtype=total), counts.sum(axis=0, dtype=total)


def _remove_frame(row_counts: np.ndarray, col_counts: np.ndarray) -> tuple[slice, slice]:
  """The region inside thin border lines (a screenshot's frame), as row and column slices,
  from a mask's _line_counts.

  Lines on two or more sides are a frame. A single line counts only if a clear gap
  separates it from the rest, as the bar of a 7 touching the crop is never separated.
  """
  h, w = row_counts.size, col_counts.size
  cov_r = row_counts / w  # Row and column coverage (fractions).
  cov_c = col_counts / h
  if all(cov[:band].max() < 0.6 and cov[-band:].max() < 0.6  # The usual: no line near any
         for cov, band in ((cov_r, _edge_band(h)), (cov_c, _edge_band(w)))):  # edge at all.
    return slice(0, h), slice(0, w)
  top, bottom = _edge_lines(cov_r, h)
  left, right = _edge_lines(cov_c, w)
  sides = [s is not None for s in (top, bottom, left, right)]
  if sum(sides) == 1:
    gap = max(2, int(0.03 * max(h, w)))
    if top is not None and cov_r[top + 1:top + 1 + gap].max(initial=0) > 0.02:
      top = None
    if bottom is not None and cov_r[max(0, bottom - gap):bottom].max(initial=0) > 0.02:
      bottom = None
    if left is not None and cov_c[left + 1:left + 1 + gap].max(initial=0) > 0.02:
      left = None
    if right is not None and cov_c[max(0, right - gap):right].max(initial=0) > 0.02:
      right = None
  r0 = 0 if top is None else top + 1
  r1 = h if bottom is None else bottom
  c0 = 0 if left is None else left + 1
  c1 = w if right is None else right
  if r1 - r0 < 3 or c1 - c0 < 3:
    return slice(0, h), slice(0, w)
  return slice(r0, r1), slice(c0, c1)


def _is_speck(area: float, long_side: int, side: int) -> bool:
  """Whether a piece of ink this small (pixels, and its box's long side) in an image whose
  long side is ``side`` is too small to be a digit."""
  return area < 12 or long_side < max(6, 0.025 * side)


def _select_digit(mask: np.ndarray,
                  side: int) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
  """Keeps the largest component and the pieces near it (broken strokes); drops specks.

  ``mask`` may be cut from an image whose long side is ``side`` (what specks are measured
  against). Returns the kept mask and its bounding box (top, bottom, left, right; ends
  exclusive).
  """
  (rows, starts, ends), labels, count = _components(mask)
  if count == 0:
    return None
  if count == 1:  # One piece (the usual): it is the digit, if it is no speck.
    right = int((ends - 1).max())
    left, top, bottom = int(starts.min()), int(rows[0]), int(rows[-1])  # Runs go by row.
    if _is_speck(int((ends - starts).sum()), max(bottom - top, right - left) + 1, side):
      return None
    return mask, (top, bottom + 1, left, right + 1)
  lengths = ends - starts
  area = np.bincount(labels, weights=lengths, minlength=count)
  top = np.full(count, mask.shape[0]); bottom = np.full(count, -1)
  left = np.full(count, mask.shape[1]); right = np.full(count, -1)
  np.minimum.at(top, labels, rows); np.maximum.at(bottom, labels, rows)
  np.minimum.at(left, labels, starts); np.maximum.at(right, labels, ends - 1)
  main = int(np.argmax(area))
  long_side = max(bottom[main] - top[main], right[main] - left[main]) + 1
  if _is_speck(area[main], long_side, side):
    return None
  kept = np.zeros(count, dtype=bool)
  kept[main] = True
  box = [top[main], bottom[main], left[main], right[main]]
  for _ in range(8):
    margin = 0.2 * max(box[1] - box[0], box[3] - box[2]) + 2
    near = ((top <= box[1] + margin) & (bottom >= box[0] - margin) &
            (left <= box[3] + margin) & (right >= box[2] - margin))
    add = near & ~kept & (area >= max(4.0, 0.02 * area[kept].sum()))
    if not add.any():
      break
    kept |= add
    box = [top[kept].min(), bottom[kept].max(), left[kept].min(), right[kept].max()]
  bounds = (int(box[0]), int(box[1]) + 1, int(box[2]), int(box[3]) + 1)
  if kept.all():  # Nothing to drop (the usual clean drawing): the runs paint the mask.
    return mask, bounds
  keep_runs = kept[labels]
  return _paint(mask.shape, rows[keep_runs], starts[keep_runs], ends[keep_runs]), bounds


def _dilate3(mask: np.ndarray) -> np.ndarray:
  """Binary dilation by a 3x3 square, as a row pass then a column pass."""
  padded = _pad(mask, 1)
  h, w = mask.shape
  rows = padded[:h] | padded[1:h + 1] | padded[2:h + 2]
  return rows[:, :w] | rows[:, 1:w + 1] | rows[:, 2:w + 2]


def _morph(x: np.ndarray, steps: int, op: Callable[..., np.ndarray]) -> np.ndarray:
  """Grey dilation (op=np.maximum) or erosion (np.minimum) by ``steps`` pixels.

  Alternating 3x3 squares and crosses approximate a disc, so diagonal strokes grow or
  shrink about as much as straight ones.
  """
  h, w = x.shape
  for i in range(steps):
    p = _pad(x, 1, edge=True)
    if i % 2 == 0:  # The square, separably: rows of three, then three of those side by side.
      rows = op(op(p[:h], p[1:h + 1]), p[2:])
      x = op(op(rows[:, :w], rows[:, 1:w + 1]), rows[:, 2:])
    else:  # The cross: the pixel and its four neighbours.
      x = op(op(op(x, p[:h, 1:w + 1]), p[2:, 1:w + 1]), op(p[1:h + 1, :w], p[1:h + 1, 2:]))
  return x


def _stroke_width(x: np.ndarray) -> float:
  """Mean stroke width in pixels: twice the area over the boundary length."""
  m = x > 0.5
  area = int(m.sum())
  if area == 0:
    return 0.0
  p = _pad(m, 1)
  interior = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
  boundary = area - int(interior.sum())
  return 2.0 * area / max(boundary, 1)


def _normalise_strokes(crop: np.ndarray) -> np.ndarray:
  """Brings the pen width near MNIST's (about 1/7 of the box) at 4x the final scale.

  A 1-px pencil line on a big canvas would otherwise shrink to a faint trace, and a marker
  to a blob; MNIST strokes are ~2.5-3 px in the 20 px box, i.e. ~11 px at 80.
  """
  h, w = crop.shape
  scale = _MID_SIDE / max(h, w)
  resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
  x = _resize_float(crop, round(w * scale), round(h * scale), resample)
  strong = x[x > 0.1]
  if strong.size:  # Resampling kept x >= 0.
    x = np.minimum(x / max(_percentile(strong, 90), 0.05), 1.0)
  width = _stroke_width(x)
  if 0 < width < 7:
    steps = min(6, round((10 - width) / 2))
    x = _morph(_pad(x, steps), steps, np.maximum)  # Room to grow by ``steps`` pixels.
  elif width > 15:
    x = _morph(_pad(x, 1), min(6, round((width - 12) / 2)), np.minimum)
  visible = x > 0.02
  ys, xs = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
  if ys.size == 0:
    return np.zeros((1, 1), np.float32)
  return x[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]


@functools.lru_cache(maxsize=1024)
def _lanczos_weights(size: int, out: int) -> np.ndarray:
  """(out, size): the weights of Pillow's LANCZOS resize from ``size`` to ``out`` pixels along
  one axis (its precompute_coeffs), read-only float32.

  A resize to the 20-pixel box is then two small matrix products, 9x faster than Pillow's
  resize of a float image and within 3e-7 of it.
  """
  scale = size / out
  stretch = max(scale, 1.0)  # Downscaling widens the kernel to cover every input pixel.
  support = 3.0 * stretch
  centre = (np.arange(out) + 0.5) * scale
  lo = np.maximum(np.trunc(centre - support + 0.5), 0)[:, None]
  hi = np.minimum(np.trunc(centre + support + 0.5), size)[:, None]
  x = np.arange(size)[None, :]
  t = (x - centre[:, None] + 0.5) / stretch
  w = np.sinc(t) * np.sinc(t / 3) * ((t >= -3) & (t < 3) & (x >= lo) & (x < hi))
  w /= w.sum(axis=1, keepdims=True)
  w = w.astype(np.float32)
  w.flags.writeable = False  # Shared between calls.
  return w


def _to_field(digit: np.ndarray) -> np.ndarray:
  """The MNIST recipe: fit the box into 20x20 (aspect kept), centre of mass at (14, 14)."""
  h, w = digit.shape
  scale = _BOX / max(h, w)
  nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
  patch = _lanczos_weights(h, nh) @ digit.astype(np.float32, copy=False) @ _lanczos_weights(w, nw).T
  np.clip(patch, 0.0, 1.0, out=patch)
  total = float(patch.sum())
  field = np.zeros((_FIELD, _FIELD), np.float32)
  if total <= 0:
    return field
  cy = float(patch.sum(axis=1) @ np.arange(nh)) / total
  cx = float(patch.sum(axis=0) @ np.arange(nw)) / total
  # Integer shifts as in MNIST (no resampling blur); clamped so nothing is cut off.
  top = min(max(round(_FIELD / 2 - cy), 0), _FIELD - nh)
  left = min(max(round(_FIELD / 2 - cx), 0), _FIELD - nw)
  field[top:top + nh, left:left + nw] = patch
  return field / float(field.max())


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
  factor = math.ceil(max(w, h) / _WORK_SIDE)
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


def to_mnist(image: Image.Image) -> np.ndarray | None:
  """Returns the digit as float32 (28, 28) in [0, 1] the way MNIST has it, or None.

  None means no digit: a blank, flat or noise-only image, or one too small to hold one.
  """
  image = _working_image(image)
  if min(image.size) < 3:
    return None
  ink = _ink_only(*_ink_and_paper(image))
  if ink is None:
    return None
  mask = ink.above(0.25)
  row_counts, col_counts = _line_counts(mask)
  rows, cols = _remove_frame(row_counts, col_counts)
  inside = None
  if (rows.stop - rows.start, cols.stop - cols.start) != mask.shape:  # A frame (rare).
    inside = np.zeros_like(mask)
    inside[rows, cols] = True
    mask &= inside
    row_counts, col_counts = _line_counts(mask)
  # Components are looked for within the ink's bounding box only: usually a fraction of it.
  ys, xs = np.flatnonzero(row_counts), np.flatnonzero(col_counts)
  if ys.size == 0:
    return None
  top, left = int(ys[0]), int(xs[0])
  selected = _select_digit(mask[top:ys[-1] + 1, left:xs[-1] + 1], max(mask.shape))
  if selected is None:
    return None
  keep, (r0, r1, c0, c1) = selected
  # One pixel of slack keeps the anti-aliased rims of the kept strokes.
  h, w = mask.shape
  r0, r1 = max(0, top + r0 - 1), min(h, top + r1 + 1)
  c0, c1 = max(0, left + c0 - 1), min(w, left + c1 + 1)
  window = (slice(r0, r1), slice(c0, c1))
  # keep, with the box's one-pixel surround (empty) around it, over the window.
  keep = _pad(keep, 1)[r0 - top + 1:r1 - top + 1, c0 - left + 1:c1 - left + 1]
  visible = _dilate3(keep)
  if inside is not None:
    visible &= inside[window]
  crop = ink.values(window)
  np.clip(crop, 0.0, 1.0, out=crop)
  crop *= visible
  return _to_field(_normalise_strokes(crop))


def preprocess_file(path: str | os.PathLike) -> np.ndarray:
  """open_image + to_mnist: float32 (28, 28) in [0, 1].

  Raises:
    InputNotFound, ImageError: see open_image.
    NoDigitFound: the image has nothing on it that looks like a digit.
  """
  # A draft decode for big JPEGs: to_mnist shrinks to _WORK_SIDE first thing anyway.
  field = to_mnist(_open(path, draft_side=_WORK_SIDE))
  if field is None:
    raise NoDigitFound(f"no digit found in {shown_path(path)}")
  return field


def save_preprocessed(array: np.ndarray, path: str | os.PathLike) -> None:
  """Writes a [0, 1] array (what the model saw) as an 8-bit greyscale PNG."""
  a = np.asarray(array, dtype=np.float32)
  if a.ndim != 2:
    raise ValueError(f"expected a 2-D array, got shape {a.shape}")
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  pixels = np.rint(np.clip(np.nan_to_num(a), 0.0, 1.0) * 255).astype(np.uint8)
  Image.fromarray(pixels, "L").save(path, "PNG")
