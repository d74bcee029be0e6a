"""Touching digits in a number: where a glyph is cut (digits.find) and which pieces are read
(preprocess.choose).

Run: python -m pytest tests/test_preprocess_numbers.py -q
"""

from __future__ import annotations

import cv2
import numpy as np
from conftest import draw_samples, read_numbers
from PIL import Image

from mnist_flax.preprocess import (Digit, choose, cuts, digits, fast, gather, read_digits,
                                   to_digits)
from mnist_flax.tools.samples import kinds

_FIELD = np.zeros((28, 28), np.float32)


def _one_leaning_over_a_zero() -> tuple[np.ndarray, np.ndarray]:
  """A "1" whose top leans over the left side of the "0" beside it (their columns overlap by
  9 pixels), and the "0": two masks of one picture."""
  one = np.zeros((170, 240), np.uint8)
  zero = one.copy()
  cv2.line(one, (90, 20), (56, 140), 1, 7)
  cv2.ellipse(zero, (125, 80), (36, 55), 0, 0, 360, 1, 7)
  return one.astype(bool), zero.astype(bool)


def _share(piece: digits.Glyph, of: np.ndarray) -> float:
  x0, y0, x1, y1 = piece.box
  inside = np.zeros_like(of)
  inside[y0:y1, x0:x1] = piece.mask
  return float((inside & of).sum() / of.sum())


def test_digits_leaning_into_each_other_come_apart() -> None:
  # No straight cut parts them: a cut path bends around the 1's top.
  one, zero = _one_leaning_over_a_zero()
  assert np.flatnonzero(one.any(axis=0))[-1] > np.flatnonzero(zero.any(axis=0))[0]
  glyphs = digits.find(one | zero)
  assert len(glyphs) == 1  # So close that they make one glyph.
  pieces = glyphs[0].pieces
  right = glyphs[0].cuts + 1
  # Within a pixel or two where the path crosses the 1's stroke end.
  ones = [b for a, b, p in pieces if a == 0 and _share(p, one) > 0.99 and _share(p, zero) < 0.01]
  zeros = {a for a, b, p in pieces if b == right and _share(p, zero) > 0.99 and _share(p, one) < 0.01}
  assert set(ones) & zeros


def test_a_narrow_glyph_is_not_cut() -> None:
  one, _ = _one_leaning_over_a_zero()
  (glyph,) = digits.find(one)
  assert glyph.cuts == 0 and glyph.pieces == ()


def test_a_one_run_into_a_seven_is_cut_though_narrower_than_two_digits() -> None:
  # A 1 and a 7 whose bar reaches the 1's stem: 0.56 heights wide, one touch; a 1 after them.
  one = np.zeros((200, 300), np.uint8)
  seven = one.copy()
  cv2.line(one, (50, 24), (50, 170), 1, 8)
  cv2.line(seven, (54, 28), (128, 28), 1, 8)
  cv2.line(seven, (128, 28), (86, 170), 1, 8)
  one, seven = one.astype(bool), seven.astype(bool)
  glyph, after = digits.find(one | seven | _another_one())
  assert after.cuts == 0
  right = glyph.cuts + 1
  ones = {b for a, b, p in glyph.pieces
          if a == 0 and _share(p, one) > 0.99 and _share(p, seven) < 0.2}
  sevens = {a for a, b, p in glyph.pieces
            if b == right and _share(p, one) < 0.01 and _share(p, seven) > 0.8}
  assert ones & sevens


def test_a_narrow_digit_is_not_cut_through_two_strokes() -> None:
  # A bold 0 as narrow as a 1 run into a 9: any cut across it crosses it twice, so it is one
  # digit. A path down its own stroke (holes cost as ink in a number) may shave a sliver off
  # it, shorter than a digit of the row: never two digit-tall halves.
  zero = np.zeros((200, 300), np.uint8)
  cv2.ellipse(zero, (100, 100), (32, 62), 0, 0, 360, 1, 12)
  glyph, _ = digits.find(zero.astype(bool) | _another_one())
  height = glyph.box[3] - glyph.box[1]
  tall = {(a, b) for a, b, p in glyph.pieces if p.box[3] - p.box[1] >= digits.ROW_HEIGHT * height}
  assert not any((0, cut) in tall and (cut, glyph.cuts + 1) in tall
                 for cut in range(1, glyph.cuts + 1))


