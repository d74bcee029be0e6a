"""What lies in front of the camera, in millimetres: the sheet or plate, its print, the desk.

A ``Scene`` is a sheet (or a house-number plate) with its outline and colour, printed rulings
(``sheet_rulings``: ruled or squared paper), layers of ink (``Layer``: handwriting, a form's printed
box from ``form``, a plate's paint) and the desk or wall around it (``background`` draws its
texture: wood, dark, coloured, stucco, brick). ``SHEETS``, ``PAPERS``, ``STICKY`` and
``PLATES`` are the sizes and colours ``photo.render`` chooses from; ``place`` decides where the
camera aims on the sheet and where the writing goes. ``camera.photograph`` takes the picture.

    from mnist_flax.tools.samples.paper import SHEETS, Scene
    sheet = SHEETS["a5"]   # (width, height) mm
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mnist_flax.tools.samples.marks import Box, Glyph, Marks, font_aspect, rectangle
from mnist_flax.tools.samples.randomness import pick, smooth

SURFACES = ("plain", "ruled", "squared", "form", "plate")
BACKGROUNDS = ("wood", "dark", "colour", "stucco", "brick")
# Sheet sizes (width, height) in mm; colours of paper, sticky notes, and (plate, paint) pairs.
SHEETS = {"a3": (297, 420), "a4": (210, 297), "a5": (148, 210), "notebook": (170, 220),
          "card": (127, 76), "sticky": (76, 76)}
PAPERS = [(246, 246, 243), (250, 250, 248), (243, 238, 225), (234, 232, 224)]
STICKY = [(250, 235, 140), (245, 205, 215), (205, 235, 205)]
PLATES = [((25, 60, 140), (238, 238, 232)), ((232, 232, 226), (30, 30, 30)),
          ((30, 90, 60), (235, 235, 228)), ((35, 35, 35), (205, 175, 95)),
          ((185, 150, 80), (30, 28, 25))]
_LABELS = ("Code", "Qty", "Item", "Box", "Ref")


@dataclasses.dataclass
class Layer:
  marks: Marks
  colour: tuple[int, int, int]
  texture: str = "solid"  # solid, marker, ballpoint (pressure), pencil (graphite grain)
  paint: bool = False  # opaque paint (a plate's white digit); otherwise ink darkens the paper


@dataclasses.dataclass
class Ruling:
  start: tuple[float, float]
  end: tuple[float, float]
  width: float  # mm
  colour: tuple[int, int, int]


@dataclasses.dataclass
class Scene:
  outline: np.ndarray  # the sheet's (or plate's) outline, (n, 2) mm
  paper: tuple[int, int, int]
  background: str  # one of BACKGROUNDS: the desk or wall around the sheet
  layers: list[Layer]
  subject: Box  # what the photographer frames (mm)
  rulings: list[Ruling] = dataclasses.field(default_factory=list)
  digits: list[Marks] = dataclasses.field(default_factory=list)  # what ``fraction`` sizes
  focus: tuple[float, float] | None = None  # where to aim (mm); None: at the subject


def sheet_rulings(surface: str, rng: np.random.Generator, sheet: tuple[float, float],
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
    colour = pick(rng, [(188, 202, 222), (196, 196, 196), (180, 200, 212)])
    width, (ox, oy) = rng.uniform(0.08, 0.2), rng.uniform(0, 5, 2)
    lines = [Ruling((x, 0), (x, sh), width, colour) for x in np.arange(ox, sw, 5.0)]
    lines += [Ruling((0, y), (sw, y), width, colour) for y in np.arange(oy, sh, 5.0)]
    return lines, np.arange(oy, sh, 5.0), None
  return [], np.zeros(0), None


def place(rng: np.random.Generator, sheet: tuple[float, float], half: np.ndarray,
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


def form(rng: np.random.Generator, subject: Box, height: float, slots: list[Box] | None,
         tags: list[str]) -> tuple[Layer, Box]:
  """A printed box (or a row of boxes) around the writing, sometimes with a label."""
  colour = pick(rng, [(35, 35, 35), (120, 120, 120), (70, 100, 170), (225, 130, 120)])
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
    marks.strokes.append(rectangle(box, line))
  x0, y0 = slots[0][0], slots[0][1]
  x1, y1 = slots[-1][2], slots[-1][3]
  if rng.random() < 0.4:
    text = pick(rng, _LABELS)
    th = (y1 - y0) * rng.uniform(0.2, 0.35)
    tw = font_aspect(text) * th
    marks.glyphs.append(Glyph(text, (x0 - tw / 2 - rng.uniform(2, 6), (y0 + y1) / 2), th))
    tags.append("label")
  return Layer(marks, colour), marks.box() if marks.glyphs else (
      x0 - line, y0 - line, x1 + line, y1 + line)


def background(kind: str, rng: np.random.Generator, shape: tuple[int, int],
               mm_px: float, roll: float) -> np.ndarray:
  """Desk or wall albedo on the reduced grid: float32 (h, w, 3) in 0-255."""
  h, w = shape
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  angle = roll  # a wall is square to the plate on it; a sheet lies askew on a desk
  if kind not in ("stucco", "brick"):
    angle += rng.normal(0, 0.3) + (np.pi / 2 if rng.random() < 0.5 else 0)
  u = (x * np.cos(angle) + y * np.sin(angle)) / mm_px  # mm along the grain / rows
  v = (-x * np.sin(angle) + y * np.cos(angle)) / mm_px
  fine = rng.random((h, w), np.float32)
  if kind == "wood":
    base = np.array([(150, 100, 60), (120, 80, 50), (185, 145, 100), (95, 65, 45),
                     (205, 175, 135)][rng.integers(5)], np.float32)
    warp = smooth(rng, shape, 3) * rng.uniform(5, 25)
    plank_w = rng.uniform(90, 200)
    plank = np.floor(v / plank_w)
    tone = 0.9 + 0.2 * ((np.sin(plank * 12.9898) * 43758.5453) % 1.0)
    across = (v + warp + 0.01 * u) / rng.uniform(0.8, 2.0)  # grain lines, irregularly spaced
    table = rng.random(int(np.ceil(np.abs(across).max())) + 2).astype(np.float32)
    streaks = np.interp(np.abs(across), np.arange(len(table)), table).astype(np.float32)
    rings = np.sin(2 * np.pi * (v + 2 * warp) / rng.uniform(8, 25))
    value = tone * (0.84 + 0.1 * streaks ** 2 + 0.05 * rings + 0.04 * fine)
    value *= np.where((v % plank_w) < 1.2, 0.6, 1.0)  # the joints between planks
  elif kind == "brick":
    base = np.array([(160, 80, 60), (140, 90, 70), (180, 110, 80)][rng.integers(3)],
                    np.float32)
    row = np.floor(v / 75.0)
    along = u + 112 * (row % 2)
    col = np.floor(along / 225.0)
    tone = 0.85 + 0.25 * ((np.sin(row * 78.233 + col * 12.9898) * 43758.5453) % 1.0)
    mortar = ((v % 75.0) < 10) | ((along % 225.0) < 10)
    brick = tone[..., None] * base * (0.9 + 0.1 * fine[..., None])
    grey = np.array([195, 190, 180], np.float32) * (0.85 + 0.15 * fine[..., None])
    return np.clip(np.where(mortar[..., None], grey, brick), 0, 255)
  else:
    palettes = {
        "dark": [(35, 35, 38), (50, 45, 42), (30, 34, 45), (60, 60, 62)],
        "colour": [(215, 215, 210), (170, 170, 165), (200, 185, 160), (70, 100, 150),
                   (80, 130, 90), (170, 60, 60), (220, 160, 70), (110, 110, 120)],
        "stucco": [(225, 215, 195), (200, 200, 195), (235, 230, 220), (190, 150, 120)],
    }[kind]
    base = np.array(palettes[rng.integers(len(palettes))], np.float32)
    value = 0.92 + 0.1 * smooth(rng, shape, 6) + 0.06 * (fine - 0.5)
    if kind == "stucco":
      value += 0.08 * (smooth(rng, shape, 40) - 0.5) + 0.1 * (smooth(rng, shape, 150) - 0.5)
  return np.clip(value[..., None] * base, 0, 255)

