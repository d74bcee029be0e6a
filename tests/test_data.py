"""IDX parsing and checking, on small files the tests write, and on real MNIST where present."""

from __future__ import annotations

import gzip
import hashlib
import pathlib
import struct

import numpy as np
import pytest

from conftest import run_module
from mnist_flax import data, errors


def idx_bytes(array: np.ndarray, magic_type: int = 0x08) -> bytes:
  header = struct.pack(">HBB", 0, magic_type, array.ndim)
  header += struct.pack(f">{array.ndim}I", *array.shape)
  return header + array.astype(np.uint8).tobytes()


def write_split_files(folder: pathlib.Path, gz: bool, rng: np.random.Generator) -> dict:
  """Writes the four canonical files with canonical counts (random pixels, small when gzipped)."""
  arrays = {}
  for split, (images_stem, labels_stem, count) in data.SPLITS.items():
    images = np.zeros((count, 28, 28), np.uint8)
    images[:, 10:18, 10:18] = rng.integers(0, 256, (count, 8, 8), dtype=np.uint8)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    for stem, array in ((images_stem, images), (labels_stem, labels)):
      raw = idx_bytes(array)
      if gz:
        (folder / f"{stem}.gz").write_bytes(gzip.compress(raw, compresslevel=1))
      else:
        (folder / stem).write_bytes(raw)
      arrays[stem] = (array, hashlib.sha256(raw).hexdigest())
  return arrays


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
def test_load_reads_both_splits_from_gz_or_raw(tmp_path, gz):
  arrays = write_split_files(tmp_path, gz, np.random.default_rng(0))
  mnist = data.load(tmp_path)
  np.testing.assert_array_equal(mnist.train_images, arrays["train-images-idx3-ubyte"][0])
  np.testing.assert_array_equal(mnist.test_labels, arrays["t10k-labels-idx1-ubyte"][0])
  assert mnist.train_images.dtype == np.uint8 and mnist.train_images.shape == (60000, 28, 28)
  assert mnist.sha256 == {stem: digest for stem, (_, digest) in arrays.items()}


def test_parse_idx_round_trips_any_shape():
  array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  np.testing.assert_array_equal(data.parse_idx(idx_bytes(array)), array)


@pytest.mark.parametrize("raw, message", [
    (b"\x00\x00", "too short"),
    (struct.pack(">HBB", 0, 0x0D, 1) + struct.pack(">I", 1) + b"\0\0\0\0", "magic"),  # floats
    (struct.pack(">HBB", 1, 0x08, 1) + struct.pack(">I", 1) + b"\0", "magic"),
    (struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">I", 5), "truncated IDX header"),
    (struct.pack(">HBB", 0, 0x08, 1) + struct.pack(">I", 5) + b"\0\0", "holds 2 bytes"),
], ids=["short", "wrong-type", "wrong-magic", "short-header", "short-payload"])
def test_parse_idx_refuses_malformed_bytes(raw, message):
  with pytest.raises(errors.DataError, match=message):
    data.parse_idx(raw, "x")


def test_missing_file_is_named(tmp_path):
  write_split_files(tmp_path, True, np.random.default_rng(1))
  (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
  with pytest.raises(errors.DataError, match=r"missing MNIST file t10k-labels-idx1-ubyte\[\.gz\]"):
    data.load(tmp_path)


def test_wrong_count_and_bad_labels_name_the_file(tmp_path):
  write_split_files(tmp_path, False, np.random.default_rng(2))
  (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(9999, np.uint8)))
  with pytest.raises(errors.DataError, match=r"t10k-labels-idx1-ubyte is malformed: expected 10000"):
    data.load(tmp_path)
  (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(10000, 11, np.uint8)))
  with pytest.raises(errors.DataError, match=r"label 11 > 9"):
    data.load(tmp_path)


def test_truncated_gzip_is_reported(tmp_path):
  write_split_files(tmp_path, True, np.random.default_rng(3))
  path = tmp_path / "train-labels-idx1-ubyte.gz"
  path.write_bytes(path.read_bytes()[:100])
  with pytest.raises(errors.DataError, match="train-labels-idx1-ubyte.gz"):
    data.load(tmp_path)