def test_zeros_sharing_a_stroke_part_along_it() -> None:
  # Two 0s written fast, the second's left side on the first's right one: the cheapest paths
  # crossed each loop's middle (top and bottom strokes only), and "00" was read as 0 or 60;
  # a path through a hole now costs as if it crossed ink, so it runs down the shared stroke.
  mask = np.zeros((200, 260), np.uint8)
  cv2.ellipse(mask, (60, 100), (45, 90), 0, 0, 360, 1, 10)
  cv2.ellipse(mask, (150, 100), (45, 90), 0, 0, 360, 1, 10)
  ys, xs = np.nonzero(mask)
  glyph = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(bool)  # 191 x 191
  middles = [float(p.mean()) for p in cuts.paths(glyph, 0.0, alone=True)]
  assert any(88 <= m <= 106 for m in middles)  # The shared stroke: columns 90-100.
  assert not any(30 <= m <= 70 or 120 <= m <= 160 for m in middles)  # A loop's middle.


def test_a_one_whose_stroke_is_the_nines_side_is_parted_along_it(tmp_path) -> None:
  # "1921" written fast: the 1's stroke runs down the left side of the 9's loop, so every path
  # between them crossed the loop (no cut: read 921). Holes cost as ink in a number, so a path
  # runs down the shared stroke: a 1 and a 9, each as tall as a digit of the row (the
  # generator's numbers, seed 5151, #138).
  sample = kinds.draw("numbers", 138, seed=5151)
  assert sample.truth == "1921"
  path = tmp_path / "1921.jpg"
  path.write_bytes(sample.jpeg)
  found = read_digits(path)
  glyph = found[0]
  height = glyph.box[3] - glyph.box[1]
  halves = {d.span: d.box for d in found if d.split_of == 0}
  assert any((0, c) in halves and (c, c + 1) in halves
             and halves[(0, c)][2] - halves[(0, c)][0] < 0.4 * height  # The 1: narrow...
             and min(b[3] - b[1] for b in (halves[(0, c)], halves[(c, c + 1)]))
             >= digits.ROW_HEIGHT * height  # ...and both as tall as a digit.
             for c in range(1, 4)), halves


def _one_through_a_nine(one_pen: int) -> tuple[np.ndarray, np.ndarray]:
  """A "1" (its line ``one_pen`` pixels thick) whose top runs through the left side of the
  9's loop after it, and the 9 (a pen 8 pixels thick): two masks of one picture, the two
  0.78 heights wide (wide enough for a glyph alone to be cut too)."""
  one = np.zeros((200, 300), np.uint8)
  nine = one.copy()
  cv2.line(one, (66, 22), (46, 176), 1, one_pen)
  cv2.ellipse(nine, (112, 64), (52, 40), 0, 0, 360, 1, 8)
  cv2.line(nine, (162, 70), (148, 176), 1, 8)
  return one.astype(bool), nine.astype(bool)


def _one_apart(glyph: digits.Glyph, one: np.ndarray, nine: np.ndarray) -> bool:
  """Whether a piece of ``glyph`` from its left edge is the whole 1 with at most a fifth of
  the 9 (where the 1 crosses its loop), and the rest of the glyph the rest of the 9."""
  ones = {b for a, b, p in glyph.pieces if a == 0 and _share(p, one) > 0.98
          and _share(p, nine) < 0.2}
  nines = {a for a, b, p in glyph.pieces if b == glyph.cuts + 1 and _share(p, one) < 0.02
           and _share(p, nine) > 0.8}
  return bool(ones & nines)


def test_a_one_run_through_a_nines_loop_is_parted_along_its_edge() -> None:
  # "1963" written fast: the 1's top runs through the 9's loop, so every seam between them
  # crossed the 1 (read 963). The 1's straight left edge gives the cut along its other side.
  one, nine = _one_through_a_nine(8)
  glyph, after = digits.find(one | nine | _another_one())
  assert after.cuts == 0 and _one_apart(glyph, one, nine)


def test_a_thin_line_beside_a_digit_is_no_one_run_into_it() -> None:
  # A form box's side left beside a digit is straight too, but far thinner than the pen.
  one, nine = _one_through_a_nine(3)
  glyph, _ = digits.find(one | nine | _another_one())
  assert not _one_apart(glyph, one, nine)


