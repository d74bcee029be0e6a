"""Read the digit in image files: ``python -m mnist_flax.infer --i PATH [PATH ...]``.

    $ python -m mnist_flax.infer --i test/3.jpg
    The recognized result is 3 and the probability is 0.999.

``--i`` takes files and folders (every JPEG, PNG, GIF or BMP inside, sorted by name), so
hundreds of images cost one process. With several images each line starts with the path.
From 32 files on, when the machine has idle cores, forked worker processes (one per core) read
the files while this one loads the model; a worker that crashes or stalls on a file costs that
file only (reported as unreadable, exit code 4).
An image that holds several digits side by side ("42", "2026", a date) is read as the whole
number, left to right, with the product of its digits' probabilities; ``--single`` reads one
digit per image (the largest). ``--json`` prints one JSON object per image instead: ``path``,
``number`` (a string: leading zeros kept), ``probability``, ``digits`` (one object per digit:
``digit``, ``probability``, ``box`` [x0, y0, x1, y1] in the image's pixels), and for a single
digit also ``digit``, the ten ``probabilities`` and ``top_k``. ``--top-k N`` adds the runners-up
of a single digit. ``--save-preprocessed DIR`` writes the 28x28 image the model saw for each
digit.
``--checkpoint DIR`` (default ``checkpoints/final``) names the promoted model; its architecture
comes from the checkpoint itself.

Exit codes: the table ``mnist_flax.errors.EXIT_CODES`` (README, "Exit codes"); with several
inputs, the code of the first one that failed, the others still answered.

Every other problem is one line on stderr naming the file, never a traceback. FIFOs and
devices are refused without reading them, animations are read from their first frame only,
and file names that are not valid UTF-8 are printed with \\xNN escapes.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pathlib
import stat
import sys
import time
from typing import Any, Sequence

from mnist_flax import errors
from mnist_flax.constants import IMAGE_SIZE

PROG = "mnist_flax.infer"
DEFAULT_CHECKPOINT = pathlib.Path("checkpoints") / "final"
PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
# Predict in fixed-size chunks so one compiled program serves any number of images.
CHUNK = 256
# A (calibrated) top probability below this is printed with "(unsure)".
UNSURE_BELOW = 0.5


class _Parser(argparse.ArgumentParser):
  def error(self, message: str) -> None:  # One line and exit 2, instead of usage + message.
    raise errors.ConfigError(f"{message} (see --help)")


def _parser() -> argparse.ArgumentParser:
  p = _Parser(prog="python -m mnist_flax.infer", description=__doc__.split("\n\n")[0],
              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--i", "--input", dest="inputs", nargs="+", required=True, metavar="PATH",
                 help="image files and/or folders of images")
  p.add_argument("--checkpoint", default=None, metavar="DIR",
                 help="promoted checkpoint to use (default: checkpoints/final)")
  p.add_argument("--json", action="store_true", help="one JSON object per image")
  p.add_argument("--top-k", type=int, default=1, metavar="N",
                 help="also report the N-1 next most likely digits (1-10)")
  p.add_argument("--save-preprocessed", metavar="DIR", default=None,
                 help="write the 28x28 image the model saw, as PNG, for each digit")
  p.add_argument("--single", action="store_true",
                 help="one digit per image (the largest), never a number")
  return p


def _display(path: str) -> str:
  """The path as one line of printable text (errors.shown_path), never empty."""
  return errors.shown_path(path) or "''"  # An empty argument still gets a visible name.


# Leading bytes of the four supported formats: how folder contents are told apart by content.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def _looks_like_image(path: str) -> bool:
  """Whether a folder entry is one of the supported formats, judged by its first bytes.

  Only regular files: O_NONBLOCK and fstat so that a FIFO or device met in a folder (even one
  swapped in after listing) is skipped instead of blocking the whole call.
  """
  try:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
  except OSError:
    return os.path.isfile(path)  # Unreadable: listed, then reported, not silently skipped.
  try:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
      return False
    return os.read(fd, 8).startswith(_MAGIC)
  except OSError:
    return True
  finally:
    os.close(fd)


def expand_inputs(inputs: Sequence[str]) -> list[tuple[str, errors.MnistFlaxError | None]]:
  """Files as given; folders replaced by the supported images they hold, sorted by name."""
  out: list[tuple[str, errors.MnistFlaxError | None]] = []
  for path in inputs:
    if os.path.isdir(path):
      try:
        names = sorted(os.listdir(path))
      except OSError as e:
        out.append((path, errors.ImageError(f"{_display(path)}: cannot list folder ({e.strerror})")))
        continue
      found = [child for child in (os.path.join(path, name) for name in names
                                   if not name.startswith("."))
               if os.path.isfile(child) and _looks_like_image(child)]
      if not found:  # Said, not silently skipped: the user expected answers from it.
        out.append((path, errors.InputNotFound(
            f"{_display(path)}: folder holds no JPEG, PNG, GIF or BMP image")))
      out.extend((child, None) for child in found)
    elif not os.path.lexists(path):
      out.append((path, errors.InputNotFound(f"{_display(path)}: no such file")))
    else:
      out.append((path, None))
  return out


def _resolve_checkpoint(value: str | None) -> pathlib.Path:
  if value is not None:
    return pathlib.Path(value)
  if DEFAULT_CHECKPOINT.exists():
    return DEFAULT_CHECKPOINT
  return PROJECT_ROOT / DEFAULT_CHECKPOINT  # The shipped model, from any working directory.


def answer(path: str, probs: Any, boxes: Sequence[Sequence[int]], top_k: int = 1) -> dict[str, Any]:
  """The JSON object for one image: ``probs`` (digits, 10) are its digits' probabilities, left
  to right, ``boxes`` their boxes in the image's pixels."""
  import numpy as np
  probs = np.asarray(probs, dtype=np.float64)
  best = probs.argmax(axis=1)
  each = probs[np.arange(len(probs)), best]
  out: dict[str, Any] = {
      "path": path, "number": "".join(str(int(d)) for d in best),
      "probability": round(float(np.prod(each)), 6),
      "digits": [{"digit": int(d), "probability": round(float(p), 6), "box": [int(v) for v in b]}
                 for d, p, b in zip(best, each, boxes)]}
  if len(probs) == 1:
    order = np.argsort(-probs[0], kind="stable")
    out["digit"] = int(best[0])
    out["probabilities"] = [round(float(x), 6) for x in probs[0]]
    out["top_k"] = [[int(d), round(float(probs[0, d]), 6)] for d in order[:top_k]]
  else:
    out["digit"] = None  # A number: see "number" and "digits".
  return out


