"""The light on a photographed sheet: exposure, colour cast, vignetting, gradients, shadows.

``illuminate`` makes the illumination of one photo on a reduced grid (``camera.photograph``
scales it up and multiplies the sheet by it): even, a gradient, a soft shadow, or a hard-edged
shadow whose edge crosses the digit or passes beside it (``LIGHTS``); 1 is as lit as the
paper's own colour, up to ``BRIGHTEST`` (overexposed).

    from mnist_flax.tools.samples.light import LIGHTS
    "shadow-hard-across" in LIGHTS   # True
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from mnist_flax.tools.samples.randomness import smooth

LIGHTS = ("even", "gradient", "shadow-soft", "shadow-hard-across", "shadow-hard-beside")
BRIGHTEST = 1.2  # light can lift the paper's colour this much (overexposure)


def _shadow_polygon(rng: np.random.Generator, centre: np.ndarray, reach: float,
                    offset: float, big: float, across: bool) -> np.ndarray:
  """A shadow whose edge passes ``offset`` px from ``centre`` (px, frame), the shadow on the
  far side when ``offset`` > 0 (the digit in the light), the near side when < 0.

  ``reach``: the digit's half diagonal. Shapes: a half plane (a hand or a phone held to one
  side), a band (a pen, a pole) or a corner. ``across``: only the edge at ``offset`` comes
  near the digit (a band lies beyond it, a corner's second edge stays clear of it).
  """
  theta = rng.uniform(0, 2 * np.pi)
  n = np.array([np.cos(theta), np.sin(theta)])  # points into the shadow
  t = np.array([-n[1], n[0]])
  p = centre + n * offset
  shape = rng.choice(["half", "band", "corner"], p=[0.6, 0.2, 0.2])
  if shape == "band":
    width = rng.uniform(0.6, 2.0) * reach
    if not across:
      p = centre + n * abs(offset)  # the band beside the digit, not over it
    return np.array([p - t * big, p + t * big, p + t * big + n * width, p - t * big + n * width])
  if shape == "corner":  # edge 1 runs from the corner q along -t, past the digit
    q = p + t * (rng.uniform(0.6, 1.5) if across else rng.uniform(1.3, 2.0)) * reach
    turn = rng.uniform(0.3, 1.2)
    d2 = np.cos(turn) * n + np.sin(turn) * t  # edge 2 turns away from the digit
    return np.array([q - t * big, q, q + d2 * big, q - t * big + n * big])
  return np.array([p - t * big, p + t * big, p + t * big + n * big, p - t * big + n * big])


def illuminate(rng: np.random.Generator, kind: str, shape: tuple[int, int], k: float,
               digit_box: np.ndarray, sheet_low: np.ndarray) -> tuple[np.ndarray, dict]:
  """Illumination on the reduced grid (1 px = ``k`` frame px): float32 (h, w, 3), 1 = as lit
  as the paper's own colour, up to ``BRIGHTEST`` (overexposed)."""
  h, w = shape
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  info: dict[str, Any] = {"light": kind}
  exposure = rng.uniform(0.85, 1.08)  # white paper comes out ~190-255
  cast = np.array([(1.0, 1.0, 1.0), (1.0, 0.96, 0.88), (0.94, 0.97, 1.0),
                   (1.0, 0.98, 0.95)][rng.integers(4)], np.float32)
  r2 = ((x - w / 2) ** 2 + (y - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
  field = 1 - rng.uniform(0.0, 0.25) * r2
  theta = rng.uniform(0, 2 * np.pi)
  ramp = ((x - w / 2) * np.cos(theta) + (y - h / 2) * np.sin(theta)) / (0.5 * np.hypot(w, h))
  amount = rng.uniform(0.2, 0.5) if kind == "gradient" else rng.uniform(0.0, 0.1)
  field *= 1 - amount * (ramp + 1) / 2
  field *= 1 + 0.03 * (smooth(rng, shape, 8) - 0.5)  # paper and light never quite even
  # The sheet's own shadow on the desk, a thin dark rim outside its edge.
  rim = cv2.GaussianBlur(sheet_low, (0, 0), max(0.8, 0.004 * max(h, w)))
  rim = np.roll(rim, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), (0, 1))
  field *= 1 - 0.35 * rim * (1 - sheet_low)
  light = field[..., None] * exposure * cast
  if kind.startswith("shadow"):
    box = digit_box / k
    centre = box.mean(axis=0)
    reach = np.hypot(np.ptp(box[:, 0]), np.ptp(box[:, 1])) / 2
    mask = np.zeros(shape, np.float32)
    big = 4.0 * max(h, w)
    if kind == "shadow-soft":
      offset = rng.uniform(-1.0, 1.5) * reach
      poly = _shadow_polygon(rng, centre, reach, offset, big, True)
      sigma = rng.uniform(0.3, 1.0) * reach
      strength = rng.uniform(0.25, 0.5)
    else:
      across = kind.endswith("across")
      offset = (rng.uniform(-0.5, 0.5) * reach if across
                else rng.choice([-1, 1]) * reach * rng.uniform(1.3, 2.2))
      poly = _shadow_polygon(rng, centre, reach, offset, big, across)
      sigma = max(0.6, rng.uniform(0.001, 0.005) * max(h, w))  # 0.1-0.5% of the photo
      strength = rng.uniform(0.3, 0.6)
    cv2.fillPoly(mask, [np.round(poly * 8).astype(np.int32)], 1.0, cv2.LINE_AA, 3)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.5, sigma))
    tint = np.array([1.06, 1.0, 0.9], np.float32)  # skylight fills shadows: a bit bluer
    light *= 1 - np.clip(strength * tint, 0, 0.95) * mask[..., None]
    info.update(shadow_strength=round(float(strength), 3),
                shadow_edge_px=round(float(sigma * k), 1))
  return np.clip(light, 0, BRIGHTEST), info