def test_a_glyph_alone_is_not_parted_along_a_straight_edge() -> None:
  # Letters (an A, a K, an M) have a straight left side with strokes beyond it too: a glyph
  # alone is no number, and keeps its seams only (which cannot part this one).
  one, nine = _one_through_a_nine(8)
  (glyph,) = digits.find(one | nine)
  assert glyph.cuts > 0 and not _one_apart(glyph, one, nine)


def test_a_bold_zero_a_little_wider_is_not_cut_across_its_loop() -> None:
  # 0.84 heights wide: any cut crosses its loop twice, and its halves read as "1"s more surely
  # than the model reads the 0 (a bold printed 0 was answered "11").
  for pen in (14, 26):
    zero = np.zeros((300, 300), np.uint8)
    cv2.ellipse(zero, (150, 150), (66, 80), 0, 0, 360, 1, pen)
    (glyph,) = digits.find(zero.astype(bool))
    assert glyph.cuts == 0 and glyph.pieces == ()


def test_a_narrow_glyph_alone_is_one_digit() -> None:
  # The 1 run into a 7 of the test above, with nothing beside it: not cut. Alone, a glyph of
  # two strokes joined by a bar is a "17" no more often than a Pi, an h or a U.
  one = np.zeros((200, 200), np.uint8)
  cv2.line(one, (50, 24), (50, 170), 1, 8)
  cv2.line(one, (54, 28), (128, 28), 1, 8)
  cv2.line(one, (128, 28), (86, 170), 1, 8)
  (glyph,) = digits.find(one.astype(bool))
  assert glyph.cuts == 0 and glyph.pieces == ()


def _another_one() -> np.ndarray:
  """A "1" at the right of a 200 x 300 mask: the next digit of a number."""
  one = np.zeros((200, 300), np.uint8)
  cv2.line(one, (230, 26), (230, 168), 1, 8)
  return one.astype(bool)


def _glyph(*pieces: tuple[int, int, int]) -> list[Digit]:
  """A glyph 100 px tall spanning cuts (0, n), then its pieces (a, b, height)."""
  last = max(b for _, b, _ in pieces)
  found = [Digit(_FIELD, (0, 0, 100, 100), -1, (0, last))]
  found += [Digit(_FIELD, (10 * a, 100 - h, 10 * b, 100), 0, (a, b)) for a, b, h in pieces]
  return found


def test_a_tie_reads_one_digit() -> None:
  # A 0 and its halves read about as surely: one digit, never two.
  found = _glyph((0, 1, 100), (1, 2, 100))
  assert choose(found, np.array([0.996, 0.999, 0.997])) == [0]


def test_pieces_read_far_more_surely_replace_the_glyph() -> None:
  found = _glyph((0, 1, 100), (1, 2, 100))
  assert choose(found, np.array([0.9, 0.999, 0.99])) == [1, 2]


def _zeros_run_together(wide: int) -> list[Digit]:
  """"000" written fast, one glyph 300 x 100 cut at 100 and 200 (0s 100 wide), and a piece
  ``wide`` pixels wide from its left edge to the second cut's place (as wide as two 0s, or a
  marker's wide 2 from a number the tilt makes short)."""
  box = lambda x0, x1: (x0, 0, x1, 100)  # noqa: E731
  return [Digit(_FIELD, box(0, 300), -1, (0, 3)),
          Digit(_FIELD, box(0, 100), 0, (0, 1)), Digit(_FIELD, box(100, 200), 0, (1, 2)),
          Digit(_FIELD, box(0, wide), 0, (0, 2)), Digit(_FIELD, box(200, 300), 0, (2, 3))]


def test_a_piece_as_wide_as_two_digits_loses_to_the_two() -> None:
  # The model reads "00" as a 0 as surely as each of them ("1000" read 100).
  assert choose(_zeros_run_together(200), np.array([0.99, 0.9995, 0.9996, 0.9997, 0.9995])
                ) == [1, 2, 4]


def test_a_wide_piece_counts_against_other_rows_only() -> None:
  # Narrower rows read unsurely: the row with the wide piece, still far likelier than the
  # glyph whole, is the answer ("2000" read 2 when the piece counted against the glyph too).
  assert choose(_zeros_run_together(150), np.array([0.6, 0.3, 0.3, 0.999, 0.999])
                ) == [3, 4]


