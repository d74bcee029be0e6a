"""Photographs a scene the way a phone does: the camera, its optics and sensor, the JPEG.

``photograph`` puts a pinhole camera above a ``paper.Scene`` (rolled and tilted, so the sheet
is rotated and in perspective), lights it (``light.illuminate``), and adds what a phone adds:
optical blur, a hand's shake, sharpening, sensor noise, JPEG, sometimes EXIF orientation.
``frame_size`` draws a phone's photo size (``FRAMES``, 1.2 to 12 MP).

Everything is drawn straight into the frame with OpenCV (the sheet's outline and rulings
through the camera's homography; ink on a small raster aligned with the sheet, warped into
place); lighting, desk texture and noise are made on a reduced grid and scaled up, so a
12 MP photo takes a fraction of a second.

    shot = camera.photograph(scene, rng, size=(1600, 1200), fraction=0.2, light="even")
    shot.jpeg, shot.info["boxes"]   # the file, each digit's box in the photo's pixels
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import cv2
import numpy as np
from PIL import Image

from mnist_flax.tools.samples.light import BRIGHTEST, LIGHTS, illuminate
from mnist_flax.tools.samples.marks import Box, rasterize
from mnist_flax.tools.samples.paper import Layer, Scene, background
from mnist_flax.tools.samples.randomness import smooth

# Phone photo sizes (landscape; portrait is the same turned), 1.2 to 12 MP.
FRAMES = ((1280, 960), (1600, 1200), (1920, 1080), (2048, 1536), (2592, 1944), (3264, 2448),
          (4000, 3000))


@dataclasses.dataclass
class Shot:
  jpeg: bytes
  info: dict[str, Any]  # the camera and light as drawn, and each digit's box in pixels


def frame_size(rng: np.random.Generator, portrait: bool | None = None) -> tuple[int, int]:
  """A phone photo size: a common sensor mode, sometimes cropped, portrait half the time."""
  w, h = FRAMES[rng.integers(len(FRAMES))]
  if rng.random() < 0.15:  # Cropped in the gallery app, still about a megapixel or more.
    w, h = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
    while w * h < 900_000:
      w, h = int(w * 1.1), int(h * 1.1)
  if rng.random() < 0.5 if portrait is None else portrait:
    w, h = h, w
  return w, h


def visible_half(size: tuple[int, int], scale: float) -> tuple[float, float]:
  """Half the sheet area the camera sees (mm), before tilt, at ``scale`` px/mm."""
  return size[0] / 2 / scale, size[1] / 2 / scale


def _project(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
  p = np.column_stack([pts, np.ones(len(pts))]) @ m.T
  return p[:, :2] / p[:, 2:]


def _box_corners(box: Box) -> np.ndarray:
  x0, y0, x1, y1 = box
  return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], np.float64)


def _camera(size: tuple[int, int], scale: float, focus: tuple[float, float], roll: float,
            pitch: float, yaw: float) -> np.ndarray:
  """Homography from sheet mm to pixels: a pinhole camera (26 mm-like lens) looking at the
  focus, rolled and tilted by the angles (radians); the focus lands on pixel (0, 0)."""
  f = 0.8 * max(size)
  cr, sr, cp, sp, cy, sy = (np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch),
                            np.cos(yaw), np.sin(yaw))
  rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
  rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
  ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
  r = rz @ rx @ ry
  distance = f / scale
  m = np.diag([f, f, 1.0]) @ np.column_stack([r[:, 0], r[:, 1], [0, 0, distance]])
  m = m @ np.array([[1, 0, -focus[0]], [0, 1, -focus[1]], [0, 0, 1]])
  return m / m[2, 2]


def _ink(layer: Layer, cover: np.ndarray, rng: np.random.Generator,
         scale: float) -> np.ndarray:
  """How a pen deposits ink: ballpoint pressure and skips, pencil grain; uint8 coverage."""
  if layer.texture == "solid" or not cover.any():
    return cover
  h, w = cover.shape
  c = cover.astype(np.float32)
  if layer.texture == "pencil":
    cell = max(1, int(round(0.1 * scale)))  # graphite catches on the paper's tooth
    grain = rng.random((h // cell + 1, w // cell + 1), np.float32)
    grain = cv2.resize(grain, (w, h), interpolation=cv2.INTER_LINEAR)
    c *= (0.2 + 0.8 * grain ** 0.8) * (0.75 + 0.25 * smooth(rng, (h, w), 6))
  elif layer.texture == "ballpoint":
    c *= 0.6 + 0.4 * smooth(rng, (h, w), max(3, int(max(h, w) / scale / 3)))
  elif layer.texture == "marker":
    c *= 0.9 + 0.1 * smooth(rng, (h, w), 5)
  return np.clip(c, 0, 255).astype(np.uint8)


def _blend(frame: np.ndarray, cover: np.ndarray, x: int, y: int, layer: Layer) -> None:
  """Puts a layer's ink into the frame region at (x, y), in place."""
  h, w = cover.shape
  region = frame[y:y + h, x:x + w]
  if layer.paint:
    a = cover.astype(np.float32)[..., None] / 255
    region[:] = np.clip(region * (1 - a) + np.array(layer.colour, np.float32) * a, 0, 255)
    return
  # Ink filters the light: transmittance per channel from the coverage, via lookup tables.
  v = np.arange(256, dtype=np.float32)[:, None]
  lut = np.clip(np.rint(255 - v * (255 - np.array(layer.colour, np.float32)) / 255), 0,
                255).astype(np.uint8)
  trans = cv2.LUT(cv2.merge([cover] * 3), lut.reshape(256, 1, 3))
  region[:] = cv2.multiply(region, trans, scale=1 / 255)


