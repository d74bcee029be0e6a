"""Shared fixtures: real MNIST (skipped cleanly where absent) and running the commands."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Tests (and the commands they start) use a cache of their own, never the user's ~/.cache.
os.environ.setdefault("MNIST_FLAX_CACHE_DIR", tempfile.mkdtemp(prefix="mnist_flax_test_cache_"))


def run_module(module: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 600, cwd: pathlib.Path = ROOT) -> subprocess.CompletedProcess:
  """Runs ``python -m module args`` in a fresh process and returns its result (text)."""
  full_env = dict(os.environ)
  full_env.update(env or {})
  return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full_env,
                        capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def mnist_dir() -> pathlib.Path:
  value = os.environ.get("MNIST_DATA_DIR")
  if not value or not pathlib.Path(value).is_dir():
    pytest.skip("real MNIST not available: set MNIST_DATA_DIR to a folder with the four IDX "
                "files (CI passes ../shared/data/mnist)")
  return pathlib.Path(value)
