"""The light on a photographed sheet: exposure, colour cast, vignetting, gradients, shadows.

``illuminate`` makes the illumination of one photo on a reduced grid (``camera.photograph``
scales it up and multiplies the sheet by it): even, a gradient, a soft shadow, a hard-edged
shadow whose edge crosses the digit or passes beside it, or the shadow of the photographer's
hand (palm and fingers) or phone held above the page, over part of the digit or beside it
(``LIGHTS``); 1 is as lit as the paper's own colour, up to ``BRIGHTEST`` (overexposed).

    from mnist_flax.tools.samples.light import LIGHTS
    "shadow-hard-across" in LIGHTS   # True
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from mnist_flax.tools.samples.randomness import log_uniform, smooth

LIGHTS = ("even", "gradient", "shadow-soft", "shadow-hard-across", "shadow-hard-beside",
          "shadow-hand")
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


def _fill(mask: np.ndarray, points: np.ndarray | list[np.ndarray]) -> None:
  """A polygon (px, float) filled with 1 in ``mask``, anti-aliased at 8x sub-pixel."""
  cv2.fillPoly(mask, [np.round(np.asarray(points) * 8).astype(np.int32)], 1.0, cv2.LINE_AA, 3)


def _bar(mask: np.ndarray, start: np.ndarray, end: np.ndarray, width: float) -> None:
  """A bar ``width`` px wide with round ends (a finger) from ``start`` to ``end`` in ``mask``."""
  a, b = (tuple(int(v) for v in np.round(p * 8)) for p in (start, end))
  cv2.line(mask, a, b, 1.0, max(1, int(width)), cv2.LINE_AA, 3)


def _hand_shadow(rng: np.random.Generator, mask: np.ndarray, centre: np.ndarray, reach: float,
                 big: float) -> str:
  """Draws (1 inside, in ``mask``, 8x sub-pixel) a hand's or a phone's shadow coming in from
  beyond the frame, its far end over part of the digit (``centre``, ``reach``: its half
  diagonal, px) or beside it; returns which ("hand" or "phone", "over" or "beside")."""
  side = max(mask.shape)
  theta = rng.uniform(0, 2 * np.pi)
  d = np.array([np.cos(theta), np.sin(theta)])  # from the wrist towards the fingertips
  t = np.array([-d[1], d[0]])
  over = rng.random() < 0.6
  if over:  # the tips somewhere on the digit or just past it
    tip = centre + d * rng.uniform(-0.6, 1.0) * reach + t * rng.uniform(-0.6, 0.6) * reach
  elif rng.random() < 0.5:  # the tips stop short of the digit
    tip = centre - d * rng.uniform(1.4, 2.2) * reach + t * rng.uniform(-0.6, 0.6) * reach
  else:  # the hand passes to one side of the digit
    tip = (centre + d * rng.uniform(-0.5, 1.0) * reach
           + t * rng.choice([-1, 1]) * (rng.uniform(1.3, 2.0) * reach + 0.15 * side))
  if rng.random() < 0.3:  # a phone, its end square and the hand holding it behind
    half = rng.uniform(0.06, 0.14) * side
    back = tip - d * rng.uniform(3.5, 4.5) * half
    _fill(mask, [tip - t * half, tip + t * half, back + t * half, back - t * half])
    _fill(mask, [back - t * 0.7 * half, back + t * 0.7 * half, back + t * 0.5 * half - d * big,
                 back - t * 0.5 * half - d * big])
    return f"phone-{'over' if over else 'beside'}"
  finger = rng.uniform(0.035, 0.07) * side  # a finger's width
  length = rng.uniform(3.0, 4.5) * finger
  fan = np.radians(rng.uniform(0, 8))
  knuckles = tip - d * length
  for i, share in enumerate((0.8, 1.0, 0.95, 0.75)):
    # Some fingers curled under the palm (holding a pen or the phone).
    reach_i = share * length * (1.0 if rng.random() < 0.75 else 0.3)
    a = (i - 1.5) * fan
    way = np.cos(a) * d + np.sin(a) * t
    base = knuckles + t * (i - 1.5) * 1.05 * finger
    _bar(mask, base, base + way * reach_i, finger)
  palm = 2.2 * finger
  wrist = knuckles - d * 4.0 * finger
  _fill(mask, [knuckles - t * palm, knuckles + t * palm, wrist + t * palm, wrist - t * palm])
  _fill(mask, [wrist - t * 0.75 * palm, wrist + t * 0.75 * palm, wrist + t * 0.75 * palm - d * big,
               wrist - t * 0.75 * palm - d * big])
  if rng.random() < 0.6:  # the thumb, out to one side
    a = rng.choice([-1, 1]) * np.radians(rng.uniform(30, 60))
    start = knuckles - d * 2.5 * finger + t * np.sign(a) * palm
    _bar(mask, start, start + (np.cos(a) * d + np.sin(a) * t) * 0.8 * length, 1.1 * finger)
  return f"hand-{'over' if over else 'beside'}"


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
      _fill(mask, _shadow_polygon(rng, centre, reach, offset, big, True))
      sigma = rng.uniform(0.3, 1.0) * reach
      strength = rng.uniform(0.25, 0.5)
    elif kind == "shadow-hand":
      info["shadow_of"] = _hand_shadow(rng, mask, centre, reach, big)
      # A penumbra (10-90%, about 2.6 sigma) 0.5-4% of the photo's side: a hand held close to
      # the page casts a crisp shadow, one held high a soft one.
      sigma = max(0.6, log_uniform(rng, 0.002, 0.015) * max(h, w))
      strength = rng.uniform(0.25, 0.55)
    else:
      across = kind.endswith("across")
      offset = (rng.uniform(-0.5, 0.5) * reach if across
                else rng.choice([-1, 1]) * reach * rng.uniform(1.3, 2.2))
      _fill(mask, _shadow_polygon(rng, centre, reach, offset, big, across))
      sigma = max(0.6, rng.uniform(0.001, 0.005) * max(h, w))  # 0.1-0.5% of the photo
      strength = rng.uniform(0.3, 0.6)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.5, sigma))
    tint = np.array([1.06, 1.0, 0.9], np.float32)  # skylight fills shadows: a bit bluer
    light *= 1 - np.clip(strength * tint, 0, 0.95) * mask[..., None]
    info.update(shadow_strength=round(float(strength), 3),
                shadow_edge_px=round(float(sigma * k), 1))
  return np.clip(light, 0, BRIGHTEST), info

