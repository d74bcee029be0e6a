"""Turns a person's image file into the 28x28 arrays the MNIST model was trained on.

    from mnist_flax import preprocess
    x = preprocess.preprocess_file("test/3.jpg")          # float32 (28, 28); NoDigitFound if empty
    found = preprocess.read_digits("my_number.jpg")       # one Digit per digit, left to right
    found[0].field, found[0].box                          # (28, 28) array; box in the file's pixels
    preprocess.save_preprocessed(x, "out/3.png")          # what the model saw, as an 8-bit PNG

The stages, one module each, in the order the pixels go through them:

  read        the file, by content (JPEG, PNG, GIF, BMP), first frame, EXIF orientation, safely
  gray        any mode and size to one luminance array at the working size
  clean       a drawing, a scan, a screenshot: ink by a threshold (else, as a photo:)
  paper       polarity, lighting and shadows divided out, the sheet found, ink thresholded
  lines       ruled lines, grids and margins removed, crossing strokes kept
  frames      frames and boxes around the digit removed (a form's cells, a screenshot's border)
  digits      the digit, or the row of digits of a number (sheet: its rim off; cuts: where
              touching ones part)
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
from mnist_flax.preprocess import (clean, cuts, digits, fast, frames, gather, gray, lines,
                                   normalise, paper, plates, read, sheet)
from mnist_flax.preprocess.read import MAX_PIXELS, SUPPORTED_FORMATS, open_image

# Pieces replace their glyph only when at least this many times less likely wrong than it; a
# glyph narrower than two digits that touch (a "1" run into another) by far: the model reads
# the halves of an open 0 as a "1" and a "7" more surely than the 0 ("2026" read 21726).
_SPLIT_ODDS, _NARROW_SPLIT_ODDS = 1.5, 10.0
# Of the rows of pieces, the likeliest is chosen counting a piece wider than tall as less likely
# to the fourth power by as much: the model reads "00" as a 0 as surely as each 0 ("1000" read
# 100). Counted in that choice only, not against the glyph whole: a marker's wide 2 in a row
# that the glyph's tilt makes look short lost "2000" (read 2). On 3,273 pictures +3 -0, held
# out +3 -0 (0.9: the same; 0.8: +4 -1; counted against the glyph too, 1.0: +4 -1).
_PIECE_WIDEST = 1.0

__all__ = ["SUPPORTED_FORMATS", "MAX_PIXELS", "Digit", "open_image", "to_grayscale_ink",
           "to_digits", "choose", "to_mnist", "read_digits", "preprocess_file", "save_preprocessed"]


@dataclasses.dataclass(frozen=True)
class Digit:
  """One digit found in an image: what the model sees, and where it is in the image.

  ``split_of`` >= 0 marks a piece of the digit at that index, read as touching digits: the ink
  between its cut paths ``span`` (0 is the digit's left edge; the digit itself spans all of
  them); ``choose`` picks the pieces, or the digit itself. ``row`` 1 and on mark the digits of
  rival rows (see digits.find), read instead of row 0's where the model is surer of them.
  """

  field: np.ndarray  # float32 (28, 28) in [0, 1], MNIST's white ink on black.
  box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the (upright) image's pixels.
  split_of: int = -1
  span: tuple[int, int] = (0, 1)
  row: int = 0
  ringed: bool = False  # See digits.ringed: read as a digit, it is likely not one.


def to_grayscale_ink(image: Image.Image) -> np.ndarray:
  """Float32 (H, W) in [0, 1] at working size, the ink high and the paper low, whatever the
  polarity of the image (decided from its pixels, never from a flag)."""
  lum, _ = gray.luminance(image)
  return lum if not paper.ink_is_dark(lum) else 1.0 - lum


def to_digits(image: Image.Image, single: bool = False) -> list[Digit]:
  """The digits in ``image``, left to right ([] if none; at most one with ``single``), then
  rival rows' (see digits.find), then the pieces of those that may be touching digits."""
  lum, scale = gray.luminance(image)
  # Boxes in the file's pixels, also when the file was decoded reduced (a big JPEG's draft).
  drafted = image.info.get(read.DRAFT_SCALE, 1.0)
  scale *= drafted
  width, height = (round(side * drafted) for side in image.size)
  dx = dy = 0
  page = clean.find_ink(lum)
  drawn = page is not None
  if drawn:  # A drawing, a scan, a screenshot: no rules, plates or shadows.
    mask, components = frames.remove_frames(page.mask, drawn=True)
  else:
    page = paper.find_ink(lum)
    if page is None:
      return []
    plate, outlined = plates.find_plate(page.mask), False
    if plate is None and not paper.is_sheet_on_desk(lum):
      # Its ink joined to the wall's (mortar, a border): found by its outline. Not a sheet on
      # a desk, whose margin line, read on it as on a plate, was a 1 ("128" read 1128).
      plate = plates.find_outlined(lum)
      outlined = plate is not None
    if plate is not None:  # Read on the plate, as if it were the whole picture.
      (x0, y0, x1, y1), face = plate
      on_plate = paper.find_ink(lum[y0:y1, x0:x1], plate=face, outlined=outlined)
      if on_plate is not None:  # Else a blank plate-shaped patch: the picture is read.
        dx, dy, page = x0, y0, on_plate
    # A form's row of cells first, while its long sides hold it together: remove_rules takes
    # them for rules and left its walls, read as 1s ("1948" read 11191481; on 3,273 pictures
    # +4 -0, held out +5 -0; every box, not only rows of cells: +9 -11, ruled sheets' losses).
    cells, _ = frames.remove_frames(page.mask, cells_only=True)
    mask, components = frames.remove_frames(lines.remove_rules(cells))
    if page.lit is not None and sheet.on_grain(mask, page.lit):
      # Asked (again, where find_ink asked) once the rules are gone: a ruling inks the sheet's
      # blocks as a grain does, and the desk's pieces joined a ruled sheet's digits.
      labels, stats = components or fast.connected_components(mask, connectivity=8)[1:3]
      mask, components = sheet.off_desk(mask, labels, stats, page.lit), None
  out: list[Digit] = []

  def add(glyph: digits.Glyph, split_of: int, span: tuple[int, int], row: int) -> None:
    x0, y0, x1, y1 = glyph.box
    x0, x1, y0, y1 = x0 + dx, x1 + dx, y0 + dy, y1 + dy
    box = (int(x0 * scale), int(y0 * scale), min(width, round(x1 * scale)),
           min(height, round(y1 * scale)))
    out.append(Digit(normalise.to_field(page.ink, glyph), box, split_of, span, row,
                     glyph.ringed))

  glyphs = digits.find(mask, single=single, lit=page.lit, components=components, drawn=drawn)
  for glyph in glyphs:
    add(glyph, -1, (0, glyph.cuts + 1), glyph.row)
  # Every glyph before any piece: a caller keeping only the first few (reader_pool) loses
  # other ways to cut a glyph, never a digit.
  for whole, glyph in enumerate(glyphs):
    for a, b, piece in glyph.pieces:
      add(piece, whole, (a, b), glyph.row)
  return out


