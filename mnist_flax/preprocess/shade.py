"""Shadows cast on the page (a hand's fingers, a phone held above it) taken out of the ink.

A finger's shadow is a few percent of the picture wide, as wide as a marker's stroke, and 25-55%
darker than the lit paper: the paper's estimate (paper._background) cannot tell it from ink by
its width, so it is thresholded as ink with the digit. Pen, marker and most ballpoint ink are
much darker than that: where the picture holds such ink, the wide parts of the mask that are
clearly fainter than it and lie on paper are a shadow's, and are left out. Faint pencil is as
faint as a shadow, and a picture whose darkest ink is that faint is left as it is.

    from mnist_flax.preprocess import shade
    mask = shade.off_shadows(mask, ink)   # mask: bool (H, W); ink: float32 darkness in [0, 1]
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_flax.preprocess import fast, plates

# The ink's level is this percentile of the mask's darkness: the darkest strokes, however much
# of the mask a shadow takes.
_CORE_PERCENTILE = 98
# A shadow takes at most about 55% of the light; ink at least this dark is clearly not one.
_DARK_INK = 0.7
# Mask pixels fainter than this fraction of the ink's level may be a shadow's...
_FAINT = 0.7
# ... when they form a region at least this fraction of the long side wide (a finger is 3-7%;
# a stroke's anti-aliased rim and a faint stroke beside dark ones are narrower) ...
_WIDE = 0.02
# ... whose outline runs mostly (this fraction) over paper: a shadow's edge does; the paper
# inside a scribble or a loop, greyed by the blur, is ringed by ink.
_ON_PAPER = 0.5
# ... and at least this fraction of the picture large (a finger is 3-7% of the long side wide
# and three times as long; a hole between a scribble's strokes is smaller).
_AREA = 0.002
# A shadow's edge is a penumbra: its darkness ramps up over at least this fraction of the long
# side (the contrast over the steepest slope along its outline on paper); a marker's stroke,
# grey, coloured or running dry, ends within a pixel or two, however faint it is.
_PENUMBRA = 0.004
# A plate's digit is painted at least this many pixels inside its rim.
_RIM = 3


def off_shadows(mask: np.ndarray, ink: np.ndarray) -> np.ndarray:
  """``mask`` less a shadow's regions: at least _WIDE of the long side wide, darkness (``ink``,
  relative to the paper's estimate) under _FAINT of the ink's level (its _CORE_PERCENTILE)
  when that level is at least _DARK_INK, outlined by paper (see _ON_PAPER), edged by a
  penumbra (see _PENUMBRA), and not a plate's face (a plate is as solid and as much fainter
  than the digit painted on it; see plates.is_plate); and less the pieces, all as faint, that
  such a region leaves beside it.
  ``mask`` itself (not a copy) when nothing is left out."""
  values = ink[mask]
  if values.size == 0:
    return mask
  core = fast.percentile(values[::max(1, values.size // 20_000)], _CORE_PERCENTILE)
  if core < _DARK_INK:
    return mask
  faint = mask & (ink < np.float32(_FAINT * core))
  if np.count_nonzero(faint) < _AREA * mask.size:
    return mask
  # A disc _WIDE across fits only in a wide region: the centres of such discs (at least its
  # radius from the rest of the picture), grown back by a little more than it (a fingertip's
  # corners lie farther from the nearest centre than its sides), within their box.
  radius = max(1.0, 0.5 * _WIDE * max(mask.shape))
  depth = cv2.distanceTransform(faint.view(np.uint8), cv2.DIST_L2, 3)
  centres = (depth >= radius).view(np.uint8)
  x, y, w, h = cv2.boundingRect(centres)
  if w == 0:
    return mask
  grow = int(np.ceil(1.5 * radius)) + 1
  box = np.s_[max(0, y - grow):y + h + grow, max(0, x - grow):x + w + grow]
  near = cv2.distanceTransform(1 - centres[box], cv2.DIST_L2, 3) <= np.float32(1.5 * radius)
  wide = np.zeros_like(mask)
  wide[box] = near & faint[box]
  count, labels, stats, _ = fast.connected_components(wide, connectivity=8)
  # Each region's outline: the pixels just outside it (a dilated label is its neighbour's).
  grown = cv2.dilate(labels, np.ones((3, 3), np.uint8))
  ring = (grown > 0) & ~wide
  outline = np.bincount(grown[ring], minlength=count)
  paper = np.bincount(grown[ring & ~mask], minlength=count)
  shadow = paper >= _ON_PAPER * np.maximum(outline, 1)
  shadow &= stats[:, cv2.CC_STAT_AREA] >= _AREA * mask.size
  shadow[0] = False
  if not shadow.any():
    return mask
  for i in np.flatnonzero(shadow):
    shadow[i] = _edge_width(ink, mask, faint, labels, stats[i], i) >= _PENUMBRA * max(mask.shape)
  if not shadow.any():
    return mask
  # Whole pieces of the mask: a plate's face and its painted digit are one.
  _, piece_labels, piece_stats, _ = fast.connected_components(mask, connectivity=8)
  for i in np.flatnonzero(shadow):
    j = int(piece_labels[wide & (labels == i)][0])
    if _plate(piece_labels, piece_stats, j, faint):
      shadow[i] = False
  if not shadow.any():
    return mask
  wide = fast.gather(shadow, labels, stats)
  left = mask & ~wide
  # What is left of a shadow beside it (a fingertip's corner, a speck of its penumbra) is
  # faint all through: the pieces that touch it and hold no ink as dark as the cut go too.
  count, labels, stats, _ = fast.connected_components(left, connectivity=8)
  dark = np.bincount(labels[left & ~faint], minlength=count) > 0
  touching = cv2.dilate(wide.view(np.uint8), np.ones((5, 5), np.uint8)).view(bool) & left
  drop = (np.bincount(labels[touching], minlength=count) > 0) & ~dark
  drop[0] = False
  if drop.any():
    left &= ~fast.gather(drop, labels, stats)
  return left


def _plate(labels: np.ndarray, stats: np.ndarray, j: int, faint: np.ndarray) -> bool:
  """Whether piece ``j`` of the mask is a plate's face with a digit painted on it: a plate (see
  plates.is_plate), with its dark ink (not ``faint``) clear of its outline (a finger's shadow
  over a digit is as solid, but the digit's strokes run out of it)."""
  x, y, w, h, area = (int(v) for v in stats[j])
  if area < 0.01 * labels.size:
    return False
  part = labels[y:y + h, x:x + w] == j
  if not plates.is_plate(part, solid_ok=not fast.touches_edge(stats[j:j + 1], labels.shape)[0]):
    return False
  dark = part & ~faint[y:y + h, x:x + w]
  rim = np.ones((2 * _RIM + 1, 2 * _RIM + 1), np.uint8)
  near = cv2.erode(plates.filled(part).view(np.uint8), rim, borderValue=0) == 0
  # A few of its pixels may touch the rim where the JPEG's blur joins them to it.
  return bool(dark.any()) and np.count_nonzero(dark & near) < 0.05 * np.count_nonzero(dark)


def _edge_width(ink: np.ndarray, mask: np.ndarray, faint: np.ndarray, labels: np.ndarray,
                stat: np.ndarray, i: int) -> float:
  """How wide region ``i``'s edge is, in pixels, where it borders paper: its contrast (darkness
  inside less the paper's beside it) over the steepest tenth of the slope across its outline."""
  pad = 6
  x, y, w, h = (int(v) for v in stat[:4])
  box = np.s_[max(0, y - pad):y + h + pad, max(0, x - pad):x + w + pad]
  region = (labels[box] == i).view(np.uint8)
  sub = ink[box]
  kernel = np.ones((2 * pad + 1, 2 * pad + 1), np.uint8)
  near_dark = cv2.dilate((mask[box] & ~faint[box]).view(np.uint8), kernel).view(bool)
  band = (cv2.dilate(region, np.ones((5, 5), np.uint8)) > 0) & ~(
      cv2.erode(region, np.ones((5, 5), np.uint8)) > 0) & ~near_dark
  outside = (cv2.dilate(region, kernel) > 0) & ~mask[box] & ~near_dark
  if np.count_nonzero(band) < 10 or not outside.any():
    return float("inf")
  slope = cv2.magnitude(cv2.Sobel(sub, cv2.CV_32F, 1, 0), cv2.Sobel(sub, cv2.CV_32F, 0, 1))
  steep = fast.percentile(slope[band], 90) / 8  # A 3x3 Sobel is 8 times the slope.
  contrast = fast.median(sub[region.view(bool)]) - fast.median(sub[outside])
  return float(contrast / max(steep, 1e-6))
