"""``python -m mnist_flax.tools.reset``: the shipped model back from git, training output removed.

Each test builds a small git checkout in tmp_path with a committed ``checkpoints/final`` and
``checkpoints/report``, lays down what a training run in the project root leaves, and runs the
command on it with ``--root``; no MNIST, no JAX.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import run_module

SHIPPED = {"checkpoints/final/MANIFEST": "shipped manifest\n",
           "checkpoints/final/variables/d/aaa": "shipped weights\n",
           "checkpoints/report/report.md": "shipped report\n",
           "README.md": "project\n",
           ".gitignore": "/checkpoints/*\n!/checkpoints/final/\n!/checkpoints/report/\n"
                         "/summary.json\n/metrics.jsonl\n/tensorboard/\n/.mnist_flax.lock\n"}
# What a run of the README's train command in the project root leaves behind.
TRAINED = {"checkpoints/1000/state/data": "step", "checkpoints/2000/state/data": "step",
           "checkpoints/3000.damaged/x": "damaged", "checkpoints/.final-old/x": "half swap",
           "metrics.jsonl": "{}\n", "summary.json": "{}\n", ".mnist_flax.lock": "123",
           "tensorboard/events.out.tfevents.1.host.1.0000": "events"}


def _git(root: pathlib.Path, *args: str) -> str:
  return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                        text=True).stdout


def _write(root: pathlib.Path, files: dict[str, str]) -> None:
  for name, text in files.items():
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)


def _tree(root: pathlib.Path) -> dict[str, str]:
  return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
          if p.is_file() and ".git" not in p.relative_to(root).parts}


@pytest.fixture
def trained_checkout(tmp_path: pathlib.Path) -> pathlib.Path:
  """A checkout whose final was replaced by a run's model, with the run's files around it."""
  if shutil.which("git") is None:
    pytest.skip("git not installed")
  root = tmp_path / "project"
  root.mkdir()
  _write(root, SHIPPED)
  _git(root, "init", "-q")
  _git(root, "add", "-A")
  _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "shipped")
  # The run's promotion: other files in final, one of the shipped names rewritten.
  _write(root, {"checkpoints/final/MANIFEST": "the run's manifest\n",
                "checkpoints/final/variables/d/bbb": "the run's weights\n", **TRAINED})
  return root


def test_reset_restores_final_exactly_and_removes_the_training_output(trained_checkout):
  root = trained_checkout
  result = run_module("mnist_flax.tools.reset", "--root", str(root))
  assert result.returncode == 0, result.stderr
  assert _tree(root) == SHIPPED  # Not one file of the run's model is left in final.
  said = result.stdout.splitlines()
  for name in ("checkpoints/1000/", "checkpoints/2000/", "checkpoints/3000.damaged/",
               "checkpoints/.final-old/", "metrics.jsonl", "summary.json", ".mnist_flax.lock",
               "tensorboard/"):
    assert f"removed {name}" in said, name
  assert said[-1].startswith("restored checkpoints/final: the shipped model, from git")
  assert _git(root, "status", "--porcelain", "--untracked-files=all") == ""
  again = run_module("mnist_flax.tools.reset", "--root", str(root))
  assert again.returncode == 0 and again.stdout == "checkpoints/final is already the shipped model\n"


def test_dry_run_says_and_touches_nothing(trained_checkout):
  before = _tree(trained_checkout)
  result = run_module("mnist_flax.tools.reset", "--root", str(trained_checkout), "--dry-run")
  assert result.returncode == 0, result.stderr
  assert "would remove checkpoints/1000/" in result.stdout
  assert "would restore checkpoints/final" in result.stdout
  assert _tree(trained_checkout) == before


@pytest.mark.parametrize("stranger", ["checkpoints/my_notes.txt", "tensorboard/plot.png"])
def test_refuses_when_something_not_from_training_would_be_lost(trained_checkout, stranger):
  _write(trained_checkout, {stranger: "mine"})
  before = _tree(trained_checkout)
  result = run_module("mnist_flax.tools.reset", "--root", str(trained_checkout))
  assert result.returncode == 7
  assert result.stderr.count("\n") == 1 and stranger in result.stderr
  assert "is not training output and would be lost" in result.stderr
  assert _tree(trained_checkout) == before


def test_refuses_while_a_run_holds_the_workdir(trained_checkout):
  before = _tree(trained_checkout)
  fd = os.open(trained_checkout, os.O_RDONLY)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # As a live training run holds it.
    result = run_module("mnist_flax.tools.reset", "--root", str(trained_checkout))
  finally:
    os.close(fd)
  assert result.returncode == 7 and "live training run" in result.stderr
  assert _tree(trained_checkout) == before


def test_refuses_outside_a_git_checkout(tmp_path):
  _write(tmp_path, {**SHIPPED, **TRAINED})
  before = _tree(tmp_path)
  result = run_module("mnist_flax.tools.reset", "--root", str(tmp_path))
  assert result.returncode == 3
  assert "not a git checkout" in result.stderr and "Traceback" not in result.stderr
  assert _tree(tmp_path) == before
