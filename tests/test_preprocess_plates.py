"""Plates (a house number, a card) found in photos and read inside (preprocess.plates.find_plate).

Run: python -m pytest tests/test_preprocess_plates.py -q
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import draw_samples, read_numbers
from PIL import Image

from mnist_flax.preprocess import gray, open_image, paper, plates, to_digits

_WALL, _PLATE, _PAINT = 200, 50, 190  # 8-bit levels: a light wall, a dark plate, light paint.


def _dark_plate_photo() -> tuple[Image.Image, tuple[int, int, int, int]]:
  """A dark plate (1.7% of the picture) whose light painted border line parts its rim from its
  panel, a light 7 on the panel, on a light wall in uneven light with noise; and the plate's
  box (x0, y0, x1, y1)."""
  rng = np.random.default_rng(0)
  h, w = 600, 800
  a = np.full((h, w), _WALL, np.float32)
  x0, y0, side = 350, 250, 90
  a[y0:y0 + side, x0:x0 + side] = _PLATE
  cv2.rectangle(a, (x0 + 8, y0 + 8), (x0 + side - 9, y0 + side - 9), _PAINT, 3)
  cv2.polylines(a, [np.array([[x0 + 28, y0 + 24], [x0 + 62, y0 + 24], [x0 + 40, y0 + 72]])],
                False, _PAINT, 7)
  a = cv2.GaussianBlur(a, (5, 5), 0)
  a *= np.linspace(0.75, 1.0, w, dtype=np.float32)[None, :]  # Light from the right.
  a += rng.normal(0, 3, a.shape).astype(np.float32)
  pixels = np.clip(a + 0.5, 0, 255).astype(np.uint8)
  return Image.fromarray(pixels, "L"), (x0, y0, x0 + side, y0 + side)


def test_dark_plate_parted_by_its_painted_line_is_found():
  image, (x0, y0, x1, y1) = _dark_plate_photo()
  lum, _ = gray.luminance(image)
  page = paper.find_ink(lum)
  assert page is not None
  plate = plates.find_plate(page.mask)
  assert plate is not None
  (px0, py0, px1, py1), face = plate
  assert face.shape == (py1 - py0, px1 - px0) and face.mean() > 0.9  # Square: all face.
  # Inside the plate, and most of it.
  assert x0 <= px0 < px1 <= x1 and y0 <= py0 < py1 <= y1
  assert (px1 - px0) * (py1 - py0) >= 0.7 * (x1 - x0) * (y1 - y0)


def test_dark_plate_digit_is_read_as_its_strokes():
  image, (x0, y0, x1, y1) = _dark_plate_photo()
  found = to_digits(image, single=True)
  assert len(found) == 1
  bx0, by0, bx1, by1 = found[0].box
  # The 7's own box (about 41 x 55 with the pen), not the plate's panel (about 70 x 70).
  assert x0 + 20 <= bx0 and bx1 <= x0 + 70 and y0 + 16 <= by0 and by1 <= y0 + 80



def test_bold_light_digit_on_dark_plate_is_the_ink():
  """A bold light digit on a dark plate (4% of the picture) is the ink, not a sheet on a desk:
  the polarity test for whole pictures calls a light region that solid a sheet."""
  rng = np.random.default_rng(1)
  h, w = 600, 800
  a8 = np.full((h, w), _WALL, np.uint8)
  x0, y0, side = 300, 200, 140
  a8[y0:y0 + side, x0:x0 + side] = _PLATE
  cv2.putText(a8, "5", (x0 + 21, y0 + 119), cv2.FONT_HERSHEY_SIMPLEX, 3.5, _PAINT, 24)
  ys, xs = np.nonzero(a8 == _PAINT)
  a = cv2.GaussianBlur(a8.astype(np.float32), (5, 5), 0)
  a *= np.linspace(0.75, 1.0, w, dtype=np.float32)[None, :]
  a += rng.normal(0, 3, a.shape).astype(np.float32)
  image = Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "L")
  found = to_digits(image, single=True)
  assert len(found) == 1
  bx0, by0, bx1, by1 = found[0].box
  # The whole painted 5 (not a piece of the plate between its strokes), within a few pixels.
  assert abs(bx0 - xs.min()) <= 4 and abs(bx1 - 1 - xs.max()) <= 4
  assert abs(by0 - ys.min()) <= 4 and abs(by1 - 1 - ys.max()) <= 4


def _photo(a8: np.ndarray, digit: np.ndarray, seed: int, light: float
           ) -> tuple[Image.Image, tuple[int, int, int, int]]:
  """A drawn scene (8-bit) as a camera sees it, blurred, lit from the right (``light`` at the
  left edge, 1 at the right) with noise; and the box (x0, y0, x1, y1) of ``digit``'s pixels."""
  a = cv2.GaussianBlur(a8.astype(np.float32), (5, 5), 0)
  a *= np.linspace(light, 1.0, a.shape[1], dtype=np.float32)[None, :]
  a += np.random.default_rng(seed).normal(0, 3, a.shape).astype(np.float32)
  ys, xs = np.nonzero(digit)
  image = Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "L")
  return image, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _plate(image: Image.Image) -> tuple[tuple[int, int, int, int], np.ndarray]:
  """The plate find_plate finds in a picture's ink (asserted found)."""
  lum, _ = gray.luminance(image)
  page = paper.find_ink(lum)
  assert page is not None
  plate = plates.find_plate(page.mask)
  assert plate is not None
  return plate


