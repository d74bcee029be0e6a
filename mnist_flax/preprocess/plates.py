"""What a plate, a card or a form's cell looks like: shape tests on regions of a mask.

    from mnist_flax.preprocess import plates
    plates.is_plate(part)        # part: bool (h, w), a region's pixels within its box
    plates.filled(part)          # the region with everything inside its outline
    plates.holds_ink(labels, stats, i), plates.cell_beside(stats[i], stats[j])

Used by paper.ink_is_dark (a dark plate on a light wall is no ink) and paper.find_plate (the
plate a digit is painted on, read inside; a form's cells are not plates).
"""

from __future__ import annotations

import cv2
import numpy as np

# A plate is solid: its thickest part is at least this fraction of its short side.
_PLATE_DEPTH = 0.25


def is_plate(part: np.ndarray, solid_ok: bool = False) -> bool:
  """Whether a region (its pixels within its box) is a plate or a card with something painted
  on it: its outline a quadrilateral (seen in perspective; a thick 0 or 8 is rounder), mostly
  solid, with holes (the painted digit, a painted frame) of at least a twentieth of it; or,
  with ``solid_ok``, none (a light plate painted darker than itself is one region of ink)."""
  part8 = part.astype(np.uint8)
  contours, _ = cv2.findContours(part8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
  outline = max(contours, key=cv2.contourArea)
  hull = cv2.convexHull(outline)
  corners = cv2.approxPolyDP(hull, 0.03 * cv2.arcLength(hull, True), True)
  within = np.zeros_like(part8)
  cv2.drawContours(within, [outline], -1, 1, thickness=cv2.FILLED)
  inside = float(within.sum())
  solid = float((part8 & within).sum())
  if not (4 <= len(corners) <= 5 and inside >= 0.9 * cv2.contourArea(hull)
          and 0.35 * inside <= solid <= (inside if solid_ok else 0.95 * inside)):
    return False
  # Solid as a plate is (a thick 0 or 8 is only a stroke wide anywhere): somewhere more than
  # a third of its short side from any hole or edge.
  depth = 2.0 * float(cv2.distanceTransform(part8, cv2.DIST_L2, 3).max())
  return depth >= _PLATE_DEPTH * min(part.shape)


def filled(part: np.ndarray) -> np.ndarray:
  """A region (its pixels within its box) with everything inside its outer outline."""
  out = np.zeros(part.shape, np.uint8)
  contours, _ = cv2.findContours(part.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
  cv2.drawContours(out, contours, -1, 1, thickness=cv2.FILLED)
  return out > 0


def holds_ink(labels: np.ndarray, stats: np.ndarray, i: int) -> bool:
  """Whether region i (of ``labels``, stats x, y, w, h) lacks two hundredths of its convex
  hull: a cell with something written in it (inside, or touching its walls), not a blank
  brick."""
  x, y, w, h = (int(v) for v in stats[:4])
  part = (labels[y:y + h, x:x + w] == i).astype(np.uint8)
  contours, _ = cv2.findContours(part, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
  hull = cv2.convexHull(np.concatenate(contours))
  return cv2.contourArea(hull) - int(part.sum()) >= 0.02 * cv2.contourArea(hull)


def cell_beside(a: np.ndarray, b: np.ndarray) -> bool:
  """Whether two regions' stats (x, y, w, h, area) are alike in size and side by side, or one
  above the other, a line's width apart: neighbouring cells of one grid."""
  (ax, ay, aw, ah, aa), (bx, by, bw, bh, ba) = (a[:5], b[:5])
  gap_x = max(bx - (ax + aw), ax - (bx + bw))
  gap_y = max(by - (ay + ah), ay - (by + bh))
  near = 0.25 * min(aw, ah, bw, bh)
  # Not one inside the other (a plate's inner panel within its rim): neither holds the other's
  # centre.
  apart = not (ax <= bx + bw / 2 <= ax + aw and ay <= by + bh / 2 <= ay + ah) and not (
      bx <= ax + aw / 2 <= bx + bw and by <= ay + ah / 2 <= by + bh)
  return bool(apart and 0.5 <= aa / max(ba, 1) <= 2.0 and gap_x <= near and gap_y <= near)