def sentence(result: dict[str, Any]) -> str:
  """The one-line answer for an ``answer`` object; "(unsure)" below UNSURE_BELOW."""
  p = result["probability"]
  unsure = " (unsure)" if p < UNSURE_BELOW else ""
  text = f"The recognized result is {result['number']} and the probability is {p:.3f}{unsure}."
  runners = result.get("top_k", [])[1:]
  if runners:
    text += " Next: " + ", ".join(f"{d} ({p:.3f})" for d, p in runners) + "."
  return text


def image_answer(preprocess: Any, shown: str, found: Sequence[Any], probs: Any,
                 top_k: int) -> tuple[dict[str, Any], list[int]]:
  """The ``answer`` for one image's digits ``found`` (``preprocess.Digit``s) given their
  probabilities (one row each), and the indices of the digits it reads (the HTTP API uses it
  too)."""
  chosen = preprocess.choose(found, probs.max(axis=1))
  return answer(shown, probs[chosen], [found[j].box for j in chosen], top_k), list(chosen)


def json_failure(shown: str, error: errors.MnistFlaxError) -> dict[str, Any]:
  """The object ``--json`` prints for an image not read (no digit found, refused)."""
  return {"path": shown, "digit": None, "error": str(error), "exit_code": error.exit_code}


def _output_folder(value: str) -> pathlib.Path:
  """Creates the --save-preprocessed folder before any work, so a bad one costs nothing."""
  if not value:
    raise errors.ConfigError("--save-preprocessed needs a folder name")
  out_dir = pathlib.Path(value)
  shown = _display(value)
  try:
    out_dir.mkdir(parents=True, exist_ok=True)
  except FileExistsError:
    raise errors.ConfigError(f"--save-preprocessed {shown}: a file is in the way, not a "
                             "folder") from None
  except OSError as e:
    raise errors.ConfigError(f"--save-preprocessed {shown}: cannot create the folder "
                             f"({e.strerror or e})") from None
  if not os.access(out_dir, os.W_OK | os.X_OK):
    raise errors.ConfigError(f"--save-preprocessed {shown}: folder is not writable")
  return out_dir


