"""Issue 13's list of photos that infer misread, one named case each, and those in test/.

``CASES`` maps a short name (``3_ruled``, ``5_shadow``, ``2026_ruled``, ``x_A``) to the truth
and the choices ``photo.render`` is told; ``draw_case`` draws one (``variant`` redraws it with
another hand, light and camera). ``COMMITTED`` are the cases shipped in test/, written by
``write_committed`` with the plain committed set (``python -m mnist_flax.tools.samples test``).

    from mnist_flax.tools.samples import cases
    cases.draw_case("3_ruled", variant=1).jpeg
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mnist_flax.tools.samples.photo import Sample, render

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
