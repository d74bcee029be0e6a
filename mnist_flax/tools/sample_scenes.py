"""Phone photos of digits as people take them: what is written, on what, and the file names.

``render`` draws one photo; ``make_kind`` writes a folder of them, reproducibly from a seed
(each file from its own stream: ``draw(kind, index, seed)`` redraws any one of them).
The kinds (``python -m mnist_flax.tools.samples DIR --kind KIND --count N --seed S``):

photos     one handwritten digit (0-9 in turn) on plain, ruled or squared paper (~75%), in a
           form's box (~12%) or on a house-number plate (~15%)
numbers    several handwritten digits side by side: "42", "2026", "07", "1984", 2-4 digit
           numbers and years 1900-2030; on paper, in a form's row of boxes, on a plate
printed    one printed digit on a printed sheet (Pillow's Aileron font, regular or bold; the
           "1" half the time with a flag and a base, as DejaVu or a typewriter prints it)
nondigits  a letter (A ~30%, E H K M W X), a scribble or a smiley, for "unsure" answers
cases      issue 13's list, one photo per case with a short name (``3_ruled.jpg``,
           ``5_shadow.jpg``, ``7_pencil.jpg``, ``2026_ruled.jpg``, ``x_A.jpg``, ...: CASES);
           a count beyond the list draws each again (``3_ruled_1.jpg``)

Choices and their ranges (each drawn at random unless ``render`` is told):

surface    plain (A4, A5, index card, sticky note), ruled (blue-grey rules every 8-10 mm,
           a red margin half the time), squared (5 mm grid), form (a printed box around the
           writing), plate (an enamel plate with a painted frame, on a wall)
ink        marker (1.5-4.5 mm, black), pen (0.4-1 mm, black), ballpoint (0.3-0.7 mm, blue,
           uneven pressure), pencil (0.35-0.9 mm, graphite grain; mostly faint: on
           average about 90-95% of the paper's level, e.g. 225 on 245); digits 6-90 mm tall
           with the pen 3-14% of the height
light      even, gradient, shadow-soft, shadow-hard-across (its edge crosses the digit),
           shadow-hard-beside (its edge passes beside the digit); every light has a colour
           cast, vignetting and an exposure that puts white paper at about 190-255
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
(a pencil line that skips), desk, wall, exif. A hidden ``.truth.jsonl`` in the folder lists
every file with its choices, the camera (size, px_per_mm, roll, tilt, quality, blur, noise)
and each digit's box ``[x0, y0, x1, y1]`` in the displayed image's pixels.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from mnist_flax.tools import sample_marks, sample_photos
from mnist_flax.tools.sample_marks import Box, Glyph, Marks
from mnist_flax.tools.sample_photos import LIGHTS, Layer, Ruling, Scene

KINDS = ("photos", "numbers", "printed", "nondigits", "cases")
SURFACES = ("plain", "ruled", "squared", "form", "plate")
INKS = ("marker", "pen", "ballpoint", "pencil")
SHAPES = (*sample_marks.LETTERS, "scribble", "smiley")
FONTS = ("sans", "sans-bold", "flagbase")


@dataclasses.dataclass(frozen=True)
class _Pen:
  colour: tuple[int, int, int]
  width: tuple[float, float]  # mm
  height: tuple[float, float]  # digit height, mm
  texture: str
  pressure: float


_PENS = {
    "marker": _Pen((28, 28, 34), (1.5, 4.5), (25, 90), "marker", 0.05),
    "pen": _Pen((30, 30, 42), (0.4, 1.0), (8, 45), "solid", 0.08),
    "ballpoint": _Pen((40, 58, 150), (0.3, 0.7), (6, 35), "ballpoint", 0.12),
    "pencil": _Pen((225, 225, 228), (0.35, 0.9), (6, 40), "pencil", 0.15),
}
_SHEETS = {"a3": (297, 420), "a4": (210, 297), "a5": (148, 210), "notebook": (170, 220), "card": (127, 76),
           "sticky": (76, 76)}
_PAPERS = [(246, 246, 243), (250, 250, 248), (243, 238, 225), (234, 232, 224)]
_STICKY = [(250, 235, 140), (245, 205, 215), (205, 235, 205)]
_PLATES = [((25, 60, 140), (238, 238, 232)), ((232, 232, 226), (30, 30, 30)),
           ((30, 90, 60), (235, 235, 228)), ((35, 35, 35), (205, 175, 95)),
           ((185, 150, 80), (30, 28, 25))]
_LABELS = ("Code", "Qty", "Item", "Box", "Ref")


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


def _pick(rng: np.random.Generator, options, p=None):
  return options[int(rng.choice(len(options), p=p))]


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
  return float(np.exp(rng.uniform(np.log(lo), np.log(max(lo, hi)))))


def _pen_colour(ink: str, rng: np.random.Generator,
                faint: bool | None = None) -> tuple[int, int, int]:
  if ink == "pencil":  # graphite, a little cool; grain leaves ~60% of it: ~225 on 245
    faint = rng.random() < 0.7 if faint is None else faint
    r = rng.uniform(0.76, 0.9) if faint else rng.uniform(0.5, 0.76)
    return (int(255 * r), int(255 * r), min(255, int(255 * r * 1.02)))
  c = np.array(_PENS[ink].colour) + rng.integers(-8, 9, 3)
  return tuple(int(v) for v in np.clip(c, 0, 255))


def _rulings(surface: str, rng: np.random.Generator, sheet: tuple[float, float],
             tags: list[str]) -> tuple[list[Ruling], np.ndarray, float | None]:
  """The sheet's printed lines, the y of each rule (for writing on them), a margin's x."""
  sw, sh = sheet
  if surface == "ruled":
    spacing, top = rng.uniform(8, 10), rng.uniform(15, 30)
    colour = tuple(int(v) for v in np.array([165, 190, 222]) + rng.integers(-12, 13, 3))
    width = rng.uniform(0.15, 0.35)
    ys = np.arange(top, sh - 5, spacing)
    lines = [Ruling((0, y), (sw, y), width, colour) for y in ys]
    margin = None
    if rng.random() < 0.5:
      margin = rng.uniform(20, 35)
      red = tuple(int(v) for v in np.array([225, 110, 120]) + rng.integers(-15, 16, 3))
      lines.append(Ruling((margin, 0), (margin, sh), rng.uniform(0.2, 0.4), red))
      tags.append("margin")
    return lines, ys, margin
  if surface == "squared":
    colour = _pick(rng, [(188, 202, 222), (196, 196, 196), (180, 200, 212)])
    width, (ox, oy) = rng.uniform(0.08, 0.2), rng.uniform(0, 5, 2)
    lines = [Ruling((x, 0), (x, sh), width, colour) for x in np.arange(ox, sw, 5.0)]
    lines += [Ruling((0, y), (sw, y), width, colour) for y in np.arange(oy, sh, 5.0)]
    return lines, np.arange(oy, sh, 5.0), None
  return [], np.zeros(0), None


def _place(rng: np.random.Generator, sheet: tuple[float, float], half: np.ndarray,
           view: np.ndarray, desk: bool) -> tuple[np.ndarray, np.ndarray]:
  """Where the camera aims on the sheet, and where the writing's centre goes (mm).

  The aim is near an edge when the desk should show, else far enough inside that the view
  stays on the sheet; the writing goes anywhere in the view (``view``: half its size).
  """
  size = np.array(sheet, np.float64)
  focus = np.array([rng.uniform(0, size[0]), rng.uniform(0, size[1])])
  if desk:
    for _ in range(1 + int(rng.random() < 0.3)):  # one edge, sometimes a corner
      axis = int(rng.integers(2))
      inside = rng.uniform(-0.6, 0.7) * view[axis]
      focus[axis] = size[axis] - inside if rng.random() < 0.5 else inside
  else:
    for axis in range(2):  # roll and tilt widen the view: keep clear of the edges
      keep = 1.25 * view[axis] + 0.22 * view[1 - axis]
      focus[axis] = (rng.uniform(keep, size[axis] - keep) if keep < size[axis] / 2
                     else size[axis] / 2)
  room = np.maximum(0.9 * view - half, 0)
  centre = focus + rng.uniform(-1, 1, 2) * room * 0.8
  return np.clip(centre, half + 8, np.maximum(half + 8, size - half - 8)), focus


def _handwriting(truth: str, rng: np.random.Generator, height: float, pen: float, ink: str,
                 tags: list[str], *, pieces: bool | None, broken: bool | None,
                 touching: bool | None, slots: list[Box] | None) -> tuple[Marks, list[Marks]]:
  pressure = _PENS[ink].pressure
  broken = (ink == "pencil" and rng.random() < 0.35) if broken is None else broken
  if truth in SHAPES:
    m = sample_marks.shape(truth, rng, centre=(0, 0), height=height, pen=pen,
                           pressure=pressure)
    return m, [m]
  if len(truth) == 1:
    pieces = rng.random() < 0.2 if pieces is None else pieces
    m = sample_marks.digit(int(truth), rng, centre=(0, 0), height=height, pen=pen,
                           pieces=pieces, broken=broken, pressure=pressure)
    digits = [m]
  else:
    pieces = rng.random() < 0.3 if pieces is None else pieces
    touching = rng.random() < 0.3 if touching is None else touching
    if touching:
      tags.append("touching")
    m, digits = sample_marks.number(truth, rng, centre=(0, 0), height=height, pen=pen,
                                   spacing=rng.uniform(0.08, 0.5), touching=touching,
                                   pieces=pieces, broken=broken, pressure=pressure, slots=slots)
  tags += ["pieces"] * bool(pieces) + ["broken"] * bool(broken)
  return m, digits


def _printed(truth: str, rng: np.random.Generator, height: float, font: str) -> Marks:
  if font == "flagbase":
    weight = rng.uniform(0.1, 0.15)
    return Marks(polygons=sample_marks.printed_one((0, 0), height, weight))
  bold = rng.uniform(0.025, 0.045) if font == "sans-bold" else 0.0
  return Marks(glyphs=[Glyph(truth, (0.0, 0.0), height, bold)])


def render(truth: str, rng: np.random.Generator, *, printed: bool = False,
           surface: str | None = None, ink: str | None = None, light: str | None = None,
           desk: bool | None = None, size: tuple[int, int] | None = None,
           fraction: float | None = None, font: str | None = None, pieces: bool | None = None,
           broken: bool | None = None, touching: bool | None = None,
           faint: bool | None = None, **camera) -> Sample:
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
    surface = (_pick(rng, ("plain", "ruled", "squared")) if not numeric
               else "plain" if printed
               else _pick(rng, SURFACES, [0.25, 0.28, 0.2, 0.12, 0.15]))
  if surface not in SURFACES:
    raise ValueError(f"surface must be one of {SURFACES}, got {surface!r}")
  light = _pick(rng, LIGHTS, [0.25, 0.2, 0.15, 0.22, 0.18]) if light is None else light
  size = sample_photos.frame_size(rng) if size is None else tuple(size)
  tags = [truth] if not numeric else []
  if surface == "plate":
    ink = "paint"
    tags.append("plate")
  elif printed:
    ink = "printed"
    font = font or (_pick(rng, FONTS, [0.3, 0.2, 0.5]) if truth == "1"
                    else _pick(rng, FONTS[:2]))
    tags += [f"printed-{font}", surface]
  else:
    ink = _pick(rng, INKS, [0.2, 0.25, 0.3, 0.25]) if ink is None else ink
    if ink not in INKS:
      raise ValueError(f"ink must be one of {INKS}, got {ink!r}")
    tags += [surface, ink]
  tags.append(light)

  # The sheet (a photo that should not show the desk gets a sheet that can fill it).
  desk = rng.random() < 0.4 if desk is None else desk
  sheet_kind = {"plain": _pick(rng, ("a4", "a5", "card", "sticky"), [0.4, 0.3, 0.15, 0.15]),
                "ruled": _pick(rng, ("notebook", "a4", "a5")),
                "squared": _pick(rng, ("a5", "notebook", "a4")),
                "form": "a4", "plate": "plate"}[surface]
  if not desk and sheet_kind in ("card", "sticky"):
    sheet_kind = "a5"
  largest = np.array(_SHEETS["a3" if surface in ("plain", "form") else "a4"])

  # Pen and digit size (mm).
  if surface == "plate":
    height, pen = _log_uniform(rng, 50, 150), 0.0
  elif printed:
    height, pen = _log_uniform(rng, 10, 60), 0.0
  else:
    p = _PENS[ink]
    pen = rng.uniform(*p.width)
    height = _log_uniform(rng, max(p.height[0], pen / 0.14), min(p.height[1], pen / 0.03))
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
    plate, paint = _pick(rng, _PLATES)
    if rng.random() < 0.6:
      marks = Marks(glyphs=[Glyph(truth, (0.0, 0.0), height, rng.uniform(0.01, 0.05))])
      tags.insert(-1, "printed")
      digits = [Marks(polygons=[sample_marks.rounded_outline(b, 0.0)])
                for b in marks.glyphs[0].char_boxes()]
    else:
      marks, digits = _handwriting(truth, rng, height, height * rng.uniform(0.09, 0.14), "marker",
                                  tags, pieces=False, broken=False, touching=False, slots=None)
    layers.append(Layer(marks, paint, "solid", paint=True))
  elif printed:
    marks = _printed(truth, rng, height, font)
    digits = [marks]
    layers.append(Layer(marks, _pick(rng, [(22, 22, 24), (40, 40, 40), (60, 60, 65)])))
  else:
    marks, digits = _handwriting(truth, rng, height, pen, ink, tags, pieces=pieces,
                                broken=broken, touching=touching, slots=slots)
    layers.append(Layer(marks, _pen_colour(ink, rng, faint), _PENS[ink].texture))
  subject = marks.box()

  if surface == "plate":
    fraction = rng.uniform(lo, hi) if fraction is None else fraction
    return _plate_photo(truth, rng, tags, layers, subject, digits, height, plate, paint, size,
                        fraction, light, camera)

  # Where the writing sits on the sheet, and how close the camera is.
  sheet = _SHEETS[sheet_kind]
  if rng.random() < 0.5 and sheet_kind in ("card", "sticky"):
    sheet = sheet[::-1]
  if surface == "form":
    form_layer, subject = _form(rng, subject, height, slots, tags)
  else:
    form_layer = None
  half = np.array([subject[2] - subject[0], subject[3] - subject[1]]) / 2
  seen = float(np.mean([d.box()[3] - d.box()[1] for d in digits]))  # what the camera sizes

  def need(sheet):  # the digit fraction at which the view is 60% of the sheet
    return seen * max(size[0] / (0.6 * sheet[0]), size[1] / (0.6 * sheet[1])) / min(size)

  for bigger in ("a4", "a3"):  # too small for the writing, or to fill the view: a bigger one
    if ((2 * half + 20 > sheet).any() or (not desk and need(sheet) > hi)) and (
        _SHEETS[bigger][0] > sheet[0]):
      sheet_kind, sheet = bigger, _SHEETS[bigger]
  paper = _pick(rng, _STICKY if sheet_kind == "sticky" else _PAPERS)
  rulings, rules_y, margin = _rulings(surface, rng, sheet, tags)
  if fraction is None:
    if not desk:  # close enough that the sheet fills the frame
      lo = min(max(lo, need(sheet)), hi)
    fraction = rng.uniform(lo, hi)
  view = np.array(sample_photos.visible_half(size, fraction * min(size) / seen))
  centre, focus = _place(rng, sheet, half, view, desk)
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
  scene = Scene(outline, paper, _pick(rng, ("wood", "dark", "colour"), [0.45, 0.2, 0.35]),
                layers, subject, rulings, digits, tuple(focus))
  shot = sample_photos.photograph(scene, rng, size=size, fraction=fraction, light=light,
                                  exif=camera.pop("exif", size[1] > size[0] and rng.random() < 0.2),
                                  **camera)
  return _finish(truth, tags, shot, surface=surface, ink=ink, sheet=sheet_kind)


def _form(rng: np.random.Generator, subject: Box, height: float, slots: list[Box] | None,
          tags: list[str]) -> tuple[Layer, Box]:
  """A printed box (or a row of boxes) around the writing, sometimes with a label."""
  colour = _pick(rng, [(35, 35, 35), (120, 120, 120), (70, 100, 170), (225, 130, 120)])
  line = rng.uniform(0.2, 0.6)
  marks = Marks()
  if slots is None:
    cx, cy = (subject[0] + subject[2]) / 2, (subject[1] + subject[3]) / 2
    w = max(subject[2] - subject[0], 0.6 * height) * rng.uniform(1.3, 2.0)
    crossing = rng.random() < 0.2  # a box drawn too small: the writing runs over its lines
    h = height * (rng.uniform(0.9, 1.05) if crossing else rng.uniform(1.15, 1.6))
    tags += ["crossing"] * crossing
    cx, cy = cx + rng.normal(0, 0.05 * height), cy + rng.normal(0, 0.04 * height)
    slots = [(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)]
  for box in slots:
    marks.strokes.append(sample_marks.rectangle(box, line))
  x0, y0 = slots[0][0], slots[0][1]
  x1, y1 = slots[-1][2], slots[-1][3]
  if rng.random() < 0.4:
    text = _pick(rng, _LABELS)
    th = (y1 - y0) * rng.uniform(0.2, 0.35)
    tw = sample_marks.font_aspect(text) * th
    marks.glyphs.append(Glyph(text, (x0 - tw / 2 - rng.uniform(2, 6), (y0 + y1) / 2), th))
    tags.append("label")
  return Layer(marks, colour), marks.box() if marks.glyphs else (
      x0 - line, y0 - line, x1 + line, y1 + line)


def _plate_photo(truth, rng, tags, layers, subject, digits, height, plate, paint, size,
                 fraction, light, camera) -> Sample:
  """A house-number plate with a painted frame, screwed to a wall."""
  w = (subject[2] - subject[0]) + height * rng.uniform(0.4, 0.8)
  h = height * rng.uniform(1.35, 1.8)
  w = max(w, h * rng.uniform(0.8, 1.1))
  box = (-w / 2, -h / 2, w / 2, h / 2)
  inset, line = h * rng.uniform(0.05, 0.09), h * rng.uniform(0.02, 0.04)
  frame = Marks([sample_marks.rectangle((box[0] + inset, box[1] + inset, box[2] - inset,
                                         box[3] - inset), line, h * rng.uniform(0.03, 0.12))])
  layers.append(Layer(frame, paint, paint=True))
  if rng.random() < 0.5:  # two screws
    r = h * 0.025
    screws = [sample_marks._circle(x, 0.0, r, r, 10) for x in (box[0] + inset / 2,
                                                                 box[2] - inset / 2)]
    layers.append(Layer(Marks(polygons=[np.array(s) for s in screws]), (110, 110, 115)))
  outline = sample_marks.rounded_outline(box, h * rng.uniform(0.02, 0.12))
  scene = Scene(outline, plate, _pick(rng, ("stucco", "brick")), layers, box, [], digits)
  tags.append("wall")
  shot = sample_photos.photograph(scene, rng, size=size, fraction=fraction, light=light,
                                  exif=camera.pop("exif", False), **camera)
  return _finish(truth, tags, shot, surface="plate", ink="paint", sheet="plate")


def _finish(truth: str, tags: list[str], shot: sample_photos.Shot, **info) -> Sample:
  if shot.info["desk"] and "wall" not in tags:
    tags.append("desk")
  if shot.info["exif"]:
    tags.append("exif")
  prefix = truth if truth.isdigit() else "x"
  return Sample(prefix, tags, shot.jpeg, {"truth": prefix, **info, **shot.info})


_NUMBERS = ("42", "2026", "07", "1984", "17", "128", "2019", "305", "09", "1000", "64", "11")


def _number_text(rng: np.random.Generator) -> str:
  r = rng.random()
  if r < 0.3:
    return _pick(rng, _NUMBERS)
  if r < 0.55:
    return str(int(rng.integers(10, 100)))
  if r < 0.7:
    return str(int(rng.integers(100, 1000)))
  if r < 0.9:
    return str(int(rng.integers(1900, 2031)))
  return f"0{int(rng.integers(0, 10))}"


_EVEN = {"light": "even", "desk": False}
# Issue 13's list of photos that infer misread, one photo each: name -> (truth, choices).
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "3_ruled": ("3", {"surface": "ruled", "ink": "pen", **_EVEN}),
    "5_shadow": ("5", {"surface": "plain", "ink": "pen", "light": "shadow-hard-across",
                       "desk": False, "size": (4000, 3000)}),
    "4_sheet_edge": ("4", {"surface": "plain", "ink": "ballpoint", "light": "even",
                           "desk": True}),
    "7_pencil": ("7", {"surface": "plain", "ink": "pencil", "faint": True, "broken": False,
                       **_EVEN}),
    "8_squared": ("8", {"surface": "squared", "ink": "ballpoint", **_EVEN}),
    "6_plate": ("6", {"surface": "plate", "light": "even"}),
    "2_form": ("2", {"surface": "form", "ink": "pen", **_EVEN}),
    "9_shadow_beside": ("9", {"surface": "ruled", "ink": "pen", "light": "shadow-hard-beside",
                              "desk": False}),
    "42_plain": ("42", {"surface": "plain", "ink": "marker", "touching": False, **_EVEN}),
    "2026_ruled": ("2026", {"surface": "ruled", "ink": "pen", "touching": False, **_EVEN}),
    "07_squared": ("07", {"surface": "squared", "ink": "ballpoint", "touching": False,
                          **_EVEN}),
    "1984_touching": ("1984", {"surface": "plain", "ink": "pen", "touching": True, **_EVEN}),
    "5_flag_apart": ("5", {"surface": "plain", "ink": "pen", "pieces": True, **_EVEN}),
    "1_printed": ("1", {"printed": True, "font": "flagbase", **_EVEN}),
    "x_A": ("A", {"surface": "plain", "ink": "pen", **_EVEN}),
    "x_scribble": ("scribble", {"surface": "plain", "ink": "ballpoint", **_EVEN}),
    "x_smiley": ("smiley", {"surface": "plain", "ink": "marker", **_EVEN}),
}


def draw_case(name: str, variant: int = 0, seed: int = 0) -> Sample:
  """Issue 13's case ``name`` (a key of CASES), as a phone photo; ``variant`` redraws it."""
  truth, choices = CASES[name]
  rng = np.random.default_rng([seed, 7, list(CASES).index(name), variant])
  choices = {"size": (1600, 1200), "exif": False, **choices}
  return render(truth, rng, **choices)