def photograph(scene: Scene, rng: np.random.Generator, *, size: tuple[int, int],
               fraction: float, light: str, roll: float | None = None,
               tilt: float | None = None, quality: int | None = None, blur: float | None = None,
               noise: float | None = None, exif: bool = False) -> Shot:
  """Takes a phone photo of ``scene``; returns the JPEG and what was drawn.

  Args:
    size: (width, height) of the photo as displayed.
    fraction: the digit height as a fraction of the photo's shorter side (0.1-0.4 typical).
    light: one of LIGHTS.
    roll: in-plane rotation of the sheet, degrees (random within +-12 if None).
    tilt: out-of-plane camera tilt, degrees (random up to 12 if None): perspective.
    quality: JPEG quality (random 50-90 if None).
    blur: Gaussian blur sigma in the photo's pixels; noise: sensor noise sigma in levels
      (before JPEG); random if None.
    exif: store the pixels turned, with EXIF orientation 6 (as phones store portraits).
  """
  if light not in LIGHTS:
    raise ValueError(f"light must be one of {LIGHTS}, got {light!r}")
  out_w, out_h = size
  # Big photos are drawn at about 2 MP and scaled up at the end: a 12 MP phone photo holds
  # no finer detail than that (its optics and denoising blur more than a pixel) and this
  # keeps every step cheap. ``r`` is drawn size / photo size.
  r = min(1.0, 2100 / max(size))
  w, h = (round(out_w * r), round(out_h * r)) if r < 1 else size
  roll = rng.uniform(-12, 12) if roll is None else roll
  tilt = rng.uniform(0, 12) if tilt is None else tilt
  quality = int(rng.integers(50, 91)) if quality is None else quality
  direction = rng.uniform(0, 2 * np.pi)
  angles = (np.radians(roll), np.radians(tilt) * np.cos(direction),
            np.radians(tilt) * np.sin(direction))
  subject = _box_corners(scene.subject)
  digit_boxes = [d.box() for d in scene.digits]
  digit_height = float(np.mean([b[3] - b[1] for b in digit_boxes]))
  scale = fraction * min(w, h) / digit_height
  margin = 0.04 * np.array([w, h])
  cam = None
  if scene.focus is not None:  # aimed where the scene asks, if the subject is then in view
    cam = _camera((w, h), scale, scene.focus, *angles)
    cam = np.array([[1, 0, w / 2], [0, 1, h / 2], [0, 0, 1]]) @ cam
    pts = _project(cam, subject)
    if (pts.min(axis=0) < margin).any() or (pts.max(axis=0) > [w, h] - margin).any():
      cam = None
  if cam is None:
    focus = tuple(subject.mean(axis=0))
    for _ in range(30):  # Zoom out until the subject fits with a margin.
      cam = _camera((w, h), scale, focus, *angles)
      pts = _project(cam, subject)
      lo, hi = pts.min(axis=0), pts.max(axis=0)
      room = np.array([w, h]) - 2 * margin - (hi - lo)
      if (room > 0).all():
        break
      scale *= 0.9
    shift = margin - lo + np.maximum(room, 0) * rng.beta(2.5, 2.5, 2)
    cam = np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1]]) @ cam
  outline = _project(cam, scene.outline)
  corners = np.array([(0, 0), (w - 1, 0), (w - 1, h - 1), (0, h - 1)], np.float32)
  contour = outline.astype(np.float32).reshape(-1, 1, 2)
  desk = any(cv2.pointPolygonTest(contour, tuple(map(float, c)), False) < 0 for c in corners)

  # Reduced grid for everything smooth: light, shadows, desk texture.
  k = max(1.0, max(w, h) / 700)
  low = (int(np.ceil(h / k)), int(np.ceil(w / k)))
  sheet_low = np.zeros(low, np.float32)
  cv2.fillPoly(sheet_low, [np.round(outline / k * 8).astype(np.int32)], 1.0, cv2.LINE_AA, 3)
  digit_px = _project(cam, np.vstack([_box_corners(b) for b in digit_boxes]))
  lighting, info = illuminate(rng, light, low, k, digit_px, sheet_low)

  # Albedo: desk, sheet, rulings, ink.
  if desk:
    back = background(scene.background, rng, low, scale / k, np.radians(roll))
    frame = cv2.resize(back.astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    cv2.fillPoly(frame, [np.round(outline * 8).astype(np.int32)], scene.paper, cv2.LINE_AA, 3)
  else:
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = scene.paper
  for ruling in scene.rulings:
    a, b = _project(cam, np.array([ruling.start, ruling.end]))
    px = ruling.width * scale
    colour = ruling.colour
    if px < 1:  # thinner than a pixel: a lighter one-pixel line
      colour = tuple(int(p + (c - p) * px) for p, c in zip(scene.paper, ruling.colour))
    cv2.line(frame, tuple(np.round(a * 8).astype(int).tolist()),
             tuple(np.round(b * 8).astype(int).tolist()), colour, max(1, int(round(px))),
             cv2.LINE_AA, 3)
  for layer in scene.layers:
    box = layer.marks.box()
    box = (box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1)
    local = scale * 1.25
    while (box[2] - box[0]) * local * (box[3] - box[1]) * local > 8e6:
      local *= 0.8
    cover = _ink(layer, rasterize(layer.marks, box, local), rng, local)
    pts = _project(cam, _box_corners(box))
    x0, y0 = np.maximum(np.floor(pts.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(pts.max(axis=0)).astype(int) + 1, [w, h])
    if x1 <= x0 or y1 <= y0:
      continue
    to_mm = np.array([[1 / local, 0, box[0]], [0, 1 / local, box[1]], [0, 0, 1]])
    m = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]]) @ cam @ to_mm
    warped = cv2.warpPerspective(cover, m, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    _blend(frame, warped, int(x0), int(y0), layer)

  # Light, optics, sensor.
  light_u8 = np.clip(np.rint(lighting * (255 / BRIGHTEST)), 0, 255).astype(np.uint8)
  frame = cv2.multiply(frame, cv2.resize(light_u8, (w, h), interpolation=cv2.INTER_LINEAR),
                       scale=BRIGHTEST / 255)
  res = max(1.0, max(w, h) / 1600)
  if blur is None:
    blur = rng.uniform(0.35, 0.9) * res * (2.2 if rng.random() < 0.12 else 1) / r
  frame = cv2.GaussianBlur(frame, (0, 0), max(0.3, blur * r))
  shake = rng.uniform(2, 6) * res if rng.random() < 0.1 else 0.0  # the hand moved
  if shake:
    n = int(np.ceil(shake)) | 1
    kernel = np.zeros((n, n), np.float32)
    a = rng.uniform(0, np.pi)
    c = (n - 1) / 2
    cv2.line(kernel, (round(c - c * np.cos(a)), round(c - c * np.sin(a))),
             (round(c + c * np.cos(a)), round(c + c * np.sin(a))), 1.0, 1, cv2.LINE_AA)
    frame = cv2.filter2D(frame, -1, kernel / kernel.sum())
  if rng.random() < 0.5:  # the phone's sharpening, with its halos
    amount = rng.uniform(0.3, 0.9)
    frame = cv2.addWeighted(frame, 1 + amount, cv2.GaussianBlur(frame, (0, 0), 1.5 * res),
                            -amount, 0)
  noise = rng.uniform(1.5, 5.0) if noise is None else noise
  lum = rng.standard_normal((h, w), np.float32)
  lum *= noise
  lum += 128
  grain = cv2.merge([lum.astype(np.uint8)] * 3)
  chroma = rng.standard_normal((h // 4 + 1, w // 4 + 1, 3), np.float32) * (0.5 * noise) + 128
  grain = cv2.addWeighted(grain, 1.0, cv2.resize(chroma.astype(np.uint8), (w, h)), 1.0, -128.0)
  frame = cv2.addWeighted(frame, 1.0, grain, 1.0, -128.0)
  if r < 1:
    frame = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
    cam = np.diag([1 / r, 1 / r, 1.0]) @ cam
  w, h = size

  if exif:
    image = Image.fromarray(np.ascontiguousarray(np.rot90(frame)))
    ex = Image.Exif()
    ex[0x0112] = 6  # displayed after turning 90 degrees clockwise
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, exif=ex.tobytes())
    jpeg = buffer.getvalue()
  else:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
      raise RuntimeError("JPEG encoding failed")
    jpeg = data.tobytes()
  boxes = []
  for d in scene.digits:  # tight boxes in the photo's pixels
    p = _project(cam, d.points())
    lo, hi = np.clip(p.min(axis=0), 0, [w, h]), np.clip(p.max(axis=0), 0, [w, h])
    boxes.append([int(lo[0]), int(lo[1]), int(np.ceil(hi[0])), int(np.ceil(hi[1]))])
  info.update(size=[w, h], px_per_mm=round(float(scale / r), 3), quality=quality,
              roll=round(float(roll), 2), tilt=round(float(tilt), 2), desk=bool(desk),
              blur=round(float(blur), 2), shake_px=round(float(shake / r), 1),
              noise=round(float(noise), 2), exif=exif, boxes=boxes,
              digit_fraction=round(float(np.mean([b[3] - b[1] for b in boxes]) / min(w, h)), 3))
  return Shot(jpeg, info)
