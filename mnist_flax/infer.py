"""Read the digit in image files: ``python -m mnist_flax.infer PATH [PATH ...]``.

    $ python -m mnist_flax.infer test/3.jpg
    The recognized result is 3 and the probability is 0.999.

Paths are files and folders (every JPEG, PNG, GIF or BMP inside, sorted by name; subfolders
are not entered, and files named like pictures that are none of these are skipped: a folder
with either says so in one line on stderr), so hundreds of
images cost one process. They are given as they are, or after ``--i`` (also ``-i``,
``--input``); those after ``--i`` come first. With several images, or any folder, each line
starts with the file's path. An image with nothing to read answers "No digit found." (after
its path when lines carry one; in ``--json``, as its object's ``error``), exit code 5.
From 32 files on, when the machine has idle cores, forked worker processes (one per core) read
the files while this one loads the model (``mnist_flax.reader_pool``); a worker that crashes or
stalls on a file costs that file only (reported as unreadable, exit code 4).
An image that holds several digits side by side ("42", "2026", a date) is read as the whole
number, left to right, with the product of its digits' probabilities; ``--single`` reads one
digit per image (the largest). ``--json`` prints one JSON object per image instead: ``path``,
``number`` (a string: leading zeros kept), ``probability``, ``digits`` (one object per digit:
``digit``, ``probability``, ``box`` [x0, y0, x1, y1] in the image's pixels), and for a single
digit also ``digit``, the ten ``probabilities`` and ``top_k``. A model with a gate
(``mnist_flax.gate``, as the shipped one) scales each digit's probabilities by how likely it is
a digit at all (each digit's ``is_digit``), so they sum to that: a letter or a scribble is
answered "(unsure)".
``--top-k N`` adds the runners-up of a single digit. ``--save-preprocessed DIR`` writes the
28x28 image the model saw for each digit.
``--checkpoint DIR`` (default ``checkpoints/final``) names the promoted model, or a training
workdir (or its ``checkpoints/`` folder) whose ``final`` to use; its architecture comes from
the checkpoint itself (see ``mnist_flax.predictor``).

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
from typing import Any, NamedTuple, Sequence

from mnist_flax import errors, predictor, reader_pool
from mnist_flax.reader_pool import display as _display

PROG = "mnist_flax.infer"
# Predict in fixed-size chunks so one compiled program serves any number of images.
CHUNK = 256
# A (calibrated) top probability below this is printed with "(unsure)".
UNSURE_BELOW = 0.5
# A glyph with ink inside its own loop, apart from it (a smiley's eyes, a plate's frame round
# its digits: see preprocess.digits.ringed), is a digit at most this likely, whatever the gate
# says: on 1,600 pictures, 35 non-digits and 9 pictures of digits, all 9 read wrong.
RINGED_DIGIT = 0.1
# The answer for an image with nothing to read: the sentence, the line after a path and the
# "error" of its --json object (and the HTTP API's) all say it in these words.
NO_DIGIT = "No digit found."
# Names shown in a folder's note (subfolders not entered, files skipped); more are counted.
_NAMED = 3
# Suffixes people give pictures: such a file in a folder that is not an image infer reads is
# named in a note; any other non-image (notes.txt) is skipped without a word.
_PICTURE_SUFFIXES = frozenset({"jpg", "jpeg", "jpe", "jfif", "png", "gif", "bmp", "dib", "webp",
                               "tif", "tiff", "heic", "heif", "avif"})


def _parser() -> argparse.ArgumentParser:
  p = errors.ArgumentParser(prog="python -m mnist_flax.infer", description=__doc__.split("\n\n")[0],
              formatter_class=argparse.RawDescriptionHelpFormatter)
  # One list for both forms, parsed intermixed (main), so paths may also follow any flag.
  p.add_argument("inputs", nargs="*", action="extend", metavar="PATH",
                 help="image files and/or folders of images (subfolders are not entered: "
                      "give them as paths too)")
  p.add_argument("-i", "--i", "--input", dest="inputs", nargs="+", action="extend",
                 metavar="PATH", help="the same, as a flag (these come first)")
  p.add_argument("--checkpoint", default=None, metavar="DIR",
                 help="promoted checkpoint to use, or a training workdir whose final to use "
                      "(default: checkpoints/final)")
  p.add_argument("--json", action="store_true", help="one JSON object per image")
  p.add_argument("--top-k", type=int, default=1, metavar="N",
                 help="also report the N-1 next most likely digits (1-10)")
  p.add_argument("--save-preprocessed", metavar="DIR", default=None,
                 help="write the 28x28 image the model saw, as PNG, for each digit")
  p.add_argument("--single", action="store_true",
                 help="one digit per image (the largest), never a number")
  return p


def _looks_like_image(path: str, magic: tuple[bytes, ...]) -> bool:
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
    return os.read(fd, 8).startswith(magic)
  except OSError:
    return True
  finally:
    os.close(fd)


class Inputs(NamedTuple):
  """The command line's paths, expanded (``expand_inputs``)."""

  items: list[tuple[str, errors.MnistFlaxError | None]]  # Each file, or the error in its place.
  from_folder: bool  # A folder was given: every answer is named by its file.
  notes: list[str]  # Lines about folders: subfolders not entered, pictures skipped.