def choose(found: list[Digit], confidence: np.ndarray,
           digitness: np.ndarray | None = None, unsure_below: float = 1.0) -> list[int]:
  """Which of ``found`` make the answer, left to right, given the model's confidence in each
  (its top probability, calibrated): each glyph whole, or the likeliest row of its pieces from
  its left edge to its right one where that row is wrong at most 1/_SPLIT_ODDS as often (the
  model reads halves of one digit about as surely as the digit, so a tie is one digit; for a
  glyph narrower than cuts.TOUCHING_ASPECT, 1/_NARROW_SPLIT_ODDS).

  A row's likelihood is the product of its pieces' confidences, each piece shorter than
  digits.ROW_HEIGHT of its glyph counting as that much less likely to the fourth power: a digit
  is about as tall as its neighbours; a stroke's end cut off one is not, however sure the model
  is of what it looks like. Likewise the glyph itself counts as less likely one digit, to the
  fourth power, by how much it is wider than gather.WIDEST_DIGIT heights: the model reads two
  0s run together as a 0 about as surely as either of them. (Of the rows, the one taken is the
  likeliest with pieces wider than tall counted less likely too: see _PIECE_WIDEST.)

  Where ``found`` holds rival rows (``Digit.row`` 1 and on, see digits.find) and the model's
  sureness of row 0 is below ``unsure_below``, the answer is the row it is surest of. Sureness
  is the geometric mean, over the digits so chosen, of their confidence times their
  ``digitness`` (how surely each is a digit at all, default 1); row 0 wins a tie. A desk's
  blob, bricks or a label's letters read unsurely, and the number beside them surely. A digit
  read surely keeps the answer from rows of letters, boxes or rings read as 0s, 5s and 8s even
  more surely (a red team's 27 pictures, "6" beside "SOS" read 505).
  """
  pieces: dict[int, list[int]] = {}
  for j, digit in enumerate(found):
    if digit.split_of >= 0:
      pieces.setdefault(digit.split_of, []).append(j)
  chosen: dict[int, list[int]] = {}  # per row
  for i, digit in enumerate(found):
    if digit.split_of >= 0:
      continue
    height = max(digit.box[3] - digit.box[1], 1)
    # best[c]: the log-likelihood, the same with wide pieces counted less likely (which ranks
    # the rows) and the pieces of the best-ranked row from the left edge to cut c.
    best: dict[int, tuple[float, float, list[int]]] = {0: (0.0, 0.0, [])}
    for j in sorted(pieces.get(i, []), key=lambda j: found[j].span):
      a, b = found[j].span
      if a not in best:
        continue
      x0, y0, x1, y1 = found[j].box
      tall, aspect = (y1 - y0) / height, (x1 - x0) / max(y1 - y0, 1)
      likely = float(np.log(max(float(confidence[j]), 1e-12)))
      likely += 4 * min(0.0, float(np.log(max(tall, 1e-6) / digits.ROW_HEIGHT)))
      ranked = best[a][1] + likely + 4 * min(0.0, float(np.log(_PIECE_WIDEST / max(aspect, 1e-6))))
      if b not in best or ranked > best[b][1]:
        best[b] = (best[a][0] + likely, ranked, best[a][2] + [j])
    row = best.get(digit.span[1])
    wide = (digit.box[2] - digit.box[0]) / height
    whole = float(confidence[i]) * min(1.0, gather.WIDEST_DIGIT / wide) ** 4
    odds = _SPLIT_ODDS if wide >= cuts.TOUCHING_ASPECT else _NARROW_SPLIT_ODDS
    split = row is not None and odds * (1 - np.exp(row[0])) < 1 - whole
    chosen.setdefault(digit.row, []).extend(row[2] if split else [i])
  sure = np.asarray(confidence, np.float64) * (1.0 if digitness is None else digitness)
  sure = np.log(np.maximum(sure, 1e-12))
  rows = [indices for _, indices in sorted(chosen.items())]
  if len(rows) < 2 or float(np.exp(np.mean(sure[rows[0]]))) >= unsure_below:
    return rows[0] if rows else []
  return max(rows, key=lambda indices: float(np.mean(sure[indices])))


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
