"""Put the shipped model back and remove what training added to the project checkout.

    python -m mnist_flax.tools.reset             # in (or for) the project checkout
    python -m mnist_flax.tools.reset --dry-run   # only say what it would do

Training with the default ``--workdir`` (the project root, as the README's train command does)
promotes its model over the shipped ``checkpoints/final`` and adds step checkpoints,
``metrics.jsonl``, ``tensorboard/``, ``summary.json`` and a lock file. This command undoes all of
that in one go and prints every path it removed:

* ``checkpoints/final`` is restored from git (``HEAD``): the folder is moved aside, ``git
  checkout HEAD -- checkpoints/final`` writes the shipped files, and only then is the old one
  deleted (if git fails, the old one is put back). Moving it aside first matters: a plain
  ``git checkout`` would leave the run's extra files inside the restored folder.
* the training output is removed: ``checkpoints/<step>/`` (and ``.damaged`` ones, Orbax's
  temporary folders, an interrupted promotion's ``.final-new``/``.final-old``),
  ``metrics.jsonl``, ``summary.json``, ``tensorboard/`` and ``.mnist_flax.lock``.

Why git and nothing else: the shipped model is committed, so a checkout always has it, exactly,
and no second copy has to be kept in sync. A project that is not a git checkout (an unpacked
archive) has no shipped model to restore from: refused, exit 3.

Refused before anything is touched, one line each (exit codes: ``mnist_flax.errors``): a file
among them that training does not write (exit 7: it would be lost; move it and run again), a
training run still holding the workdir (exit 7), no git checkout or no committed
``checkpoints/final`` (exit 3). ``checkpoints/report/`` (committed) is left alone.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Iterator, Sequence

from mnist_flax import errors
from mnist_flax.integrity import FINAL, NEW, OLD
from mnist_flax.run_log import METRICS_FILE, TENSORBOARD_DIR
from mnist_flax.constants import PROJECT_ROOT
from mnist_flax.workdir import CHECKPOINTS, LOCK_NAME

PROG = "mnist_flax.tools.reset"
SUMMARY = "summary.json"
_ASIDE = ".final-reset"
# What training writes in checkpoints/: step folders (and those set aside as damaged), Orbax's
# temporary folders, an interrupted promotion's halves, the writability probe's leftovers.
_STEP_OUTPUT = re.compile(
    rf"^(\d+(\.damaged)?|{re.escape(NEW)}|{re.escape(OLD)}|{re.escape(_ASIDE)}"
    r"|.*\.orbax-checkpoint-tmp.*|\.write-test-.*)$")
# What run_log writes in tensorboard/: event files, and a rewrite's temporary file.
_EVENT_OUTPUT = re.compile(r"^(events\.out\.tfevents\..*|\.rewrite-\d+\.tmp)$")
# In the workdir itself, besides those folders: what a run and its writability probe leave.
_ROOT_OUTPUT = re.compile(
    rf"^({re.escape(METRICS_FILE)}(\.tmp)?|{re.escape(SUMMARY)}|{re.escape(LOCK_NAME)}"
    r"|\.write-test-.*)$")


def _git(root: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
  try:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          timeout=120)
  except FileNotFoundError:
    raise errors.CheckpointError("git is not installed: the shipped checkpoints/final is "
                                 "restored from the project's git checkout") from None


def _check_shipped(root: pathlib.Path) -> bool:
  """Whether ``checkpoints/final`` differs from HEAD; CheckpointError if git cannot restore it."""
  top = _git(root, "rev-parse", "--show-toplevel")
  if top.returncode != 0 or pathlib.Path(top.stdout.strip()).resolve() != root.resolve():
    raise errors.CheckpointError(
        f"{errors.shown_path(root)} is not a git checkout of the project, so there is no "
        "shipped checkpoints/final to restore; clone the project again for it")
  final = f"{CHECKPOINTS}/{FINAL}"
  if _git(root, "cat-file", "-e", f"HEAD:{final}").returncode != 0:
    raise errors.CheckpointError(f"git HEAD of {errors.shown_path(root)} has no {final} to "
                                 "restore")
  status = _git(root, "status", "--porcelain", "--untracked-files=all", "--ignored", "--",
                final)
  return bool(status.stdout.strip()) or not (root / final).is_dir()


def training_output(root: pathlib.Path) -> list[pathlib.Path]:
  """The files and folders training added under ``root``; WorkdirError (exit 7) if one of
  the folders it writes holds something else, which removing them would lose."""
  found, foreign = [], []
  checkpoints = root / CHECKPOINTS
  if checkpoints.is_dir():
    tracked = {FINAL, "report"}  # Committed: restored or left alone, never removed.
    for path in sorted(checkpoints.iterdir()):
      if path.name not in tracked:
        (found if _STEP_OUTPUT.match(path.name) else foreign).append(path)
  events = root / TENSORBOARD_DIR
  if events.is_dir():
    foreign += [p for p in sorted(events.iterdir()) if not _EVENT_OUTPUT.match(p.name)]
    found.append(events)
  found += [p for p in sorted(root.iterdir()) if _ROOT_OUTPUT.match(p.name) and p.is_file()]
  if foreign:
    shown = ", ".join(errors.shown_path(p.relative_to(root)) for p in foreign[:3])
    more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
    raise errors.WorkdirError(f"not resetting: {shown}{more} is not training output and would "
                              "be lost; move it elsewhere and run again")
  return found


@contextlib.contextmanager
def _no_live_run(root: pathlib.Path) -> Iterator[None]:
  """Holds the lock training takes on its workdir, so no run starts or lives meanwhile."""
  fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise errors.WorkdirError(f"{errors.shown_path(root)} is in use by a live training run; "
                                "stop it (Ctrl-C) and run again") from None
    yield
  finally:
    os.close(fd)


def _remove(path: pathlib.Path) -> None:
  if path.is_dir() and not path.is_symlink():
    shutil.rmtree(path)
  else:
    path.unlink()


def _restore_final(root: pathlib.Path) -> None:
  final = root / CHECKPOINTS / FINAL
  aside = final.with_name(_ASIDE)
  if os.path.lexists(final):
    os.rename(final, aside)
  result = _git(root, "checkout", "HEAD", "--", f"{CHECKPOINTS}/{FINAL}")
  if result.returncode != 0:
    if os.path.lexists(aside):
      if os.path.lexists(final):
        shutil.rmtree(final)
      os.rename(aside, final)
    raise errors.CheckpointError("git could not restore checkpoints/final: "
                                 + errors.one_line(result.stderr, 300))
  if os.path.lexists(aside):
    _remove(aside)


def reset(root: pathlib.Path, dry_run: bool = False) -> list[str]:
  """Restores the shipped model and removes the training output; returns what it did."""
  root = root.absolute()
  with _no_live_run(root):
    restore = _check_shipped(root)
    found = training_output(root)
    verb = "would remove" if dry_run else "removed"
    done = []
    for path in found:
      shown = errors.shown_path(path.relative_to(root)) + ("/" if path.is_dir() else "")
      if not dry_run:
        _remove(path)
      done.append(f"{verb} {shown}")
    if restore:
      if not dry_run:
        _restore_final(root)
      done.append(f"{'would restore' if dry_run else 'restored'} {CHECKPOINTS}/{FINAL}: the "
                  "shipped model, from git (HEAD)")
    else:
      done.append(f"{CHECKPOINTS}/{FINAL} is already the shipped model")
  return done


def main(argv: Sequence[str] | None = None) -> int:
  parser = errors.ArgumentParser(prog=f"python -m {PROG}",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--root", default=str(PROJECT_ROOT), metavar="DIR",
                      help="the project checkout to reset (default: this one)")
  parser.add_argument("--dry-run", action="store_true", help="only say what would be done")
  try:
    args = parser.parse_args(argv)
    for line in reset(pathlib.Path(args.root), dry_run=args.dry_run):
      print(line)
  except errors.MnistFlaxError as e:
    return errors.report(e, PROG)
  except OSError as e:
    return errors.report(errors.write_failure(e, args.root, "cannot reset"), PROG)
  return 0


if __name__ == "__main__":
  sys.exit(main())
