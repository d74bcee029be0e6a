"""What every section of ``python -m mnist_flax.tools.benchmark`` shares: the plan, timed child
processes, statistics of repeated figures, the machine description and the constants.

    from mnist_flax.tools.bench_common import run_process, stats
    result = run_process([sys.executable, "-m", "mnist_flax.infer", "--i", "test/3.jpg"],
                         timeout=600)
    stats([1.0, 1.2, 0.9])   # {"median": 1.0, "min": 0.9, "max": 1.2, "n": 3, "samples": [...]}

Peak memory of a child process: ``getrusage(RUSAGE_CHILDREN)`` is a maximum over every child
ever waited for, and even ``wait4`` on one child is wrong when the child was started from a
big process (Python starts children with vfork, and Linux folds the parent's high-water mark
into the child's at ``exec``: a ``python -c pass`` started from this benchmark reads as large as
the benchmark itself). So every timed child is started through a tiny ``python -S`` wrapper,
which forks, ``exec``s the command and reads the child's own ``ru_maxrss`` from ``wait4``; the
wrapper also times fork-to-exit, which is the whole-process wall time reported.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import pathlib
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Callable, Iterable, Sequence

from mnist_flax import errors
from mnist_flax.constants import PROJECT_ROOT

PROG = "mnist_flax.tools.benchmark"
DEFAULT_CONFIG = "configs/default.py"
SPEEDRUN_CONFIG = "configs/speedrun.py"
STAND_IN_CONFIG = "configs/test.py"
SHIPPED_CHECKPOINT = PROJECT_ROOT / "checkpoints" / "final"
NO_MNIST = ("MNIST not available: pass --data-dir or set MNIST_DATA_DIR to a folder with the "
            "four IDX files")

# Started as `python -S -c _WRAPPER RESULT_FILE ARGV...`: forks, execs ARGV, and writes the
# child's own wall time and peak RSS (see the module docstring for why a wrapper is needed).
# -S keeps the wrapper itself a few MB, which is the floor any measurement can show.
_WRAPPER = """
import json, os, sys, time
result, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
  try:
    os.execvp(argv[0], argv)
  finally:
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
# Linux reports ru_maxrss in KiB, macOS in bytes.
kib = usage.ru_maxrss / 1024 if sys.platform == "darwin" else usage.ru_maxrss
with open(result, "w") as f:
  json.dump({"wall_seconds": wall, "peak_rss_kib": kib}, f)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


class Skipped(Exception):
  """A section that cannot run here (no MNIST, no peer, ...): reported with the reason."""


@dataclasses.dataclass(frozen=True)
class Plan:
  """How much to measure: the full benchmark, or the seconds-long ``--quick`` smoke run."""

  quick: bool
  repeats: int           # timed repeats of the in-process figures
  seeds: int             # speedrun (and peer) processes, and infer_dir processes
  steps: int             # train steps per timed repeat
  predict_calls: int     # batch-1 predict calls timed
  cold_runs: int         # cold infer processes
  image_count: int       # images in the infer_dir folder
  eval_images: int | None  # test images for eval (None: the whole split)
  speedrun_overrides: tuple[str, ...]

  @classmethod
  def make(cls, quick: bool, repeats: int | None, steps: int | None,
           count: int | None) -> "Plan":
    if quick:
      # Tiny everything: this checks that every section works, not how fast it is.
      tiny_run = ("--config.num_iterations=6", "--config.checkpoint_every=6",
                  "--config.log_every=3")
      return cls(True, repeats or 2, repeats or 1, steps or 3, 20, repeats or 1, count or 20,
                 2000, tiny_run)
    return cls(False, repeats or 3, repeats or 3, steps or 50, 300, 5, count or 1000, None, ())


@dataclasses.dataclass
class ProcessResult:
  argv: list[str]
  returncode: int
  wall_seconds: float
  peak_rss_mb: float | None
  stdout: str
  stderr: str

  def tail(self, lines: int = 3) -> str:
    """The last lines of stderr (else stdout) on one line, for an error message."""
    text = (self.stderr.strip() or self.stdout.strip()).splitlines()[-lines:]
    return " | ".join(line.strip() for line in text)[-600:]


def log(message: str) -> None:
  """Progress on stderr, so stdout stays one JSON object (or the table)."""
  print(f"[{PROG}] {message}", file=sys.stderr, flush=True)


def stats(samples: Iterable[float], digits: int = 6) -> dict[str, Any]:
  """Median, min, max, count and every sample of a measured figure."""
  values = [float(v) for v in samples]
  if not values:
    return {"median": None, "min": None, "max": None, "n": 0, "samples": []}
  r = lambda v: round(v, digits)
  return {"median": r(statistics.median(values)), "min": r(min(values)), "max": r(max(values)),
          "n": len(values), "samples": [r(v) for v in values]}