def _assert_read_at(image: Image.Image, box: tuple[int, int, int, int]) -> None:
  """The one digit read in ``image`` is at ``box``, within 4 pixels each side."""
  found = to_digits(image, single=True)
  assert len(found) == 1
  assert all(abs(a - b) <= 4 for a, b in zip(found[0].box, box))


def _brick_wall_plate() -> tuple[Image.Image, tuple[int, int, int, int]]:
  """A dark plate with a light painted border and a light 4, tilted, on a dark brick wall with
  light mortar whose whole bricks (a dozen or more, some cut by the picture's edge) are each
  larger than the plate's panel; and the 4's box (x0, y0, x1, y1)."""
  h, w = 800, 600
  a = np.full((h, w), 175, np.uint8)  # Mortar.
  for row, top in enumerate(range(-20, h, 100)):
    for left in range(-150 if row % 2 else -40, w, 220):
      a[max(0, top + 8):top + 100, max(0, left + 8):left + 220] = 75  # Bricks, 212 x 92.
  plate = np.array([[240, 340], [370, 332], [378, 462], [248, 470]], np.int32)
  cv2.fillConvexPoly(a, plate, 40)
  cv2.polylines(a, [plate + np.array([[12, 12], [-12, 12], [-12, -12], [12, -12]])], True, 170, 5)
  four = np.zeros_like(a)
  cv2.putText(four, "4", (275, 440), cv2.FONT_HERSHEY_SIMPLEX, 2.6, 1, 9)
  a[four > 0] = 170
  return _photo(a, four, seed=2, light=1.0)


