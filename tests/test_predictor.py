"""mnist_flax.predictor: the default checkpoint, the one ``load_final`` (cached or not), and
the fixed-size batching.

Run: /work/venv/bin/pytest tests/test_predictor.py -q
"""

from __future__ import annotations

import pathlib

import jax
import numpy as np
import pytest

from mnist_flax import cache, checkpoint, predictor

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_default_is_checkpoints_final_here_else_the_shipped_one(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert predictor.resolve_checkpoint(None) == ROOT / "checkpoints/final"
  (tmp_path / "checkpoints/final").mkdir(parents=True)
  assert predictor.resolve_checkpoint(None) == pathlib.Path("checkpoints/final")


def test_load_final_is_the_checked_orbax_read_then_the_cache(tmp_path, monkeypatch,
                                                             random_checkpoint):
  final = random_checkpoint
  expected = checkpoint.load_verified(final)[:3]
  same = lambda a, b: a[0] == b[0] and a[2] == b[2] and all(
      np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a[1]), jax.tree.leaves(b[1])))
  monkeypatch.setenv(cache.ENV_VAR, "off")
  assert same(predictor.load_final(final), expected)
  monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
  assert same(predictor.load_final(final), expected)  # Restored, and cached.
  def no_orbax(*args, **kwargs):
    raise AssertionError("restored through Orbax although cached")
  monkeypatch.setattr(checkpoint, "load_verified", no_orbax)
  assert same(predictor.load_final(final), expected)  # From the cache.
  assert len(list((tmp_path / "cache/final").glob("*.npz"))) == 1


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_in_batches_calls_one_shape_and_keeps_every_image(dtype):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (7, 28, 28)).astype(dtype)
  if dtype == np.float32:
    images /= 255
  shapes = []
  def fn(x: np.ndarray) -> np.ndarray:  # A stand-in with a result per image: its mean pixel.
    shapes.append((x.shape, x.dtype, float(x.max())))
    return np.stack([x.mean(axis=(1, 2)), -x.mean(axis=(1, 2))])  # (2, batch): images on axis 1
  out = predictor.in_batches(fn, images, 3, axis=1)
  assert [s[:2] for s in shapes] == [((3, 28, 28), np.float32)] * 3
  assert all(top <= 1.0 for *_, top in shapes)  # uint8 pixels scaled to [0, 1].
  want = images.astype(np.float32).mean(axis=(1, 2)) / (255 if dtype == np.uint8 else 1)
  np.testing.assert_allclose(out, np.stack([want, -want]), rtol=1e-6)
