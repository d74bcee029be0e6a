"""The model kept warm for ``mnist_flax.serve``: uploads read as ``infer`` reads files, and
requests that arrive together answered by one batched ``predict`` call.

    model = WarmModel.load("checkpoints/final")      # compiled for every batch size now
    found, error, seen = model.read(file, "3.jpg")    # in a thread: the digits, as infer's
    probs = await Batcher(model).predict(fields)      # in the event loop: (n, 10)
    counts = Counts(Counts.shared_array(context))     # worker processes adding to one figure

Uploads are written to a private temporary folder and read by ``infer``'s own reader, so every
file gets exactly ``infer``'s checks (format by content, pixel and time limits) and its wording;
the temporary name in a message is replaced by the name the client gave, and no client input
ever names a file on the server.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import io
import os
import pathlib
import shutil
import tempfile
from typing import Any, BinaryIO

import numpy as np

from mnist_flax import errors, predictor, reader_pool
from mnist_flax.constants import IMAGE_SIZE, NUM_CLASSES

# Compiled batch sizes: a batch is padded up to the next one (larger batches go in chunks of
# the last), so one image costs a batch-1 call and a burst of requests one call for all.
BATCH_SIZES = (1, 2, 4, 8, 16, 64)
# How long the first request of a batch waits for others still being read (seconds): at most
# this, and not at all when no other request is being read.
BATCH_WAIT = 0.002
_NAME_CHARS = 200  # A client's file name is shown (never used as a path), cut to this length.
# Worker processes that can count into one shared Counts; any beyond count alone.
COUNT_SLOTS = 64


def upload_name(filename: str | None, index: int) -> str:
  """The name an upload is shown by: the last part of what the client sent, or upload-N."""
  name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
  shown = errors.shown_path(name)[:_NAME_CHARS]
  return shown if shown not in ("", ".", "..") else f"upload-{index + 1}"


def _fingerprint(variables: Any) -> str:
  """sha256 of the weights (names, shapes, dtypes, bytes): the same model, the same print."""
  h = hashlib.sha256()
  def walk(node: Any, prefix: str) -> None:
    for key in sorted(node):
      value = node[key]
      if isinstance(value, dict):
        walk(value, f"{prefix}/{key}")
      else:
        a = np.ascontiguousarray(np.asarray(value))
        h.update(f"{prefix}/{key}|{a.shape}|{a.dtype}\n".encode())
        h.update(a.tobytes())
  walk(variables, "")
  return h.hexdigest()


class WarmModel:
  """``predict`` compiled for BATCH_SIZES, the checkpoint's metadata and the upload reader."""

  def __init__(self, predictors: dict[int, Any], metadata: dict[str, Any], fingerprint: str,
               checkpoint_name: str):
    self._predictors = predictors
    self.metadata = metadata
    self.fingerprint = fingerprint
    self.checkpoint_name = checkpoint_name
    # Private (0700) and on a RAM disk where there is one: uploads never touch a real disk.
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    self._tmp = tempfile.mkdtemp(prefix="mnist_flax_serve_", dir=shm)
    from mnist_flax import preprocess  # Imported once, here: the first request is warm too.
    self.preprocess = preprocess

  @classmethod
  def load(cls, checkpoint: str | os.PathLike) -> "WarmModel":
    """Loads and compiles; CheckpointError (exit 3) when the checkpoint is not usable."""
    path = pathlib.Path(checkpoint)
    predictors, metadata, variables = predictor.load_predicts(path, BATCH_SIZES)
    model = cls(predictors, metadata, _fingerprint(variables), path.absolute().name)
    model.predict(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), np.float32))  # Kernels set up now.
    return model

  def close(self) -> None:
    shutil.rmtree(self._tmp, ignore_errors=True)

  def predict(self, images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) fields -> (n, 10) probabilities, in compiled batches padded with zeros."""
    out = []
    largest = BATCH_SIZES[-1]
    for start in range(0, len(images), largest):
      chunk = images[start:start + largest]
      size = next(s for s in BATCH_SIZES if s >= len(chunk))
      padded = np.zeros((size, IMAGE_SIZE, IMAGE_SIZE), np.float32)
      padded[:len(chunk)] = chunk
      out.append(np.asarray(self._predictors[size](padded))[:len(chunk)])
    return np.concatenate(out) if out else np.zeros((0, NUM_CLASSES), np.float32)

  def read(self, source: BinaryIO, shown: str, single: bool = False
           ) -> tuple[list[Any] | None, errors.MnistFlaxError | None]:
    """One upload (a binary file object) -> (the ``preprocess.Digit``s found, None) or
    (None, the error), as ``infer`` reads a file (``single``: as ``--single``)."""
    fd, tmp = tempfile.mkstemp(dir=self._tmp)
    try:
      with os.fdopen(fd, "wb") as f:
        shutil.copyfileobj(source, f, 1 << 20)
      found, error = reader_pool.read_one(self.preprocess, tmp, single)
    except OSError as e:  # The server's own temporary folder: full, or removed.
      found, error = None, errors.ImageError(f"cannot read {shown}: the server could not "
                                             f"store the upload ({e.strerror or e})")
    finally:
      try:
        os.unlink(tmp)
      except OSError:
        pass
    if error is not None:
      # The message names the temporary file: name the upload instead, in infer's words.
      message = str(error).replace(errors.shown_path(tmp), shown)
      return None, type(error)(message, error.exit_code)
    return found, None


def png_data_url(array: np.ndarray) -> str:
  """A [0, 1] field (what the model saw) as an 8-bit PNG data URL."""
  from PIL import Image
  pixels = np.rint(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels, "L").save(buffer, "PNG")
  return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Counts:
  """How well requests share ``predict`` calls (the calls made and the images in them), and
  how many requests each worker process has open.

  Alone (no argument) it counts for its process. Given ``shared_array`` (made in the parent,
  inherited by each worker process) the figures are the whole server's: each worker claims a
  slot of its own (a replacement takes a dead worker's slot, and its counts go on from there),
  and only that worker writes it, so counting takes no lock a killed worker could leave held.
  """

  # A slot: the worker's pid, its predict calls, the images in them, its requests open now.
  _FIELDS = 4

  def __init__(self, shared: Any | None = None):
    self._rows: Any = [0] * self._FIELDS  # Every slot (shared), or this process's only.
    self._at = 0  # Where this process's slot starts in _rows.
    if shared is not None:
      with shared.get_lock():  # Only while claiming: two new workers never share a slot.
        free = [i for i in range(0, len(shared), self._FIELDS) if not _alive(shared[i])]
        if free:  # Else (more workers than COUNT_SLOTS) this one counts alone.
          self._rows, self._at = shared.get_obj(), free[0]
          self._rows[self._at] = os.getpid()
          self._rows[self._at + 3] = 0  # A killed worker's requests died with it.

  @staticmethod
  def shared_array(context: Any) -> Any:
    """The shared memory for ``COUNT_SLOTS`` workers, from a ``multiprocessing`` context."""
    return context.Array("q", COUNT_SLOTS * Counts._FIELDS)

  def add(self, images: int) -> None:
    self._rows[self._at + 1] += 1
    self._rows[self._at + 2] += images

  def opened(self, delta: int) -> None:
    """A request of this worker began (1) or ended (-1)."""
    self._rows[self._at + 3] += delta

  def crowded(self, margin: int = 2) -> bool:
    """Whether this worker has ``margin`` requests open more than another live worker has."""
    mine = self._rows[self._at + 3]
    return any(mine - self._rows[i + 3] >= margin and _alive(self._rows[i])
               for i in range(0, len(self._rows), self._FIELDS) if i != self._at)

  def totals(self) -> tuple[int, int]:
    """(predict calls, images in them), over every slot: the whole server's when shared."""
    starts = range(0, len(self._rows), self._FIELDS)
    return sum(self._rows[i + 1] for i in starts), sum(self._rows[i + 2] for i in starts)


def _alive(pid: int) -> bool:
  """Whether ``pid`` (0: none) is a live process (a dead worker has been reaped by then)."""
  if pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


class Batcher:
  """Gathers the images of concurrent requests into one ``predict`` call.

  Lives in one event loop. A request announces itself (``reading``) before its files are
  read, so the first image to be ready waits for the others being read, at most BATCH_WAIT,
  and not at all when it is alone. Predictions run in one thread of their own, so the loop
  keeps accepting and reading meanwhile; what arrives during a call forms the next batch.
  """

  def __init__(self, model: WarmModel, wait: float = BATCH_WAIT, counts: Counts | None = None):
    self._model = model
    self.counts = counts if counts is not None else Counts()
    self._wait = wait
    self._pending: list[tuple[np.ndarray, asyncio.Future]] = []
    self._reading = 0
    self._wake = asyncio.Event()
    self._task: asyncio.Task | None = None
    self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="predict")

  def reading(self, delta: int) -> None:
    self._reading += delta
    if self._reading <= 0:
      self._wake.set()

  async def predict(self, images: np.ndarray) -> np.ndarray:
    future = asyncio.get_running_loop().create_future()
    self._pending.append((images, future))
    if self._reading <= 0:
      self._wake.set()
    if self._task is None or self._task.done():
      self._task = asyncio.create_task(self._drain())
    return await future

  async def _drain(self) -> None:
    loop = asyncio.get_running_loop()
    while self._pending:
      if self._reading > 0:  # Others are being read: give them a moment to join.
        self._wake.clear()
        try:
          await asyncio.wait_for(self._wake.wait(), self._wait)
        except asyncio.TimeoutError:
          pass
      batch, self._pending = self._pending, []
      images = np.concatenate([b for b, _ in batch])
      try:
        probs = await loop.run_in_executor(self._thread, self._model.predict, images)
      except Exception as e:  # Given to each waiting request, which reports it.
        for _, future in batch:
          if not future.done():
            future.set_exception(e)
        continue
      self.counts.add(len(images))
      start = 0
      for b, future in batch:
        if not future.done():  # A client that went away has its future cancelled.
          future.set_result(probs[start:start + len(b)])
        start += len(b)

  def close(self) -> None:
    self._thread.shutdown(wait=True)
