"""One digit's ink to the 28x28 field the MNIST model was trained on.

    from mnist_flax.preprocess import normalise
    field = normalise.to_field(ink, glyph)   # float32 (28, 28) in [0, 1]

The model saw raw MNIST: white ink (high values) on black (0), the digit scaled so its bounding
box fits 20x20 (aspect kept), then placed so its centre of mass is at pixel (14, 14) of the 28x28
field. Before that, the pen's width is brought near MNIST's (about 1/7 of the box): a 1-px pencil
line on a big photo would otherwise shrink to a faint trace, and a marker to a blob.
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_flax.constants import IMAGE_SIZE
from mnist_flax.preprocess import fast
from mnist_flax.preprocess.digits import Glyph

BOX = 20  # MNIST's digit box inside the field.
_MID_SIDE = 80  # Digit box for stroke-width normalisation (4x BOX).
# MNIST strokes are ~2.5-3 px in the 20 px box, i.e. ~11 px at _MID_SIDE.
_THIN, _TARGET, _THICK = 7, 10, 15
# The level ink is scaled by is at most this many times its median: where a pencil digit
# crosses rules, the two inks add up to spots 4-8 times darker than the stroke, and scaled by
# them it stayed a faint trace ("0" read 1 at 0.05). An evenly inked glyph's level is 1.0-1.7
# times its median, as before. On 3,273 pictures: 2.0: +6 -3 (and 2 of 250 non-digits no
# longer "unsure"); 2.5: +5 -1; 3.0: +3 -0; scaling by the ink's 90th percentile below the
# cut instead: +6 -3 (3 non-digits).
_BRIGHTER = 2.5


def _stroke_width(x: np.ndarray) -> float:
  """Mean stroke width in pixels: twice the area over the boundary length."""
  m = (x > 0.5).view(np.uint8)
  area = cv2.countNonZero(m)
  if area == 0:
    return 0.0
  interior = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)),
                       borderType=cv2.BORDER_CONSTANT, borderValue=0)
  return 2.0 * area / max(area - cv2.countNonZero(interior), 1)


def _disc(steps: int) -> np.ndarray:
  return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * steps + 1, 2 * steps + 1))


def _normalise_strokes(crop: np.ndarray) -> np.ndarray:
  """``crop`` at _MID_SIDE on its long side, with MNIST's pen width, trimmed to its ink."""
  h, w = crop.shape
  scale = _MID_SIDE / max(h, w)
  size = (max(1, round(w * scale)), max(1, round(h * scale)))
  x = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
  # Brought to full strength by its own ink, however faint on the page: a pencil digit in a
  # form whose printed lines set the page's ink scale may peak at a twentieth of it. Its own
  # ink's level is not set by a few spots far darker than most of it (see _BRIGHTER).
  strong = x[x > 0.1 * float(x.max(initial=0.0))]
  if strong.size:
    level = min(fast.percentile(strong, 90), _BRIGHTER * fast.median(strong))
    x = np.minimum(x / max(level, 1e-3), 1.0)
  width = _stroke_width(x)
  if 0 < width < _THIN:
    steps = min(6, round((_TARGET - width) / 2))
    x = cv2.dilate(cv2.copyMakeBorder(x, *[steps] * 4, cv2.BORDER_CONSTANT, value=0), _disc(steps))
  elif width > _THICK:
    x = cv2.erode(x, _disc(min(6, round((width - 12) / 2))))
  left, top, wide, high = cv2.boundingRect((x > 0.02).view(np.uint8))  # The visible ink's box.
  if wide == 0:
    return np.zeros((1, 1), np.float32)
  return x[top:top + high, left:left + wide]


def _centre(digit: np.ndarray) -> np.ndarray:
  """The MNIST recipe: fit the box into 20x20 (aspect kept), centre of mass at (14, 14)."""
  h, w = digit.shape
  scale = BOX / max(h, w)
  nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
  patch = np.clip(cv2.resize(digit, (nw, nh), interpolation=cv2.INTER_AREA), 0.0, 1.0)
  field = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
  total = float(patch.sum())
  if total <= 0:
    return field
  cy = float(patch.sum(axis=1) @ np.arange(nh)) / total
  cx = float(patch.sum(axis=0) @ np.arange(nw)) / total
  # Integer shifts as in MNIST (no resampling blur); clamped so nothing is cut off.
  top = min(max(round(IMAGE_SIZE / 2 - cy), 0), IMAGE_SIZE - nh)
  left = min(max(round(IMAGE_SIZE / 2 - cx), 0), IMAGE_SIZE - nw)
  field[top:top + nh, left:left + nw] = patch
  return field / float(field.max())


def to_field(ink: np.ndarray, glyph: Glyph) -> np.ndarray:
  """The glyph's ink (``ink`` is the whole page's map, in [0, 1]) as float32 (28, 28)."""
  x0, y0, x1, y1 = glyph.box
  # One pixel of slack keeps the anti-aliased rims of the glyph's strokes.
  H, W = ink.shape
  a0, b0, a1, b1 = max(0, y0 - 1), max(0, x0 - 1), min(H, y1 + 1), min(W, x1 + 1)
  keep = np.zeros((a1 - a0, b1 - b0), np.uint8)
  keep[y0 - a0:y0 - a0 + glyph.mask.shape[0], x0 - b0:x0 - b0 + glyph.mask.shape[1]] = glyph.mask
  visible = cv2.dilate(keep, np.ones((3, 3), np.uint8))
  crop = ink[a0:a1, b0:b1] * visible
  return _centre(_normalise_strokes(crop.astype(np.float32, copy=False)))