def test_a_narrow_glyph_splits_only_on_far_surer_pieces() -> None:
  # An open 0, 0.68 heights wide, read 0.997; its halves read "1" at 1.000 and "7" at 0.999
  # ("2026" answered 21726). A "19" written as one stroke, read 9 at 0.85: its 1 and 9 at 0.999.
  found = [Digit(_FIELD, (0, 0, 68, 100), -1, (0, 2)), Digit(_FIELD, (0, 10, 30, 100), 0, (0, 1)),
           Digit(_FIELD, (20, 0, 68, 100), 0, (1, 2))]
  assert choose(found, np.array([0.997, 1.0, 0.999])) == [0]
  assert choose(found, np.array([0.85, 0.999, 0.999])) == [1, 2]


def test_the_likeliest_row_of_pieces_is_chosen() -> None:
  # Cuts 0..3: (0,1)+(1,3) beats (0,2)+(2,3) and the three narrow pieces.
  found = _glyph((0, 1, 100), (0, 2, 100), (1, 2, 100), (1, 3, 100), (2, 3, 100))
  confidence = np.array([0.5, 0.99, 0.6, 0.9, 0.98, 0.95])
  assert choose(found, confidence) == [1, 4]


def test_a_short_piece_is_a_stroke_cut_off_not_a_digit() -> None:
  # A piece 30% of the glyph's height, however surely read, does not make the glyph two digits.
  short = _glyph((0, 1, 30), (1, 2, 100))
  assert choose(short, np.array([0.9, 0.999, 0.999])) == [0]
  tall = _glyph((0, 1, 90), (1, 2, 100))
  assert choose(tall, np.array([0.9, 0.999, 0.999])) == [1, 2]


def test_a_glyph_twice_as_wide_as_tall_is_not_one_digit() -> None:
  # The model reads "00" run together as a 0 as surely as each 0: the width decides.
  found = [Digit(_FIELD, (0, 0, 200, 100), -1, (0, 2)),
           Digit(_FIELD, (0, 0, 110, 100), 0, (0, 1)), Digit(_FIELD, (90, 0, 200, 100), 0, (1, 2))]
  assert choose(found, np.array([0.99, 0.97, 0.97])) == [1, 2]
  found[0] = Digit(_FIELD, (0, 0, 100, 100), -1, (0, 2))  # As wide as tall: one digit.
  assert choose(found, np.array([0.99, 0.97, 0.97])) == [0]


def test_a_rival_row_is_read_where_the_model_is_surer_of_it() -> None:
  # Row 0: a blob of the desk, alone; row 1: a number beside it (see digits.find).
  found = [Digit(_FIELD, (0, 0, 200, 200)), Digit(_FIELD, (300, 50, 360, 150), row=1),
           Digit(_FIELD, (380, 50, 440, 150), row=1)]
  assert choose(found, np.array([0.04, 0.99, 0.97])) == [1, 2]
  # A digit beside a label's letters, read unsurely; and a tie, which row 0 keeps.
  assert choose(found, np.array([0.96, 0.9, 0.02])) == [0]
  assert choose(found, np.array([0.5, 0.5, 0.5])) == [0]
  # Bricks the reader is sure are 2s, but the gate doubts are digits at all: row 0 stays.
  assert choose(found, np.array([0.3, 0.99, 0.99])) == [1, 2]
  assert choose(found, np.array([0.3, 0.99, 0.99]), np.array([0.01, 0.001, 0.001])) == [0]


def test_a_digit_read_surely_keeps_the_answer_from_a_rival_row() -> None:
  # A 6 read at 0.99 above "SOS", whose letters read as 5, 0, 5 more surely still ("505").
  found = [Digit(_FIELD, (0, 0, 100, 100))] + [
      Digit(_FIELD, (x, 150, x + 40, 200), row=1) for x in (0, 50, 100)]
  sure = np.array([0.99, 0.999, 0.999, 0.999])
  assert choose(found, sure, unsure_below=0.5) == [0]
  assert choose(found, sure * np.array([0.4, 1, 1, 1]), unsure_below=0.5) == [1, 2, 3]


def test_a_rival_rows_glyph_may_be_cut_too() -> None:
  # Row 1's glyph, two touching digits, read best as its pieces: those are the answer.
  found = [Digit(_FIELD, (0, 0, 100, 100)), Digit(_FIELD, (200, 0, 400, 100), -1, (0, 2), 1),
           Digit(_FIELD, (200, 0, 300, 100), 1, (0, 1), 1),
           Digit(_FIELD, (300, 0, 400, 100), 1, (1, 2), 1)]
  assert choose(found, np.array([0.3, 0.5, 0.99, 0.98])) == [2, 3]