# --- Reading many files on all cores -------------------------------------------------------

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


def _read_one(preprocess: Any, path: str,
              single: bool = False) -> tuple[Any, errors.MnistFlaxError | None]:
  """(list of preprocess.Digit, None) or (None, the error) for one file."""
  try:
    return preprocess.read_digits(path, single=single)[:MAX_DIGITS], None
  except errors.MnistFlaxError as e:
    return None, e
  except Exception as e:  # A decoder bug on one odd file must not cost the others.
    return None, errors.ImageError(
        f"{_display(path)}: cannot read image ({type(e).__name__}: {e})")


# Workers only pay when cores are idle: on a machine kept busy by other work (a training run)
# they add ~15% CPU time for the same wall time. Idle time is sampled over this long.
_IDLE_SAMPLE_SECONDS = 0.05


def _cpu_times() -> tuple[int, int, float] | None:
  """(idle, total) clock ticks of all CPUs since boot, from /proc/stat, and this process's own
  CPU time in the same ticks; None where there is no /proc/stat."""
  try:
    with open("/proc/stat", "rb") as f:
      fields = [int(x) for x in f.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields[:8]), time.process_time() * os.sysconf("SC_CLK_TCK")
  except (OSError, ValueError, IndexError, AttributeError):
    return None


def _cores() -> int:
  """The cores this process may run on."""
  try:
    return len(os.sched_getaffinity(0))
  except (AttributeError, OSError):
    return os.cpu_count() or 1


