"""How fast mnist_flax trains and reads digits on this machine: ``python -m mnist_flax.benchmark``.

    python -m mnist_flax.benchmark                       # JSON on stdout (one object)
    python -m mnist_flax.benchmark --table               # a readable table instead
    python -m mnist_flax.benchmark --table --out b.json  # the table, and the JSON in a file
    python -m mnist_flax.benchmark --quick               # seconds-long smoke run (CI)
    python -m mnist_flax.benchmark --peer /work/torchvenv/bin/python   # side by side with PyTorch

Sections (``--skip a,b`` leaves some out, ``--only a,b`` runs just those):

=============  ================================================================================
machine        CPU model, cores (all and usable), memory, Python and library versions, XLA_FLAGS
train          in-process, per config (``--config``, default configs/default.py, and
               configs/speedrun.py): the first step (compile) timed alone, then ``--steps``
               steps with one ``block_until_ready`` at the end, ``--repeats`` times: images/s
eval           ``train.evaluate`` over the test split, per config: images/s
predict        ``model.predict``: latency at batch 1 (many calls after warm-up) and images/s
               at batch 1024 (shipped checkpoint, else the ``--config`` model freshly initialised)
infer_cold     ``python -m mnist_flax.infer --i test/3.jpg`` in fresh processes, 5 runs: wall
               seconds and peak memory
infer_dir      ``infer`` over a folder of 1,000 images drawn by ``mnist_flax.samples``, one
               process: images/s end to end, and the preprocessing time per image alone
read           photos, numbers, printed digits, non-digits and plain drawings, one folder each,
               one ``infer`` process each: accuracy (or the share said unsure) and images/s
               (``bench_read``)
serve          ``python -m mnist_flax.serve`` over loopback: latency of one image, images/s
               with 8 clients, next to infer's cost for the same files (``bench_serve``)
speedrun       ``python -m mnist_flax.main --config=configs/speedrun.py`` per seed: whole-process
               wall time, test accuracy, train seconds, images/s, peak memory
peer           with ``--peer PYTHON``: the PyTorch peer (``../shared/bench/torch_fast_mnist.py``)
               run interleaved with the speedrun seeds, and the jax/peer ratios
memory         peak resident memory of training and inference (from the runs above)
=============  ================================================================================

Every figure measured more than once is reported as ``{"median", "min", "max", "n",
"samples"}``. The infer commands use the shipped ``checkpoints/final``; without one, a tiny
stand-in is trained with configs/test.py first (the JSON says so). MNIST comes from
``--data-dir`` or ``$MNIST_DATA_DIR``; without it the sections that need it are reported as
skipped, with the reason. A section that fails records ``"status": "error"`` and the error,
and the others still run; the exit code is 0 unless no section could run (1), or 2 for a bad
command line. The machine may be shared: compare ratios of interleaved runs, not absolute
figures between runs.

Peak memory of a child process: ``getrusage(RUSAGE_CHILDREN)`` is a maximum over every child
ever waited for, and even ``wait4`` on one child is wrong when the child was started from a
big process (Python starts children with vfork, and Linux folds the parent's high-water mark
into the child's at ``exec``: a ``python -c pass`` started from this benchmark reads as large as
the benchmark itself). So every timed child is started through a tiny ``python -S`` wrapper,
which forks, ``exec``s the command and reads the child's own ``ru_maxrss`` from ``wait4``; the
wrapper also times fork-to-exit, which is the whole-process wall time reported.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import math
import os
import pathlib
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Callable, Iterable, Sequence

from mnist_flax import bench_read, bench_serve

PROG = "mnist_flax.benchmark"
SCHEMA = "mnist_flax/benchmark/v1"
PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = "configs/default.py"
SPEEDRUN_CONFIG = "configs/speedrun.py"
STAND_IN_CONFIG = "configs/test.py"
DEFAULT_PEER_SCRIPT = PROJECT_ROOT.parent / "shared" / "bench" / "torch_fast_mnist.py"
SHIPPED_CHECKPOINT = PROJECT_ROOT / "checkpoints" / "final"
SECTIONS = ("train", "eval", "predict", "infer_cold", "infer_dir", "read", "serve", "speedrun", "peer",
            "memory")
COLD_IMAGE = "test/3.jpg"
QUICK_STAND_IN_STEPS = 6
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


def _median(entry: dict[str, Any] | None) -> float | None:
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


def _last_json_line(text: str) -> dict[str, Any] | None:
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


def _config_label(path: str) -> str:
  return pathlib.Path(path).stem


def _resolve_config(path: str) -> pathlib.Path:
  """A config path as given (from the current folder), else from the project root."""
  given = pathlib.Path(path)
  return given if given.is_file() else PROJECT_ROOT / given


@dataclasses.dataclass
class _Setup:
  """A config's train state and device data, built as ``train._run`` builds them."""

  config: Any
  mesh: Any
  shard: Any
  train_images: Any
  train_labels: Any
  test_images: Any
  test_labels: Any
  state: Any
  data_key: Any
  step_key: Any
  step_kwargs: dict[str, Any]
  step: int = 0


