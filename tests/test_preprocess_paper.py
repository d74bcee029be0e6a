"""The paper stage's stroke measure (preprocess.strokes.width), which sizes the closing that
estimates the paper under the ink: too small, and a thick stroke is read hollow; and what that
closing makes of a shadow's band joined to the digit, and of bold strokes thicker than it.

Run: python -m pytest tests/test_preprocess_paper.py -q
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_flax.preprocess import clean, paper, strokes


def _ring(stroke: int) -> np.ndarray:
  """A 0 drawn ``stroke`` pixels wide in the middle of a 400 x 300 mask."""
  mask = np.zeros((400, 300), np.uint8)
  cv2.ellipse(mask, (150, 200), (70, 110), 0, 0, 360, 1, stroke)
  return mask > 0


def _specks(mask: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
  """``mask`` with ``count`` one-pixel noise specks on its paper, away from its edge."""
  rng = np.random.default_rng(seed)
  out = mask.copy()
  ys, xs = rng.integers(2, mask.shape[0] - 2, count), rng.integers(2, mask.shape[1] - 2, count)
  out[ys, xs] = True
  return out


def test_stroke_width_of_a_clean_stroke():
  assert 14 <= strokes.width(_ring(16)) <= 18


def test_noise_specks_do_not_halve_a_thick_stroke():
  # A photo's grain: thousands of specks, each a ridge a pixel wide, outnumbering the stroke's.
  assert 14 <= strokes.width(_specks(_ring(16), 3000)) <= 18


def test_specks_alone_are_still_measured():
  # Nothing but grain (the ink elsewhere touches the picture's edge): its width, not none.
  mask = _specks(np.zeros((400, 300), bool), 300)
  mask[:, :40] = True  # A shadow band along the edge, left out.
  assert 0 < strokes.width(mask) < 4



def _shadowed_ring(stroke: int, tail: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """A photo-like 600 x 800 luminance: a 0 ``stroke`` pixels wide and a hard shadow's band
  (half the light) across the picture, rows 300 to 460; the 0 crosses the band, or with a
  ``tail`` (its width) lies above it, the tail reaching into it. The 0 (with its tail) and the
  band as masks."""
  ring = np.zeros((600, 800), np.uint8)
  if tail:
    cv2.ellipse(ring, (400, 150), (80, 110), 0, 0, 360, 1, stroke)
    cv2.line(ring, (400, 260), (400, 380), 1, tail)
  else:
    cv2.ellipse(ring, (400, 300), (110, 170), 0, 0, 360, 1, stroke)
  band = np.zeros_like(ring)
  band[300:460] = 1
  rng = np.random.default_rng(1)
  lum = np.where(ring > 0, 0.12, 0.85) * np.where(band > 0, 0.5, 1.0)
  lum = (lum + rng.normal(0, 0.01, lum.shape)).astype(np.float32)
  return np.clip(lum, 0, 1), ring > 0, band > 0


def _band_and_ink(stroke: int, tail: int = 0) -> tuple[float, float]:
  """The share of the band away from the 0 read as ink, and of the 0 above the band."""
  lum, ring, band = _shadowed_ring(stroke, tail)
  page = paper.find_ink(lum)
  assert page is not None
  away = band & (cv2.dilate(ring.astype(np.uint8), np.ones((15, 15), np.uint8)) == 0)
  return float(page.mask[away].mean()), float(page.mask[ring & ~band].mean())


def test_a_shadow_band_across_the_digit_is_no_ink():
  # The band joins the digit's strokes, all of it touching the picture's edge: its width is no
  # stroke's, and a closing that wide read the whole band as ink.
  shadow, digit = _band_and_ink(6)
  assert shadow < 0.02 and digit > 0.8


def test_a_bold_digit_joined_to_a_shadow_band_is_read_solid():
  # The closing is then as narrow as the band needs; the bold strokes, too thick for it, are
  # found where it dips below the widest one, clear of the band.
  shadow, digit = _band_and_ink(40, tail=5)
  assert shadow < 0.02 and digit > 0.9


def test_a_bold_digit_across_a_shadow_band_is_read_solid():
  # The 0 and the band are one region where the closing dips, reaching the picture's edge and
  # as a whole no darker than a shadow: the 0 was read as its outline (about 10% of it ink).
  for stroke in (30, 50):
    lum, ring, band = _shadowed_ring(stroke)
    page = paper.find_ink(lum)
    assert page is not None
    away = band & (cv2.dilate(ring.astype(np.uint8), np.ones((15, 15), np.uint8)) == 0)
    assert page.mask[away].mean() < 0.02
    assert page.mask[ring & band].mean() > 0.95 and page.mask[ring & ~band].mean() > 0.95


def test_a_bold_digit_inside_a_hard_shadow_on_ruled_paper_is_read_solid():
  # The rules join every stroke to the picture's edge, so no stroke width is measured and the
  # closing is the narrowest; the bold 0 lies in a hard shadow (half the light) over the right
  # half, off the lit sheet, or across its edge, where the paper beside it is partly shadowed:
  # it was read as its outline (3-10% of it ink).
  for stroke, centre in ((30, 600), (50, 600), (30, 450), (50, 450)):
    ring = np.zeros((600, 800), np.uint8)
    cv2.ellipse(ring, (centre, 300), (90, 150), 0, 0, 360, 1, stroke)
    sheet = np.full(ring.shape, 0.85)
    sheet[20::40] = 0.6  # Ruled lines.
    lum = np.where(ring > 0, 0.1, sheet) * np.where(np.arange(800) >= 420, 0.5, 1.0)
    lum = lum + np.random.default_rng(2).normal(0, 0.01, lum.shape)
    page = paper.find_ink(np.clip(lum, 0, 1).astype(np.float32))
    assert page is not None
    paper_away = (sheet > 0.7) & (cv2.dilate(ring, np.ones((15, 15), np.uint8)) == 0)
    assert page.mask[ring > 0].mean() > 0.95 and page.mask[paper_away].mean() < 0.01


def test_the_desk_at_the_edge_is_no_dark_plate():
  # A mostly light photo whose dark side is a plate-shaped patch of desk (a light card lying on
  # it) in a corner: a plate hangs clear of the picture's edge, so the ink stays dark. Read as
  # light ink, the paper around the pen's strokes was the "ink".
  lum = np.full((600, 800), 0.85, np.float32)
  lum[40::40] = 0.6  # Ruled lines.
  cv2.line(lum, (250, 150), (300, 330), 0.1, 5)  # A stroke.
  lum[350:, 500:] = 0.25
  lum[420:480, 600:700] = 0.85
  assert paper.ink_is_dark(lum)
  plate = np.full((600, 800), 0.85, np.float32)  # The same patch on the wall: a dark plate.
  plate[150:450, 250:550] = 0.2
  cv2.line(plate, (400, 200), (380, 400), 0.9, 20)
  assert not paper.ink_is_dark(plate)


def test_a_hard_shadow_over_ruled_paper_is_no_clean_picture():
  # Otsu's darker side is the shadow, the rules in the lit part fall to the paper, which is then
  # even: read as a drawing, the rules stayed and the shadow was ink. It keeps half the light.
  lum = np.full((600, 800), 0.85, np.float32)
  lum[40::40] = 0.6  # Ruled lines.
  cv2.line(lum, (350, 250), (420, 380), 0.1, 5)  # A stroke.
  lum[480:560] *= 0.5  # A pen's shadow across the sheet, beside the digit.
  assert clean.find_ink(lum) is None
  # A drawing's thick stroke running off the picture's edge takes most of the light: clean.
  drawing = np.full((600, 800), 0.95, np.float32)
  cv2.line(drawing, (400, 200), (400, 600), 0.05, 60)
  assert clean.find_ink(drawing) is not None


def test_thick_digits_cropped_tightly_are_read_solid():
  """A marker digit whose strokes are a fifth of the picture and reach its edges (a tight crop)
  goes the photo way; its strokes, as dark as ink, are filled in although they reach the edge
  as a shadow does (they were read hollow: 14 of these 30 right; 29 before that, 28 now)."""
  import io

  from PIL import Image

  from mnist_flax import predictor, preprocess
  from mnist_flax.tools.samples import drawing

  predict, _ = predictor.load_predict(predictor.resolve_checkpoint(None), 10)
  right = 0
  for seed in range(3):
    fields = []
    for d in range(10):
      image = drawing.draw_digit(d, np.random.default_rng(seed * 10 + d), size=(240, 240), ink=0,
                                 paper=250, stroke_width=50, height=0.98, slant=0.0)
      jpeg = io.BytesIO()
      image.save(jpeg, "JPEG", quality=85)
      fields.append(preprocess.to_mnist(Image.open(io.BytesIO(jpeg.getvalue()))))
    right += int((np.asarray(predict(np.stack(fields))).argmax(1) == np.arange(10)).sum())
  assert right >= 27


def test_the_grain_of_a_desk_as_light_as_shadowed_paper_is_no_ink():
  # A sheet on a grey textured desk at 45% of the paper's light (above _SHEET_LEVEL, so no sheet
  # is found by level): the grain, dark specks all over the desk and none on the sheet, is left
  # out with the sheet's edge; the digit on the sheet stays whole.
  rng = np.random.default_rng(3)
  h, w = 600, 800
  grain = cv2.resize(rng.normal(0, 1, (h // 4, w // 4)).astype(np.float32), (w, h))
  lum = 0.45 * (1 + 0.3 * grain) + rng.normal(0, 0.015, (h, w)).astype(np.float32)
  sheet = np.zeros((h, w), np.uint8)
  sheet[120:480, 180:620] = 1
  lum[sheet > 0] = 0.95 + rng.normal(0, 0.01, int(sheet.sum()))
  digit = np.zeros((h, w), np.uint8)
  cv2.ellipse(digit, (400, 300), (40, 70), 0, 0, 360, 1, 8)
  lum[digit > 0] = 0.15
  page = paper.find_ink(np.clip(lum, 0, 1).astype(np.float32))
  assert page is not None
  near = cv2.dilate(sheet, np.ones((15, 15), np.uint8)) > 0
  assert not (page.mask & ~near).any()
  assert page.mask[digit > 0].mean() > 0.95


def _strip_picture(stroke: bool) -> tuple[np.ndarray, ...]:
  """lift_thick's inputs for a sheet (230) on a dark desk (40), which the wide closing shows on
  the left and bridges in a strip 60 px wide along the right edge; with ``stroke``, a sheet
  filling the picture and a marker bar 30 px thick (as dark as the desk) run into the edge."""
  lum8 = np.full((600, 800), 230, np.uint8)
  wide = np.full_like(lum8, 230)
  if stroke:
    lum8[300:330, 600:] = 40
  else:
    lum8[:, 740:] = lum8[:, :150] = wide[:, :150] = 40
  dip = wide > cv2.LUT(lum8, np.clip(np.arange(256) * 1.1, 0, 255).astype(np.uint8))
  return lum8, lum8.copy(), wide, dip


def test_a_strip_of_desk_along_the_edge_is_no_thick_stroke():
  # It was lifted to the sheet's level, so the desk was ink, one glyph with the number.
  lum8, closed, wide, dip = _strip_picture(stroke=False)
  lifted = strokes.lift_thick(lum8, closed, wide, dip, 1.1, lambda: None)
  assert (lifted[:, 750:] == 40).all()


def test_a_thick_stroke_run_into_the_edge_is_still_lifted():
  lum8, closed, wide, dip = _strip_picture(stroke=True)
  lifted = strokes.lift_thick(lum8, closed, wide, dip, 1.1, lambda: None)
  assert (lifted[305:325, 610:] == 230).all()


def test_a_marker_stroke_along_the_edge_of_a_cropped_drawing_is_still_lifted():
  # A tight crop: a marker bar lies along the bottom edge, 13 times as long as it is thick,
  # on paper only (the wide closing shows no desk): a stroke, filled in.
  lum8 = np.full((600, 800), 230, np.uint8)
  lum8[570:, 200:600] = 40
  wide = np.full_like(lum8, 230)
  dip = wide > cv2.LUT(lum8, np.clip(np.arange(256) * 1.1, 0, 255).astype(np.uint8))
  lifted = strokes.lift_thick(lum8, lum8.copy(), wide, dip, 1.1, lambda: None)
  assert (lifted[575:, 210:590] == 230).all()