def draw(kind: str, index: int, seed: int = 0) -> Sample:
  """The ``index``-th sample of ``kind`` for ``seed``: the same arguments, the same bytes."""
  rng = np.random.default_rng([seed, 2 + KINDS.index(kind), index])
  if kind == "photos":
    return render(str(index % 10), rng)
  if kind == "numbers":
    text = _number_text(rng)
    plates = 0.0 if text.startswith("0") else 0.1  # nobody's house is number 07
    surface = _pick(rng, SURFACES, np.array([0.3, 0.3, 0.2, 0.1, plates]) / (0.9 + plates))
    return render(text, rng, surface=surface)
  if kind == "printed":
    return render(str(index % 10), rng, printed=True)
  if kind == "nondigits":
    return render(_pick(rng, SHAPES, [0.3] + [0.2 / (len(SHAPES) - 3)] * (len(SHAPES) - 3)
                        + [0.25, 0.25]), rng)
  raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _write(kind: str, index: int, seed: int, out: Path) -> tuple[Path, str]:
  if kind == "cases":  # each case in turn, then again: 3_ruled.jpg, ..., 3_ruled_1.jpg
    name, variant = list(CASES)[index % len(CASES)], index // len(CASES)
    sample = draw_case(name, variant, seed)
    path = out / (f"{name}_{variant}.jpg" if variant else f"{name}.jpg")
  else:
    sample = draw(kind, index, seed)
    path = out / sample.name(index)
  path.write_bytes(sample.jpeg)
  return path, json.dumps({"file": path.name, "kind": kind, **sample.info})


