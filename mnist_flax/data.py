"""MNIST as arrays: the four canonical IDX files, read and checked, from a folder or from TFDS.

    from mnist_flax import data
    mnist = data.load(data.resolve_dir(config.data.dir))   # host numpy arrays, uint8
    mnist.train_images.shape                                 # (60000, 28, 28)

Where the files come from, in order: ``config.data.dir`` (``--data_dir`` for evaluate and
calibrate); the ``MNIST_DATA_DIR`` environment variable; for a trained model, the folder its
training read (recorded in its metadata as ``data_dir``) if it is still there; otherwise
tensorflow-datasets downloads and caches them (``mnist_flax.download``, imported only then).
Every hint names the flag of the command at hand (``flag``). Each file may be gzipped (``.gz``) or raw. Magic numbers, shapes, counts
and label values are checked, and an error names the file at fault.

Putting the arrays on devices and drawing batches there is the training loop's business
(``mnist_flax.train``); this module stays on the host and imports no JAX.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import os
import pathlib
import struct
import zlib

import numpy as np

from mnist_flax import errors
from mnist_flax.constants import FILES_GZ, IMAGE_SIZE, NUM_CLASSES, SPLITS

ENV_VAR = "MNIST_DATA_DIR"
CONFIG_FLAG = "--config.data.dir"  # How training (mnist_flax.main) names the folder.
DIR_FLAG = "--data_dir"  # How evaluate and calibrate name it.
_UBYTE = 0x08


def how_to_point(flag: str = CONFIG_FLAG) -> str:
  """How to name a local MNIST folder, with ``flag``: the command at hand's own flag."""
  return (f"{flag}=/path/to/mnist or {ENV_VAR}=/path/to/mnist (a folder with "
          f"{', '.join(FILES_GZ)})")


def add_dir_flag(parser: argparse.ArgumentParser) -> None:
  """Adds ``--data_dir`` (evaluate's and calibrate's way to name the MNIST folder)."""
  parser.add_argument(DIR_FLAG, DIR_FLAG.replace("_", "-"), default=None, metavar="DIR",
                      help=f"folder with the MNIST IDX files (default: ${ENV_VAR}, then the "
                           "folder the model was trained on, then TFDS)")


@dataclasses.dataclass(frozen=True)
class Mnist:
  """Both splits as uint8 arrays, and the sha256 of each file's decompressed bytes."""

  train_images: np.ndarray  # (60000, 28, 28) uint8, white ink on black
  train_labels: np.ndarray  # (60000,) uint8 in [0, 9]
  test_images: np.ndarray   # (10000, 28, 28)
  test_labels: np.ndarray   # (10000,)
  sha256: dict[str, str]    # canonical file name -> hex digest of the raw IDX bytes
  folder: pathlib.Path | None = None  # Where they were read, absolute.


def resolve_dir(configured: str | None, flag: str = CONFIG_FLAG,
                trained_on: str | None = None) -> pathlib.Path:
  """Returns the folder to read: the one given as ``flag``, $MNIST_DATA_DIR, the folder a
  model's training read (``trained_on``, if it is still a folder), or a TFDS download."""
  for source, value in ((flag, configured), (ENV_VAR, os.environ.get(ENV_VAR))):
    if value:
      path = pathlib.Path(value).expanduser()
      if not path.is_dir():
        raise errors.DataError(f"{source}={value} is not a folder with the MNIST IDX files; set "
                               + how_to_point(flag))
      return path
  if trained_on and pathlib.Path(trained_on).is_dir():
    return pathlib.Path(trained_on)
  from mnist_flax import download  # Lazy: TFDS costs a second to import and is rarely needed.
  return download.fetch_mnist(flag=flag)


def _find(folder: pathlib.Path, stem: str, flag: str) -> pathlib.Path:
  for name in (stem + ".gz", stem):
    if (folder / name).is_file():
      return folder / name
  raise errors.DataError(f"missing MNIST file {stem}[.gz] in {folder}; set " + how_to_point(flag))


def _read_bytes(path: pathlib.Path) -> bytes:
  try:
    if path.suffix == ".gz":
      with gzip.open(path, "rb") as f:
        return f.read()
    return path.read_bytes()
  except (OSError, EOFError, zlib.error) as e:
    raise errors.DataError(f"cannot read MNIST file {path}: {e}") from None


def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
  """Parses IDX bytes of unsigned bytes (the only type MNIST uses) into an array."""
  if len(raw) < 4:
    raise errors.DataError(f"{name} is malformed: {len(raw)} bytes, too short for an IDX header")
  zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
  if zero != 0 or dtype != _UBYTE or not 1 <= ndim <= 3:
    raise errors.DataError(f"{name} is malformed: bad IDX magic number 0x{raw[:4].hex()}")
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise errors.DataError(f"{name} is malformed: truncated IDX header")
  shape = struct.unpack(f">{ndim}I", raw[4:header])
  expected = int(np.prod(shape, dtype=np.int64))
  if len(raw) - header != expected:
    raise errors.DataError(f"{name} is malformed: header says shape {shape} ({expected} bytes) "
                           f"but it holds {len(raw) - header} bytes")
  return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _load_split(folder: pathlib.Path, split: str, digests: dict[str, str],
                flag: str) -> tuple[np.ndarray, np.ndarray]:
  images_stem, labels_stem, count = SPLITS[split]
  arrays = []
  for stem, ndim in ((images_stem, 3), (labels_stem, 1)):
    path = _find(folder, stem, flag)
    raw = _read_bytes(path)
    digests[stem] = hashlib.sha256(raw).hexdigest()
    array = parse_idx(raw, str(path))
    if array.ndim != ndim:
      raise errors.DataError(f"{path} is malformed: expected {ndim} dimensions, got shape {array.shape}")
    if array.shape[0] != count:
      raise errors.DataError(f"{path} is malformed: expected {count} examples, got {array.shape[0]}")
    arrays.append(array)
  images, labels = arrays
  if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
    raise errors.DataError(f"{folder / images_stem} is malformed: images are "
                           f"{images.shape[1:]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
  if labels.max(initial=0) >= NUM_CLASSES:
    raise errors.DataError(f"{folder / labels_stem} is malformed: label {labels.max()} > {NUM_CLASSES - 1}")
  return images, labels


def load(folder: str | os.PathLike, flag: str = CONFIG_FLAG) -> Mnist:
  """Reads and checks both splits from ``folder``; raises ``DataError`` naming a bad file
  (and ``flag``, the command's own flag, to point at another folder)."""
  folder = pathlib.Path(folder)
  digests: dict[str, str] = {}
  train_images, train_labels = _load_split(folder, "train", digests, flag)
  test_images, test_labels = _load_split(folder, "test", digests, flag)
  return Mnist(train_images, train_labels, test_images, test_labels, digests, folder.absolute())
