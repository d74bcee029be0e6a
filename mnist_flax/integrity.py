"""Checksums of checkpoint folders, and a read-only view of a promoted ``final``.

    digest = integrity.seal(folder)        # writer: after Orbax committed the folder
    digest = integrity.verify(folder)      # reader: CheckpointError unless every byte matches
    folder = integrity.readable_final(path)  # where a reader finds ``final``, writing nothing

Orbax does not verify array contents: one flipped bit in a data file restores as a different
value, or NaN. So every step checkpoint and every ``final`` gets a manifest, ``MANIFEST``, with
the size and SHA-256 of each of its files, and the manifest ends with the SHA-256 of its own
lines. ``verify`` walks the folder without following links and refuses, before any file is
read by Orbax: a file not listed or listed but missing, anything that is not a directory or a
regular file (a symlink, a FIFO, a device), a size other than the recorded one (so nothing is
read past it: a file swapped for ``/dev/zero`` costs nothing), and a hash that differs. Cost:
one read of the folder, about 1.5 ms per MB. ``verify`` returns the SHA-256 of the manifest,
a key for the folder's exact content (``mnist_flax.cache`` uses it).

This module imports nothing beyond the standard library, so the inference command can check a
checkpoint without importing Orbax or JAX.

The layout of a promotion (``mnist_flax.checkpoint.promote_final``): ``.final-new`` is written
and sealed, ``final`` is renamed to ``.final-old``, ``.final-new`` to ``final``, and
``.final-old`` is deleted. A reader that finds no ``final`` (a crash, or a swap under way)
reads ``.final-new`` if it is sealed, else ``.final-old``; only a writer ever repairs the
folder (``checkpoint.recover_final``).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import stat

from mnist_flax import errors

MANIFEST = "MANIFEST"
FINAL, NEW, OLD = "final", ".final-new", ".final-old"
TRAIN_HINT = "train one with: python -m mnist_flax.main --config=configs/default.py"
RESET_HINT = "python -m mnist_flax.tools.reset puts the shipped model back"
_HEADER = "mnist_flax checksums v1 sha256"
# A manifest lists a few hundred files at most; anything far larger is not one.
_MANIFEST_MAX_BYTES = 1 << 20
_CHUNK = 1 << 20


def _open_regular(path: pathlib.Path) -> int:
  """An fd of ``path`` if it is a regular file, never following a symlink nor blocking on a
  FIFO; CheckpointError otherwise."""
  flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(
      os, "O_CLOEXEC", 0)
  try:
    fd = os.open(path, flags)
  except FileNotFoundError:
    raise
  except OSError as e:
    raise errors.CheckpointError(f"{errors.shown_path(path)} cannot be read "
                                 f"({e.strerror or e}: not a regular file?)") from None
  if not stat.S_ISREG(os.fstat(fd).st_mode):
    os.close(fd)
    raise errors.CheckpointError(f"{errors.shown_path(path)} is not a regular file")
  return fd


def _hash_file(path: pathlib.Path, size: int | None = None) -> tuple[int, str]:
  """(size, sha256) of a regular file; with ``size`` given, refuses another size unread."""
  fd = _open_regular(path)
  try:
    actual = os.fstat(fd).st_size
    if size is not None and actual != size:
      raise errors.CheckpointError(f"{errors.shown_path(path)} has {actual} bytes, "
                                   f"its checksum manifest says {size}")
    h = hashlib.sha256()
    remaining = actual
    while remaining > 0:
      block = os.read(fd, min(_CHUNK, remaining))
      if not block:
        break
      h.update(block)
      remaining -= len(block)
    if remaining:
      raise errors.CheckpointError(f"{errors.shown_path(path)} shrank while it was read")
    return actual, h.hexdigest()
  finally:
    os.close(fd)


def _files(folder: pathlib.Path) -> list[str]:
  """Every file under ``folder`` (relative, sorted) but the manifest; CheckpointError for
  anything that is neither a folder nor a regular file."""
  out = []
  for root, dirs, files in os.walk(folder, followlinks=False, onerror=_raise):
    for name in dirs + files:
      full = pathlib.Path(root) / name
      mode = os.lstat(full).st_mode
      if stat.S_ISDIR(mode):
        continue
      if not stat.S_ISREG(mode):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
        raise errors.CheckpointError(f"{errors.shown_path(full)} is {kind}; a checkpoint "
                                     "holds only folders and regular files")
      rel = os.path.relpath(full, folder)
      if rel != MANIFEST:
        out.append(rel)
  return sorted(out)


def _damaged(folder: pathlib.Path, detail: str) -> errors.CheckpointError:
  error = errors.CheckpointError(f"{errors.shown_path(folder)} is damaged ({detail})")
  error.detail = detail  # type: ignore[attr-defined]  # Said without the path by callers.
  return error


def _raise(error: OSError) -> None:
  raise error


def seal(folder: str | os.PathLike) -> str:
  """Writes ``folder/MANIFEST`` (atomically, synced) for the files now in ``folder``; returns
  its digest. Call once the folder is complete, before it becomes visible as committed."""
  folder = pathlib.Path(folder)
  lines = [_HEADER]
  for rel in _files(folder):
    if "\n" in rel:
      raise errors.CheckpointError(f"{errors.shown_path(folder / rel)}: a newline in a name")
    size, digest = _hash_file(folder / rel)
    lines.append(f"{digest} {size} {rel}")
  body = "\n".join(lines) + "\n"
  text = (body + f"self {hashlib.sha256(body.encode()).hexdigest()}\n").encode()
  tmp = folder / f".{MANIFEST}.tmp{os.getpid()}"
  with open(tmp, "wb") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, folder / MANIFEST)
  fsync_dir(folder)
  return hashlib.sha256(text).hexdigest()


def fsync_dir(folder: pathlib.Path) -> None:
  """Makes the renames inside ``folder`` durable (best effort where a dir cannot be opened)."""
  try:
    fd = os.open(folder, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def is_sealed(folder: pathlib.Path) -> bool:
  return os.path.lexists(folder / MANIFEST)


def _read_manifest(folder: pathlib.Path) -> tuple[bytes, dict[str, tuple[int, str]]]:
  path = folder / MANIFEST
  try:
    fd = _open_regular(path)
  except FileNotFoundError:
    raise errors.CheckpointError(
        f"{errors.shown_path(folder)} has no checksum manifest ({MANIFEST}): its save did not "
        "finish, or an older mnist_flax wrote it") from None
  try:
    if os.fstat(fd).st_size > _MANIFEST_MAX_BYTES:
      raise errors.CheckpointError(f"{errors.shown_path(path)} is too large for a manifest")
    text = os.read(fd, _MANIFEST_MAX_BYTES + 1)
  finally:
    os.close(fd)
  bad = errors.CheckpointError(f"{errors.shown_path(path)} is damaged")
  body, _, last = text.rstrip(b"\n").rpartition(b"\n")
  body += b"\n"
  if last != b"self " + hashlib.sha256(body).hexdigest().encode():
    raise bad
  lines = body.decode("utf-8", "surrogateescape").splitlines()
  if not lines or lines[0] != _HEADER:
    raise bad
  listed: dict[str, tuple[int, str]] = {}
  try:
    for line in lines[1:]:
      digest, size, rel = line.split(" ", 2)
      listed[rel] = (int(size), digest)
  except ValueError:
    raise bad from None
  return text, listed


def verify(folder: str | os.PathLike) -> str:
  """Checks every file of ``folder`` against its manifest; returns the manifest's SHA-256.

  Raises CheckpointError (exit 3) naming the first problem; FileNotFoundError only when a file
  vanished while it was checked (a concurrent promotion: the caller looks again).
  """
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise errors.CheckpointError(f"{errors.shown_path(folder)} is not a folder")
  text, listed = _read_manifest(folder)
  present = _files(folder)
  missing = sorted(set(listed) - set(present))
  extra = sorted(set(present) - set(listed))
  if missing or extra:
    which = (f"{missing[0]} is missing" if missing else f"{extra[0]} is not in its manifest")
    raise _damaged(folder, which)
  for rel in present:
    size, digest = listed[rel]
    if _hash_file(folder / rel, size)[1] != digest:
      raise _damaged(folder, f"{rel} does not match its checksum")
  return hashlib.sha256(text).hexdigest()


def readable_final(path: str | os.PathLike) -> pathlib.Path:
  """The folder a reader should read for ``path``: ``path`` itself, or, when ``path`` is a
  missing ``final`` (a promotion interrupted or under way), the sealed ``.final-new`` or else
  ``.final-old`` beside it. Writes nothing."""
  path = pathlib.Path(path).absolute()
  if os.path.lexists(path) or path.name != FINAL:
    return path
  new, old = path.with_name(NEW), path.with_name(OLD)
  if is_sealed(new):
    return new
  if os.path.lexists(old):
    return old
  return path


def verify_final(path: str | os.PathLike, attempts: int = 3) -> tuple[pathlib.Path, str]:
  """(the folder to read, its digest) for a promoted checkpoint; a promotion that swaps the
  folders while they are checked only makes this look again."""
  for attempt in range(attempts):
    folder = readable_final(path)
    try:
      return folder, verify(folder)
    except FileNotFoundError:
      if attempt == attempts - 1:
        raise errors.CheckpointError(
            f"{errors.shown_path(folder)} changed while it was read; try again") from None
  raise AssertionError("unreachable")


def _remedy(final: pathlib.Path) -> str:
  """How to get a usable model in place of ``final``: for the project's own
  ``checkpoints/final`` (left damaged by e.g. ``git checkout checkpoints/final`` after a run,
  which keeps the files the run added), the shipped one back in a second rather than a
  training run."""
  from mnist_flax.constants import PROJECT_ROOT
  from mnist_flax.workdir import CHECKPOINTS
  if final.resolve() == (PROJECT_ROOT / CHECKPOINTS / FINAL).resolve():
    return f"{RESET_HINT}, or {TRAIN_HINT}"
  return TRAIN_HINT


def checked_final(path: str | os.PathLike) -> tuple[pathlib.Path, str]:
  """``verify_final`` with the messages the commands print (exit 3), saying how to train one."""
  path = pathlib.Path(path).absolute()
  folder = readable_final(path)
  if not folder.is_dir():
    raise errors.CheckpointError(
        f"no checkpoint at {errors.shown_path(path)}; {_remedy(path)}")
  if not os.path.lexists(folder / MANIFEST) and not (folder / "_CHECKPOINT_METADATA").is_file():
    raise errors.CheckpointError(
        f"{errors.shown_path(folder)} is not a complete Orbax checkpoint; {_remedy(path)}")
  try:
    return verify_final(path)
  except errors.CheckpointError as e:
    raise errors.CheckpointError(f"checkpoint {e}; {_remedy(path)}") from None
