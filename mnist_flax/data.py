"""MNIST as arrays: the four canonical IDX files, read and checked, from a folder or from TFDS.

    from mnist_flax import data
    mnist = data.load(data.resolve_dir(config.data.dir))   # host numpy arrays, uint8
    mnist.train_images.shape                                 # (60000, 28, 28)

Where the files come from, in order: ``config.data.dir``; the ``MNIST_DATA_DIR`` environment
variable; otherwise tensorflow-datasets downloads and caches them (``mnist_flax.download``,
imported only then). Each file may be gzipped (``.gz``) or raw. Magic numbers, shapes, counts
and label values are checked, and an error names the file at fault.

Putting the arrays on devices and drawing batches there is the training loop's business
(``mnist_flax.train``); this module stays on the host and imports no JAX.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import pathlib
import struct
import zlib

import numpy as np

from mnist_flax import errors
from mnist_flax.constants import IMAGE_SIZE, NUM_CLASSES, SPLITS

ENV_VAR = "MNIST_DATA_DIR"
_UBYTE = 0x08
HOW_TO_POINT = (f"set --config.data.dir=/path/to/mnist or {ENV_VAR}=/path/to/mnist (a folder with "
                "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)")


@dataclasses.dataclass(frozen=True)
class Mnist:
  """Both splits as uint8 arrays, and the sha256 of each file's decompressed bytes."""

  train_images: np.ndarray  # (60000, 28, 28) uint8, white ink on black
  train_labels: np.ndarray  # (60000,) uint8 in [0, 9]
  test_images: np.ndarray   # (10000, 28, 28)
  test_labels: np.ndarray   # (10000,)
  sha256: dict[str, str]    # canonical file name -> hex digest of the raw IDX bytes


def resolve_dir(configured: str | None) -> pathlib.Path:
  """Returns the folder to read: the configured one, $MNIST_DATA_DIR, or a TFDS download."""
  for source, value in (("config.data.dir", configured), (ENV_VAR, os.environ.get(ENV_VAR))):
    if value:
      path = pathlib.Path(value).expanduser()
      if not path.is_dir():
        raise errors.DataError(f"{source}={value} is not a folder with the MNIST IDX files; "
                               + HOW_TO_POINT)
      return path
  from mnist_flax import download  # Lazy: TFDS costs a second to import and is rarely needed.
  return download.fetch_mnist()


def _find(folder: pathlib.Path, stem: str) -> pathlib.Path:
  for name in (stem + ".gz", stem):
    if (folder / name).is_file():
      return folder / name
  raise errors.DataError(f"missing MNIST file {stem}[.gz] in {folder}; " + HOW_TO_POINT)


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


def _load_split(folder: pathlib.Path, split: str,
                digests: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
  images_stem, labels_stem, count = SPLITS[split]
  arrays = []
  for stem, ndim in ((images_stem, 3), (labels_stem, 1)):
    path = _find(folder, stem)
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


def load(folder: str | os.PathLike) -> Mnist:
  """Reads and checks both splits from ``folder``; raises ``DataError`` naming a bad file."""
  folder = pathlib.Path(folder)
  digests: dict[str, str] = {}
  train_images, train_labels = _load_split(folder, "train", digests)
  test_images, test_labels = _load_split(folder, "test", digests)
  return Mnist(train_images, train_labels, test_images, test_labels, digests)