# Issue 13's cases that ship in test/ (each as ``<case>.jpg``): photos and numbers that infer
# reads right, so ``infer --i test/`` checks them; the others are drawn by the tests.
COMMITTED = ("3_ruled", "5_shadow", "7_pencil", "4_sheet_edge", "9_shadow_beside", "1_printed",
             "2_form", "5_flag_apart", "42_plain", "2026_ruled")


def write_committed(out_dir: str | Path) -> list[Path]:
  """Writes the COMMITTED cases into ``out_dir`` (variant 0 of each, as ``make_kind`` does)."""
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  paths = []
  for name in COMMITTED:
    path = out / f"{name}.jpg"
    path.write_bytes(draw_case(name).jpeg)
    paths.append(path)
  return paths


def _worker_init() -> None:
  cv2.setNumThreads(1)  # one process per core instead


def make_kind(kind: str, out_dir: str | Path, *, count: int, seed: int = 0,
              jobs: int | None = None) -> list[Path]:
  """Writes ``count`` samples of ``kind`` into ``out_dir`` (and ``.truth.jsonl``).

  ``jobs`` processes draw them (default: one per core for 16 or more files); every file
  comes from its own random stream, so the files do not depend on ``jobs``.
  """
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  if jobs is None:
    jobs = min(4, os.cpu_count() or 1) if count >= 16 else 1
  if jobs > 1:
    with concurrent.futures.ProcessPoolExecutor(
        jobs, mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init) as pool:
      done = list(pool.map(_write, [kind] * count, range(count), [seed] * count,
                           [out] * count, chunksize=4))
  else:
    done = [_write(kind, i, seed, out) for i in range(count)]
  _update_truth(out, [line for _, line in done])
  return [path for path, _ in done]


def _update_truth(out: Path, lines: list[str]) -> None:
  """Adds the entries to the folder's ``.truth.jsonl``, replacing older ones for the same file."""
  path = out / ".truth.jsonl"
  entries = {}
  if path.exists():
    for line in path.read_text(encoding="utf-8").splitlines():
      if line.strip():
        entries[json.loads(line)["file"]] = line
  for line in lines:
    entries[json.loads(line)["file"]] = line
  path.write_text("".join(entries[k] + "\n" for k in sorted(entries)), encoding="utf-8")
