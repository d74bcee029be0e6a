"""Claiming a workdir for one training run: usable, not full, and not in use by another run.

    with workdir.claim(path):
      ...train...

Checked at start rather than at the first checkpoint an hour later: the workdir and its
``checkpoints/`` folder can be created and written, files and folders in them created, renamed
and removed (what a save and a promotion do), and there is room for a few checkpoints. An
exclusive ``flock`` on the workdir folder itself keeps a second run out while the first lives
(deleting a lock file cannot undo it); ``.mnist_flax.lock`` only holds the pid for the
message. The kernel drops the lock when its holder dies (even by SIGKILL), so a killed run
never leaves it stuck. In a multi-process run only process 0 takes the lock (the others share
its workdir by design).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pathlib
import shutil
import socket
from typing import Iterator

from mnist_flax import errors

LOCK_NAME = ".mnist_flax.lock"
CHECKPOINTS = "checkpoints"  # <workdir>/checkpoints: where mnist_flax.checkpoint saves.
MIN_FREE_BYTES = 64 * 2**20


def probe(folder: pathlib.Path) -> None:
  """Creates, renames and removes a file and a folder in ``folder``, as a save and a promotion
  do; the OSError of the first step that fails propagates."""
  tag = f".write-test-{socket.gethostname()}-{os.getpid()}"
  f, d, e = folder / tag, folder / f"{tag}.d", folder / f"{tag}.e"
  try:
    with open(f, "wb") as out:
      out.write(b"\0" * 4096)
      out.flush()
      os.fsync(out.fileno())
    d.mkdir()
    os.rename(d, e)
    os.rmdir(e)
  finally:
    for leftover in (f, d, e):
      with contextlib.suppress(OSError):
        leftover.rmdir() if leftover.is_dir() else leftover.unlink()


def check_writable(workdir: pathlib.Path, flag: str = "--workdir") -> None:
  """WorkdirError (exit 7) unless the workdir and its checkpoint folder can be written and
  have room; the message points to the command's ``flag`` naming another. Standard library
  only: ``main`` runs it before importing JAX."""
  folder = workdir
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe(workdir)
    folder = workdir / CHECKPOINTS
    folder.mkdir(exist_ok=True)
    if not folder.is_dir():
      raise FileExistsError(errno.EEXIST, "not a folder", str(folder))
    probe(folder)
  except OSError as e:
    code = e.errno if e.errno in errors.DISK_CAUSES else None
    reason = errors.DISK_CAUSES[code] if code else (e.strerror or str(e))
    raise errors.WorkdirError(f"{'workdir' if folder == workdir else 'checkpoint folder'} "
                              f"{errors.shown_path(folder)} is not writable ({reason}); "
                              f"choose another with {flag}") from None
  free = shutil.disk_usage(workdir).free
  if free < MIN_FREE_BYTES:
    raise errors.WorkdirError(f"workdir {workdir} has only {free // 2**20} MiB free; "
                              f"checkpoints need at least {MIN_FREE_BYTES // 2**20} MiB")


@contextlib.contextmanager
def claim(workdir: pathlib.Path, flag: str = "--workdir") -> Iterator[None]:
  """Holds ``workdir`` for this run: checked, and locked against a second live run. ``flag``:
  the command's option naming the workdir (``--checkpoint`` for one that rewrites a model)."""
  from mnist_flax import distributed  # JAX: only once training is under way.
  if not distributed.is_primary():
    yield
    return
  check_writable(workdir, flag)
  fd = os.open(workdir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      try:
        holder = (workdir / LOCK_NAME).read_bytes()[:64].decode(errors="replace").strip()
      except OSError:
        holder = ""
      run = "training run" if flag == "--workdir" else "run"
      raise errors.WorkdirError(f"workdir {workdir} is in use by a live {run} "
                                f"(pid {holder or '?'}); wait for it or use another "
                                f"{flag}") from None
    try:
      (workdir / LOCK_NAME).write_text(str(os.getpid()))
    except OSError as e:
      raise errors.write_failure(e, workdir / LOCK_NAME) from None
    yield
  finally:
    os.close(fd)
