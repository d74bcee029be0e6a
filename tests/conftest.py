"""Shared fixtures: real MNIST (skipped cleanly where absent), running the commands, and the
generator's photos read by them."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Tests (and the commands they start) use a cache of their own, never the user's ~/.cache,
# removed when the session ends (one is made per run, about 5 MB) unless the caller chose it.
_OWN_CACHE = None if "MNIST_FLAX_CACHE_DIR" in os.environ else tempfile.mkdtemp(
    prefix="mnist_flax_test_cache_")
if _OWN_CACHE:
  os.environ["MNIST_FLAX_CACHE_DIR"] = _OWN_CACHE


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
  if _OWN_CACHE:
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)


def run_module(module: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 600, cwd: pathlib.Path = ROOT) -> subprocess.CompletedProcess:
  """Runs ``python -m module args`` in a fresh process and returns its result (text)."""
  full_env = dict(os.environ)
  full_env.update(env or {})
  return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full_env,
                        capture_output=True, text=True, timeout=timeout)


def draw_samples(folder: pathlib.Path, specs: list[tuple[str, int, int]]
                 ) -> list[tuple[pathlib.Path, str]]:
  """The generator's samples ``specs`` ((kind, index, seed), as samples.kinds.draw takes them)
  written into ``folder``: (path, truth) for each."""
  from mnist_flax.tools.samples import kinds
  out = []
  for kind, index, seed in specs:
    sample = kinds.draw(kind, index, seed)
    path = folder / sample.name(index)
    path.write_bytes(sample.jpeg)
    out.append((path, sample.info["truth"]))
  return out


def read_numbers(folder: pathlib.Path) -> dict[str, str | None]:
  """``infer --json`` over ``folder``: the number read in each file, by file name."""
  run = run_module("mnist_flax.infer", "--json", "--i", str(folder))
  assert run.returncode == 0, run.stderr
  answers = map(json.loads, run.stdout.splitlines())
  return {os.path.basename(a["path"]): a["number"] for a in answers}


@pytest.fixture(scope="session")
def mnist_dir() -> pathlib.Path:
  value = os.environ.get("MNIST_DATA_DIR")
  if not value or not pathlib.Path(value).is_dir():
    pytest.skip("real MNIST not available: set MNIST_DATA_DIR to a folder with the four IDX "
                "files (CI passes ../shared/data/mnist)")
  return pathlib.Path(value)


_MAKE_CHECKPOINT = """
import sys
import jax
import numpy as np
from mnist_flax import checkpoint, config, model
model_config = config.load_config_file(sys.argv[1]).model.to_dict()
net = model.build(model_config)
variables = jax.device_get(net.init(jax.random.key(0), np.zeros((1, 28, 28), np.float32)))
checkpoint.promote_final(sys.argv[2], variables, {"step": 0, "model": model_config})
"""


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
  """configs/test.py's model with random weights, promoted as a final checkpoint (a few
  seconds, no MNIST needed): for tests of exit codes and robustness, not of answers."""
  workdir = tmp_path_factory.getbasetemp() / "random_weights"
  final = workdir / "checkpoints" / "final"
  if not final.is_dir():
    result = subprocess.run([sys.executable, "-c", _MAKE_CHECKPOINT,
                             str(ROOT / "configs" / "test.py"), str(workdir)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
      pytest.fail(f"could not make a random-weight checkpoint:\n{result.stderr[-3000:]}")
  return final
