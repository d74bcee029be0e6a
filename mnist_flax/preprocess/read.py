"""Reading a person's image file safely: by content, first frame, upright, bounded in time.

    from mnist_flax.preprocess import read
    image = read.open_image("photo.jpg")                 # PIL image, EXIF orientation applied
    image = read.open_image("photo.jpg", draft_side=1000)  # big JPEGs decoded reduced

JPEG, PNG, GIF and BMP are read by content (never by extension), with a pixel limit checked
before any pixel is decoded; regular files only (a FIFO or device never blocks), at most
1 GiB, and reads that give up on a decoder crawling through junk or running past 3 s. Errors
are the project's (``InputNotFound``, ``ImageError``), one line naming the file.
"""

from __future__ import annotations

import errno
import io
import math
import os
import re
import stat
import time
import warnings
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from mnist_flax import errors
from mnist_flax.errors import ImageError, InputNotFound, shown_path

SUPPORTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
# Pillow calls multi-picture JPEGs (what many phone cameras write) "MPO"; they are JPEGs.
_FORMAT_ALIASES = {"MPO": "JPEG"}
# Checked on the header's size before decoding: 64 MP is a 9000x7000 photo; more is either a
# mistake or a decompression bomb, and a digit never needs it.
MAX_PIXELS = 64_000_000
# In the ``info`` of an image open_image decoded reduced (draft_side): the file's pixels per
# decoded pixel, the same along both sides (JPEG's DCT scaling is 1/2, 1/4 or 1/8).
DRAFT_SCALE = "mnist_flax_draft_scale"
# Pillow refuses a PNG whose text or colour-profile chunk inflates past 1 MB; phones and editors
# embed colour profiles of a few MB. Still bounded, so a zlib bomb in a chunk stays harmless.
PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, 16 << 20)


def one_line(text: object) -> str:
  """``errors.one_line``, never empty (a decoder may raise an exception with no message)."""
  return errors.one_line(text) or "unknown error"


# Leading bytes of the supported formats: how a file's format is told by content (infer
# picks a folder's images by them).
MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"GIF87a": "GIF", b"GIF89a": "GIF",
         b"BM": "BMP"}
# Leading bytes of formats people try, so a file no plugin accepts is named in the message
# (not BMP's: too many other files start with those two letters to name one by them).
_SIGNATURES = (*((magic, f"a damaged {fmt} file") for magic, fmt in MAGIC.items() if fmt != "BMP"),
               (b"%PDF", "a PDF document"))


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

  def __init__(self, raw: BinaryIO, shown: str, seconds: float | None = None,
               crawl: bool = True):
    self._raw = raw
    self._shown = shown
    self._seconds = _READ_SECONDS if seconds is None else seconds  # Read now: tunable.
    self._deadline = time.monotonic() + self._seconds
    self._reads = 0
    self._bytes = 0
    self._crawl = crawl  # Whether many tiny reads count as a crawl (see _CRAWL_READS).

  def _check(self) -> None:
    self._reads += 1
    if self._crawl and self._reads > _CRAWL_READS and self._bytes < _CRAWL_BYTES * self._reads:
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
  return ImageError(f"cannot read {shown}: {one_line(error.strerror or error)}")


def open_image(path: str | os.PathLike, draft_side: int | None = None) -> Image.Image:
  """Opens a JPEG, PNG, GIF or BMP by content and returns its first frame, upright.

  Never blocks (FIFOs and devices are refused before reading) and gives up on a file after
  a few seconds of reading, whatever its content. With ``draft_side``, colour JPEGs are
  decoded to luminance only, and big ones at a reduced scale (1/2 to 1/8) whose long side is
  still at least ``draft_side`` (the pipeline would shrink them to that anyway).

  Raises:
    InputNotFound: ``path`` does not exist (or is a broken symbolic link).
    ImageError: a directory, FIFO or device, unreadable, a symbolic link loop, another
      format (named in the message), larger than MAX_PIXELS, truncated or corrupt.
  """
  return _open(path, draft_side)


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
    # A file read whole (at most _WHOLE_FILE_BYTES) is parsed from memory: however small its
    # decoder's reads (a run-length BMP reads two bytes at a time), the time budget bounds it.
    budgeted = _BudgetedFile(f, shown, crawl=not isinstance(f, io.BytesIO))
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
      raise ImageError(f"cannot read {shown}: {one_line(e)}") from None
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
        if image.size[0] != w:  # Decoded reduced: boxes are given back in the file's pixels.
          image.info[DRAFT_SCALE] = w / image.size[0]
      except ImageError:
        raise
      except Exception as e:  # Truncated data raises OSError, others vary by plugin.
        raise ImageError(f"cannot decode {shown} (truncated or corrupt {fmt}): "
                         f"{one_line(e)}") from None
      if not _ORIENTATION_SOURCES.isdisjoint(image.info):
        try:
          # In place: a copy of a 64 MP image would double the peak memory. The pixels are
          # loaded, so leaving the with-block (which only drops the file) keeps them.
          ImageOps.exif_transpose(image, in_place=True)
        except Exception:  # A mangled EXIF block should not cost the picture.
          pass
      return image