def test_glyphs_without_pieces_are_read_in_order() -> None:
  found = [Digit(_FIELD, (0, 0, 10, 10)), Digit(_FIELD, (20, 0, 30, 10))]
  assert choose(found, np.array([0.3, 0.2])) == [0, 1]


def test_slant_is_how_far_the_ink_leans_right_per_row() -> None:
  upright = np.zeros((100, 60), np.uint8)
  cv2.line(upright, (30, 5), (30, 95), 1, 5)
  leaning = np.zeros((100, 60), np.uint8)
  cv2.line(leaning, (45, 5), (15, 95), 1, 5)  # 30 columns right over 90 rows up.
  assert abs(cuts.slant(upright)) < 0.01
  assert abs(cuts.slant(leaning) - 1 / 3) < 0.03


def test_slanted_digits_that_touch_are_cut_along_their_slant() -> None:
  # Three strokes leaning 0.4 with 11-px slanted gaps ("111" run together halfway down): no
  # cut within the vertical bands finds a gap (each drifts 40 px over the height), one along
  # the row's slant does.
  left, right = np.zeros((130, 220), np.uint8), np.zeros((130, 220), np.uint8)
  cv2.line(left, (100, 10), (60, 110), 1, 9)
  for dx in (20, 40):
    cv2.line(right, (100 + dx, 10), (60 + dx, 110), 1, 9)
  cv2.line(right, (80, 60), (120, 60), 1, 5)  # Run into each other.
  left, right = left.astype(bool), right.astype(bool) & ~left.astype(bool)
  (glyph,) = digits.find(left | right)
  ends = {b for a, b, p in glyph.pieces
          if a == 0 and _share(p, left) > 0.9 and _share(p, right) < 0.1}
  starts = {a for a, b, p in glyph.pieces
            if b == glyph.cuts + 1 and _share(p, right) > 0.9 and _share(p, left) < 0.1}
  assert ends & starts


def test_a_digit_broken_into_short_fragments_joins_the_row() -> None:
  # A ring (the main glyph) and a "1" whose stroke skipped: two fragments, each too short for
  # the row, too far apart sideways to be stacked, too far apart upright to be touching.
  mask = np.zeros((200, 300), np.uint8)
  cv2.ellipse(mask, (80, 100), (30, 50), 0, 0, 360, 1, 6)
  cv2.line(mask, (178, 52), (172, 92), 1, 6)
  cv2.line(mask, (168, 106), (162, 148), 1, 6)
  glyphs = digits.find(mask.astype(bool))
  assert [g.box[0] < 120 for g in glyphs] == [True, False]
  x0, y0, x1, y1 = glyphs[1].box
  assert y1 - y0 > 90 and x1 - x0 < 30


def test_a_broken_one_at_the_low_end_of_a_tilted_number_joins_the_row() -> None:
  # A number turned by 14 degrees (each digit a quarter of a height higher than the last) and
  # a slanted "1" broken in two before it, as low again: its lower fragment reached below the
  # row's level band, and "1959" read as 959 (the generator's numbers, seed 5151, #33).
  mask = np.zeros((800, 700), np.uint8)
  for x, y in ((200, 500), (300, 475), (400, 450)):
    cv2.rectangle(mask, (x, y), (x + 59, y + 99), 1, 6)
  cv2.line(mask, (130, 520), (124, 556), 1, 6)
  cv2.line(mask, (120, 575), (113, 617), 1, 6)
  glyphs = digits.find(mask.astype(bool))
  assert len(glyphs) == 4
  x0, y0, x1, y1 = glyphs[0].box
  assert x1 <= 140 and y1 - y0 >= 95


def test_a_number_tied_to_the_edge_by_a_grid_line_left_over_is_read(tmp_path) -> None:
  # "1993" in marker on squared paper: two grid lines that Hough missed run through the 1 and
  # the 9s out to the picture's edge, so the three were left out as touching it (read "3").
  # Thin ink run out to the edge from strokes clear of it is a line, however wide the number.
  sample = kinds.draw("numbers", 158, seed=11)
  assert sample.truth == "1993"
  path = tmp_path / "1993.jpg"
  path.write_bytes(sample.jpeg)
  assert len([d for d in read_digits(path) if d.split_of < 0]) == 4