class Benchmark:
  """Runs the sections in order and collects one JSON-able dict."""

  def __init__(self, args: argparse.Namespace, plan: Plan) -> None:
    self.args = args
    self.plan = plan
    self.data_dir: pathlib.Path | None = None
    value = args.data_dir or os.environ.get("MNIST_DATA_DIR")
    if value and pathlib.Path(value).expanduser().is_dir():
      self.data_dir = pathlib.Path(value).expanduser().absolute()
    self.data_note = None if self.data_dir else (
        f"{value} is not a folder" if value else "no --data-dir and no MNIST_DATA_DIR")
    self.configs = list(dict.fromkeys([args.config, SPEEDRUN_CONFIG]))
    self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="mnist_flax_bench_"))
    self._mnist: Any = None
    self._setups: dict[str, _Setup] = {}
    self._checkpoint: tuple[list[str], dict[str, Any]] | Exception | None = None
    self.results: dict[str, Any] = {}

  # ----------------------------------------------------------------- plumbing

  def close(self) -> None:
    shutil.rmtree(self.tmp, ignore_errors=True)

  def need_mnist(self) -> pathlib.Path:
    if self.data_dir is None:
      raise Skipped(f"{NO_MNIST} ({self.data_note})")
    return self.data_dir

  def run_section(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Runs one section; whatever happens, records an entry and returns it."""
    if name in self.args.skip:
      entry: dict[str, Any] = {"status": "skipped", "reason": "--skip"}
    else:
      log(f"{name} ...")
      start = time.perf_counter()
      try:
        entry = {"status": "ok", **fn()}
      except Skipped as e:
        entry = {"status": "skipped", "reason": str(e)}
      except Exception as e:  # One broken section must not cost the others their figures.
        entry = {"status": "error", "error": f"{type(e).__name__}: {' '.join(str(e).split())}",
                 "traceback": traceback.format_exc(limit=4).strip().splitlines()[-6:]}
      entry["section_seconds"] = round(time.perf_counter() - start, 3)
      log(f"{name}: {entry['status']} in {entry['section_seconds']:.1f} s"
          + (f" ({entry.get('reason') or entry.get('error')})" if entry["status"] != "ok" else ""))
    self.results[name] = entry
    return entry

  def python_module(self, module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]

  # ----------------------------------------------------------------- in-process: train, eval

  def mnist(self) -> Any:
    if self._mnist is None:
      from mnist_flax import data
      self._mnist = data.load(self.need_mnist())
    return self._mnist

  def setup(self, config_path: str) -> _Setup:
    """State and data for a config, exactly as ``train._run`` makes them (cached)."""
    if config_path in self._setups:
      return self._setups[config_path]
    self.need_mnist()
    import jax
    from mnist_flax import config as config_lib, distributed, train
    config = config_lib.validate(config_lib.load_config_file(_resolve_config(config_path)))
    mesh = distributed.make_mesh()
    replicated = distributed.replicated(mesh)
    mnist = self.mnist()
    eval_n = self.plan.eval_images or mnist.test_images.shape[0]
    root = jax.random.key(config.seed)
    init = jax.jit(lambda rng: train.create_train_state(rng, config), out_shardings=replicated)
    setup = _Setup(
        config=config, mesh=mesh, shard=distributed.batch_sharding(mesh),
        train_images=distributed.replicate(mnist.train_images, mesh),
        train_labels=distributed.replicate(mnist.train_labels, mesh),
        test_images=distributed.replicate(mnist.test_images[:eval_n], mesh),
        test_labels=distributed.replicate(mnist.test_labels[:eval_n], mesh),
        state=init(jax.random.fold_in(root, train._INIT)),
        data_key=jax.random.fold_in(root, train._DATA),
        step_key=jax.random.fold_in(root, train._STEP),
        step_kwargs=train.step_options(config))
    self._setups[config_path] = setup
    return setup

  def _train_steps(self, s: _Setup, n: int) -> Any:
    """Runs ``n`` steps as train.py's loop does, with a single block at the end.

    Per-epoch permutation and on-device batches as in ``train._run``; nothing syncs between
    steps, so dispatch overlaps computation exactly as in a real run.
    """
    import jax
    from mnist_flax import train
    bs = s.config.batch_size
    num_train = s.train_images.shape[0]
    steps_per_epoch = num_train // bs
    order, order_epoch, metrics = None, -1, None
    for _ in range(n):
      epoch, within = divmod(s.step, steps_per_epoch)
      if epoch != order_epoch:
        order, order_epoch = train.epoch_permutation(s.data_key, num_train, epoch), epoch
      batch = train.draw_batch(s.train_images, s.train_labels, order, within * bs,
                               batch_size=bs, sharding=s.shard)
      s.state, metrics = train.train_step(s.state, batch, jax.random.fold_in(s.step_key, s.step),
                                          **s.step_kwargs)
      s.step += 1
    jax.block_until_ready((s.state, metrics))
    return metrics

  def train_section(self) -> dict[str, Any]:
    self.need_mnist()
    out: dict[str, Any] = {"steps_per_repeat": self.plan.steps, "repeats": self.plan.repeats,
                           "configs": {}}
    for path in self.configs:
      out["configs"][_config_label(path)] = self._guarded(lambda: self._train_one(path))
    return self._all_or_error(out)

  def _train_one(self, path: str) -> dict[str, Any]:
    s = self.setup(path)
    bs = s.config.batch_size
    start = time.perf_counter()
    self._train_steps(s, 1)  # Traces and compiles train_step, draw_batch, epoch_permutation.
    first = time.perf_counter() - start
    rates = []
    for _ in range(self.plan.repeats):
      start = time.perf_counter()
      metrics = self._train_steps(s, self.plan.steps)
      rates.append(self.plan.steps * bs / (time.perf_counter() - start))
    rate = stats(rates, 1)
    return {
        "config": path, "batch_size": bs, "model": s.config.model.to_dict(),
        "num_devices": s.mesh.size, "first_step_seconds": round(first, 4),
        # The first step minus one steady step: tracing and XLA compilation.
        "compile_seconds": round(max(first - bs / rate["median"], 0.0), 4),
        "images_per_second": rate,
        "step_ms": round(1000 * bs / rate["median"], 3),
        "final_loss": round(float(metrics["loss"]), 4),
    }

  def eval_section(self) -> dict[str, Any]:
    self.need_mnist()
    out: dict[str, Any] = {"repeats": self.plan.repeats, "configs": {}}
    for path in self.configs:
      out["configs"][_config_label(path)] = self._guarded(lambda: self._eval_one(path))
    return self._all_or_error(out)

  def _eval_one(self, path: str) -> dict[str, Any]:
    from mnist_flax import train
    s = self.setup(path)
    n = s.test_images.shape[0]
    run = lambda: train.evaluate(s.state, s.test_images, s.test_labels,
                                 s.config.eval_batch_size, s.shard)
    start = time.perf_counter()
    run()  # Compiles eval_step and draw_batch at the eval batch size; device_get syncs.
    first = time.perf_counter() - start
    rates = []
    for _ in range(self.plan.repeats):
      start = time.perf_counter()
      run()
      rates.append(n / (time.perf_counter() - start))
    return {"config": path, "images": n, "eval_batch_size": s.config.eval_batch_size,
            "first_call_seconds": round(first, 4), "images_per_second": stats(rates, 1)}

  @staticmethod
  def _guarded(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
      return {"status": "ok", **fn()}
    except Skipped:
      raise
    except Exception as e:
      return {"status": "error", "error": f"{type(e).__name__}: {' '.join(str(e).split())}"}

  @staticmethod
  def _all_or_error(out: dict[str, Any]) -> dict[str, Any]:
    """A section of several configs is an error only if none of them worked."""
    entries = out["configs"].values()
    if entries and all(e["status"] == "error" for e in entries):
      out["status"] = "error"
      out["error"] = "; ".join(f"{k}: {v['error']}" for k, v in out["configs"].items())
    return out

  def release(self) -> None:
    """Frees the in-process states and data before the subprocess sections."""
    self._setups.clear()
    self._mnist = None
    gc.collect()

  # ----------------------------------------------------------------- in-process: predict

  def predict_section(self) -> dict[str, Any]:
    import jax
    import numpy as np
    from mnist_flax import config as config_lib, model, predictor
    if SHIPPED_CHECKPOINT.is_dir():
      model_config, variables, _ = predictor.load_final(SHIPPED_CHECKPOINT)
      source = f"shipped checkpoint {SHIPPED_CHECKPOINT}"
    else:
      # Latency depends on the architecture, not the weights: fresh weights measure the same.
      config = config_lib.load_config_file(_resolve_config(self.args.config))
      model_config = config.model.to_dict()
      variables = model.build(model_config).init(jax.random.key(0), np.zeros((1, 28, 28),
                                                                             np.float32))
      source = f"no shipped checkpoint: {self.args.config} model, freshly initialised"
    net = model.build(model_config)
    variables = jax.device_put(variables)
    rng = np.random.default_rng(0)
    one = rng.random((1, 28, 28), dtype=np.float32)
    many = rng.random((1024, 28, 28), dtype=np.float32)
    # As infer calls it: a host array in, a host array out (transfers included).
    call = lambda x: np.asarray(model.predict(net, variables, x))
    for _ in range(10):
      call(one)
    latencies = []
    for _ in range(self.plan.predict_calls):
      start = time.perf_counter()
      call(one)
      latencies.append(1000 * (time.perf_counter() - start))
    call(many)
    rates = []
    for _ in range(self.plan.repeats):
      start = time.perf_counter()
      call(many)
      rates.append(1024 / (time.perf_counter() - start))
    return {"model_source": source, "model": model_config,
            "parameters": int(sum(np.size(x) for x in jax.tree.leaves(variables))),
            "warmup_calls": 10, "latency_ms_batch1": stats(latencies, 4),
            "images_per_second_batch1024": stats(rates, 1)}

  # ----------------------------------------------------------------- subprocesses: infer

  def checkpoint_args(self) -> tuple[list[str], dict[str, Any]]:
    """``--checkpoint`` arguments for infer and a note on the model used (trained once)."""
    if isinstance(self._checkpoint, Exception):
      raise self._checkpoint
    if self._checkpoint is None:
      try:
        self._checkpoint = self._find_or_train_checkpoint()
      except Exception as e:
        self._checkpoint = e
        raise
    return self._checkpoint

  def _find_or_train_checkpoint(self) -> tuple[list[str], dict[str, Any]]:
    if SHIPPED_CHECKPOINT.is_dir():
      return [], {"checkpoint": str(SHIPPED_CHECKPOINT), "stand_in": False}
    if self.data_dir is None:
      raise Skipped(f"no shipped checkpoints/final, and {NO_MNIST} to train a stand-in "
                    f"({self.data_note})")
    workdir = self.tmp / "stand_in"
    log(f"no shipped checkpoints/final: training a stand-in with {STAND_IN_CONFIG}")
    if self.plan.quick:
      return self._quick_stand_in(workdir)
    result = run_process(self.python_module(
        "mnist_flax.main", f"--config={STAND_IN_CONFIG}", f"--workdir={workdir}",
        f"--config.data.dir={self.data_dir}"), timeout=1800)
    if result.returncode != 0:
      raise RuntimeError(f"training the stand-in checkpoint failed (exit {result.returncode}): "
                         f"{result.tail()}")
    summary = json.loads((workdir / "summary.json").read_text())
    final = workdir / "checkpoints" / "final"
    return ["--checkpoint", str(final)], {
        "checkpoint": str(final), "stand_in": True,
        "note": f"no shipped checkpoints/final: trained a stand-in with {STAND_IN_CONFIG}",
        "stand_in_config": STAND_IN_CONFIG,
        "stand_in_test_accuracy": summary.get("test_accuracy"),
        "stand_in_wall_seconds": round(result.wall_seconds, 3)}

  def _quick_stand_in(self, workdir: pathlib.Path) -> tuple[list[str], dict[str, Any]]:
    """``--quick``: a few configs/test.py steps in this process, promoted as train.py does.

    A ``main`` subprocess would cost more than all the other quick sections together.
    """
    import jax
    from mnist_flax import checkpoint, train
    start = time.perf_counter()
    s = self.setup(STAND_IN_CONFIG)
    self._train_steps(s, QUICK_STAND_IN_STEPS)
    accuracy = train.evaluate(s.state, s.test_images, s.test_labels, s.config.eval_batch_size,
                              s.shard)["test_accuracy"]
    final = checkpoint.promote_final(
        workdir, jax.device_get(train.variables_of(s.state)),
        {"model": s.config.model.to_dict(), "step": s.step, "test_accuracy": accuracy})
    del self._setups[STAND_IN_CONFIG]
    return ["--checkpoint", str(final)], {
        "checkpoint": str(final), "stand_in": True,
        "note": f"no shipped checkpoints/final: trained a stand-in with {STAND_IN_CONFIG} "
                f"(quick: {QUICK_STAND_IN_STEPS} steps in the benchmark's own process)",
        "stand_in_config": STAND_IN_CONFIG, "stand_in_steps": QUICK_STAND_IN_STEPS,
        "stand_in_test_accuracy": round(accuracy, 4),
        "stand_in_wall_seconds": round(time.perf_counter() - start, 3)}

  def infer_cold_section(self) -> dict[str, Any]:
    ckpt_args, note = self.checkpoint_args()
    argv = self.python_module("mnist_flax.infer", "--i", COLD_IMAGE, *ckpt_args)
    runs = []
    for _ in range(self.plan.cold_runs):
      result = run_process(argv, timeout=600)
      if result.returncode != 0:
        raise RuntimeError(f"infer exited {result.returncode}: {result.tail()}")
      runs.append(result)
    return {"command": "python -m " + " ".join(argv[2:]), "runs": len(runs), **note,
            "answer": runs[0].stdout.strip(),
            "wall_seconds": stats(r.wall_seconds for r in runs),
            "peak_rss_mb": stats((r.peak_rss_mb for r in runs if r.peak_rss_mb is not None), 1)}

  def sample_dir(self) -> pathlib.Path:
    """The generated images, drawn once and kept for later benchmarks (same seed, same files)."""
    root = pathlib.Path(self.args.cache_dir) if self.args.cache_dir else (
        pathlib.Path(tempfile.gettempdir()) / "mnist_flax_bench_cache")
    folder = root / f"samples-{self.plan.image_count}-seed0"
    done = folder / ".complete"
    if not done.exists():
      shutil.rmtree(folder, ignore_errors=True)
      log(f"drawing {self.plan.image_count} images into {folder}")
      result = run_process(self.python_module(
          "mnist_flax.samples", str(folder), "--count", str(self.plan.image_count), "--seed", "0"),
          timeout=1800)
      if result.returncode != 0:
        raise RuntimeError(f"mnist_flax.samples exited {result.returncode}: {result.tail()}")
      done.write_text("")
    return folder

  def infer_dir_section(self) -> dict[str, Any]:
    ckpt_args, note = self.checkpoint_args()
    folder = self.sample_dir()
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    argv = self.python_module("mnist_flax.infer", "--i", str(folder), "--json", *ckpt_args)
    runs, answers = [], []
    for _ in range(self.plan.seeds):
      result = run_process(argv, timeout=3600)
      # 5: some drawing had no digit the preprocessing could find, a result, not a failure.
      if result.returncode not in (0, 5):
        raise RuntimeError(f"infer exited {result.returncode}: {result.tail()}")
      runs.append(result)
      answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if len(answers) != len(files):
      raise RuntimeError(f"infer answered {len(answers)} of {len(files)} images")
    correct = sum(a.get("digit") == int(pathlib.Path(a["path"]).name[0]) for a in answers)
    walls = [r.wall_seconds for r in runs]
    pre = self._preprocess_times(files)
    median_wall = statistics.median(walls)
    return {
        "command": "python -m " + " ".join(argv[2:]), "images": len(files), **note,
        "wall_seconds": stats(walls), "images_per_second": stats(len(files) / w for w in walls),
        "peak_rss_mb": stats((r.peak_rss_mb for r in runs if r.peak_rss_mb is not None), 1),
        "accuracy": round(correct / len(files), 4),
        "no_digit_found": sum(a.get("digit") is None for a in answers),
        # The split, measured in this process: decoding + preprocessing alone, per image.
        "preprocess_seconds_per_image": pre,
        "preprocess_share_of_wall": round(pre["total_seconds"] / median_wall, 4),
        "other_seconds": round(median_wall - pre["total_seconds"], 4),
        "other_is": "process start, imports, checkpoint load, prediction, output",
    }

  def _preprocess_times(self, files: Sequence[pathlib.Path]) -> dict[str, Any]:
    from mnist_flax import errors, preprocess
    try:
      preprocess.preprocess_file(files[0])  # Untimed: the first call imports PIL's plugins.
    except errors.MnistFlaxError:
      pass
    times = []
    for path in files:
      start = time.perf_counter()
      try:
        preprocess.preprocess_file(path)
      except errors.MnistFlaxError:
        pass  # A "no digit" verdict costs its time like any answer.
      times.append(time.perf_counter() - start)
    return {"mean": round(statistics.fmean(times), 6), "median": round(statistics.median(times), 6),
            "min": round(min(times), 6), "max": round(max(times), 6), "n": len(times),
            "total_seconds": round(sum(times), 4)}

  # ----------------------------------------------------------------- subprocesses: speedrun, peer

  def speedrun_and_peer(self) -> None:
    """The speedrun seeds, each followed by the peer's run of the same seed when asked for."""
    want_jax = "speedrun" not in self.args.skip
    want_peer = "peer" not in self.args.skip
    jax_entry: dict[str, Any] = {"status": "skipped", "reason": "--skip"}
    peer_entry: dict[str, Any] = {"status": "skipped", "reason": "--skip"}
    if want_peer and not self.args.peer:
      want_peer = False
      peer_entry = {"status": "skipped", "reason": "no --peer PYTHON given"}
    if (want_jax or want_peer) and self.data_dir is None:
      reason = f"{NO_MNIST} ({self.data_note})"
      if want_jax:
        jax_entry = {"status": "skipped", "reason": reason}
      if want_peer:
        peer_entry = {"status": "skipped", "reason": reason}
      want_jax = want_peer = False
    peer_script = pathlib.Path(self.args.peer_script)
    if want_peer and not peer_script.is_file():
      want_peer = False
      peer_entry = {"status": "error", "error": f"peer script not found: {peer_script}"}
    start = time.perf_counter()
    jax_runs: list[dict[str, Any]] = []
    peer_runs: list[dict[str, Any]] = []
    for seed in range(self.plan.seeds if (want_jax or want_peer) else 0):
      if want_jax:
        log(f"speedrun seed {seed} ...")
        jax_runs.append(self._speedrun_once(seed))
      if want_peer:
        log(f"peer seed {seed} ...")
        peer_runs.append(self._peer_once(peer_script, seed))
    cold_runs = []
    if want_jax:
      # The seeds above share the persistent compilation cache (warm after the first run, or
      # from earlier runs); one more run with an empty cache shows the first-ever start.
      log("speedrun seed 0 with an empty compilation cache ...")
      cold_runs.append(self._speedrun_once(0, cold=True))
    seconds = round(time.perf_counter() - start, 3)
    if want_jax:
      jax_entry = self._summarise_runs(jax_runs)
      jax_entry["cold_compilation_cache"] = self._summarise_runs(cold_runs)
      jax_entry.update(config=SPEEDRUN_CONFIG, overrides=list(self.plan.speedrun_overrides),
                       section_seconds=seconds)
    if want_peer:
      peer_entry = self._summarise_runs(peer_runs)
      peer_entry.update(python=self.args.peer, script=str(peer_script),
                        interleaved=want_jax, section_seconds=seconds)
      first = next((r for r in peer_runs if "torch" in r), {})
      peer_entry.update(torch=first.get("torch"), threads=first.get("threads"))
      if want_jax:
        peer_entry["ratios"] = peer_ratios(jax_entry, peer_entry)
        if self.plan.quick:
          peer_entry["note"] = "quick: the jax runs are cut short, so the ratios mean nothing"
    self.results["speedrun"] = jax_entry
    self.results["peer"] = peer_entry

  def _speedrun_once(self, seed: int, cold: bool = False) -> dict[str, Any]:
    """One whole speedrun process; ``cold`` gives it an empty compilation cache of its own."""
    workdir = self.tmp / f"speedrun-{seed}{'-cold' if cold else ''}"
    env = None
    if cold:
      env = dict(os.environ, MNIST_FLAX_CACHE_DIR=str(self.tmp / f"empty-cache-{seed}"))
    try:
      result = run_process(self.python_module(
          "mnist_flax.main", f"--config={SPEEDRUN_CONFIG}", f"--workdir={workdir}",
          f"--config.seed={seed}", f"--config.data.dir={self.data_dir}",
          *self.plan.speedrun_overrides), timeout=3600, env=env)
      run = {"seed": seed, "returncode": result.returncode,
             "wall_seconds": round(result.wall_seconds, 4), "peak_rss_mb": result.peak_rss_mb}
      if result.returncode != 0:
        return {**run, "error": f"exit {result.returncode}: {result.tail()}"}
      summary = json.loads((workdir / "summary.json").read_text())
      return {**run, **{k: summary.get(k) for k in (
          "test_accuracy", "train_seconds", "images_per_second", "steady_images_per_second",
          "step")}}
    except Exception as e:
      return {"seed": seed, "error": f"{type(e).__name__}: {e}"}
    finally:
      shutil.rmtree(workdir, ignore_errors=True)

  def _peer_once(self, script: pathlib.Path, seed: int) -> dict[str, Any]:
    try:
      result = run_process([self.args.peer, str(script), str(self.data_dir), "1", str(seed)],
                           timeout=3600)
      run = {"seed": seed, "returncode": result.returncode,
             "wall_seconds": round(result.wall_seconds, 4), "peak_rss_mb": result.peak_rss_mb}
      reported = _last_json_line(result.stdout)
      if result.returncode != 0 or reported is None:
        return {**run, "error": f"exit {result.returncode}, no JSON line: {result.tail()}"}
      return {**run, "test_accuracy": reported.get("test_accuracy"),
              "train_seconds": reported.get("train_seconds"),
              "images_per_second": reported.get("images_per_second"),
              "reported_wall_seconds": reported.get("wall_seconds"),
              "torch": reported.get("torch"), "threads": reported.get("threads")}
    except Exception as e:
      return {"seed": seed, "error": f"{type(e).__name__}: {e}"}

  @staticmethod
  def _summarise_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in runs if "error" not in r]
    entry: dict[str, Any] = {"status": "ok" if good else "error", "runs": runs}
    if not good:
      entry["error"] = "; ".join(f"seed {r['seed']}: {r['error']}" for r in runs) or "no runs"
      return entry
    for key, digits in (("wall_seconds", 4), ("train_seconds", 4), ("images_per_second", 1),
                        ("test_accuracy", 4), ("peak_rss_mb", 1)):
      entry[key] = stats((r[key] for r in good if r.get(key) is not None), digits)
    return entry

  # ----------------------------------------------------------------- derived: memory

  def memory_section(self) -> dict[str, Any]:
    out: dict[str, Any] = {"method": (
        "each process started through a tiny fork/exec wrapper that reads the child's own "
        "ru_maxrss from wait4 (peak resident set, MiB); RUSAGE_CHILDREN would be a running "
        "maximum over all children, and a child started directly from this benchmark "
        "inherits the benchmark's high-water mark at exec")}
    sources = {"train_peak_rss_mb": ("speedrun", "peak_rss_mb"),
               "infer_cold_peak_rss_mb": ("infer_cold", "peak_rss_mb"),
               "infer_dir_peak_rss_mb": ("infer_dir", "peak_rss_mb"),
               "peer_train_peak_rss_mb": ("peer", "peak_rss_mb")}
    for key, (section, field) in sources.items():
      entry = self.results.get(section, {})
      if entry.get("status") == "ok" and entry.get(field, {}).get("n"):
        out[key] = entry[field]
    if len(out) == 1:
      raise Skipped("no training or inference process was measured")
    return out

  # ----------------------------------------------------------------- all of it

  def run(self) -> dict[str, Any]:
    start = time.perf_counter()
    report: dict[str, Any] = {
        "schema": SCHEMA, "command": " ".join(["python -m", PROG, *sys.argv[1:]]),
        "quick": self.plan.quick, "plan": dataclasses.asdict(self.plan),
        "data_dir": str(self.data_dir) if self.data_dir else None,
        "only": sorted(set(SECTIONS) - self.args.skip) if self.args.only else None,
    }
    try:
      report["machine"] = machine_info()
    except Exception as e:
      report["machine"] = {"error": f"{type(e).__name__}: {e}"}
    self.run_section("train", self.train_section)
    self.run_section("eval", self.eval_section)
    self.release()
    self.run_section("predict", self.predict_section)
    self.run_section("infer_cold", self.infer_cold_section)
    self.run_section("infer_dir", self.infer_dir_section)
    self.run_section("read", lambda: bench_read.read_section(self))
    self.run_section("serve", lambda: bench_serve.serve_section(self))
    self.speedrun_and_peer()
    self.run_section("memory", self.memory_section)
    report.update(self.results)
    report["total_seconds"] = round(time.perf_counter() - start, 3)
    return report


