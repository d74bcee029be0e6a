"""Errors users can act on, and the exit codes the commands return for them.

Every command catches ``MnistFlaxError`` at its top level, prints ``str(error)`` as one line on
stderr (never a traceback) and exits with ``error.exit_code``. The codes are documented in
README.md ("Exit codes") and are part of the command-line interface:

==  ====================  ===========================================================
0   ok
1   InputNotFound         an input path given on the command line does not exist
2   ConfigError           config file missing or unusable, or a value refused
3   CheckpointError       checkpoint missing, partial, damaged or incompatible
4   ImageError            a file that is not a readable JPEG/PNG/GIF/BMP image
5   NoDigitFound          an image with nothing on it to read (result, not a crash)
6   DataError             MNIST files missing or malformed, or download impossible
7   WorkdirError          workdir unwritable, full, or in use by another live run; a
                          checkpoint that could not be written (disk full, quota, file-size
                          limit, read-only file system, a file where a folder should be)
8   DivergedError         training loss became NaN or infinite
9   LostProcess           another process of a multi-process run died or became unreachable
130 Interrupted (SIGINT)  checkpoint saved at the current step, run can be resumed
143 Interrupted (SIGTERM) checkpoint saved at the current step, run can be resumed
70  internal error        a bug: the one-line message says what broke; please report it
==  ====================  ===========================================================
"""

from __future__ import annotations

import errno
import os
import re
import sys

OK = 0
INTERNAL = 70


class MnistFlaxError(Exception):
  """Base class: an error with a one-line message and a documented exit code."""

  exit_code: int = 1

  def __init__(self, message: str, exit_code: int | None = None):
    super().__init__(message)
    if exit_code is not None:
      self.exit_code = exit_code


class InputNotFound(MnistFlaxError):
  exit_code = 1


class ConfigError(MnistFlaxError):
  exit_code = 2


class CheckpointError(MnistFlaxError):
  exit_code = 3


class ImageError(MnistFlaxError):
  exit_code = 4


class NoDigitFound(MnistFlaxError):
  exit_code = 5


class DataError(MnistFlaxError):
  exit_code = 6


class WorkdirError(MnistFlaxError):
  exit_code = 7


class DivergedError(MnistFlaxError):
  exit_code = 8


class LostProcess(MnistFlaxError):
  exit_code = 9


class Interrupted(MnistFlaxError):
  """Raised after a clean save on SIGINT (exit 130) or SIGTERM (exit 143)."""

  exit_code = 130


def quiet_background_threads() -> None:
  """Keeps library threads (Orbax's asyncio loop, tensorstore callbacks) from printing
  tracebacks on stderr while a command exits after an error: its one line says it all."""
  import threading
  threading.excepthook = lambda args: None
  sys.unraisablehook = lambda unraisable: None


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
    cause = f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"
  return WorkdirError(f"{what} {shown_path(where)} ({cause})")


def report(error: MnistFlaxError, prog: str) -> int:
  """Prints ``error`` as one line on stderr and returns its exit code."""
  message = " ".join(str(error).split("\n"))
  print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
  return error.exit_code


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