def test_a_long_thin_line_beside_a_digit_is_not_part_of_it() -> None:
  # A sheet's edge (longer than the digit, more ink, a hundred times longer than thick) passes
  # a ring 12 px away: the ring is read alone, not as a glyph reaching down the edge.
  mask = np.zeros((420, 200), np.uint8)
  cv2.ellipse(mask, (80, 200), (30, 50), 0, 0, 360, 1, 4)
  cv2.line(mask, (124, 10), (124, 409), 1, 4)
  boxes = [g.box for g in digits.find(mask.astype(bool))]
  assert any(x1 - x0 < 70 and y1 - y0 < 110 for x0, y0, x1, y1 in boxes), boxes


def test_a_thin_line_touching_a_digit_does_not_join_it() -> None:
  # A margin (less ink than the ring, a pixel thick) all but touches the ring's side: it is no
  # piece of the ring, which is read alone.
  mask = np.zeros((420, 200), np.uint8)
  cv2.ellipse(mask, (80, 200), (30, 50), 0, 0, 360, 1, 6)
  mask[20:400, 112] = 1
  glyphs = digits.find(mask.astype(bool))
  x0, y0, x1, y1 = glyphs[0].box
  assert x1 - x0 < 70 and y1 - y0 < 110, glyphs[0].box


def test_a_thin_rule_run_into_a_thick_stroke_is_cut_off() -> None:
  # A rule two pixels thick runs from far left into a marker ring, one piece of ink with it: the
  # ring is read without the rule.
  mask = np.zeros((300, 400), np.uint8)
  cv2.ellipse(mask, (300, 150), (30, 50), 0, 0, 360, 1, 10)
  mask[150:152, 10:275] = 1
  (glyph,) = digits.find(mask.astype(bool))
  x0, y0, x1, y1 = glyph.box
  assert x0 > 250 and x1 - x0 < 80, glyph.box


