"""One-line messages, the exit-code table (README agrees), and the wrapper every command uses."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import threading

import pytest

from conftest import ROOT
from mnist_flax import errors


def test_integrity_of_shown_paths_two_different_names_never_print_alike():
  names = [os.fsdecode(b"a\xffb.png"), "a\\xffb.png", "a\\\\xffb.png", "a\nb.png", "a\\nb.png",
           "plain.png", os.fsdecode(b"\xfe\xff"), "\\xfe\\xff"]
  shown = [errors.shown_path(n) for n in names]
  assert len(set(shown)) == len(names), shown
  assert all(s.isprintable() for s in shown)
  assert errors.shown_path("plain.png") == "plain.png"
  assert errors.shown_path(os.fsdecode(b"a\xffb.png")) == "a\\xffb.png"


def test_readme_exit_code_table_is_the_one_in_errors():
  readme = (ROOT / "README.md").read_text()
  start = readme.index("\n## Exit codes\n")
  section = readme[start:readme.index("\n## ", start + 1)]
  rows = [line for line in section.splitlines() if line.startswith("|")]
  assert "\n".join(rows) == errors.exit_code_table()  # Exactly, row by row, and nothing else.
  assert len(rows) == len(errors.EXIT_CODES) + 2


def test_every_error_class_has_its_row_and_codes_are_unique():
  codes = [row.code for row in errors.EXIT_CODES]
  assert len(codes) == len(set(codes)) and codes == sorted(codes)
  by_name = {row.name: row.code for row in errors.EXIT_CODES}
  classes = [c for c in vars(errors).values()
             if isinstance(c, type) and issubclass(c, errors.MnistFlaxError)
             and c not in (errors.MnistFlaxError, errors.Interrupted)]
  assert len(classes) == 9
  for cls in classes:
    assert by_name[cls.__name__] == cls.exit_code, cls
  assert errors.Interrupted("x").exit_code == by_name["Interrupted (SIGINT)"] == 130
  assert by_name["Interrupted (SIGTERM)"] == 128 + signal.SIGTERM
  assert errors.INTERNAL == by_name["internal error"] == 70


def test_one_line_joins_lines_keeps_spaces_and_cuts():
  assert errors.one_line("a\n  b\r\n\nc  d") == "a b c  d"
  assert errors.one_line(ValueError("x\ny"), limit=2) == "x "


def _run(body, known=None):
  return errors.run_command("prog", body, known)


@pytest.fixture
def keep_hooks(monkeypatch):
  """run_command silences thread tracebacks process-wide: give pytest its hooks back."""
  monkeypatch.setattr(threading, "excepthook", threading.excepthook)
  monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)


def _raise(error: BaseException):
  def body(*args: object) -> int:
    raise error
  return body


@pytest.mark.usefixtures("keep_hooks")
def test_run_command_says_each_failure_in_one_line_with_its_code(capsys, monkeypatch):
  monkeypatch.delenv(errors.TRACEBACK_ENV, raising=False)
  assert _run(lambda: 0) == 0
  assert _run(_raise(errors.DataError("no\nMNIST"))) == 6
  assert capsys.readouterr().err == "prog: error: no MNIST\n"
  assert _run(_raise(RuntimeError("boom\nat line 2"))) == 70
  err = capsys.readouterr().err
  assert err.startswith("prog: error: internal error (RuntimeError: boom at line 2); rerun with "
                        "MNIST_FLAX_TRACEBACK=1") and err.count("\n") == 1
  assert _run(_raise(KeyboardInterrupt())) == 130 and capsys.readouterr().err == ""
  known = lambda e: errors.WorkdirError("full") if isinstance(e, OSError) else None
  assert _run(_raise(OSError(28, "No space")), known) == 7
  assert _run(_raise(ValueError("v")), known) == 70
  monkeypatch.setenv(errors.TRACEBACK_ENV, "1")
  with pytest.raises(RuntimeError):
    _run(_raise(RuntimeError("shown")))


@pytest.mark.usefixtures("keep_hooks")
@pytest.mark.parametrize("module, argv", [
    ("main", ["mnist_flax.main", "--config=configs/test.py"]), ("infer", ["--i", "x.png"]),
    ("evaluate", []), ("calibrate", []), ("gate", []), ("serve", []),
])
def test_every_command_has_the_same_internal_error_path(module, argv, capsys, monkeypatch):
  command = importlib.import_module(f"mnist_flax.{module}")
  monkeypatch.delenv(errors.TRACEBACK_ENV, raising=False)
  monkeypatch.setattr(command, "run", _raise(RuntimeError("unexpected\nthing")))
  assert command.main(argv) == 70
  err = capsys.readouterr().err
  assert err.startswith(f"mnist_flax.{module}: error: internal error (RuntimeError: unexpected "
                        "thing); rerun with MNIST_FLAX_TRACEBACK=1"), err
  assert err.count("\n") == 1 and "Traceback" not in err



@pytest.mark.usefixtures("keep_hooks")
@pytest.mark.parametrize("module, argv", [
    ("infer", ["--bogus"]), ("evaluate", ["--bogus"]), ("calibrate", ["--bogus"]),
    ("gate", ["--bogus"]), ("serve", ["--bogus"]), ("tools.reset", ["--bogus"]), ("tools.benchmark", ["--bogus"]),
    ("tools.samples", ["never_written", "--bogus"]),
])
def test_every_command_says_a_bad_flag_in_one_line_exit_2(module, argv, capsys):
  # argparse's own error prints the usage block first: several lines for one mistake.
  command = importlib.import_module(f"mnist_flax.{module}")
  assert command.main(argv) == 2
  captured = capsys.readouterr()
  assert captured.err.count("\n") == 1 and "usage:" not in captured.err, captured.err
  assert "error: unrecognized arguments: --bogus (see --help)" in captured.err
  assert captured.out == ""

def test_evaluate_into_a_closed_pipe_exits_141_quietly(random_checkpoint, mnist_dir):
  # `evaluate | head -1`: the reader gone before the answer; this printed a traceback.
  proc = subprocess.Popen([sys.executable, "-m", "mnist_flax.evaluate", "--checkpoint",
                           str(random_checkpoint), "--data_dir", str(mnist_dir)], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  proc.stdout.close()
  err = proc.stderr.read().decode()
  assert proc.wait(timeout=300) == 141, err
  assert err == ""