def median_of(entry: dict[str, Any] | None) -> float | None:
  return None if not entry else entry.get("median")


def ratio(a: float | None, b: float | None) -> float | None:
  if a is None or b is None or b == 0:
    return None
  return round(a / b, 4)

def run_process(argv: Sequence[str], *, timeout: float, cwd: pathlib.Path = PROJECT_ROOT,
                env: dict[str, str] | None = None) -> ProcessResult:
  """Runs ``argv`` to completion through the measuring wrapper; never raises for exit codes."""
  with tempfile.TemporaryDirectory(prefix="mnist_flax_bench_run_") as tmp:
    result_file = pathlib.Path(tmp) / "result.json"
    out_path, err_path = pathlib.Path(tmp) / "stdout", pathlib.Path(tmp) / "stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
      # Files, not pipes: a chatty child can never block on a full pipe while we wait.
      # Its own session, so a timeout kills the wrapper and the command together.
      process = subprocess.Popen(
          [sys.executable, "-S", "-c", _WRAPPER, str(result_file), *argv], cwd=cwd,
          env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
      try:
        process.wait(timeout=timeout)
      except BaseException:  # Timeout or Ctrl-C: leave nothing running behind us.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    measured = json.loads(result_file.read_text()) if result_file.exists() else {}
    return ProcessResult(
        list(argv), process.returncode, float(measured.get("wall_seconds", math.nan)),
        round(measured["peak_rss_kib"] / 1024, 1) if "peak_rss_kib" in measured else None,
        out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))


def last_json_line(text: str) -> dict[str, Any] | None:
  """The last stdout line that is a JSON object (the peer prints one)."""
  for line in reversed(text.strip().splitlines()):
    line = line.strip()
    if line.startswith("{"):
      try:
        value = json.loads(line)
      except json.JSONDecodeError:
        continue
      if isinstance(value, dict):
        return value
  return None


def _read_proc(path: str) -> str:
  try:
    return pathlib.Path(path).read_text()
  except OSError:
    return ""


def machine_info() -> dict[str, Any]:
  """What the figures were measured on. Imports the libraries only to read their versions."""
  cpuinfo = _read_proc("/proc/cpuinfo")
  model_name = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                     if line.startswith("model name")), platform.processor() or None)
  flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                if line.startswith("flags")), [])
  meminfo = {}
  for line in _read_proc("/proc/meminfo").splitlines():
    key, _, value = line.partition(":")
    if key in ("MemTotal", "MemAvailable"):
      meminfo[key] = round(int(value.split()[0]) / 1024 ** 2, 2)  # kB -> GiB
  try:
    usable = len(os.sched_getaffinity(0))
  except (AttributeError, OSError):
    usable = None
  versions: dict[str, str | None] = {"python": platform.python_version()}
  for name in ("jax", "jaxlib", "flax", "optax", "numpy", "orbax.checkpoint"):
    try:
      module = __import__(name, fromlist=["__version__"])
      versions[name] = getattr(module, "__version__", None)
    except Exception:
      versions[name] = None
  info: dict[str, Any] = {
      "cpu_model": model_name, "cpu_count": os.cpu_count(), "cpus_usable": usable,
      "simd": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags],
      "memory_total_gib": meminfo.get("MemTotal"),
      "memory_available_gib": meminfo.get("MemAvailable"),
      "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
      "platform": platform.platform(), "python_executable": sys.executable,
      "versions": versions, "xla_flags": os.environ.get("XLA_FLAGS"),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }
  try:
    import jax
    info["jax_devices"] = [str(d) for d in jax.devices()]
  except Exception as e:
    info["jax_devices"] = f"error: {type(e).__name__}: {e}"
  return info


def config_label(path: str) -> str:
  return pathlib.Path(path).stem


def resolve_config(path: str) -> pathlib.Path:
  """A config path as given (from the current folder), else from the project root."""
  given = pathlib.Path(path)
  return given if given.is_file() else PROJECT_ROOT / given




def guarded(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
  """One config's entry of a section: its figures, or the error that stopped it."""
  try:
    return {"status": "ok", **fn()}
  except Skipped:
    raise
  except Exception as e:
    return {"status": "error", "error": f"{type(e).__name__}: {errors.one_line(e)}"}


def all_or_error(out: dict[str, Any]) -> dict[str, Any]:
  """A section of several configs is an error only if none of them worked."""
  entries = out["configs"].values()
  if entries and all(e["status"] == "error" for e in entries):
    out["status"] = "error"
    out["error"] = "; ".join(f"{k}: {v['error']}" for k, v in out["configs"].items())
  return out
