"""How fast mnist_flax trains and reads digits on this machine.

    python -m mnist_flax.tools.benchmark                       # JSON on stdout (one object)
    python -m mnist_flax.tools.benchmark --table               # a readable table instead
    python -m mnist_flax.tools.benchmark --table --out b.json  # the table, and the JSON in a file
    python -m mnist_flax.tools.benchmark --quick               # seconds-long smoke run (CI)
    python -m mnist_flax.tools.benchmark --peer /work/torchvenv/bin/python   # with PyTorch

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
infer_dir      ``infer`` over a folder of 1,000 images drawn by ``mnist_flax.tools.samples``, one
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

Where the code is: this module is the command line, the order of the sections and the table;
``bench_common`` the plan, timed child processes (and how their peak memory is read) and
statistics; ``bench_train`` train, eval, speedrun and peer; ``bench_infer`` predict and the
infer sections; ``bench_read`` and ``bench_serve`` their sections.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
import traceback
from typing import Any, Callable, Sequence

from mnist_flax import errors
from mnist_flax.constants import PROJECT_ROOT
from mnist_flax.tools import bench_infer, bench_read, bench_serve, bench_train
from mnist_flax.tools.bench_common import (
    DEFAULT_CONFIG, NO_MNIST, PROG, SPEEDRUN_CONFIG, Plan, Skipped, log, machine_info,
    resolve_config, run_process, stats)

__all__ = ["Benchmark", "main", "run_process", "stats", "table"]  # bench_serve uses the two.

SCHEMA = "mnist_flax/benchmark/v1"
DEFAULT_PEER_SCRIPT = PROJECT_ROOT.parent / "shared" / "bench" / "torch_fast_mnist.py"
SECTIONS = ("train", "eval", "predict", "infer_cold", "infer_dir", "read", "serve", "speedrun",
            "peer", "memory")


class Benchmark:
  """What the sections share while they run: arguments, plan, data, caches and the results.

  Each section is a function of this object (``bench_train.train_section(bench)``, ...);
  ``run`` calls them in order and collects one JSON-able dict.
  """

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
    self.trainers: dict[str, bench_train.Trainer] = {}
    self.results: dict[str, Any] = {}
    self._mnist: Any = None
    self._checkpoint: tuple[list[str], dict[str, Any]] | Exception | None = None

  def close(self) -> None:
    shutil.rmtree(self.tmp, ignore_errors=True)

  def need_mnist(self) -> pathlib.Path:
    if self.data_dir is None:
      raise Skipped(f"{NO_MNIST} ({self.data_note})")
    return self.data_dir

  def mnist(self) -> Any:
    """MNIST, read once for every in-process section."""
    if self._mnist is None:
      from mnist_flax import data
      self._mnist = data.load(self.need_mnist())
    return self._mnist

  def release_mnist(self) -> None:
    self._mnist = None

  def python_module(self, module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]

  def checkpoint_args(self) -> tuple[list[str], dict[str, Any]]:
    """``--checkpoint`` arguments for infer and a note on the model used (trained once)."""
    if isinstance(self._checkpoint, Exception):
      raise self._checkpoint
    if self._checkpoint is None:
      try:
        self._checkpoint = bench_infer.find_or_train_checkpoint(self)
      except Exception as e:
        self._checkpoint = e
        raise
    return self._checkpoint

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
        entry = {"status": "error", "error": f"{type(e).__name__}: {errors.one_line(e)}",
                 "traceback": traceback.format_exc(limit=4).strip().splitlines()[-6:]}
      entry["section_seconds"] = round(time.perf_counter() - start, 3)
      log(f"{name}: {entry['status']} in {entry['section_seconds']:.1f} s"
          + (f" ({entry.get('reason') or entry.get('error')})" if entry["status"] != "ok" else ""))
    self.results[name] = entry
    return entry

  def memory_section(self) -> dict[str, Any]:
    """Peak memory of the processes the sections above measured."""
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
    self.run_section("train", lambda: bench_train.train_section(self))
    self.run_section("eval", lambda: bench_train.eval_section(self))
    bench_train.release(self)
    self.run_section("predict", lambda: bench_infer.predict_section(self))
    self.run_section("infer_cold", lambda: bench_infer.infer_cold_section(self))
    self.run_section("infer_dir", lambda: bench_infer.infer_dir_section(self))
    self.run_section("read", lambda: bench_read.read_section(self))
    self.run_section("serve", lambda: bench_serve.serve_section(self))
    bench_train.speedrun_and_peer(self)
    self.run_section("memory", self.memory_section)
    report.update(self.results)
    report["total_seconds"] = round(time.perf_counter() - start, 3)
    return report


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
  p = errors.ArgumentParser(prog="python -m mnist_flax.tools.benchmark",
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
  return errors.run_command(PROG, lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
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
  if not resolve_config(args.config).is_file():
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