def peer_ratios(jax_entry: dict[str, Any], peer_entry: dict[str, Any]) -> dict[str, Any]:
  """jax/peer ratios of the medians (> 1: jax slower, or faster for images/s), and per seed."""
  if jax_entry.get("status") != "ok" or peer_entry.get("status") != "ok":
    return {"error": "no successful run on one side"}
  m = lambda entry, key: _median(entry.get(key))
  per_seed = []
  peer_by_seed = {r["seed"]: r for r in peer_entry["runs"] if "error" not in r}
  for run in jax_entry["runs"]:
    other = peer_by_seed.get(run["seed"])
    if "error" not in run and other:
      per_seed.append({"seed": run["seed"],
                       "wall_seconds": ratio(run["wall_seconds"], other["wall_seconds"]),
                       "train_seconds": ratio(run.get("train_seconds"), other.get("train_seconds")),
                       "test_accuracy": [run.get("test_accuracy"), other.get("test_accuracy")]})
  return {
      "meaning": "jax / peer; above 1 means jax took longer (or, for images/s, was faster)",
      "wall_seconds": ratio(m(jax_entry, "wall_seconds"), m(peer_entry, "wall_seconds")),
      "train_seconds": ratio(m(jax_entry, "train_seconds"), m(peer_entry, "train_seconds")),
      "images_per_second": ratio(m(jax_entry, "images_per_second"),
                                 m(peer_entry, "images_per_second")),
      "test_accuracy": {"jax": m(jax_entry, "test_accuracy"),
                        "peer": m(peer_entry, "test_accuracy")},
      "per_seed": per_seed,
  }


