"""Errors users can act on, the exit codes the commands return, and the one wrapper they share.

Every ``python -m mnist_flax.X`` command hands its body to ``run_command``::

    def main(argv: Sequence[str] | None = None) -> int:
      return errors.run_command(PROG, lambda: run(_parser().parse_args(argv)))

which prints a ``MnistFlaxError`` as one line on stderr (``PROG: error: message``, never a
traceback) and returns its ``exit_code``; any other exception is an "internal error" (exit 70),
one line too, unless ``MNIST_FLAX_TRACEBACK=1`` asks for the traceback. The codes are part of
the command-line interface: ``EXIT_CODES`` below is the one table of them (code, name, meaning);
README.md ("Exit codes") shows it, and tests/test_errors.py checks that the two agree
(``python -c "from mnist_flax import errors; print(errors.exit_code_table())"`` prints it).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import re
import sys
from typing import Callable, NoReturn

# Set to 1 to get the traceback of an internal error instead of its one line.
TRACEBACK_ENV = "MNIST_FLAX_TRACEBACK"


@dataclasses.dataclass(frozen=True)
class ExitCode:
  """One row of the exit-code table: ``name`` is the exception class for codes that have one."""

  code: int
  name: str
  meaning: str


EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(0, "ok", "success (`infer`: every image read)"),
    ExitCode(1, "InputNotFound", "an input path does not exist (or is a broken symbolic link), or "
             "a folder holds no JPEG, PNG, GIF or BMP image (`infer`)"),
    ExitCode(2, "ConfigError", "bad command line or config: unknown flag or config field, a "
             "value of the wrong type or refused, missing or unusable config file, `--top-k` "
             "outside 1-10, a `--save-preprocessed` folder that cannot be created or written, an "
             "address `serve` cannot use, no validation split for `calibrate` to fit on"),
    ExitCode(3, "CheckpointError", "checkpoint missing, partial, damaged (any file that does not "
             "match its checksum manifest, or none), foreign, incompatible (another model, "
             "optimizer, seed or batch size), holding a symlink, FIFO or device, or giving "
             "non-finite weights or probabilities (the message says how to train one)"),
    ExitCode(4, "ImageError", "not a readable JPEG, PNG, GIF or BMP: another format (TIFF, WEBP, "
             "HEIC, ...), empty, truncated, corrupt, too large (over 64 megapixels or 1 GiB), a "
             "pipe or device, a symlink loop, no read permission, or a file that takes more than "
             "a few seconds to decode (`infer`)"),
    ExitCode(5, "NoDigitFound", "no digit found in an image (blank, flat or noise-only): printed "
             "on stdout as the answer, \"No digit found.\", as it is a result rather than a "
             "failure (`infer`)"),
    ExitCode(6, "DataError", "MNIST files missing or malformed, not the files the model was "
             "trained on (`calibrate`), or the download is impossible"),
    ExitCode(7, "WorkdirError", "workdir or `checkpoints/` not writable, or in use by another "
             "live run; a save or promotion that failed to write (disk full, quota, file-size "
             "limit, read-only file system, a file where a folder should be), within seconds; "
             "report folder not writable"),
    ExitCode(8, "DivergedError", "training diverged (NaN or infinite loss)"),
    ExitCode(9, "LostProcess", "another process of a multi-process run died or became "
             "unreachable (named in the one line); the checkpoints saved so far are kept; "
             "`serve`: a worker died while loading the model"),
    ExitCode(70, "internal error", "a bug: the one line says what broke; please report it "
             f"(`{TRACEBACK_ENV}=1` shows the traceback)"),
    ExitCode(130, "Interrupted (SIGINT)", "stopped by Ctrl-C, after saving a checkpoint when "
             "training (run again to resume), after answering the requests in flight (`serve`)"),
    ExitCode(141, "stdout closed", "the output was closed early (e.g. piped into `head`): stops "
             "quietly"),
    ExitCode(143, "Interrupted (SIGTERM)", "stopped by SIGTERM, as for 130"),
)
_CODES = {row.name: row.code for row in EXIT_CODES}
OK = _CODES["ok"]
INTERNAL = _CODES["internal error"]
SIGINT = _CODES["Interrupted (SIGINT)"]
STDOUT_CLOSED = _CODES["stdout closed"]


def exit_code_table() -> str:
  """``EXIT_CODES`` as the Markdown table README.md shows."""
  return "\n".join(["| code | name | meaning |", "|---|---|---|"] + [
      f"| {row.code} | {row.name} | {row.meaning} |" for row in EXIT_CODES])


class MnistFlaxError(Exception):
  """Base class: an error with a one-line message and a documented exit code."""

  exit_code: int = 1

  def __init__(self, message: str, exit_code: int | None = None):
    super().__init__(message)
    if exit_code is not None:
      self.exit_code = exit_code


class InputNotFound(MnistFlaxError):
  exit_code = _CODES["InputNotFound"]


class ConfigError(MnistFlaxError):
  exit_code = _CODES["ConfigError"]


class CheckpointError(MnistFlaxError):
  exit_code = _CODES["CheckpointError"]


class ImageError(MnistFlaxError):
  exit_code = _CODES["ImageError"]


class NoDigitFound(MnistFlaxError):
  exit_code = _CODES["NoDigitFound"]


class DataError(MnistFlaxError):
  exit_code = _CODES["DataError"]


class WorkdirError(MnistFlaxError):
  exit_code = _CODES["WorkdirError"]


class DivergedError(MnistFlaxError):
  exit_code = _CODES["DivergedError"]


class LostProcess(MnistFlaxError):
  exit_code = _CODES["LostProcess"]


class Interrupted(MnistFlaxError):
  """Raised after a clean save on SIGINT (exit 130) or SIGTERM (exit 143)."""

  exit_code = SIGINT


def quiet_background_threads() -> None:
  """Keeps library threads (Orbax's asyncio loop, tensorstore callbacks) from printing
  tracebacks on stderr while a command exits after an error: its one line says it all."""
  import threading
  threading.excepthook = lambda args: None
  sys.unraisablehook = lambda unraisable: None


def leave(code: int) -> NoReturn:
  """Ends a command's process with ``code`` (its ``if __name__ == "__main__"`` line).

  After a failure, Orbax's threads may wait minutes for writes that will never come, and JAX
  interrupted mid-import can abort at interpreter teardown: the one line is out and every
  committed file is on disk, so the process leaves at once, skipping the teardown.
  """
  try:
    sys.stdout.flush()  # What a command printed last may still sit in the buffer.
  except BrokenPipeError:
    code = code or _stdout_closed()
  sys.stderr.flush()
  if code != OK:
    os._exit(code)
  sys.exit(code)


def _stdout_closed() -> int:
  """The reader of stdout has gone (``| head``): nobody to tell, so no message. Points stdout at
  /dev/null so that no later flush raises again, and returns the exit code for it."""
  devnull = os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, sys.stdout.fileno())
  return STDOUT_CLOSED


# Why a write failed, for the errors a user fixes on the file system rather than in the code.
DISK_CAUSES = {
    errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file size limit exceeded", errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a file is in the way of a folder", errno.EEXIST: "a file is in the way",
    errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
    errno.EISDIR: "a folder is in the way of a file",
}


def os_errno(error: BaseException) -> int | None:
  """The OS error number behind ``error``: an OSError's, or one that a library (TensorStore,
  inside Orbax) reported only in its message, searched along the chain of causes."""
  seen = 0
  current: BaseException | None = error
  while current is not None and seen < 10:
    if isinstance(current, OSError) and current.errno:
      return current.errno
    match = re.search(r"os_error_code='?(\d+)|\[Errno (\d+)\]", str(current))
    if match:
      return int(match.group(1) or match.group(2))
    current = current.__cause__ or current.__context__
    seen += 1
  return None


def write_failure(error: BaseException, where: str | os.PathLike,
                  what: str = "cannot write") -> WorkdirError:
  """A one-line WorkdirError (exit 7) for a write into ``where`` that failed with ``error``."""
  code = os_errno(error)
  if code is not None:
    cause = DISK_CAUSES.get(code) or os.strerror(code)
  else:
    cause = f"{type(error).__name__}: {one_line(error, 200)}"
  return WorkdirError(f"{what} {shown_path(where)} ({cause})")


def one_line(text: object, limit: int | None = None) -> str:
  """``text`` as one line (its lines joined by a space), cut after ``limit`` characters: every
  message is one line, whatever a library put in the exception it wraps."""
  line = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
  return line if limit is None else line[:limit]


def report(error: MnistFlaxError, prog: str) -> int:
  """Prints ``error`` as one line on stderr (``prog: error: ...``) and returns its exit code."""
  print(f"{prog}: error: {one_line(error)}", file=sys.stderr, flush=True)
  return error.exit_code


def internal_error(error: BaseException) -> MnistFlaxError:
  """The one line (exit 70) for an exception no code path expected: a bug."""
  return MnistFlaxError(f"internal error ({type(error).__name__}: {one_line(error, 300)}); rerun "
                        f"with {TRACEBACK_ENV}=1 for the traceback, and please report it",
                        INTERNAL)


def run_command(prog: str, body: Callable[[], int],
                known: Callable[[Exception], MnistFlaxError | None] | None = None) -> int:
  """Runs a command's ``body`` and returns its exit code, every failure said in one line.

  ``MnistFlaxError``: its message and code. Ctrl-C before the command handles it: 130, quietly.
  A closed stdout (``| head``): 141, quietly, as nobody is left to read. Anything else: what
  ``known`` makes of it (a command's own translations, e.g. a full disk), else an internal
  error (70), or the traceback with ``MNIST_FLAX_TRACEBACK=1``. Library threads are silenced
  first (``quiet_background_threads``) so that their tracebacks cannot follow the one line.
  """
  quiet_background_threads()
  try:
    return body()
  except MnistFlaxError as e:
    return report(e, prog)
  except KeyboardInterrupt:
    return SIGINT
  except BrokenPipeError:
    return _stdout_closed()
  except Exception as e:
    if os.environ.get(TRACEBACK_ENV):
      raise
    return report((known(e) if known else None) or internal_error(e), prog)


class ArgumentParser(argparse.ArgumentParser):
  """Every command's parser: a bad command line is a ConfigError (one line, exit 2, through
  ``run_command`` or ``report``) instead of argparse's usage block."""

  def error(self, message: str) -> NoReturn:
    raise ConfigError(f"{message} (see --help)")


def shown_path(path: str | os.PathLike) -> str:
  """A file name as one printable line, the way every message and answer shows it.

  Undecodable bytes of a file name (kept by Python as surrogates) become \\xNN, control
  characters (a newline in a name) are escaped, and a backslash of the name itself is shown
  doubled, so that two different names never print alike (a byte 0xff and the four characters
  ``\\xff``). A message is one line and names the file a user can recognise; printing the raw
  surrogates would raise or garble.
  """
  text = os.fsdecode(os.fspath(path)) if not isinstance(path, str) else path
  if text.isprintable() and "\\" not in text:  # The usual name: one check, not one per character.
    return text
  out = []
  for c in text:
    if c == "\\":
      out.append("\\\\")
    elif 0xDC80 <= ord(c) <= 0xDCFF:  # A byte that is not UTF-8, as os.fsdecode keeps it.
      out.append(f"\\x{ord(c) - 0xDC00:02x}")
    elif c.isprintable():
      out.append(c)
    else:
      out.append(c.encode("unicode_escape").decode("ascii"))
  return "".join(out)
