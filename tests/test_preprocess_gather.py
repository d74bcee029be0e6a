"""Pieces of ink gathered into glyphs (preprocess.gather): a flag or a bar near its digit joins
it; a digit far from a taller glyph for its size (the desk's grain, a shadow's mark) does not.

Run: python -m pytest tests/test_preprocess_gather.py -q
"""

from __future__ import annotations

import numpy as np

from conftest import draw_samples, read_numbers
from mnist_flax.preprocess import gather

_SIDE = 800  # The picture's long side: sets only what a speck is (under 16 px).


def _gathered(*boxes: tuple[int, int, int, int, int]) -> list[list[int]]:
  """The labels of each glyph gathered from pieces (x, y, w, h, area), biggest first."""
  stats = np.array([(0, 0, _SIDE, _SIDE, 0), *boxes], np.int32)
  return sorted(sorted(g.labels) for g in gather.groups(stats, _SIDE))


def test_a_flag_cut_off_by_a_grid_line_joins_its_digit() -> None:
  # A 2's top arc cut in two by squared paper's lines, 13-18 px above its body 38 px tall.
  assert _gathered((683, 224, 48, 38, 288), (714, 196, 20, 10, 73),
                   (696, 200, 17, 11, 69)) == [[1, 2, 3]]


def test_a_digit_far_above_a_taller_glyph_stays_apart() -> None:
  # A marker 7 and, 89 px above it, a mark of the desk as tall as half of it: 0.42 of the 7's
  # height away, within what a flag may be, but twice as far as the mark is wide.
  assert _gathered((752, 285, 72, 212, 5894), (798, 54, 42, 142, 3228)) == [[1], [2]]


def test_a_digit_above_a_desks_grain_is_not_gathered_into_it() -> None:
  # 40 px tall, 70 px above a grain line 300 px tall: within half the grain's height.
  assert _gathered((400, 500, 60, 300, 4000), (410, 390, 30, 40, 500)) == [[1], [2]]


def test_a_flat_base_broken_off_its_stroke_is_tied_back() -> None:
  # A pencil 2 on squared paper: its top arc, its diagonal stroke just below it, and, 4 px below
  # that, its base, 73 px wide but 19 px tall (placed before the diagonal, it was too far from
  # the arc to join; the diagonal then all but touches it, for its width).
  assert _gathered((484, 515, 73, 46, 542), (458, 614, 73, 19, 515),
                   (485, 565, 57, 45, 294)) == [[1, 2, 3]]


def test_twos_that_lost_their_base_are_read(tmp_path) -> None:
  # The generator's: each read 7, with probability 0.999.
  drawn = draw_samples(tmp_path, [("photos", 12, 31337), ("photos", 122, 9001)])
  assert [truth for _, truth in drawn] == ["2", "2"]
  read = read_numbers(tmp_path)
  assert [read[path.name] for path, _ in drawn] == ["2", "2"]


def test_numbers_beside_a_shadow_or_the_desk_are_read_whole(tmp_path) -> None:
  # The generator's: a mark of a hand's shadow joined the 2 of "24" (read 4), the desk's the 0
  # of "05" (read 5) and a marker 7 (read 1).
  drawn = draw_samples(tmp_path, [("numbers", 129, 7), ("numbers", 117, 31337),
                                  ("photos", 177, 9001)])
  assert [truth for _, truth in drawn] == ["24", "05", "7"]
  read = read_numbers(tmp_path)
  assert [read[path.name] for path, _ in drawn] == ["24", "05", "7"]
