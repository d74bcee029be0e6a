"""Folders of phone photos of each kind, reproducibly from a seed, with their truth file.

``make_kind`` writes ``count`` photos of a kind into a folder (several processes, the same
files whatever their number: each file comes from its own random stream, and ``draw(kind,
index, seed)`` redraws any one of them). The kinds (``python -m mnist_flax.tools.samples DIR
--kind KIND --count N --seed S``):

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

A hidden ``.truth.jsonl`` in the folder lists every file with its choices, the camera (size,
px_per_mm, roll, tilt, quality, blur, noise) and each digit's box ``[x0, y0, x1, y1]`` in the
displayed image's pixels; writing into a folder again replaces the entries of the same files.

    from mnist_flax.tools.samples import kinds
    paths = kinds.make_kind("numbers", "/tmp/numbers", count=40, seed=0)
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
from pathlib import Path

import cv2
import numpy as np

from mnist_flax.tools.samples.cases import CASES, draw_case
from mnist_flax.tools.samples.handwriting import SHAPES
from mnist_flax.tools.samples.paper import SURFACES
from mnist_flax.tools.samples.photo import Sample, render
from mnist_flax.tools.samples.randomness import pick

KINDS = ("photos", "numbers", "printed", "nondigits", "cases")

_NUMBERS = ("42", "2026", "07", "1984", "17", "128", "2019", "305", "09", "1000", "64", "11")


def _number_text(rng: np.random.Generator) -> str:
  """A number people write: a well-known one, 2-3 digits, a year, or "0" and a digit."""
  r = rng.random()
  if r < 0.3:
    return pick(rng, _NUMBERS)
  if r < 0.55:
    return str(int(rng.integers(10, 100)))
  if r < 0.7:
    return str(int(rng.integers(100, 1000)))
  if r < 0.9:
    return str(int(rng.integers(1900, 2031)))
  return f"0{int(rng.integers(0, 10))}"


def draw(kind: str, index: int, seed: int = 0) -> Sample:
  """The ``index``-th sample of ``kind`` for ``seed``: the same arguments, the same bytes."""
  rng = np.random.default_rng([seed, 2 + KINDS.index(kind), index])
  if kind == "photos":
    return render(str(index % 10), rng)
  if kind == "numbers":
    text = _number_text(rng)
    plates = 0.0 if text.startswith("0") else 0.1  # nobody's house is number 07
    surface = pick(rng, SURFACES, np.array([0.3, 0.3, 0.2, 0.1, plates]) / (0.9 + plates))
    return render(text, rng, surface=surface)
  if kind == "printed":
    return render(str(index % 10), rng, printed=True)
  if kind == "nondigits":
    return render(pick(rng, SHAPES, [0.3] + [0.2 / (len(SHAPES) - 3)] * (len(SHAPES) - 3)
                       + [0.25, 0.25]), rng)
  raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _write(kind: str, index: int, seed: int, out: Path) -> tuple[Path, str]:
  """Draws and writes one file; returns its path and its line for ``.truth.jsonl``."""
  if kind == "cases":  # each case in turn, then again: 3_ruled.jpg, ..., 3_ruled_1.jpg
    name, variant = list(CASES)[index % len(CASES)], index // len(CASES)
    sample = draw_case(name, variant, seed)
    path = out / (f"{name}_{variant}.jpg" if variant else f"{name}.jpg")
  else:
    sample = draw(kind, index, seed)
    path = out / sample.name(index)
  path.write_bytes(sample.jpeg)
  return path, json.dumps({"file": path.name, "kind": kind, **sample.info})


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
