"""Touching digits in a number: where a glyph is cut (digits.find) and which pieces are read
(preprocess.choose).

Run: python -m pytest tests/test_preprocess_numbers.py -q
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_flax.preprocess import Digit, choose, digits

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


def test_glyphs_without_pieces_are_read_in_order() -> None:
  found = [Digit(_FIELD, (0, 0, 10, 10)), Digit(_FIELD, (20, 0, 30, 10))]
  assert choose(found, np.array([0.3, 0.2])) == [0, 1]
