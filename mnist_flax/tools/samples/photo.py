"""One phone photo of a digit, a number or a shape: what is written, on what, lit and shot how.

``render`` makes every choice below (or takes it as told), writes or prints the truth
(``handwriting``, ``marks``), lays it on a sheet or a plate (``paper``) and photographs it
(``camera``); it returns a ``Sample``: the JPEG, the truth, the tags of the file name and what
was drawn. ``kinds`` and ``cases`` call it for whole folders.

    import numpy as np
    from mnist_flax.tools.samples import photo
    sample = photo.render("2026", np.random.default_rng(0), surface="ruled", light="even")
    sample.name(12), sample.image().size   # "2026_ruled_..._0012.jpg", (width, height)

Choices and their ranges (each drawn at random unless ``render`` is told):

surface    plain (A4, A5, index card, sticky note), ruled (blue-grey rules every 8-10 mm,
           a red margin half the time), squared (5 mm grid), form (a printed box around the
           writing), plate (an enamel plate with a painted frame, on a wall)
ink        marker (1.5-4.5 mm, black), pen (0.4-1 mm, black), ballpoint (0.3-0.7 mm, blue,
           uneven pressure), pencil (0.35-0.9 mm, graphite grain; mostly faint: on
           average about 90-95% of the paper's level, e.g. 225 on 245); digits 6-90 mm tall
           with the pen 3-14% of the height
light      even, gradient, shadow-soft, shadow-hard-across (its edge crosses the digit),
           shadow-hard-beside (its edge passes beside the digit), shadow-hand (~7%: a hand's
           palm and fingers or a phone held above the page, over part of the digit or beside
           it, penumbra 0.5-4% of the side, 25-55% dark); every light has a colour cast,
           vignetting and an exposure that puts white paper at about 190-255
desk       the sheet's edge and the desk beside it in the frame (wood, dark, coloured), ~45%;
           a plate always shows its wall (stucco or brick)
camera     1.2-12 MP (4000x3000), portrait or landscape, sometimes cropped (>= 0.9 MP); the
           digit 10-40% of the shorter side (numbers 8-30% per digit); the sheet rolled up to
           12 degrees and tilted up to 12 degrees out of plane (perspective); blur,
           sharpening, sensor noise; JPEG quality 50-90; some portraits stored turned with
           EXIF orientation 6

Names start with the truth, then the choices and what else is in the picture:
``2026_ruled_pen_even_touching_0012.jpg``, ``7_squared_pencil_shadow-hard-across_desk_0003.jpg``,
``x_smiley_plain_marker_even_0005.jpg`` (non-digits start with ``x_`` and their shape). Tags:
margin (a red margin line), label (printed text beside a form's box), crossing (writing over
the box's lines), printed (a plate's printed digits), touching (neighbouring digits run into
each other), pieces (a digit in separate pieces: a 5's flag, a 7's bar, a pen lift), broken
(a pencil line that skips), desk, wall, exif. ``Sample.info`` holds the choices, the camera
(size, px_per_mm, roll, tilt, quality, blur, noise) and each digit's box.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from mnist_flax.tools.samples.camera import Shot, frame_size, photograph, visible_half
from mnist_flax.tools.samples.handwriting import (INKS, PENS, SHAPES, digit, number, pen_colour,
                                                  shape)
from mnist_flax.tools.samples.light import LIGHTS
from mnist_flax.tools.samples.marks import (Box, Glyph, Marks, circle, printed_one, rectangle,
                                            rounded_outline)
from mnist_flax.tools.samples.paper import (PAPERS, PLATES, SHEETS, STICKY, SURFACES, Layer,
                                            Scene, form, place, sheet_rulings)
from mnist_flax.tools.samples.randomness import log_uniform, pick

FONTS = ("sans", "sans-bold", "flagbase")


@dataclasses.dataclass
class Sample:
  truth: str  # the digits ("3", "2026", "07"), or "x" for a non-digit
  tags: list[str]  # the choices, in the file name after the truth
  jpeg: bytes
  info: dict[str, Any]

  def name(self, index: int) -> str:
    return "_".join([self.truth, *self.tags, f"{index:04d}"]) + ".jpg"

  def image(self) -> Image.Image:
    """The photo as displayed (EXIF orientation applied), RGB."""
    with Image.open(io.BytesIO(self.jpeg)) as image:
      return ImageOps.exif_transpose(image).convert("RGB")


def _handwriting(truth: str, rng: np.random.Generator, height: float, pen: float, ink: str,
                 tags: list[str], *, pieces: bool | None, broken: bool | None,
                 touching: bool | None, slots: list[Box] | None) -> tuple[Marks, list[Marks]]:
  pressure = PENS[ink].pressure
  broken = (ink == "pencil" and rng.random() < 0.35) if broken is None else broken
  if truth in SHAPES:
    m = shape(truth, rng, centre=(0, 0), height=height, pen=pen, pressure=pressure)
    return m, [m]
  if len(truth) == 1:
    pieces = rng.random() < 0.2 if pieces is None else pieces
    m = digit(int(truth), rng, centre=(0, 0), height=height, pen=pen,
              pieces=pieces, broken=broken, pressure=pressure)
    digits = [m]
  else:
    pieces = rng.random() < 0.3 if pieces is None else pieces
    touching = rng.random() < 0.3 if touching is None else touching
    if touching:
      tags.append("touching")
    m, digits = number(truth, rng, centre=(0, 0), height=height, pen=pen,
                       spacing=rng.uniform(0.08, 0.5), touching=touching,
                       pieces=pieces, broken=broken, pressure=pressure, slots=slots)
  tags += ["pieces"] * bool(pieces) + ["broken"] * bool(broken)
  return m, digits


def _printed(truth: str, rng: np.random.Generator, height: float, font: str) -> Marks:
  if font == "flagbase":
    weight = rng.uniform(0.1, 0.15)
    return Marks(polygons=printed_one((0, 0), height, weight))
  bold = rng.uniform(0.025, 0.045) if font == "sans-bold" else 0.0
  return Marks(glyphs=[Glyph(truth, (0.0, 0.0), height, bold)])


def render(truth: str, rng: np.random.Generator, *, printed: bool = False,
           surface: str | None = None, ink: str | None = None, light: str | None = None,
           desk: bool | None = None, size: tuple[int, int] | None = None,
           fraction: float | None = None, font: str | None = None, pieces: bool | None = None,
           broken: bool | None = None, touching: bool | None = None,
           faint: bool | None = None, **camera: Any) -> Sample:
  """One phone photo of ``truth``: a digit, a number ("2026") or a shape (``SHAPES``).

  Every choice left None is drawn from ``rng`` (see the module docstring for the ranges):
  ``surface`` one of SURFACES, ``ink`` one of INKS, ``light`` one of LIGHTS, ``desk`` True
  for the sheet's edge and the desk in view (False: a sheet that fills the frame, when the
  writing's size allows it; ``info["desk"]`` says what the photo shows), ``size`` (width,
  height) as displayed, ``fraction`` the digit height over the shorter side, ``pieces`` /
  ``broken`` / ``touching`` the handwriting's pen lifts, skips and touching neighbours,
  ``faint`` a pencil's faint (70% of the time) or firm hand.
  ``camera`` passes roll, tilt (degrees), quality, blur, noise, exif on to ``photograph``.
  ``printed`` prints the digits (``font`` one of FONTS) instead of writing them.
  """
  numeric = truth.isdigit()
  if not numeric and truth not in SHAPES:
    raise ValueError(f"truth must be digits or one of {SHAPES}, got {truth!r}")
  if surface is None:
    surface = (pick(rng, ("plain", "ruled", "squared")) if not numeric
               else "plain" if printed
               else pick(rng, SURFACES, [0.25, 0.28, 0.2, 0.12, 0.15]))
  if surface not in SURFACES:
    raise ValueError(f"surface must be one of {SURFACES}, got {surface!r}")
  # The hand's share comes out of the last (hard beside): the other lights draw as before.
  light = pick(rng, LIGHTS, [0.25, 0.2, 0.15, 0.22, 0.11, 0.07]) if light is None else light
  size = frame_size(rng) if size is None else tuple(size)
  tags = [truth] if not numeric else []
  if surface == "plate":
    ink = "paint"
    tags.append("plate")
  elif printed:
    ink = "printed"
    font = font or (pick(rng, FONTS, [0.3, 0.2, 0.5]) if truth == "1"
                    else pick(rng, FONTS[:2]))
    tags += [f"printed-{font}", surface]
  else:
    ink = pick(rng, INKS, [0.2, 0.25, 0.3, 0.25]) if ink is None else ink
    if ink not in INKS:
      raise ValueError(f"ink must be one of {INKS}, got {ink!r}")
    tags += [surface, ink]
  tags.append(light)

  # The sheet (a photo that should not show the desk gets a sheet that can fill it).
  desk = rng.random() < 0.4 if desk is None else desk
  sheet_kind = {"plain": pick(rng, ("a4", "a5", "card", "sticky"), [0.4, 0.3, 0.15, 0.15]),
                "ruled": pick(rng, ("notebook", "a4", "a5")),
                "squared": pick(rng, ("a5", "notebook", "a4")),
                "form": "a4", "plate": "plate"}[surface]
  if not desk and sheet_kind in ("card", "sticky"):
    sheet_kind = "a5"
  largest = np.array(SHEETS["a3" if surface in ("plain", "form") else "a4"])

  # Pen and digit size (mm).
  if surface == "plate":
    height, pen = log_uniform(rng, 50, 150), 0.0
  elif printed:
    height, pen = log_uniform(rng, 10, 60), 0.0
  else:
    p = PENS[ink]
    pen = rng.uniform(*p.width)
    height = log_uniform(rng, max(p.height[0], pen / 0.14), min(p.height[1], pen / 0.03))
  per_digit = len(truth) if numeric else 1
  lo = 0.1 if per_digit == 1 else 0.08
  hi = max(lo + 0.02, min(0.38 if per_digit == 1 else 0.3, height / 45))
  if not desk and surface != "plate":  # small enough that the largest sheet fills the view
    # need() below <= hi, with the digit's box ~1.1x its nominal height
    height = min(height, hi * 0.6 / 1.1 * float(min(largest * min(size) / np.array(size))))
    pen = min(pen, 0.14 * height)

  # What is written or printed, centred on (0, 0).
  slots = None
  if surface == "form" and per_digit > 1:  # one box per digit, side by side
    sw, sh = height * rng.uniform(0.85, 1.1), height * rng.uniform(1.25, 1.6)
    slots = [(-per_digit * sw / 2 + i * sw, -sh / 2, -per_digit * sw / 2 + (i + 1) * sw, sh / 2)
             for i in range(per_digit)]
  layers: list[Layer] = []
  if surface == "plate":
    plate, paint = pick(rng, PLATES)
    if rng.random() < 0.6:
      marks = Marks(glyphs=[Glyph(truth, (0.0, 0.0), height, rng.uniform(0.01, 0.05))])
      tags.insert(-1, "printed")
      digits = [Marks(polygons=[rounded_outline(b, 0.0)])
                for b in marks.glyphs[0].char_boxes()]
    else:
      marks, digits = _handwriting(truth, rng, height, height * rng.uniform(0.09, 0.14), "marker",
                                   tags, pieces=False, broken=False, touching=False, slots=None)
    layers.append(Layer(marks, paint, "solid", paint=True))
  elif printed:
    marks = _printed(truth, rng, height, font)
    digits = [marks]
    layers.append(Layer(marks, pick(rng, [(22, 22, 24), (40, 40, 40), (60, 60, 65)])))
  else:
    marks, digits = _handwriting(truth, rng, height, pen, ink, tags, pieces=pieces,
                                 broken=broken, touching=touching, slots=slots)
    layers.append(Layer(marks, pen_colour(ink, rng, faint), PENS[ink].texture))
  subject = marks.box()

  if surface == "plate":
    fraction = rng.uniform(lo, hi) if fraction is None else fraction
    return _plate_photo(truth, rng, tags, layers, subject, digits, height, plate, paint, size,
                        fraction, light, camera)

  # Where the writing sits on the sheet, and how close the camera is.
  sheet = SHEETS[sheet_kind]
  if rng.random() < 0.5 and sheet_kind in ("card", "sticky"):
    sheet = sheet[::-1]
  if surface == "form":
    form_layer, subject = form(rng, subject, height, slots, tags)
  else:
    form_layer = None
  half = np.array([subject[2] - subject[0], subject[3] - subject[1]]) / 2
  seen = float(np.mean([d.box()[3] - d.box()[1] for d in digits]))  # what the camera sizes

  def need(sheet: tuple[float, float]) -> float:  # the digit fraction at which the view is 60% of the sheet
    return seen * max(size[0] / (0.6 * sheet[0]), size[1] / (0.6 * sheet[1])) / min(size)

  for bigger in ("a4", "a3"):  # too small for the writing, or to fill the view: a bigger one
    if ((2 * half + 20 > sheet).any() or (not desk and need(sheet) > hi)) and (
        SHEETS[bigger][0] > sheet[0]):
      sheet_kind, sheet = bigger, SHEETS[bigger]
  paper = pick(rng, STICKY if sheet_kind == "sticky" else PAPERS)
  rulings, rules_y, margin = sheet_rulings(surface, rng, sheet, tags)
  if fraction is None:
    if not desk:  # close enough that the sheet fills the frame
      lo = min(max(lo, need(sheet)), hi)
    fraction = rng.uniform(lo, hi)
  view = np.array(visible_half(size, fraction * min(size) / seen))
  centre, focus = place(rng, sheet, half, view, desk)
  if margin is not None and rng.random() < 0.7:  # written just right of the margin
    x = margin + half[0] + rng.uniform(3, 25)
    focus[0] += x - centre[0]
    centre[0] = x
    if not desk:
      focus[0] = max(focus[0], 1.25 * view[0] + 0.22 * view[1])
  if len(rules_y) and surface == "ruled":  # sitting on a rule
    bottom = centre[1] + half[1]
    centre[1] = rules_y[np.argmin(np.abs(rules_y - bottom))] - half[1] + rng.normal(0, 0.6)
  dx, dy = centre - [(subject[0] + subject[2]) / 2, (subject[1] + subject[3]) / 2]
  for layer in layers:
    layer.marks.shift(dx, dy)
  if form_layer is not None:
    form_layer.marks.shift(dx, dy)
    layers.insert(0, form_layer)
  subject = (subject[0] + dx, subject[1] + dy, subject[2] + dx, subject[3] + dy)
  outline = np.array([(0, 0), (sheet[0], 0), sheet, (0, sheet[1])], np.float64)
  scene = Scene(outline, paper, pick(rng, ("wood", "dark", "colour"), [0.45, 0.2, 0.35]),
                layers, subject, rulings, digits, tuple(focus))
  shot = photograph(scene, rng, size=size, fraction=fraction, light=light,
                    exif=camera.pop("exif", size[1] > size[0] and rng.random() < 0.2), **camera)
  return _finish(truth, tags, shot, surface=surface, ink=ink, sheet=sheet_kind)


def _plate_photo(truth: str, rng: np.random.Generator, tags: list[str], layers: list[Layer],
                 subject: Box, digits: list[Marks], height: float,
                 plate: tuple[int, int, int], paint: tuple[int, int, int],
                 size: tuple[int, int], fraction: float, light: str,
                 camera: dict[str, Any]) -> Sample:
  """A house-number plate with a painted frame, screwed to a wall."""
  w = (subject[2] - subject[0]) + height * rng.uniform(0.4, 0.8)
  h = height * rng.uniform(1.35, 1.8)
  w = max(w, h * rng.uniform(0.8, 1.1))
  box = (-w / 2, -h / 2, w / 2, h / 2)
  inset, line = h * rng.uniform(0.05, 0.09), h * rng.uniform(0.02, 0.04)
  frame = Marks([rectangle((box[0] + inset, box[1] + inset, box[2] - inset,
                            box[3] - inset), line, h * rng.uniform(0.03, 0.12))])
  layers.append(Layer(frame, paint, paint=True))
  if rng.random() < 0.5:  # two screws
    r = h * 0.025
    screws = [circle(x, 0.0, r, r, 10) for x in (box[0] + inset / 2, box[2] - inset / 2)]
    layers.append(Layer(Marks(polygons=[np.array(s) for s in screws]), (110, 110, 115)))
  outline = rounded_outline(box, h * rng.uniform(0.02, 0.12))
  scene = Scene(outline, plate, pick(rng, ("stucco", "brick")), layers, box, [], digits)
  tags.append("wall")
  shot = photograph(scene, rng, size=size, fraction=fraction, light=light,
                    exif=camera.pop("exif", False), **camera)
  return _finish(truth, tags, shot, surface="plate", ink="paint", sheet="plate")


def _finish(truth: str, tags: list[str], shot: Shot, **info: str) -> Sample:
  if shot.info["desk"] and "wall" not in tags:
    tags.append("desk")
  if shot.info["exif"]:
    tags.append("exif")
  prefix = truth if truth.isdigit() else "x"
  return Sample(prefix, tags, shot.jpeg, {"truth": prefix, **info, **shot.info})