def _worker_count(files: int, since: tuple[float, tuple[int, int, float] | None]) -> int:
  """Worker processes for ``files`` files: one per core, none for few files, one core, or
  cores that were busy with other work since ``since`` (time.monotonic(), _cpu_times())."""
  cores = _cores()
  if files < POOL_MIN_FILES or cores < 2 or sys.platform == "win32" or "jax" in sys.modules:
    return 0  # Forking a process that has started JAX's threads is unsafe.
  start, before = since
  time.sleep(max(0.0, start + _IDLE_SAMPLE_SECONDS - time.monotonic()))
  after = _cpu_times()
  if before is not None and after is not None and after[1] > before[1]:
    # This process's own work (importing the image libraries) is not someone else's load.
    free = after[0] - before[0] + after[2] - before[2]
    if (os.cpu_count() or cores) * free / (after[1] - before[1]) < 1.5:
      return 0  # Not even one core free besides this one: read the files here.
  return min(cores, files // 16)


class _Workers:
  """Reads files in forked worker processes, while this process loads the model.

  Workers take the next file from a shared counter and write its 28x28 array (or its error)
  into shared memory, so nothing has to be read from them while this process is busy importing
  JAX. Then this process reads files nobody has taken yet too, if a core is left for it, and
  waits for the workers' last ones. A worker that dies on a file (a decoder crash, the OOM
  killer) or stays on it longer than FILE_SECONDS costs that file only, reported as
  unreadable; files left untaken are read here.
  """

  def __init__(self, preprocess: Any, paths: Sequence[str], count: int, single: bool = False):
    import mmap
    import multiprocessing
    import numpy as np
    self._preprocess, self._paths, self._single = preprocess, list(paths), single
    n = len(self._paths)
    k = MAX_DIGITS
    pixels = IMAGE_SIZE * IMAGE_SIZE
    sizes = (4 * pixels * k * n, _MESSAGE_BYTES * n, 16 * count, 8, n, 24 * k * n, n)
    self._memory = mmap.mmap(-1, sum(sizes))  # Anonymous and shared: inherited by fork.
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    buf = self._memory
    self._fields = np.frombuffer(buf, np.float32, pixels * k * n, offsets[0]).reshape(
        n, k, IMAGE_SIZE, IMAGE_SIZE)
    # Per digit: its box, then split_of and reading (see preprocess.Digit).
    self._boxes = np.frombuffer(buf, np.int32, 6 * k * n, offsets[5]).reshape(n, k, 6)
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
        found, error = _read_one(self._preprocess, self._paths[i], self._single)
        if error is None:
          for j, digit in enumerate(found):
            self._fields[i, j] = digit.field
            self._boxes[i, j] = (*digit.box, digit.split_of, digit.reading)
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
      return errors.ImageError(f"{_display(self._paths[i])}: cannot read image (garbled "
                               "result from a worker)")

  def _watch(self) -> None:
    """Stops workers stuck on a file; notes the file a dead worker was on."""
    now = time.monotonic()
    for w, proc in enumerate(self._procs):
      i = int(self._slots[w, 0])
      if i < 0 or self._state[i] != 0 or i in self._failed:
        continue
      shown = _display(self._paths[i])
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
      mine[i] = _read_one(self._preprocess, self._paths[i], self._single)
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
                                            *rows[j][4:]) for j in range(int(self._counts[i]))],
                    None))
      elif self._state[i] == 2:
        out.append((None, self._load_error(i)))
      elif i in self._failed:
        out.append((None, self._failed[i]))
      else:  # Taken by a worker that died before starting it.
        out.append(_read_one(self._preprocess, path, self._single))
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


def _load_predictor(args: argparse.Namespace, size: int) -> Any:
  # Importing JAX makes a few hundred thousand objects, and the cyclic collector's passes over
  # them (during the import, then at the first allocations after it) cost a tenth of a cold
  # start. The collector rests from here to the end of the command (see main): what remains
  # is predicting and printing, which leaves no cycles behind.
  gc.disable()
  from mnist_flax import cache  # JAX: only once there is work.
  cache.enable_compilation_cache()
  predict, _ = cache.load_predictor(_resolve_checkpoint(args.checkpoint), size)
  return predict