def expand_inputs(inputs: Sequence[str]) -> Inputs:
  """Files as given; folders replaced by the supported images they hold, sorted by name."""
  from mnist_flax.preprocess.read import MAGIC
  magic = tuple(MAGIC)
  out: list[tuple[str, errors.MnistFlaxError | None]] = []
  from_folder, notes = False, []
  for path in inputs:
    if os.path.isdir(path):
      from_folder = True
      try:
        names = sorted(os.listdir(path))
      except OSError as e:
        out.append((path, errors.ImageError(f"{_display(path)}: cannot list folder ({e.strerror})")))
        continue
      children = [(name, os.path.join(path, name)) for name in names if not name.startswith(".")]
      found = [child for _, child in children
               if os.path.isfile(child) and _looks_like_image(child, magic)]
      subfolders = [name for name, child in children if os.path.isdir(child)]
      if subfolders:  # Said, so that images one level down are not silently missed.
        notes.append(_subfolders_note(path, subfolders))
      # Named like a picture but not one infer reads (a WEBP or HEIC saved as .jpg, text):
      # said, so that it does not vanish from the answers unnoticed.
      read = set(found)
      misnamed = [name for name, child in children
                  if child not in read and name.rsplit(".", 1)[-1].lower() in _PICTURE_SUFFIXES
                  and os.path.isfile(child)]
      if not found:  # Said, not silently skipped: the user expected answers from it.
        out.append((path, errors.InputNotFound(
            f"{_display(path)}: folder holds no JPEG, PNG, GIF or BMP image"
            + (f" ({_named(misnamed)}: only named like one)" if misnamed else ""))))
      elif misnamed:
        notes.append(_misnamed_note(path, misnamed))
      out.extend((child, None) for child in found)
    elif not os.path.lexists(path):
      out.append((path, errors.InputNotFound(f"{_display(path)}: no such file")))
    else:
      out.append((path, None))
  return Inputs(out, from_folder, notes)


def _named(names: Sequence[str]) -> str:
  shown = ", ".join(_display(name) for name in names[:_NAMED])
  if len(names) > _NAMED:
    shown += f" and {len(names) - _NAMED} more"
  return shown


def _subfolders_note(folder: str, names: Sequence[str]) -> str:
  count = f"{len(names)} subfolder" + ("s" if len(names) > 1 else "")
  how = "it as a path to read its" if len(names) == 1 else "them as paths to read their"
  return f"{_display(folder)}: {count} not entered ({_named(names)}); give {how} images"


def _misnamed_note(folder: str, names: Sequence[str]) -> str:
  count = f"{len(names)} file" + ("s named like pictures are not" if len(names) > 1
                                   else " named like a picture is not")
  return (f"{_display(folder)}: {count} a JPEG, PNG, GIF or BMP image ({_named(names)}); "
          "skipped (give a file as a path to see why)")


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
      # is_digit: how likely the glyph is a digit at all (its row's sum; 1 without a gate).
      "digits": [{"digit": int(d), "probability": round(float(p), 6), "box": [int(v) for v in b],
                  "is_digit": round(float(row.sum()), 6)}
                 for d, p, b, row in zip(best, each, boxes, probs)]}
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
  # The reader's own confidence (rows scaled back to 1), not the gated one: weighing pieces by
  # the gate as well read as many numbers wrong as right on the generator's (+4 -4 of 350);
  # dropping a row's end digit the gate doubts (p < 0.1) won 5 of 1,850 files chosen on, then
  # 2 and lost 2 of 1,350 held out, and made non-digits surer.
  # Between a number's row read unsurely and rival rows (see preprocess.digits.find), the
  # gate counts too: the reader is sure of bricks or letters as 2s and 0s, the gate is not.
  import numpy as np
  gate = probs.sum(axis=1)
  confidence = probs.max(axis=1) / gate.clip(1e-30)
  # A ringed glyph (preprocess.digits.ringed) is a digit at most RINGED_DIGIT likely.
  ringed = np.array([bool(d.ringed) for d in found], bool)
  if ringed.any():
    probs = probs * np.where(ringed, np.minimum(1.0, RINGED_DIGIT / gate.clip(1e-30)), 1.0)[:, None]
    gate = probs.sum(axis=1)
  chosen = preprocess.choose(found, confidence, gate, UNSURE_BELOW)
  return answer(shown, probs[chosen], [found[j].box for j in chosen], top_k), list(chosen)


