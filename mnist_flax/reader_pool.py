"""Reading many image files at once on all cores: forked readers while the caller loads the model.

    from mnist_flax import preprocess, reader_pool
    since = time.monotonic(), reader_pool.cpu_times()    # before listing the folders
    count = reader_pool.worker_count(len(paths), since)  # 0: read them here, one by one
    workers = reader_pool.Workers(preprocess, paths, count)
    try:
      ...load the model...
      read = workers.results()   # [(list of preprocess.Digit, None) or (None, error)], in order
    finally:
      workers.close()
    found, error = reader_pool.read_one(preprocess, path)   # one file, no pool

Used by ``mnist_flax.infer`` (folders of images) and ``mnist_flax.serve_model`` (``read_one``
for an upload). A worker that crashes or stalls on a file costs that file only, reported as
unreadable (exit code 4); files are never lost or reordered.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Sequence

from mnist_flax import errors
from mnist_flax.constants import IMAGE_SIZE


def display(path: str) -> str:
  """The path as one line of printable text (errors.shown_path), never empty."""
  return errors.shown_path(path) or "''"  # An empty argument still gets a visible name.


# Worker processes pay off from this many files on: forking them costs ~10 ms, and JAX's
# import and the checkpoint load (~1 s) run in this process meanwhile.
POOL_MIN_FILES = 32
# A worker still on one file after this long is stopped and the file reported. Reading has its
# own budget (a few seconds, see preprocess); this catches anything that budget cannot, such
# as a decoder stuck inside C code.
FILE_SECONDS = 20.0
# Room for one error message (JSON) per file in the shared results.
_MESSAGE_BYTES = 4096


# Readings of a picture's digits kept (a number's, and its touching digits' other readings):
# more are not read.
MAX_DIGITS = 40
# A digit's box (4), split_of, span (2) and row, as int32 (see preprocess.Digit).
_BOX_INTS = 9


def read_one(preprocess: Any, path: str,
             single: bool = False) -> tuple[Any, errors.MnistFlaxError | None]:
  """(list of preprocess.Digit, None) or (None, the error) for one file."""
  try:
    return preprocess.read_digits(path, single=single)[:MAX_DIGITS], None
  except errors.MnistFlaxError as e:
    return None, e
  except Exception as e:  # A decoder bug on one odd file must not cost the others.
    return None, errors.ImageError(
        f"{display(path)}: cannot read image ({type(e).__name__}: {e})")


# Workers only pay when cores are idle: on a machine kept busy by other work (a training run)
# they add ~15% CPU time for the same wall time. Idle time is sampled over this long.
_IDLE_SAMPLE_SECONDS = 0.05


def cpu_times() -> tuple[int, int, float] | None:
  """(idle, total) clock ticks of all CPUs since boot, from /proc/stat, and this process's own
  CPU time in the same ticks; None where there is no /proc/stat."""
  try:
    with open("/proc/stat", "rb") as f:
      fields = [int(x) for x in f.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields[:8]), time.process_time() * os.sysconf("SC_CLK_TCK")
  except (OSError, ValueError, IndexError, AttributeError):
    return None


def cores() -> int:
  """The cores this process may run on."""
  try:
    return len(os.sched_getaffinity(0))
  except (AttributeError, OSError):
    return os.cpu_count() or 1


def worker_count(files: int, since: tuple[float, tuple[int, int, float] | None]) -> int:
  """Worker processes for ``files`` files: one per core, none for few files, one core, or
  cores that were busy with other work since ``since`` (time.monotonic(), cpu_times())."""
  available = cores()
  if files < POOL_MIN_FILES or available < 2 or sys.platform == "win32" or "jax" in sys.modules:
    return 0  # Forking a process that has started JAX's threads is unsafe.
  start, before = since
  time.sleep(max(0.0, start + _IDLE_SAMPLE_SECONDS - time.monotonic()))
  after = cpu_times()
  if before is not None and after is not None and after[1] > before[1]:
    # This process's own work (importing the image libraries) is not someone else's load.
    free = after[0] - before[0] + after[2] - before[2]
    if (os.cpu_count() or available) * free / (after[1] - before[1]) < 1.5:
      return 0  # Not even one core free besides this one: read the files here.
  return min(available, files // 16)


class Workers:
  """Reads files in forked worker processes, while this process loads the model.

  Workers take the next file from a shared counter and write its 28x28 array (or its error)
  into shared memory, so nothing has to be read from them while this process is busy importing
  JAX. Then this process reads files nobody has taken yet too, if a core is left for it, and
  waits for the workers' last ones. A worker that dies on a file (a decoder crash, the OOM
  killer) or stays on it longer than FILE_SECONDS costs that file only, reported as
  unreadable; files left untaken are read here.
  """

  def __init__(self, preprocess: Any, paths: Sequence[str], count: int,
               single: bool = False) -> None:
    import mmap
    import multiprocessing
    import numpy as np
    self._preprocess, self._paths, self._single = preprocess, list(paths), single
    n = len(self._paths)
    k = MAX_DIGITS
    pixels = IMAGE_SIZE * IMAGE_SIZE
    sizes = (4 * pixels * k * n, _MESSAGE_BYTES * n, 16 * count, 8, n, 4 * _BOX_INTS * k * n, n)
    self._memory = mmap.mmap(-1, sum(sizes))  # Anonymous and shared: inherited by fork.
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    buf = self._memory
    self._fields = np.frombuffer(buf, np.float32, pixels * k * n, offsets[0]).reshape(
        n, k, IMAGE_SIZE, IMAGE_SIZE)
    # Per digit: its box, then split_of, span, row and ringed (see preprocess.Digit).
    self._boxes = np.frombuffer(buf, np.int32, _BOX_INTS * k * n, offsets[5]).reshape(
        n, k, _BOX_INTS)
    self._counts = np.frombuffer(buf, np.uint8, n, offsets[6])
    self._messages = np.frombuffer(buf, np.uint8, _MESSAGE_BYTES * n,
                                   offsets[1]).reshape(n, _MESSAGE_BYTES)
    # Per worker: the file it is on (-1: none) and since when (time.monotonic, system-wide).
    self._slots = np.frombuffer(buf, np.float64, 2 * count, offsets[2]).reshape(count, 2)
    self._slots[:, 0] = -1
    self._next = np.frombuffer(buf, np.int64, 1, offsets[3])
    self._state = np.frombuffer(buf, np.int8, n, offsets[4])  # 0 to do, 1 read, 2 error
    self._failed: dict[int, errors.MnistFlaxError] = {}
    context = multiprocessing.get_context("fork")
    self._lock = context.Lock()
    self._parent = os.getpid()
    self._procs = []
    for w in range(count):
      proc = context.Process(target=self._work, args=(w,), daemon=True)
      proc.start()
      self._procs.append(proc)

  def _claim(self) -> int:
    """The index of the next file nobody has taken (>= len(paths) when all are taken)."""
    if not self._lock.acquire(timeout=5):  # Only a worker killed in these few lines holds it.
      return len(self._paths)
    try:
      i = int(self._next[0])
      self._next[0] = i + 1
    finally:
      self._lock.release()
    return i

  def _work(self, w: int) -> None:  # In a worker process.
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle.
    import cv2
    cv2.setNumThreads(1)  # One worker per core already: OpenCV's own threads would only queue.
    try:
      while os.getppid() == self._parent:
        i = self._claim()
        if i >= len(self._paths):
          break
        self._slots[w, 1] = time.monotonic()
        self._slots[w, 0] = i
        found, error = read_one(self._preprocess, self._paths[i], self._single)
        if error is None:
          for j, digit in enumerate(found):
            self._fields[i, j] = digit.field
            self._boxes[i, j] = (*digit.box, digit.split_of, *digit.span, digit.row,
                                 digit.ringed)
          self._counts[i] = len(found)
          self._state[i] = 1
        else:
          self._store_error(i, error)
          self._state[i] = 2
        self._slots[w, 0] = -1
    except BaseException:
      pass
    finally:
      os._exit(0)  # No atexit work, no flush of buffers copied from the parent.

  def _store_error(self, i: int, error: errors.MnistFlaxError) -> None:
    import numpy as np
    message = str(error)
    while True:
      data = json.dumps([type(error).__name__, error.exit_code, message]).encode()
      if len(data) <= _MESSAGE_BYTES - 4 or not message:
        break
      message = message[:len(message) * 3 // 4] + "..."
    data = len(data).to_bytes(4, "little") + data[:_MESSAGE_BYTES - 4]
    self._messages[i, :len(data)] = np.frombuffer(data, np.uint8)

  def _load_error(self, i: int) -> errors.MnistFlaxError:
    row = self._messages[i]
    size = int.from_bytes(row[:4].tobytes(), "little")
    try:
      name, code, message = json.loads(row[4:4 + size].tobytes())
      kind = getattr(errors, name, None)
      if not (isinstance(kind, type) and issubclass(kind, errors.MnistFlaxError)):
        kind = errors.MnistFlaxError
      return kind(message, code)
    except ValueError:
      return errors.ImageError(f"{display(self._paths[i])}: cannot read image (garbled "
                               "result from a worker)")

  def _watch(self) -> None:
    """Stops workers stuck on a file; notes the file a dead worker was on."""
    now = time.monotonic()
    for w, proc in enumerate(self._procs):
      i = int(self._slots[w, 0])
      if i < 0 or self._state[i] != 0 or i in self._failed:
        continue
      shown = display(self._paths[i])
      if proc.exitcode is not None:
        self._failed[i] = errors.ImageError(
            f"cannot read {shown}: the reader crashed on it ({_exit_reason(proc.exitcode)})")
      elif now - self._slots[w, 1] > FILE_SECONDS:
        proc.kill()
        proc.join(1)
        self._failed[i] = errors.ImageError(
            f"gave up reading {shown} after {FILE_SECONDS:g} s: the file is damaged or built "
            "to stall a decoder")

  def results(self, help_here: bool = True) -> list[tuple[Any, errors.MnistFlaxError | None]]:
    """Every file's (array, error), in order; this process reads what is left meanwhile
    (unless not ``help_here``: when the workers fill every core, or in tests)."""
    from multiprocessing.connection import wait
    import numpy as np
    n = len(self._paths)
    mine: dict[int, tuple[Any, errors.MnistFlaxError | None]] = {}
    while help_here and (i := self._claim()) < n:
      mine[i] = read_one(self._preprocess, self._paths[i], self._single)
      self._watch()
    while True:
      self._watch()
      alive = [p for p in self._procs if p.exitcode is None]
      if not alive:
        break
      wait([p.sentinel for p in alive], timeout=0.05)
    self._watch()
    out: list[tuple[Any, errors.MnistFlaxError | None]] = []
    for i, path in enumerate(self._paths):
      if i in mine:
        out.append(mine[i])
      elif self._state[i] == 1:
        rows = self._boxes[i].tolist()
        out.append(([self._preprocess.Digit(np.array(self._fields[i, j]), tuple(rows[j][:4]),
                                            rows[j][4], tuple(rows[j][5:7]), rows[j][7],
                                            bool(rows[j][8]))
                     for j in range(int(self._counts[i]))],
                    None))
      elif self._state[i] == 2:
        out.append((None, self._load_error(i)))
      elif i in self._failed:
        out.append((None, self._failed[i]))
      else:  # Taken by a worker that died before starting it.
        out.append(read_one(self._preprocess, path, self._single))
    return out

  def close(self) -> None:
    for proc in self._procs:
      if proc.exitcode is None:
        proc.kill()
    for proc in self._procs:
      proc.join(1)


def _exit_reason(code: int) -> str:
  if code < 0:
    import signal
    try:
      return signal.Signals(-code).name
    except ValueError:
      return f"signal {-code}"
  return f"exit status {code}"