def run(args: argparse.Namespace) -> int:
  if not 1 <= args.top_k <= 10:
    raise errors.ConfigError("--top-k must be between 1 and 10")
  out_dir = None if args.save_preprocessed is None else _output_folder(args.save_preprocessed)
  since = time.monotonic(), _cpu_times()  # Idle time while the folders are listed.
  items = expand_inputs(args.inputs)
  if not items:
    raise errors.InputNotFound("no JPEG, PNG, GIF or BMP images found in the given folders")
  from mnist_flax import preprocess
  todo = [path for path, error in items if error is None]
  count = _worker_count(len(todo), since)
  workers = _Workers(preprocess, todo, count, args.single) if count else None
  predictor = None
  try:
    if workers is not None:
      # JAX's import and the checkpoint load, while the workers read the files. Almost surely
      # some image is readable; if none is, a checkpoint problem is not worth reporting.
      try:
        predictor = _load_predictor(args, CHUNK)  # Compiled here, not after the last file.
      except errors.CheckpointError as e:
        predictor = e
      # Reading here too only pays when the workers leave a core idle; otherwise three
      # processes share two cores and this one reads slower than they do.
      read = workers.results(help_here=count < _cores())
    else:
      read = [_read_one(preprocess, path, args.single) for path in todo]
  finally:
    if workers is not None:
      workers.close()
  arrays: list[Any] = []  # Every digit of every image, in order.
  results: list[tuple[str, errors.MnistFlaxError | None, Any]] = []  # With its digits.
  answers = iter(read)
  for path, error in items:
    if error is None:
      found, error = next(answers)
      if error is None:
        results.append((path, None, (len(arrays), found)))
        arrays.extend(d.field for d in found)
        continue
    results.append((path, error, None))

  probabilities = None
  if arrays:
    import numpy as np
    stacked = np.stack(arrays).astype(np.float32)
    size = 1 if len(stacked) == 1 else CHUNK
    if predictor is None:
      predictor = _load_predictor(args, size)
    elif isinstance(predictor, errors.MnistFlaxError):
      raise predictor
    else:
      size = CHUNK
    chunks = []
    for start in range(0, len(stacked), size):
      chunk = stacked[start:start + size]
      padded = np.zeros((size, IMAGE_SIZE, IMAGE_SIZE), np.float32)
      padded[:len(chunk)] = chunk
      chunks.append(np.asarray(predictor(padded))[:len(chunk)])
    probabilities = np.concatenate(chunks)

  several = len(results) > 1
  exit_code = 0
  read = 0  # Images read so far: the number in --save-preprocessed names.
  for path, error, digits in results:
    shown = _display(path)
    if error is not None:
      exit_code = exit_code or error.exit_code
      if args.json:
        print(json.dumps(json_failure(shown, error)), flush=True)
      elif isinstance(error, errors.NoDigitFound):
        print(f"{shown}: no digit found" if several else "No digit found.", flush=True)
      if not isinstance(error, errors.NoDigitFound) or args.json:
        print(f"{PROG}: error: {' '.join(str(error).split())}", file=sys.stderr, flush=True)
      continue
    first, found = digits
    probs = probabilities[first:first + len(found)]
    result, chosen = image_answer(preprocess, shown, found, probs, args.top_k)
    for k, j in enumerate(chosen if out_dir is not None else ()):
      name = os.path.basename(os.fsdecode(path))
      name = f"{read:04d}_{name}" + (f"_{k}.png" if len(chosen) > 1 else ".png")
      try:
        preprocess.save_preprocessed(arrays[first + j], out_dir / name)
      except (OSError, ValueError) as e:  # Disk full, folder removed, name too long...
        # One line, then stop trying: the answers matter more than the side output.
        reason = " ".join(str(getattr(e, "strerror", None) or e).split())
        print(f"{PROG}: error: cannot write preprocessed image for {shown} into "
              f"{_display(str(out_dir))} ({reason}); not saving the others",
              file=sys.stderr, flush=True)
        exit_code = exit_code or errors.ConfigError.exit_code
        out_dir = None
        break
    read += 1
    if args.json:
      print(json.dumps(result), flush=True)
    else:
      text = sentence(result)
      print(f"{shown}: {text}" if several else text, flush=True)
  return exit_code


def main(argv: Sequence[str] | None = None) -> int:
  if "numpy" not in sys.modules:
    # numpy's BLAS only ever sees tiny matrices here (preprocessing); starting its thread
    # pool would cost ~0.1 s of CPU at every start, for nothing.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
  for stream in (sys.stdout, sys.stderr):
    # A locale that cannot encode a file name must not turn an answer into a crash.
    if hasattr(stream, "reconfigure"):
      stream.reconfigure(errors="backslashreplace")
  collecting = gc.isenabled()
  try:
    return errors.run_command(PROG, lambda: run(_parser().parse_args(argv)))
  finally:
    if collecting:  # Paused by _load_predictor; back on for callers that carry on.
      gc.enable()


if __name__ == "__main__":
  code = main()
  sys.stdout.flush()
  sys.stderr.flush()
  # Skip interpreter teardown (JAX's and Orbax's atexit work): answers are already printed.
  os._exit(code)