def test_plate_among_larger_bricks_is_found_with_its_face():
  """The panel is found though a dozen bricks are larger, and though a brick cut by the
  picture's edge beside it lacks a corner (as a form's cell holding ink would); its face leaves
  out the wall in the corners of the tilted plate's box; the 4 is read on it."""
  image, (x0, y0, x1, y1) = _brick_wall_plate()
  (px0, py0, px1, py1), face = _plate(image)
  # The panel inside the painted border (about 255..363 across, 347..455 down).
  assert 250 <= px0 <= x0 and x1 <= px1 <= 370 and 340 <= py0 <= y0 and y1 <= py1 <= 462
  assert not face[0, 0] and not face[-1, -1] and face[face.shape[0] // 2, face.shape[1] // 2]
  _assert_read_at(image, (x0, y0, x1, y1))


def _light_plate_photo(digit: bool) -> tuple[Image.Image, tuple[int, int, int, int]]:
  """A grey plate (2.6% of the picture) on a lighter wall, in uneven light with noise: with a
  dark pen 3 on it (``digit``; then ink without holes, one solid region) or blank beside a 3
  on the wall; and the 3's box (x0, y0, x1, y1)."""
  a = np.full((800, 600), 215, np.uint8)
  cv2.fillConvexPoly(a, np.array([[200, 300], [330, 296], [334, 420], [204, 424]], np.int32), 135)
  three = np.zeros_like(a)
  cv2.putText(three, "3", (235, 400) if digit else (420, 620), cv2.FONT_HERSHEY_SIMPLEX, 2.6, 1, 6)
  a[three > 0] = 40
  return _photo(a, three, seed=4, light=0.8)


def test_light_plate_painted_darker_is_found_and_read():
  """A plate whose digit is darker than it is one solid region of ink, without holes: still a
  plate, and the digit on it is read, not the plate."""
  image, (x0, y0, x1, y1) = _light_plate_photo(digit=True)
  (px0, py0, px1, py1), _ = _plate(image)
  assert 200 <= px0 <= x0 and x1 <= px1 <= 334 and 296 <= py0 <= y0 and y1 <= py1 <= 424
  _assert_read_at(image, (x0, y0, x1, y1))


def test_blank_plate_leaves_the_picture_read(monkeypatch):
  """A plate with no ink on it (a blank patch of wall taken for one) does not hide the digit
  beside it: the picture is read."""
  image, box = _light_plate_photo(digit=False)
  blank = np.ones((100, 100), bool)
  monkeypatch.setattr(plates, "find_plate", lambda mask: ((40, 40, 140, 140), blank))
  _assert_read_at(image, box)


def _generator_photo(tmp_path, index: int, seed: int, truth: str
                     ) -> tuple[paper.Page, Image.Image]:
  """The generator's photo of a number (kind "numbers") as the pipeline decodes it, and its ink."""
  from mnist_flax.preprocess import read
  from mnist_flax.tools.samples import kinds
  sample = kinds.draw("numbers", index, seed=seed)
  assert sample.truth == truth
  path = tmp_path / f"{truth}.jpg"
  path.write_bytes(sample.jpeg)
  image = read.open_image(path, draft_side=gray.WORK_SIDE)
  page = paper.find_ink(gray.luminance(image)[0])
  assert page is not None
  return page, image


def test_a_light_plate_notched_by_digits_touching_its_border_is_found(tmp_path):
  """A gold plate with a black "2019" on a dark brick wall with light mortar: the plate's
  face is the picture's ink, and the digits touching its painted border notch its outline
  (its hull 27% larger than it), which is_plate takes for no rectangle. Found, it is read
  there: four digits, not one glyph of mortar and plate."""
  _, image = _generator_photo(tmp_path, 85, 5151, "2019")
  (x0, y0, x1, y1), face = _plate(image)
  # The face inside the painted border, about 494 x 176 of the 816 x 612 picture.
  assert 400 <= x1 - x0 <= 494 and 140 <= y1 - y0 <= 176 and face.mean() > 0.9
  assert len([d for d in to_digits(image) if d.split_of < 0]) == 4


@pytest.mark.parametrize("index, seed, truth", [(113, 7, "1984"), (13, 5151, "2019")],
                         ids=["marker-digits", "form-boxes"])
def test_thick_digits_and_a_forms_boxes_are_no_notched_plate(tmp_path, index, seed, truth):
  """A marker's "1984" (thick strokes, a hull round or slanting) and a form's row of boxes
  written across (lines, a third of their hull) are no plate."""
  page, _ = _generator_photo(tmp_path, index, seed, truth)
  assert plates.find_plate(page.mask) is None


@pytest.mark.parametrize("index, seed, truth", [(126, 7, "1000"), (50, 31337, "09")],
                         ids=["zeros-across-walls", "nine-across-a-wall"])
def test_a_cell_of_a_forms_row_is_no_plate(tmp_path, index, seed, truth):
  """A form's row of boxes, its first cell holding a digit and the others digits that cross
  their walls (so no other cell is a region like it): the first cell was taken for a plate,
  and only its digit read ("1000" read 1). The box's lines reach far beyond it: a row."""
  page, image = _generator_photo(tmp_path, index, seed, truth)
  assert plates.find_plate(page.mask) is None
  found = [d for d in to_digits(image) if d.split_of < 0]
  assert len(found) >= len(truth)


def _face(light: bool, stroke: int, shadow: bool) -> np.ndarray:
  """A plate's box 200 x 120 in [0, 1]: a face (light or dark) with a "7" painted on it in the
  other shade, ``stroke`` px wide; with ``shadow``, a hard shadow over the left 60% of it."""
  face, paint = (0.85, 0.15) if light else (0.2, 0.9)
  a = np.full((120, 200), face, np.float32)
  cv2.polylines(a, [np.array([[60, 20], [140, 20], [90, 100]])], False, paint, stroke)
  if shadow:
    a[:, :120] *= 0.4
  return a


@pytest.mark.parametrize("light", [True, False])
@pytest.mark.parametrize("stroke", [4, 24])
def test_a_plates_face_is_told_from_its_paint(light: bool, stroke: int) -> None:
  assert plates.face_is_light(_face(light, stroke, shadow=False)) is light


@pytest.mark.parametrize("light", [True, False])
def test_a_hard_shadow_across_a_plate_is_not_its_face(light: bool) -> None:
  # Otsu alone splits the box into shade and light, and the shade is the larger side.
  assert plates.face_is_light(_face(light, 4, shadow=True)) is light


def test_plates_and_form_boxes_with_a_shadow_across_are_read(tmp_path) -> None:
  # The generator's: a form's box (taken for a plate) and a plate, a shadow across each, read
  # 11, 20 and 77 before (the shadow's side read as ink); and a plate of bold printed digits
  # and no shadow, which dividing by the face's median would read as 0 (its digits as paper).
  drawn = draw_samples(tmp_path, [("photos", 46, 13), ("photos", 227, 13), ("photos", 207, 13),
                                  ("numbers", 83, 2027)])
  assert [truth for _, truth in drawn] == ["6", "7", "7", "1989"]
  read = read_numbers(tmp_path)
  assert [read[path.name] for path, _ in drawn] == ["6", "7", "7", "1989"]


# Plates whose ink find_plate cannot part from the wall's (the mortar runs into the plate's
# rim, or the light painted border joins the light digits): all misread before find_outlined.
@pytest.mark.parametrize("kind,index,seed", [
    ("photos", 446, 11), ("photos", 96, 11), ("photos", 91, 11), ("numbers", 205, 12),
    ("numbers", 427, 12), ("numbers", 41, 22)])
def test_plates_joined_to_the_wall_are_found_by_their_outline(tmp_path, kind, index, seed):
  [(path, truth)] = draw_samples(tmp_path, [(kind, index, seed)])
  image = open_image(path, draft_side=gray.WORK_SIDE)  # As read_digits decodes it.
  lum, _ = gray.luminance(image)
  page = paper.find_ink(lum)
  assert page is not None and plates.find_plate(page.mask) is None
  assert plates.find_outlined(lum) is not None
  assert [d for d in to_digits(image) if d.split_of < 0]  # Something is read on it.


def test_numbers_on_plates_found_by_their_outline_are_read(tmp_path):
  samples = draw_samples(tmp_path, [("numbers", 205, 12), ("numbers", 427, 12),
                                    ("numbers", 394, 22), ("photos", 96, 11)])
  read = read_numbers(tmp_path)
  assert {path.name: read[path.name] for path, _ in samples} == {
      path.name: truth for path, truth in samples}


def _paper(h: int = 600, w: int = 800) -> np.ndarray:
  rng = np.random.default_rng(1)
  return (np.full((h, w), 215, np.float32) + rng.normal(0, 3, (h, w))).astype(np.float32)


def _lum(a: np.ndarray) -> np.ndarray:
  return np.clip(cv2.GaussianBlur(a, (3, 3), 0), 0, 255).astype(np.float32) / 255


def test_a_lone_dark_plate_with_a_light_digit_is_outlined():
  a = _paper()
  cv2.rectangle(a, (330, 220), (450, 380), 60, -1)
  cv2.polylines(a, [np.array([[360, 250], [420, 250], [380, 350]])], False, 200, 9)
  found = plates.find_outlined(_lum(a))
  assert found is not None
  (x0, y0, x1, y1), face = found
  # The plate's box, give or take the edge's width on the reduced picture.
  assert abs(x0 - 330) <= 8 and abs(x1 - 450) <= 8 and abs(y0 - 220) <= 8 and abs(y1 - 380) <= 8
  assert face.mean() > 0.9


def test_bricks_a_bold_digit_and_a_forms_row_are_not_outlined():
  bricks = np.full((600, 800), 190, np.float32)  # Plain bricks: nothing painted on any.
  for y in range(0, 600, 60):
    bricks[y:y + 8] = 120
    for x in range(-60 * (y // 60 % 2), 800, 120):
      bricks[y:y + 60, max(0, x):x + 8] = 120
  bold = _paper()  # A bold printed 0: its hole is a blob, not paint.
  cv2.ellipse(bold, (400, 300), (70, 110), 0, 0, 360, 30, 45)
  row = _paper()  # A form's row of boxes, a digit in each: read across them all.
  for x in (200, 340, 480):
    cv2.rectangle(row, (x, 230), (x + 120, 390), 40, 4)
    cv2.line(row, (x + 60, 260), (x + 60, 360), 40, 6)
  for picture in (bricks, bold, row):
    assert plates.find_outlined(_lum(picture)) is None
