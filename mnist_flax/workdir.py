"""Claiming a workdir for one training run: usable, not full, and not in use by another run.

    with workdir.claim(path):
      ...train...

Checked at start rather than at the first checkpoint an hour later: the folder can be created
and written, and has room for a few checkpoints. An exclusive ``flock`` on
``<workdir>/.mnist_flax.lock`` keeps a second run out while the first lives; the kernel drops
the lock when its holder dies (even by SIGKILL), so a killed run never leaves it stuck. In a
multi-process run only process 0 takes the lock (the others share its workdir by design).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pathlib
import shutil
from typing import Iterator

from mnist_flax import distributed, errors

LOCK_NAME = ".mnist_flax.lock"
MIN_FREE_BYTES = 64 * 2**20


def check_writable(workdir: pathlib.Path) -> None:
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / f".write-test-{os.getpid()}"
    with open(probe, "wb") as f:
      f.write(b"\0" * 4096)
      f.flush()
      os.fsync(f.fileno())
    probe.unlink()
  except OSError as e:
    reason = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
    raise errors.WorkdirError(f"workdir {workdir} is not writable ({reason}); "
                              "choose another with --workdir") from None
  free = shutil.disk_usage(workdir).free
  if free < MIN_FREE_BYTES:
    raise errors.WorkdirError(f"workdir {workdir} has only {free // 2**20} MiB free; "
                              f"checkpoints need at least {MIN_FREE_BYTES // 2**20} MiB")


@contextlib.contextmanager
def claim(workdir: pathlib.Path) -> Iterator[None]:
  """Holds ``workdir`` for this run: checked, and locked against a second live run."""
  if not distributed.is_primary():
    yield
    return
  check_writable(workdir)
  fd = os.open(workdir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
      raise errors.WorkdirError(f"workdir {workdir} is in use by a live training run "
                                f"(pid {holder}); wait for it or use another --workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    yield
  finally:
    os.close(fd)