# --------------------------------------------------------------------------- the table


def _fmt(value: Any, digits: int) -> str:
  if value is None:
    return "-"
  if isinstance(value, (int, float)):
    return f"{value:,.{digits}f}"
  return str(value)


def table(report: dict[str, Any]) -> str:
  """The headline figures as a fixed-width table; sections not run say why underneath."""
  rows: list[tuple[str, Any, int]] = []  # (label, stats dict or plain number, decimals)

  def section(name: str) -> dict[str, Any]:
    entry = report.get(name) or {}
    return entry if entry.get("status") == "ok" else {}

  train, evaluation = section("train"), section("eval")
  for label, entry in (train.get("configs") or {}).items():
    rows.append((f"train images/s [{label}]", entry.get("images_per_second"), 0))
    rows.append((f"train compile s [{label}]", entry.get("compile_seconds"), 2))
  if not train:
    rows += [("train images/s", None, 0), ("train compile s", None, 2)]
  for label, entry in (evaluation.get("configs") or {}).items():
    rows.append((f"eval images/s [{label}]", entry.get("images_per_second"), 0))
  if not evaluation:
    rows.append(("eval images/s", None, 0))
  predict = section("predict")
  rows.append(("predict latency ms [batch 1]", predict.get("latency_ms_batch1"), 3))
  rows.append(("predict images/s [batch 1024]", predict.get("images_per_second_batch1024"), 0))
  cold, folder = section("infer_cold"), section("infer_dir")
  rows.append(("cold infer wall s [test/3.jpg]", cold.get("wall_seconds"), 3))
  count = f" [{folder['images']} images]" if folder else ""
  rows.append((f"infer dir images/s{count}", folder.get("images_per_second"), 1))
  pre = folder.get("preprocess_seconds_per_image")
  rows.append(("preprocess ms/image", None if not pre else
               {k: pre[k] * 1000 for k in ("median", "min", "max")} | {"n": pre["n"]}, 2))
  rows.append(("infer dir accuracy", folder.get("accuracy"), 4))
  rows += bench_read.table_rows(section("read"))
  rows += bench_serve.table_rows(section("serve"))
  speed, peer = section("speedrun"), section("peer")
  cold_speed = (speed.get("cold_compilation_cache") or {}) if speed else {}
  rows.append(("speedrun wall s, empty compile cache", cold_speed.get("wall_seconds"), 2))
  for who, entry in (("speedrun", speed), ("peer", peer)):
    rows.append((f"{who} wall s (whole process)", entry.get("wall_seconds"), 2))
    rows.append((f"{who} train s", entry.get("train_seconds"), 2))
    rows.append((f"{who} images/s", entry.get("images_per_second"), 0))
    rows.append((f"{who} test accuracy", entry.get("test_accuracy"), 4))
  memory = section("memory")
  rows.append(("peak RSS MiB [training]", memory.get("train_peak_rss_mb"), 0))
  rows.append(("peak RSS MiB [cold infer]", memory.get("infer_cold_peak_rss_mb"), 0))
  rows.append(("peak RSS MiB [peer training]", memory.get("peer_train_peak_rss_mb"), 0))
  ratios = peer.get("ratios") or {}
  rows.append(("ratio jax/peer wall s", ratios.get("wall_seconds"), 3))
  rows.append(("ratio jax/peer train s", ratios.get("train_seconds"), 3))
  rows.append(("ratio jax/peer images/s", ratios.get("images_per_second"), 3))

  if report.get("only"):  # Just the rows of the sections asked for.
    rows = [row for row in rows if row[1] is not None]
  header = ("metric", "median", "min", "max", "n")
  lines = []
  for label, value, digits in rows:
    if isinstance(value, dict):
      lines.append((label, _fmt(value.get("median"), digits), _fmt(value.get("min"), digits),
                    _fmt(value.get("max"), digits), _fmt(value.get("n"), 0)))
    else:
      lines.append((label, _fmt(value, digits), "", "", "1" if value is not None else ""))
  widths = [max(len(r[i]) for r in [header, *lines]) for i in range(5)]
  render = lambda r: "  ".join(r[0].ljust(widths[0]) if i == 0 else r[i].rjust(widths[i])
                               for i in range(5)).rstrip()
  machine = report.get("machine") or {}
  versions = machine.get("versions") or {}
  out = [f"mnist_flax benchmark {'(quick) ' if report.get('quick') else ''}on "
         f"{machine.get('cpu_model')}, {machine.get('cpus_usable')}/{machine.get('cpu_count')} "
         f"cores, {machine.get('memory_total_gib')} GiB; jax {versions.get('jax')}, "
         f"flax {versions.get('flax')}; {machine.get('date')}",
         render(header), render(tuple("-" * w for w in widths)), *map(render, lines)]
  accuracy = ratios.get("test_accuracy")
  if accuracy:
    out.append(f"accuracy side by side: jax {accuracy.get('jax')}, peer {accuracy.get('peer')}")
  for name in SECTIONS:
    entry = report.get(name) or {}
    if entry.get("status") == "skipped" and name in (report.get("only") or SECTIONS):
      out.append(f"{name}: skipped ({entry.get('reason')})")
    elif entry.get("status") == "error":
      out.append(f"{name}: error ({entry.get('error')})")
    for label, sub in (entry.get("configs") or {}).items():
      if sub.get("status") == "error":
        out.append(f"{name} [{label}]: error ({sub.get('error')})")
  note = next((report[n].get("note") for n in ("infer_cold", "infer_dir")
               if (report.get(n) or {}).get("stand_in")), None)
  if note:
    out.append(note)
  out.append(f"total {report.get('total_seconds')} s")
  return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m mnist_flax.benchmark",
                              description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", default=DEFAULT_CONFIG,
                 help=f"config to time in-process, besides {SPEEDRUN_CONFIG} (default "
                      f"{DEFAULT_CONFIG})")
  p.add_argument("--quick", action="store_true",
                 help="seconds-long smoke run: tiny repeats and steps, figures not meaningful")
  p.add_argument("--table", action="store_true",
                 help="print a readable table on stdout instead of the JSON")
  p.add_argument("--out", metavar="FILE", help="also write the JSON to FILE")
  p.add_argument("--repeats", type=int, default=None, metavar="N",
                 help="timed repeats and speedrun seeds (default 3; quick: 2 and 1)")
  p.add_argument("--steps", type=int, default=None, metavar="K",
                 help="train steps per timed repeat (default 50; quick: 3)")
  p.add_argument("--count", type=int, default=None, metavar="N",
                 help="images in the infer_dir folder (default 1000; quick: 20)")
  p.add_argument("--skip", default="", metavar="A,B",
                 help="sections to leave out: " + ", ".join(SECTIONS))
  p.add_argument("--only", default="", metavar="A,B", help="run only these sections")
  p.add_argument("--data-dir", "--data_dir", default=None, metavar="DIR",
                 help="folder with the MNIST IDX files (default: $MNIST_DATA_DIR)")
  p.add_argument("--peer", default=None, metavar="PYTHON",
                 help="a Python with torch: run the PyTorch peer interleaved with the speedrun")
  p.add_argument("--peer-script", default=str(DEFAULT_PEER_SCRIPT), metavar="PATH",
                 help="the peer script (default: <project root>/../shared/bench/"
                      "torch_fast_mnist.py)")
  p.add_argument("--cache-dir", default=None, metavar="DIR",
                 help="where the generated images are kept between runs (default: the temp "
                      "folder)")
  return p


