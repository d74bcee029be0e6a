"""Read the digit in image files: ``python -m mnist_flax.infer --i PATH [PATH ...]``.

    $ python -m mnist_flax.infer --i test/3.jpg
    The recognized result is 3 and the probability is 0.998.

``--i`` takes files and folders (every JPEG, PNG, GIF or BMP inside, sorted by name), so
hundreds of images cost one process. With several images each line starts with the path.
``--json`` prints one JSON object per image instead. ``--top-k N`` adds the runners-up.
``--save-preprocessed DIR`` writes the 28x28 image the model saw for each input.
``--checkpoint DIR`` (default ``checkpoints/final``) names the promoted model; its architecture
comes from the checkpoint itself.

Exit codes (see ``mnist_flax.errors``); with several inputs, the code of the first one that
failed, the others still answered:

===  =============================================================================
0    every image read
1    a path that does not exist (or a broken symbolic link), or a folder holding no
     JPEG, PNG, GIF or BMP image
2    bad command line: unknown flag, ``--top-k`` outside 1-10, a ``--save-preprocessed``
     folder that cannot be created or written
3    checkpoint missing, damaged or incompatible (the message says how to train one)
4    not a readable JPEG/PNG/GIF/BMP: another format (TIFF, WEBP, HEIC, ...), empty,
     truncated, corrupt, too large (over 64 megapixels or 1 GiB), a pipe or device, a
     symbolic link loop, no read permission, or a file that takes more than a few seconds
     to decode
5    no digit found (blank, flat or noise-only image): printed on stdout in place of the
     answer ("No digit found."), as it is a result rather than a failure
70   internal error (a bug; the one line says what broke)
141  stdout closed early (e.g. piped into ``head``): stops quietly
===  =============================================================================

Every other problem is one line on stderr naming the file, never a traceback. FIFOs and
devices are refused without reading them, animations are read from their first frame only,
and file names that are not valid UTF-8 are printed with \\xNN escapes.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import stat
import sys
from typing import Any, Sequence

from mnist_flax import errors

PROG = "mnist_flax.infer"
DEFAULT_CHECKPOINT = pathlib.Path("checkpoints") / "final"
PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
# Predict in fixed-size chunks so one compiled program serves any number of images.
CHUNK = 256


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
                 help="write the 28x28 image the model saw, as PNG, for each input")
  return p


def _display(path: str) -> str:
  """The path as one line of printable text, as preprocess's messages show it.

  Bytes of a name that are not UTF-8 (kept by Python's argv and listdir decoding as
  surrogates) become \\xNN escapes, and control characters such as a newline in a name are
  escaped, so one answer stays one line.
  """
  text = os.fsencode(path).decode("utf-8", "backslashreplace")
  shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                  for c in text)
  return shown or "''"  # An empty argument still gets a visible name in its message.


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


def _sentence(probs: Any, top_k: int) -> tuple[int, float, str]:
  order = sorted(range(10), key=lambda d: -float(probs[d]))
  digit, p = order[0], float(probs[order[0]])
  text = f"The recognized result is {digit} and the probability is {p:.3f}."
  if top_k > 1:
    text += " Next: " + ", ".join(f"{d} ({float(probs[d]):.3f})" for d in order[1:top_k]) + "."
  return digit, p, text


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


def run(args: argparse.Namespace) -> int:
  if not 1 <= args.top_k <= 10:
    raise errors.ConfigError("--top-k must be between 1 and 10")
  out_dir = None if args.save_preprocessed is None else _output_folder(args.save_preprocessed)
  items = expand_inputs(args.inputs)
  if not items:
    raise errors.InputNotFound("no JPEG, PNG, GIF or BMP images found in the given folders")
  from mnist_flax import preprocess
  arrays: list[Any] = []
  results: list[tuple[str, errors.MnistFlaxError | None, int | None]] = []
  for path, error in items:
    if error is None:
      try:
        arrays.append(preprocess.preprocess_file(path))
        results.append((path, None, len(arrays) - 1))
        continue
      except errors.MnistFlaxError as e:
        error = e
      except Exception as e:  # A decoder bug on one odd file must not cost the others.
        error = errors.ImageError(f"{_display(path)}: cannot read image ({type(e).__name__}: {e})")
    results.append((path, error, None))

  probabilities = None
  if arrays:
    import numpy as np
    from mnist_flax import cache, model  # JAX and Flax: only once there is work.
    cache.enable_compilation_cache()
    model_config, variables, _ = cache.load_final(_resolve_checkpoint(args.checkpoint))
    net = model.build(model_config)
    stacked = np.stack(arrays).astype(np.float32)
    size = 1 if len(stacked) == 1 else CHUNK
    chunks = []
    for start in range(0, len(stacked), size):
      chunk = stacked[start:start + size]
      padded = np.zeros((size, 28, 28), np.float32)
      padded[:len(chunk)] = chunk
      chunks.append(np.asarray(model.predict(net, variables, padded))[:len(chunk)])
    probabilities = np.concatenate(chunks)

  several = len(results) > 1
  exit_code = 0
  for path, error, index in results:
    shown = _display(path)
    if error is not None:
      exit_code = exit_code or error.exit_code
      if args.json:
        print(json.dumps({"path": shown, "digit": None, "error": str(error),
                          "exit_code": error.exit_code}), flush=True)
      elif isinstance(error, errors.NoDigitFound):
        print(f"{shown}: no digit found" if several else "No digit found.", flush=True)
      if not isinstance(error, errors.NoDigitFound) or args.json:
        print(f"{PROG}: error: {' '.join(str(error).split())}", file=sys.stderr, flush=True)
      continue
    probs = probabilities[index]
    digit, p, text = _sentence(probs, args.top_k)
    if out_dir is not None:
      name = os.path.basename(os.fsdecode(path)) + ".png"
      try:
        preprocess.save_preprocessed(arrays[index], out_dir / f"{index:04d}_{name}")
      except (OSError, ValueError) as e:  # Disk full, folder removed, name too long...
        # One line, then stop trying: the answers matter more than the side output.
        reason = " ".join(str(getattr(e, "strerror", None) or e).split())
        print(f"{PROG}: error: cannot write preprocessed image for {shown} into "
              f"{_display(str(out_dir))} ({reason}); not saving the others",
              file=sys.stderr, flush=True)
        exit_code = exit_code or errors.ConfigError.exit_code
        out_dir = None
    if args.json:
      order = sorted(range(10), key=lambda d: -float(probs[d]))
      print(json.dumps({"path": shown, "digit": digit, "probability": round(p, 6),
                        "probabilities": [round(float(x), 6) for x in probs],
                        "top_k": [[d, round(float(probs[d]), 6)] for d in order[:args.top_k]]}),
            flush=True)
    else:
      print(f"{shown}: {text}" if several else text, flush=True)
  return exit_code


def main(argv: Sequence[str] | None = None) -> int:
  for stream in (sys.stdout, sys.stderr):
    # A locale that cannot encode a file name must not turn an answer into a crash.
    if hasattr(stream, "reconfigure"):
      stream.reconfigure(errors="backslashreplace")
  try:
    return run(_parser().parse_args(argv))
  except errors.MnistFlaxError as e:
    return errors.report(e, PROG)
  except KeyboardInterrupt:
    return 130
  except BrokenPipeError:
    # The reader (e.g. `| head -1`) has gone: nobody to tell, so no message. Point stdout at
    # /dev/null so the final flush does not raise again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141
  except Exception as e:  # Never a traceback for users; the one line says what broke.
    return errors.report(errors.MnistFlaxError(
        f"internal error ({type(e).__name__}: {e}); please report it", errors.INTERNAL), PROG)


if __name__ == "__main__":
  code = main()
  sys.stdout.flush()
  sys.stderr.flush()
  # Skip interpreter teardown (JAX's and Orbax's atexit work): answers are already printed.
  os._exit(code)
