"""Tests for mnist_flax.preprocess.fast: the same answers as the OpenCV and NumPy calls it stands
in for, bit for bit.

Run: PYTHONPATH=$PWD /work/main/.venv/bin/pytest tests/test_preprocess_fast.py -q
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mnist_flax.preprocess import fast


def _samples(seed: int) -> list[np.ndarray]:
  """Arrays of the kinds the pipeline takes order statistics of: float32 ink values (ties and
  NaN among them), uint8 backgrounds and uint16 counts, odd and even sizes, 2-D too."""
  rng = np.random.default_rng(seed)
  out = []
  for i in range(400):
    n = int(rng.integers(1, 2000))
    kind = i % 4
    if kind == 0:
      a = rng.random(n, dtype=np.float32)
    elif kind == 1:
      a = rng.integers(0, 256, n).astype(np.uint8)
    elif kind == 2:
      a = (rng.random(n) * 10).astype(np.float32).round()
    else:
      a = rng.integers(0, 20, n).astype(np.uint16)
    if i % 37 == 0 and a.dtype.kind == "f":
      a[rng.integers(0, n)] = np.nan
    out.append(a.reshape(1, -1) if i % 2 else a)
  return out


def _same(x: float, y: float) -> bool:
  return x == y or (np.isnan(x) and np.isnan(y))


def test_median_is_numpys() -> None:
  for a in _samples(1):
    before = a.copy()
    assert _same(fast.median(a), float(np.median(a))), (a.dtype, a.size)
    assert np.array_equal(a, before, equal_nan=True)  # The caller's array is left alone.


@pytest.mark.parametrize("q", [0, 1, 50, 75, 90, 95, 99, 100])
def test_percentile_is_numpys(q: float) -> None:
  for a in _samples(2):
    assert _same(fast.percentile(a, q), float(np.percentile(a, q))), (a.dtype, a.size, q)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_components_are_opencvs(connectivity: int) -> None:
  rng = np.random.default_rng(3)
  for share in (0.0, 0.02, 0.3, 0.6, 1.0):
    mask = (rng.random((300, 220)) < share)
    count, labels, stats, centroids = fast.connected_components(mask, connectivity)
    want = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=connectivity)
    assert count == want[0]
    assert labels.dtype == np.uint16
    assert np.array_equal(labels, want[1]) and np.array_equal(stats, want[2])
    assert np.allclose(centroids, want[3], equal_nan=True)


def test_components_beyond_16_bits() -> None:
  """More components than 16-bit labels can number: 32-bit labels, the right count."""
  mask = np.zeros((600, 600), np.uint8)
  mask[::2, ::2] = 1  # 90,000 single pixels.
  count, labels, stats, _ = fast.connected_components(mask, 8)
  assert count == 90_001
  assert labels.dtype == np.int32 and int(labels.max()) == 90_000
  assert int(stats[1:, cv2.CC_STAT_AREA].sum()) == 90_000


@pytest.mark.parametrize("chosen", [0, 3, 40, 200])
def test_gather_is_take(chosen: int) -> None:
  """table[labels] from the boxes of the chosen components (few and many; a blob spanning
  the picture among them), the same as np.take, and a new array the caller may change."""
  rng = np.random.default_rng(4)
  mask = rng.random((240, 320)) < 0.08
  mask[100, :] = True  # One component across the picture: a box as wide as it.
  count, labels, stats, _ = fast.connected_components(mask, 8)
  table = np.zeros(count, bool)
  table[rng.choice(np.arange(1, count), min(chosen, count - 1), replace=False)] = True
  for t in (table, np.r_[True, table[1:]]):  # The paper (label 0) chosen too.
    got = fast.gather(t, labels, stats)
    assert got.dtype == bool and np.array_equal(got, np.take(t, labels))
    got[:] = False
    assert not np.shares_memory(got, labels)


def test_count_nonzero_is_numpys() -> None:
  rng = np.random.default_rng(5)
  for shape in ((300, 220), (1, 7), (7, 1), (0, 5)):
    mask = rng.random(shape) < 0.3
    for part in (mask, mask.T, mask[::2, 1:]):
      for axis in (0, 1):
        want = np.count_nonzero(part, axis=axis)
        got = fast.count_nonzero(part, axis=axis)
        assert got.dtype == want.dtype and np.array_equal(got, want), (shape, axis)