def test_resolve_dir_prefers_config_then_environment(tmp_path, monkeypatch):
  other = tmp_path / "env"
  other.mkdir()
  monkeypatch.setenv(data.ENV_VAR, str(other))
  assert data.resolve_dir(str(tmp_path)) == tmp_path
  assert data.resolve_dir(None) == other
  with pytest.raises(errors.DataError, match="config.data.dir=/nonexistent"):
    data.resolve_dir("/nonexistent")


def test_real_mnist_matches_its_published_checksums(mnist_dir):
  mnist = data.load(mnist_dir)
  readme = {  # From ../shared/data/mnist/README.md: sha256 of the decompressed files.
      "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
      "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
      "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
      "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
  }
  assert mnist.sha256 == readme
  assert list(mnist.train_labels[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
  assert list(mnist.test_labels[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
  assert abs(mnist.train_images.mean() / 255 - 0.1307) < 1e-3


def test_every_hint_names_the_flag_of_the_command_at_hand(tmp_path, monkeypatch):
  monkeypatch.delenv(data.ENV_VAR, raising=False)
  with pytest.raises(errors.DataError) as error:
    data.resolve_dir("/nonexistent", data.DIR_FLAG)
  assert str(error.value).startswith("--data_dir=/nonexistent is not a folder")
  assert "set --data_dir=/path/to/mnist or MNIST_DATA_DIR=" in str(error.value)
  assert "--config" not in str(error.value)
  with pytest.raises(errors.DataError) as error:
    data.load(tmp_path, data.DIR_FLAG)  # An empty folder.
  assert "missing MNIST file" in str(error.value) and "set --data_dir=" in str(error.value)
  assert "--config" not in str(error.value)
  with pytest.raises(errors.DataError, match="set --config.data.dir="):
    data.load(tmp_path)  # Training's flag by default.


def test_resolve_dir_falls_back_on_the_folder_training_read(tmp_path, monkeypatch):
  from mnist_flax import download
  monkeypatch.delenv(data.ENV_VAR, raising=False)
  asked = []
  monkeypatch.setattr(download, "fetch_mnist", lambda flag: asked.append(flag) or tmp_path / "dl")
  assert data.resolve_dir(None, data.DIR_FLAG, str(tmp_path)) == tmp_path
  assert not asked
  given = tmp_path / "given"
  given.mkdir()
  assert data.resolve_dir(str(given), data.DIR_FLAG, str(tmp_path)) == given  # Given wins.
  monkeypatch.setenv(data.ENV_VAR, str(given))
  assert data.resolve_dir(None, data.DIR_FLAG, str(tmp_path)) == given  # So does the variable.
  monkeypatch.delenv(data.ENV_VAR)
  # Gone since training: downloaded instead, and the download's hint names --data_dir.
  assert data.resolve_dir(None, data.DIR_FLAG, str(tmp_path / "gone")) == tmp_path / "dl"
  assert asked == ["--data_dir"]


def test_load_records_the_folder_as_absolute(tmp_path, monkeypatch):
  write_split_files(tmp_path, gz=True, rng=np.random.default_rng(0))
  monkeypatch.chdir(tmp_path.parent)
  assert data.load(tmp_path.name).folder == tmp_path


def test_evaluate_hint_names_its_own_flag(random_checkpoint, tmp_path):
  # evaluate's folder flag is --data_dir: a hint naming training's --config.data.dir is refused.
  result = run_module("mnist_flax.evaluate", "--checkpoint", str(random_checkpoint),
                      "--data_dir", str(tmp_path), env={data.ENV_VAR: ""}, timeout=300)
  assert result.returncode == 6, result.stderr
  assert f"missing MNIST file train-images-idx3-ubyte[.gz] in {tmp_path}; set --data_dir=" \
      in result.stderr
  assert "--config" not in result.stderr and len(result.stderr.splitlines()) == 1
