"""Disk faults and the workdir lock: a save that cannot write exits 7 in seconds, with one line.

The faults are real where CI (root, no mounts) can make them: a file-size limit
(RLIMIT_FSIZE, as ``ulimit -f``) set in the training subprocess, a regular file named
``checkpoints``. Errors only a mount could make (a read-only file system, a full disk, a quota)
are raised by monkeypatching the calls that would meet them, in-process.
"""

from __future__ import annotations

import errno
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, run_module
from mnist_flax import checkpoint, errors, integrity, workdir

ARGS = ["--config=configs/test.py", "--config.num_iterations=30",
        "--config.checkpoint_every=10", "--config.log_every=10"]


# As `ulimit -f` does: the limit is set in the child itself, then main is exec'd (a preexec_fn
# would run Python in a child forked from this multithreaded, JAX-using process).
_LIMITED = """
import os, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
os.execv(sys.executable, [sys.executable, "-m", "mnist_flax.main", *sys.argv[2:]])
"""


def test_disk_file_size_limit_exits_7_in_seconds_and_the_same_command_resumes(tmp_path,
                                                                             mnist_dir):
  env = dict(os.environ, MNIST_DATA_DIR=str(mnist_dir), XLA_FLAGS="")
  command = [sys.executable, "-m", "mnist_flax.main", *ARGS, f"--workdir={tmp_path}"]
  t0 = time.monotonic()
  # 50 KB: the test model's step checkpoint has a data file of about 80 KB.
  limited = subprocess.run([sys.executable, "-c", _LIMITED, str(50 * 1024), *command[3:]],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert limited.returncode == 7, limited.stderr
  assert time.monotonic() - t0 < 60  # Not Orbax's 300 s wait.
  lines = limited.stderr.strip().splitlines()
  assert len(lines) == 1 and "file size limit exceeded" in lines[0], limited.stderr
  assert "checkpoint saved" not in limited.stdout  # Nothing was committed.
  resumed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
  assert resumed.returncode == 0, resumed.stderr
  assert integrity.verify(tmp_path / "checkpoints" / "final")


def test_disk_a_file_named_checkpoints_is_refused_at_start(tmp_path):
  (tmp_path / "checkpoints").write_text("not a folder")
  result = run_module("mnist_flax.main", *ARGS, f"--workdir={tmp_path}", timeout=120)
  assert result.returncode == 7
  assert len(result.stderr.strip().splitlines()) == 1
  assert "checkpoint folder" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("code, words", [(errno.EROFS, "read-only file system"),
                                         (errno.ENOSPC, "disk full"),
                                         (errno.EDQUOT, "disk quota exceeded")])
def test_disk_check_writable_probes_the_checkpoint_folder(tmp_path, monkeypatch, code, words):
  real = workdir.probe

  def probe(folder: pathlib.Path) -> None:
    if folder.name == "checkpoints":  # The workdir itself is fine: only checkpoints/ fails.
      raise OSError(code, os.strerror(code))
    real(folder)

  monkeypatch.setattr(workdir, "probe", probe)
  with pytest.raises(errors.WorkdirError, match=words):
    workdir.check_writable(tmp_path)


def test_disk_probe_renames_a_folder_as_a_promotion_does(tmp_path, monkeypatch):
  def no_rename(src, dst):
    raise OSError(errno.EROFS, "Read-only file system")
  monkeypatch.setattr(workdir.os, "rename", no_rename)
  with pytest.raises(OSError):
    workdir.probe(tmp_path)
  assert list(tmp_path.iterdir()) == []  # The probe cleans up after itself.


def _state() -> dict:
  return {"w": np.arange(2048, dtype=np.float32)}


@pytest.mark.parametrize("where", ["seal", "orbax"])
def test_disk_full_during_a_save_is_one_workdir_error(tmp_path, monkeypatch, where):
  lines: list[str] = []
  saver = checkpoint.StepSaver(tmp_path, log=lines.append)
  saver.save(1, _state(), {"compat": {}})
  saver.finish()
  assert lines == ["checkpoint saved at step 1"]
  if where == "seal":
    def full(folder):
      raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(integrity, "seal", full)
  else:  # TensorStore reports the OS error only in its message.
    def full(*args, **kwargs):
      raise ValueError("OUT_OF_RANGE: Failed writing: [os_error_code='28']")
    monkeypatch.setattr(saver.manager, "save", full)
  with pytest.raises(errors.WorkdirError) as caught:
    saver.save(2, _state(), {"compat": {}})
    saver.finish()
  message = str(caught.value)
  assert "disk full" in message and "the last saved checkpoint (step 1) is kept" in message
  assert lines == ["checkpoint saved at step 1"]  # Step 2 was never said to be saved.
  monkeypatch.undo()
  saver.close()


def test_disk_saved_is_said_only_once_committed_and_sealed(tmp_path):
  lines: list[str] = []
  saver = checkpoint.StepSaver(tmp_path, log=lines.append)
  saver.save(5, _state(), {"compat": {}})
  assert lines == [] or (tmp_path / "checkpoints/5" / integrity.MANIFEST).is_file()
  saver.close()
  assert lines == ["checkpoint saved at step 5"]
  integrity.verify(tmp_path / "checkpoints" / "5")


def test_disk_os_errno_is_found_in_library_messages():
  assert errors.os_errno(ValueError("x [os_error_code='27'] y")) == errno.EFBIG
  assert errors.os_errno(RuntimeError("wrapped")) is None
  try:
    try:
      raise OSError(errno.EDQUOT, "quota")
    except OSError as inner:
      raise RuntimeError("save failed") from inner
  except RuntimeError as outer:
    assert errors.os_errno(outer) == errno.EDQUOT


_HOLD = """
import pathlib, sys, time
from mnist_flax import workdir
with workdir.claim(pathlib.Path(sys.argv[1])):
  print("held", flush=True)
  time.sleep(60)
"""


def test_disk_lock_survives_deleting_the_lock_file(tmp_path):
  holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    (tmp_path / workdir.LOCK_NAME).unlink()  # What a tidy-up script might do.
    with pytest.raises(errors.WorkdirError, match="in use by a live training run"):
      with workdir.claim(tmp_path):
        pass
  finally:
    holder.kill()
    holder.wait()
  with workdir.claim(tmp_path):  # Free once the holder is gone.
    pass
