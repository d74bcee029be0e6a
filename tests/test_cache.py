"""The local caches: a cached checkpoint gives the same variables, and any change invalidates it."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, run_module
from mnist_flax import cache, checkpoint, config as config_lib, errors, model, predictor


def _promote(workdir, seed: int):
  config = config_lib.load_config_file(ROOT / "configs/test.py")
  net = model.build(config.model.to_dict())
  variables = jax.tree.map(np.asarray, net.init(jax.random.key(seed), jnp.zeros((1, 28, 28))))
  checkpoint.promote_final(workdir, variables, {"model": config.model.to_dict(), "step": seed})
  return variables


def _same(a, b) -> bool:
  return jax.tree.structure(a) == jax.tree.structure(b) and all(
      np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_cached_load_is_identical_and_follows_a_new_promotion(tmp_path, monkeypatch):
  monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
  final = tmp_path / "work/checkpoints/final"
  first = _promote(tmp_path / "work", 1)
  _, a, meta_a = predictor.load_final(final)
  assert len(list((tmp_path / "cache/final").glob("*.npz"))) == 1
  _, b, meta_b = predictor.load_final(final)  # Served from the cache.
  assert _same(a, first) and _same(b, first) and meta_a == meta_b
  second = _promote(tmp_path / "work", 2)
  _, c, meta_c = predictor.load_final(final)
  assert _same(c, second) and meta_c["step"] == 2


def test_damage_after_caching_is_still_refused(tmp_path, monkeypatch):
  monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
  final = tmp_path / "work/checkpoints/final"
  _promote(tmp_path / "work", 1)
  predictor.load_final(final)
  for f in final.rglob("*"):
    if f.is_file() and f.parent.name == "d":
      f.write_bytes(f.read_bytes()[:5])
  with pytest.raises(errors.CheckpointError):
    predictor.load_final(final)
  env = {cache.ENV_VAR: str(tmp_path / "cache")}
  result = run_module("mnist_flax.infer", "--i", str(ROOT / "test/3.jpg"), "--checkpoint",
                      str(final), env=env, timeout=120)
  assert result.returncode == 3 and "Traceback" not in result.stderr


def test_cache_can_be_turned_off(monkeypatch):
  monkeypatch.setenv(cache.ENV_VAR, "off")
  assert cache.cache_dir() is None


def test_predictor_matches_the_jitted_predict(tmp_path, monkeypatch):
  monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
  variables = _promote(tmp_path / "work", 3)
  final = tmp_path / "work/checkpoints/final"
  images = np.asarray(jax.random.uniform(jax.random.key(0), (4, 28, 28)))
  config = config_lib.load_config_file(ROOT / "configs/test.py")
  expected = np.asarray(model.predict(model.build(config.model.to_dict()), variables, images))
  for _ in range(2):  # From Orbax, then from the variables cache.
    predict, metadata = predictor.load_predict(final, 4)
    np.testing.assert_array_equal(np.asarray(predict(images)), expected)
    assert metadata["step"] == 3


def test_exported_predict_is_cached_and_a_damaged_one_is_redone(tmp_path, monkeypatch):
  monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
  _promote(tmp_path / "work", 4)
  final = tmp_path / "work/checkpoints/final"
  images = np.asarray(jax.random.uniform(jax.random.key(1), (2, 28, 28)))
  expected = np.asarray(predictor.load_predict(final, 2)[0](images))
  (exported,) = (tmp_path / "cache/final").glob("*-predict-2-*.jaxexport")
  exported.write_bytes(exported.read_bytes()[:100])  # Torn or from another jax version.
  np.testing.assert_array_equal(np.asarray(predictor.load_predict(final, 2)[0](images)), expected)
  assert exported.stat().st_size > 100  # Written again, whole.
  result = run_module("mnist_flax.infer", "--i", str(ROOT / "test/3.jpg"), "--checkpoint",
                      str(final), env={cache.ENV_VAR: str(tmp_path / "cache")}, timeout=120)
  assert result.returncode == 0, result.stderr
  assert list((tmp_path / "cache/final").glob("*-predict-1-*.jaxexport"))
  # Other model code (an edited model.py) is never served the old export.
  monkeypatch.setattr(cache, "_model_code_key", lambda: "edited")
  np.testing.assert_array_equal(np.asarray(predictor.load_predict(final, 2)[0](images)), expected)
  assert list((tmp_path / "cache/final").glob("*-predict-2-edited.jaxexport"))


_PREDICT_IN_A_FRESH_PROCESS = """
import sys
import numpy as np
from mnist_flax import predictor
predict, _ = predictor.load_predict(sys.argv[1], 2)
probs = np.asarray(predict(np.load(sys.argv[2])))
np.save(sys.argv[3], probs)
print("scipy" in sys.modules)
"""


def test_a_cached_predictor_starts_without_scipy(tmp_path, monkeypatch):
  # jax.export sets LAPACK up (importing SciPy, a quarter of a cold inference) unless
  # predictor._no_lapack_setup stops it; a JAX release that moves the hook shows up here.
  monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
  _promote(tmp_path / "work", 5)
  final = tmp_path / "work/checkpoints/final"
  images = np.asarray(jax.random.uniform(jax.random.key(2), (2, 28, 28)))
  expected = np.asarray(predictor.load_predict(final, 2)[0](images))  # Fills the cache.
  np.save(tmp_path / "images.npy", images)
  result = subprocess.run(
      [sys.executable, "-c", _PREDICT_IN_A_FRESH_PROCESS, str(final), str(tmp_path / "images.npy"),
       str(tmp_path / "probs.npy")], cwd=ROOT, capture_output=True, text=True, timeout=120,
      env={**os.environ, cache.ENV_VAR: str(tmp_path / "cache")})
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "False"
  np.testing.assert_array_equal(np.load(tmp_path / "probs.npy"), expected)


def _largest_data_file(final):
  return max((f for f in final.rglob("*") if f.is_file() and f.parent.name == "d"),
             key=lambda f: f.stat().st_size)


def test_cache_same_size_damage_with_the_old_mtime_is_refused_cached_or_not(tmp_path,
                                                                           monkeypatch):
  monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
  final = tmp_path / "work/checkpoints/final"
  _promote(tmp_path / "work", 1)
  predictor.load_final(final)  # Cached under the checkpoint's content.
  data = _largest_data_file(final)
  st = data.stat()
  damaged = bytearray(data.read_bytes())
  damaged[len(damaged) // 2] ^= 0x40
  with open(data, "r+b") as f:  # In place: same inode, same size...
    f.write(damaged)
  os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))  # ...and the old modification time.
  with pytest.raises(errors.CheckpointError, match="does not match its checksum"):
    predictor.load_final(final)
  for cache_value in (str(tmp_path / "cache"), "off"):
    result = run_module("mnist_flax.infer", "--i", str(ROOT / "test/3.jpg"), "--checkpoint",
                        str(final), env={cache.ENV_VAR: cache_value}, timeout=120)
    assert result.returncode == 3, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_cache_damaged_entries_are_dropped_and_rebuilt_silently(tmp_path, monkeypatch, damage):
  monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
  _promote(tmp_path / "work", 6)
  final = tmp_path / "work/checkpoints/final"
  env = {cache.ENV_VAR: str(tmp_path / "cache")}
  args = ("--i", str(ROOT / "test/3.jpg"), str(ROOT / "test/7.jpg"), "--checkpoint", str(final))
  expected = run_module("mnist_flax.infer", *args, env=env, timeout=120)
  assert expected.returncode == 0, expected.stderr
  entries = sorted((tmp_path / "cache/final").iterdir())
  assert any(e.suffix == ".npz" for e in entries) and any(e.suffix == ".jaxexport" for e in entries)
  rng = np.random.default_rng(3)
  for entry in entries:
    data = bytearray(entry.read_bytes())
    if damage == "truncate":
      data = data[:len(data) // 2]
    elif damage == "flip":
      data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
    else:
      data = bytearray()
    entry.write_bytes(bytes(data))
  again = run_module("mnist_flax.infer", *args, env=env, timeout=120)
  assert again.returncode == 0, again.stderr
  assert again.stdout == expected.stdout and again.stderr == ""
  assert sorted(e.read_bytes() == b"" for e in (tmp_path / "cache/final").iterdir()) == [
      False] * len(entries)  # Rebuilt whole.


def test_cache_entry_with_non_finite_weights_is_never_served(tmp_path, monkeypatch):
  monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
  _promote(tmp_path / "work", 7)
  final = tmp_path / "work/checkpoints/final"
  model_config, variables, metadata = predictor.load_final(final)
  (entry,) = (tmp_path / "cache/final").glob("*.npz")
  poisoned = jax.tree.map(lambda a: np.full_like(a, np.nan), variables)
  cache._store(entry, model_config, poisoned, metadata)  # Self-consistent, but NaN.
  _, served, _ = predictor.load_final(final)
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(served))


def test_cache_non_finite_probabilities_are_refused_not_printed(tmp_path, monkeypatch):
  monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
  _promote(tmp_path / "work", 8)
  final = tmp_path / "work/checkpoints/final"
  predict, _ = predictor.load_predict(final, 1)
  with pytest.raises(errors.CheckpointError, match="non-finite"):
    predict(np.full((1, 28, 28), np.nan, np.float32))
