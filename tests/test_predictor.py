"""mnist_flax.predictor: the checkpoint a ``--checkpoint`` value names (the same for every
command), the one ``load_final`` (cached or not), and the fixed-size batching.

Run: /work/venv/bin/pytest tests/test_predictor.py -q
"""

from __future__ import annotations

import pathlib
import shutil

import jax
import numpy as np
import pytest

from conftest import run_module
from mnist_flax import cache, checkpoint, errors, integrity, predictor

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _folder(path: pathlib.Path, *files: str) -> pathlib.Path:
  path.mkdir(parents=True)
  for name in files:
    (path / name).parent.mkdir(parents=True, exist_ok=True)
    (path / name).write_bytes(b"")
  return path


def _step(path: pathlib.Path) -> pathlib.Path:
  """The layout of an Orbax step checkpoint (what resolution looks at; nothing is read)."""
  return _folder(path, integrity.MANIFEST, "_CHECKPOINT_METADATA", "state/x", "meta/x")


def test_a_workdir_or_its_checkpoints_folder_means_its_final(tmp_path):
  final = _folder(tmp_path / "run/checkpoints/final", integrity.MANIFEST, "variables/x")
  _step(tmp_path / "run/checkpoints/5000")
  for given in ("run", "run/checkpoints", "run/checkpoints/final"):
    assert predictor.resolve_checkpoint(str(tmp_path / given)) == final, given
  # Anything else is left as given, for load_final to refuse in its own words.
  (tmp_path / "elsewhere").mkdir()
  for given in ("elsewhere", "run/checkpoints/final/variables", "missing"):
    assert predictor.resolve_checkpoint(str(tmp_path / given)) == tmp_path / given
  # Between a promotion's two renames there is no final, but the run has one: still final.
  final.rename(final.with_name(integrity.NEW))
  assert predictor.resolve_checkpoint(str(tmp_path / "run/checkpoints")) == final


def test_the_default_is_checkpoints_final_here_else_the_shipped_one(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert predictor.resolve_checkpoint(None) == ROOT / "checkpoints/final"
  (tmp_path / "checkpoints/final").mkdir(parents=True)
  assert predictor.resolve_checkpoint(None) == pathlib.Path("checkpoints/final")


def test_a_step_checkpoint_is_named_with_the_path_to_use(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  _step(tmp_path / "run/checkpoints/5000")
  with pytest.raises(errors.CheckpointError) as refused:
    predictor.resolve_checkpoint("run/checkpoints/5000")
  assert str(refused.value) == ("run/checkpoints/5000 is a training step checkpoint (step "
                                "5000), not a promoted model, and its run has promoted none "
                                "yet (run/checkpoints/final is missing): run its training "
                                "command again to finish it (it resumes from its latest step)")
  _folder(tmp_path / "run/checkpoints/final", integrity.MANIFEST)
  with pytest.raises(errors.CheckpointError) as refused:
    predictor.resolve_checkpoint("run/checkpoints/5000")
  assert str(refused.value) == ("run/checkpoints/5000 is a training step checkpoint (step "
                                "5000), not a promoted model: use --checkpoint "
                                "run/checkpoints/final")
  assert refused.value.exit_code == 3


@pytest.fixture(scope="module")
def workdir_with_a_step(random_checkpoint: pathlib.Path,
                        tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
  """A real run's layout: the random-weight final and a real Orbax step checkpoint 7."""
  workdir = tmp_path_factory.mktemp("run") / "work"
  shutil.copytree(random_checkpoint.parent.parent, workdir)
  manager = checkpoint.step_manager(workdir)
  state = {"w": np.zeros((4, 4), np.float32), "step": np.int32(7)}
  checkpoint.save_step(manager, 7, state, {"compat": {"model": {}, "optimizer": {}}})
  manager.close()
  return workdir


@pytest.mark.parametrize("command", ["infer", "evaluate", "calibrate", "gate", "serve"])
def test_every_command_refuses_a_step_checkpoint_in_the_same_words(command, workdir_with_a_step):
  step = workdir_with_a_step / "checkpoints/7"
  args = {"infer": [str(ROOT / "test/3.jpg")], "serve": ["--port", "0"]}.get(command, [])
  result = run_module(f"mnist_flax.{command}", *args, "--checkpoint", str(step), timeout=300)
  assert result.returncode == 3 and result.stdout == "", result
  assert result.stderr == (f"mnist_flax.{command}: error: {step} is a training step checkpoint "
                           f"(step 7), not a promoted model: use --checkpoint "
                           f"{step.parent / 'final'}\n")


def test_infer_reads_with_a_workdir_as_with_its_final(workdir_with_a_step):
  image = str(ROOT / "test/3.jpg")
  answers = [run_module("mnist_flax.infer", image, "--checkpoint", str(path), timeout=120)
             for path in (workdir_with_a_step / "checkpoints/final", workdir_with_a_step,
                          workdir_with_a_step / "checkpoints")]
  assert all(a.returncode == 0 and a.stderr == "" for a in answers), answers
  assert len({a.stdout for a in answers}) == 1 and "recognized" in answers[0].stdout


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
