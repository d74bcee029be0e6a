"""The paper under the ink: polarity, lighting and shadows divided out, the sheet found.

    from mnist_flax.preprocess import paper
    page = paper.find_ink(lum)      # lum: float32 luminance in [0, 1] (see gray.luminance)
    page.ink                        # float32 (H, W): 0 on paper, ~1 on the darkest ink
    page.mask                       # bool (H, W): the ink, noise and the desk left out
    page is None                    # nothing stands out: a blank, flat or noise-only image

The steps, in order:

1. Polarity: ink is the minority that stands out from a smooth paper level, so the heavier tail
   of the residual after a large median filter (darker or lighter) is the ink; white chalk on a
   blackboard and a white-on-black screenshot are turned into dark ink on light paper.
2. Lighting: the paper's brightness is estimated by a grey closing (max then min filter) wider
   than any stroke, on a lightly smoothed copy, and divided out. Shadows, soft or hard-edged,
   and gradients are multiplicative, so the division evens them: a shadow's edge is a step in
   the paper level, which the closing keeps, so it never becomes ink.
3. Threshold with hysteresis: the noise level comes from the paper itself (median and MAD of the
   ink map); pixels well above it seed the ink, fainter ones join only when connected to a seed,
   so faint pencil is read and JPEG speckle is not.
4. The sheet: in a photo whose border shows the desk, the paper is the largest bright region of
   the background; ink outside it (the desk's texture, the sheet's own edge, a pen) is dropped.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

# The closing that estimates the paper is this fraction of the long side wide: wider than the
# thickest marker stroke of a digit that fills the frame (~1/8 of the side).
_CLOSING_FRACTION = 0.16
# The polarity's residual is measured on an image this small (long side): fast and plenty.
_POLARITY_SIDE = 160
# Ink must stand this many noise deviations above the paper to seed, and half that to join.
_SEED_SIGMAS = 6.0
_JOIN_SIGMAS = 3.0
# Whatever the noise, ink is at least this much darker than its paper (relative): faint pencil
# on white paper (225 on 245) is 0.08, JPEG ringing around printed text a few hundredths.
_MIN_SEED = 0.06
_MIN_JOIN = 0.035
# The paper is where the background is at least this fraction of the brightest paper: shadowed
# paper stays in (a shadow rarely takes more than half the light), a dark desk falls out.
_SHEET_LEVEL = 0.55


@dataclasses.dataclass(frozen=True)
class Page:
  """The ink of one image at working size: ``ink`` in [0, 1] and its binary ``mask``."""

  ink: np.ndarray
  mask: np.ndarray
  level: float  # The ink value at which the mask starts (the join threshold).


def _odd(n: float) -> int:
  return max(3, int(n) // 2 * 2 + 1)


def ink_is_dark(lum: np.ndarray) -> bool:
  """Whether the ink is darker than the paper, decided from the pixels alone."""
  factor = max(1, -(-max(lum.shape) // _POLARITY_SIDE))
  small = cv2.resize(lum, (max(1, lum.shape[1] // factor), max(1, lum.shape[0] // factor)),
                     interpolation=cv2.INTER_AREA) if factor > 1 else lum
  small8 = np.clip(small * 255 + 0.5, 0, 255).astype(np.uint8)
  k = _odd(max(small.shape) * 0.25)
  residual = small8.astype(np.float32) - cv2.medianBlur(small8, k).astype(np.float32)
  mad = float(np.median(np.abs(residual - np.median(residual))))
  t = max(3 * 1.4826 * mad, 8.0)
  dark = float(np.clip(-residual - t, 0, None).sum())
  light = float(np.clip(residual - t, 0, None).sum())
  if dark + light < 0.25 * residual.size:  # Nothing stands out: a blank page is blank.
    return float(np.median(small)) > 0.5
  return dark >= light


def _background(lum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The paper's brightness under dark ink, a grey closing wider than any stroke: at full size,
  and at the half size it is computed at (in 8 bits: 10x faster than float at full size)."""
  h, w = lum.shape
  half = (max(1, w // 2), max(1, h // 2))
  small = cv2.resize(lum, half, interpolation=cv2.INTER_AREA)
  small8 = np.clip(small * 255 + 0.5, 0, 255).astype(np.uint8)
  k = _odd(_CLOSING_FRACTION * max(half))
  kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
  closed = cv2.morphologyEx(small8, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
  # Smoothed within the closing's own scale: its rectangles' corners would print as faint ink.
  closed = cv2.blur(closed, (_odd(k / 4), _odd(k / 4)))
  full = cv2.resize(closed, (w, h), interpolation=cv2.INTER_LINEAR)
  return full.astype(np.float32) * np.float32(1 / 255), closed


def _sheet(background: np.ndarray) -> np.ndarray | None:
  """The sheet of paper where the photo shows the desk around it, else None (all paper)."""
  level = float(np.percentile(background[::2, ::2], 95))
  paper = (background >= _SHEET_LEVEL * level).astype(np.uint8)
  if paper.mean() > 0.97:
    return None
  count, labels, stats, _ = cv2.connectedComponentsWithStats(paper, connectivity=4)
  if count < 2:
    return None
  biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
  if stats[biggest, cv2.CC_STAT_AREA] < 0.15 * paper.size:
    return None  # No sheet stands out (a dark photo): better keep everything.
  sheet = (labels == biggest).astype(np.uint8)
  # Holes (ink blobs, a dark smudge) belong to the sheet; its rim (the edge's shading) does not.
  contours, _ = cv2.findContours(sheet, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
  filled = np.zeros_like(sheet)
  cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
  rim = _odd(0.01 * max(sheet.shape))
  return cv2.erode(filled, cv2.getStructuringElement(cv2.MORPH_RECT, (rim, rim))) > 0


def find_ink(lum: np.ndarray) -> Page | None:
  """The ink map and mask of a luminance image; None if nothing stands out from the paper."""
  if min(lum.shape) < 3:
    return None
  if not ink_is_dark(lum):
    lum = 1.0 - lum
  background, small = _background(lum)
  ink = 1.0 - lum / np.maximum(background, 1e-3)
  np.clip(ink, 0.0, 1.0, out=ink)
  sample = ink[::max(1, ink.shape[0] // 200), ::max(1, ink.shape[1] // 200)]
  centre = float(np.median(sample))
  sigma = 1.4826 * float(np.median(np.abs(sample - centre)))
  seed = centre + max(_SEED_SIGMAS * sigma, _MIN_SEED)
  join = centre + max(_JOIN_SIGMAS * sigma, _MIN_JOIN)
  weak = (ink > join).astype(np.uint8)
  count, labels, stats, _ = cv2.connectedComponentsWithStats(weak, connectivity=8)
  if count < 2:
    return None
  seeded = np.bincount(labels[ink > seed], minlength=count) > 0
  seeded[0] = False
  sheet = _sheet(small)
  if sheet is not None:
    sheet = cv2.resize(sheet.astype(np.uint8), lum.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    # A piece of ink counts only where most of it lies on the sheet.
    on_sheet = np.bincount(labels[sheet], minlength=count)
    seeded &= on_sheet >= 0.5 * stats[:, cv2.CC_STAT_AREA]
  if not seeded.any():
    return None
  mask = seeded[labels]
  # Stretch so the strong ink reaches 1: the normalised strokes then look like MNIST's.
  strokes = ink[mask]
  core = float(np.percentile(strokes[::max(1, strokes.size // 20_000)], 90))
  if core - centre < _MIN_SEED:
    return None
  ink = np.clip((ink - join) / max(core - join, 1e-3), 0.0, 1.0)
  return Page(ink=ink.astype(np.float32, copy=False), mask=mask, level=join)