def test_a_digit_tied_to_the_frames_edge_by_a_thin_line_is_read() -> None:
  # A rule's remnant (or a shadow's edge) runs from the picture's right edge into the second
  # marker ring of "00": the ring is inside the picture once the line is off, so it stays in
  # the number rather than going out with what touches the edge (the desk, a shadow).
  mask = np.zeros((300, 500), np.uint8)
  cv2.ellipse(mask, (150, 150), (30, 50), 0, 0, 360, 1, 10)
  cv2.ellipse(mask, (260, 150), (30, 50), 0, 0, 360, 1, 10)
  mask[150:152, 290:500] = 1
  glyphs = digits.find(mask.astype(bool))
  assert [(x0 // 10, x1 - x0 < 80) for x0, _, x1, _ in (g.box for g in glyphs)] == [
      (11, True), (22, True)], [g.box for g in glyphs]


def test_a_solid_patch_tied_to_the_frames_edge_stays_out() -> None:
  # A shadow's corner on the sheet (a solid wedge) tied to the desk's grain at the picture's
  # edge by thin lines: freed of them, it is still no digit beside the ring.
  mask = np.zeros((300, 500), np.uint8)
  cv2.ellipse(mask, (150, 150), (30, 50), 0, 0, 360, 1, 10)
  cv2.fillConvexPoly(mask, np.array([[300, 100], [380, 100], [340, 200]], np.int32), 1)
  for y in (110, 130, 150):
    mask[y:y + 2, 375:500] = 1
  glyphs = digits.find(mask.astype(bool))
  assert [g.box[0] // 10 for g in glyphs] == [11], [g.box for g in glyphs]


def test_a_digit_on_a_line_in_a_clean_picture_is_read_without_it() -> None:
  # A drawing or a scan of a digit written on a line across the sheet: the line is cut off the
  # digit (thin.lines_off) there as in a photo. Skipping that on clean pictures read 4 of 30.
  page = np.full((400, 600), 255, np.uint8)
  cv2.line(page, (0, 300), (599, 300), 0, 2)
  cv2.putText(page, "0", (230, 302), cv2.FONT_HERSHEY_SIMPLEX, 6, 0, 14, cv2.LINE_AA)
  (digit,) = [d for d in to_digits(Image.fromarray(page)) if d.split_of < 0]
  x0, _, x1, _ = digit.box
  assert 200 < x0 and x1 < 400


def test_a_bold_serif_four_in_a_drawing_keeps_its_hairlines() -> None:
  # A printed bold serif 4: a stem twice as thick as its diagonal and bar, which lines_off took
  # for lines run into the stem (DejaVu Serif Bold's 4 was read as 1). In a drawing a line runs
  # across the picture; thin ink within the glyph's own height is the glyph's.
  page = np.full((300, 300), 255, np.uint8)
  cv2.line(page, (175, 60), (175, 230), 0, 36)  # The stem.
  cv2.line(page, (160, 62), (85, 185), 0, 10)  # The diagonal.
  cv2.line(page, (85, 185), (215, 185), 0, 10)  # The bar.
  cv2.line(page, (140, 232), (210, 232), 0, 10)  # The foot's serif.
  (digit,) = [d for d in to_digits(Image.fromarray(page)) if d.split_of < 0]
  x0, _, x1, _ = digit.box
  assert x0 < 95 and x1 > 205


def test_a_digit_cut_in_three_by_grid_lines_is_one_glyph() -> None:
  # A 3 on squared paper that grid lines cut into its top, a short middle and its bottom (the
  # generator's photos, seed 9001, #113; these are its pieces' boxes): the bottom and the top,
  # bigger, are placed first, neither above the other enough to join; the middle touches both
  # and ties them (the top was left out, and the 3 read as 5).
  mask = np.zeros((500, 500), np.uint8)
  for x, y, w, h in ((340, 368, 48, 28), (374, 336, 33, 21), (369, 357, 25, 11)):
    cv2.rectangle(mask, (x, y), (x + w - 1, y + h - 1), 1, 2)
  glyphs = digits.find(mask.astype(bool))
  assert len(glyphs) == 1
  x0, y0, x1, y1 = glyphs[0].box
  assert y0 <= 337 and y1 >= 395, glyphs[0].box


def test_a_turned_number_is_followed_from_digit_to_digit() -> None:
  # Six digits, each a quarter of a height higher than the last (a row turned ~14 degrees):
  # the first lies well above the band of the main glyph (the boldest, the fifth), yet within
  # that of its neighbour ("640746" printed on a sticky note read as 40746).
  mask = np.zeros((900, 1000), np.uint8)
  for k in range(6):
    x, y = 80 + 140 * k, 600 - 25 * k
    cv2.rectangle(mask, (x, y - 100), (x + 60, y), 1, 12 if k == 4 else 6)
  glyphs = digits.find(mask.astype(bool))
  assert len(glyphs) == 6


def test_a_digit_on_a_sheet_enclosed_by_a_striped_desk_is_read() -> None:
  # A note on a desk striped as light as paper, so that no shade tells the sheet (the stripes'
  # edges are ink): a stripe's piece that the picture's border does not quite reach holds more
  # ink than the digit, and was read ("1", 0.999; a red team's photo). The digit is inside the
  # largest clear region, which the desk's ink encloses.
  mask = np.zeros((600, 800), np.uint8)
  for c in range(-600, 800, 60):
    cv2.line(mask, (c, 600), (c + 600, 0), 1, 24)
  mask[40:560, 120:620] = 0                                     # The sheet.
  cv2.rectangle(mask, (120, 40), (619, 559), 1, 3)              # Its rim, with gaps.
  mask[300:320, 118:124] = 0
  mask[400:600, 625:800] = 0                                    # A stripe's piece clear of
  cv2.line(mask, (665, 565), (765, 465), 1, 36)                 # the border, with more ink
  cv2.ellipse(mask, (350, 250), (45, 40), 0, 200, 450, 1, 5)    # than the 3.
  cv2.ellipse(mask, (350, 335), (50, 45), 0, -90, 160, 1, 5)
  glyphs = digits.find(mask.astype(bool))
  x0, y0, x1, y1 = glyphs[0].box
  assert 250 < x0 and x1 < 450 and 150 < y0 and y1 < 420, glyphs[0].box


def test_a_piece_between_two_digits_one_above_the_other_does_not_tie_them() -> None:
  # A 4 and, under it, a 5 whose flag lies between them: the flag joins the 4, and touches the
  # 5's stem, but a glyph as tall as two digits is no digit cut apart: two glyphs.
  mask = np.zeros((400, 300), np.uint8)
  cv2.line(mask, (150, 40), (150, 170), 1, 8)                   # The 4.
  cv2.line(mask, (150, 40), (100, 130), 1, 8)
  cv2.line(mask, (95, 130), (175, 130), 1, 8)
  cv2.line(mask, (118, 184), (175, 184), 1, 8)                  # The 5's flag,
  cv2.line(mask, (110, 196), (110, 250), 1, 8)                  # its stem and bowl.
  cv2.ellipse(mask, (135, 290), (35, 40), 0, -110, 140, 1, 8)
  groups = gather.groups(fast.connected_components(mask.astype(bool))[2], 400)
  tall = [g.height for g in groups if g.height > 50]
  assert len(tall) == 2 and max(tall) < 200, tall


def test_ones_run_into_the_next_digit_are_read(tmp_path) -> None:
  # The generator's "19xx" written fast, each 1 touching or crossing the 9's loop: read 963,
  # 967 and 927 before the 1's straight edge gave a cut.
  drawn = draw_samples(tmp_path, [("numbers", 50, 7), ("numbers", 21, 9001),
                                  ("numbers", 107, 9001)])
  assert [truth for _, truth in drawn] == ["1963", "1967", "1927"]
  read = read_numbers(tmp_path)
  assert {path.name: read[path.name] for path, _ in drawn} == {
      path.name: truth for path, truth in drawn}


def test_zeros_run_together_are_read(tmp_path) -> None:
  # The generator's "1000"s whose 0s touch: read 100 while a piece as wide as two 0s, read as
  # a 0 as surely as each of them, counted as likely as they.
  drawn = draw_samples(tmp_path, [("numbers", 29, 7), ("numbers", 160, 11)])
  assert [truth for _, truth in drawn] == ["1000", "1000"]
  read = read_numbers(tmp_path)
  assert [read[path.name] for path, _ in drawn] == ["1000", "1000"]


def _narrow_pair(joined: bool) -> np.ndarray:
  """"11": two upright 1s side by side, a glyph 0.66 heights wide (as gather.groups makes of
  two written close), or ``joined`` at the foot by a bar (a U as much as an "11")."""
  mask = np.zeros((140, 110), np.uint8)
  cv2.line(mask, (20, 15), (20, 125), 1, 8)
  cv2.line(mask, (90, 15), (90, 125), 1, 8)
  if joined:
    cv2.line(mask, (20, 122), (90, 122), 1, 6)
  ys, xs = np.nonzero(mask)
  return mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(bool)


def test_a_narrow_glyph_alone_is_cut_between_two_digits_written_close() -> None:
  # Lone glyphs narrower than cuts.TOUCHING_ASPECT were never cut: two 1s written close,
  # gathered as one glyph, were read 4. Joined by a bar, they are no more an 11 than a U.
  pair = _narrow_pair(joined=False)
  assert pair.shape[1] < cuts.TOUCHING_ASPECT * pair.shape[0]
  found = cuts.paths(pair, 0.0, alone=True)
  assert len(found) == 1
  assert 8 <= float(found[0].mean()) <= 70  # Between the strokes (columns 0-7, 70-77).
  assert cuts.paths(_narrow_pair(joined=True), 0.0, alone=True) == []


def test_a_single_narrow_digit_alone_gets_no_cut() -> None:
  # A narrow 0 or 4 alone: every column with a digit's share of ink on either side crosses a
  # stroke (no paper parts two digits), so no path is looked for.
  for draw in (lambda m: cv2.ellipse(m, (50, 70), (30, 60), 0, 0, 360, 1, 8),  # 0
               lambda m: (cv2.line(m, (60, 10), (60, 130), 1, 8),              # 4
                          cv2.line(m, (60, 10), (15, 90), 1, 8),
                          cv2.line(m, (15, 90), (85, 90), 1, 8))):
    mask = np.zeros((140, 100), np.uint8)
    draw(mask)
    ys, xs = np.nonzero(mask)
    glyph = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(bool)
    assert cuts.may_touch(glyph.shape) and glyph.shape[1] < cuts.TOUCHING_ASPECT * glyph.shape[0]
    assert cuts.paths(glyph, 0.0, alone=True) == []


def test_ones_written_close_alone_are_read(tmp_path) -> None:
  # The generator's: 1s written close enough to be gathered as one glyph, on ruled paper, on
  # a plate, in pencil, were read 4.
  cases = [("numbers", 70, 2027), ("numbers", 15, 2612), ("numbers", 98, 9001)]
  drawn = draw_samples(tmp_path, cases)
  truths = ["11", "11", "11"]
  assert [truth for _, truth in drawn] == truths
  read = read_numbers(tmp_path)
  assert [read[path.name] for path, _ in drawn] == truths