def main(argv: Sequence[str] | None = None) -> int:
  parser = _parser()
  args = parser.parse_args(argv)
  args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
  only = {s.strip() for s in args.only.split(",") if s.strip()}
  for flag, names in (("--skip", args.skip), ("--only", only)):
    unknown = names - set(SECTIONS)
    if unknown:
      parser.error(f"{flag}: unknown section(s) {', '.join(sorted(unknown))}; known: "
                   + ", ".join(SECTIONS))
  if only:
    args.skip |= set(SECTIONS) - only
  for name in ("repeats", "steps", "count"):
    value = getattr(args, name)
    if value is not None and value < 1:
      parser.error(f"--{name} must be at least 1")
  if not _resolve_config(args.config).is_file():
    parser.error(f"--config: config file not found: {args.config}")
  bench = Benchmark(args, Plan.make(args.quick, args.repeats, args.steps, args.count))
  try:
    report = bench.run()
  except KeyboardInterrupt:
    log("interrupted")
    return 130
  finally:
    bench.close()
  text = json.dumps(report, indent=2) + "\n"
  if args.out:
    pathlib.Path(args.out).write_text(text)
  sys.stdout.write(table(report) if args.table else text)
  sys.stdout.flush()
  ran = any((report.get(name) or {}).get("status") == "ok" for name in SECTIONS)
  return 0 if ran else 1


if __name__ == "__main__":
  sys.exit(main())
