"""How thick the strokes of a binary ink mask are, ignoring a photo's grain and what touches the
picture's edge: the paper stage sizes the closing that estimates the paper under the ink by it
(too narrow, and a thick stroke is read hollow; too wide, and a shadow's band is read as ink).

    from mnist_flax.preprocess import strokes
    strokes.width(mask)    # mask: bool (H, W); a typical stroke width in pixels, 0.0 if unknown
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_flax.preprocess import fast
from mnist_flax.preprocess.digits import is_speck


def width(mask: np.ndarray) -> float:
  """A typical stroke width of the ink in ``mask``, in pixels: twice the distance to the
  nearest paper along the strokes' middles (where that distance peaks), at its 75th percentile,
  so that thin rules do not hide a marker's width, nor a blob a pen's. Ink that touches the
  picture's edge (a shadow band, the desk) is left out: a shadow across the picture has more
  middle than a digit, and its width would let the closing fill it in. When all ink touches it
  (a shadow whose edge crosses the digit joins its strokes to it), 0: the narrowest closing,
  parts of strokes too thick for it then found by paper._thick_strokes."""
  mask8 = mask.astype(np.uint8)
  _, labels, stats, _ = fast.connected_components(mask8, connectivity=8)
  x, y, w, h = (stats[:, i] for i in range(4))
  border = (x == 0) | (y == 0) | (x + w == mask.shape[1]) | (y + h == mask.shape[0])
  border[0] = True
  if border.all():
    return 0.0
  # Noise specks too, when there are strokes: a photo's grain leaves hundreds, each a ridge a
  # pixel or two wide, which halved a thick stroke's width and left the stroke hollow.
  side = max(mask.shape)
  strokes = ~border & ~np.array([is_speck(int(a), int(max(b, c)), side)
                                 for a, b, c in zip(stats[:, cv2.CC_STAT_AREA], w, h)])
  mask8 = np.take(strokes if strokes.any() else ~border, labels).astype(np.uint8)
  dist = cv2.distanceTransform(mask8, cv2.DIST_L2, 3)
  ridge = (dist > 0) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)) - 1e-3)
  values = dist[ridge]
  return 2.0 * fast.percentile(values, 75) if values.size else 0.0