def json_failure(shown: str, error: errors.MnistFlaxError) -> dict[str, Any]:
  """The object ``--json`` prints for an image not read (no digit found, refused)."""
  said = NO_DIGIT if isinstance(error, errors.NoDigitFound) else str(error)
  return {"path": shown, "digit": None, "error": said, "exit_code": error.exit_code}


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


def _load_predictor(args: argparse.Namespace, size: int) -> Any:
  # Importing JAX makes a few hundred thousand objects, and the cyclic collector's passes over
  # them (during the import, then at the first allocations after it) cost a tenth of a cold
  # start. The collector rests from here to the end of the command (see main): what remains
  # is predicting and printing, which leaves no cycles behind.
  gc.disable()
  predict, _ = predictor.load_predict(predictor.resolve_checkpoint(args.checkpoint), size)
  return predict


def run(args: argparse.Namespace) -> int:
  if not args.inputs:
    raise errors.ConfigError("no image given: name image files or folders, e.g. "
                             "python -m mnist_flax.infer test/3.jpg (see --help)")
  if not 1 <= args.top_k <= 10:
    raise errors.ConfigError("--top-k must be between 1 and 10")
  out_dir = None if args.save_preprocessed is None else _output_folder(args.save_preprocessed)
  since = time.monotonic(), reader_pool.cpu_times()  # Idle time while the folders are listed.
  items, from_folder, notes = expand_inputs(args.inputs)
  for note in notes:
    print(f"{PROG}: note: {note}", file=sys.stderr, flush=True)
  if not items:
    raise errors.InputNotFound("no JPEG, PNG, GIF or BMP images found in the given folders")
  from mnist_flax import preprocess
  todo = [path for path, error in items if error is None]
  count = reader_pool.worker_count(len(todo), since)
  workers = reader_pool.Workers(preprocess, todo, count, args.single) if count else None
  predict = None
  try:
    if workers is not None:
      # JAX's import and the checkpoint load, while the workers read the files. Almost surely
      # some image is readable; if none is, a checkpoint problem is not worth reporting.
      try:
        predict = _load_predictor(args, CHUNK)  # Compiled here, not after the last file.
      except errors.CheckpointError as e:
        predict = e
      # Reading here too only pays when the workers leave a core idle; otherwise three
      # processes share two cores and this one reads slower than they do.
      read = workers.results(help_here=count < reader_pool.cores())
    else:
      read = [reader_pool.read_one(preprocess, path, args.single) for path in todo]
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
    if predict is None:
      predict = _load_predictor(args, size)
    elif isinstance(predict, errors.MnistFlaxError):
      raise predict
    else:
      size = CHUNK
    probabilities = predictor.in_batches(predict, stacked, size)

  named = from_folder or len(results) > 1  # Lines start with the file's path.
  exit_code = 0
  read = 0  # Images read so far: the number in --save-preprocessed names.
  for path, error, digits in results:
    shown = _display(path)
    if error is not None:
      exit_code = exit_code or error.exit_code
      if args.json:
        print(json.dumps(json_failure(shown, error)), flush=True)
      elif isinstance(error, errors.NoDigitFound):
        print(f"{shown}: {NO_DIGIT}" if named else NO_DIGIT, flush=True)
      if not isinstance(error, errors.NoDigitFound):  # An answer, not a failure: stdout only.
        print(f"{PROG}: error: {errors.one_line(error)}", file=sys.stderr, flush=True)
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
        reason = errors.one_line(getattr(e, "strerror", None) or e)
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
      print(f"{shown}: {text}" if named else text, flush=True)
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
    return errors.run_command(PROG, lambda: run(_parser().parse_intermixed_args(argv)))
  finally:
    if collecting:  # Paused by _load_predictor; back on for callers that carry on.
      gc.enable()


if __name__ == "__main__":
  code = main()
  sys.stdout.flush()
  sys.stderr.flush()
  # Skip interpreter teardown (JAX's and Orbax's atexit work): answers are already printed.
  os._exit(code)
