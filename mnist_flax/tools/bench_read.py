"""The ``read`` section of ``python -m mnist_flax.tools.benchmark``: accuracy and speed on photos.

    python -m mnist_flax.tools.benchmark --only read --table

For each kind of picture ``mnist_flax.tools.samples.kinds`` draws (phone photos of one handwritten
digit, whole numbers, printed digits, non-digits) and for the plain drawings of
``mnist_flax.tools.samples``, one folder (drawn once from seed 1 and kept in the benchmark's cache),
read by one ``infer --i FOLDER --json`` process:

* accuracy: the share of pictures whose ``number`` is the one the file name starts with
  (non-digits have no right answer: their row is the share answered with a probability below
  0.5, i.e. said to be unsure);
* images/s of the whole process (start, imports and model load included), and the decode +
  preprocessing CPU time per picture measured in this process.

Photos are phone-sized (1-12 MP JPEGs), so their images/s says what a folder of real photos
costs; the plain drawings are the small files most MNIST demos read.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import tempfile
import time
from typing import Any

# (kind, pictures in the full run, in --quick). "plain" is mnist_flax.tools.samples' own drawings.
KINDS = (("photos", 120, 8), ("numbers", 60, 6), ("printed", 40, 4), ("nondigits", 30, 3),
         ("plain", 200, 10))
_TRUTH = re.compile(r"^(\d+|x)_")


def _folder(bench: Any, kind: str, count: int) -> pathlib.Path:
  """The pictures of ``kind``, drawn once per count and kept (same seed, same files)."""
  root = pathlib.Path(bench.args.cache_dir) if bench.args.cache_dir else (
      pathlib.Path(tempfile.gettempdir()) / "mnist_flax_bench_cache")
  folder = root / f"read-{kind}-{count}-seed1"
  if not (folder / ".complete").exists():
    shutil.rmtree(folder, ignore_errors=True)
    if kind == "plain":
      from mnist_flax.tools import samples
      samples.make_samples(folder, count=count, seed=1)
    else:
      from mnist_flax.tools.samples import kinds
      kinds.make_kind(kind, folder, count=count, seed=1)
    (folder / ".complete").write_text("")
  return folder


def _cpu_per_image(files: list[pathlib.Path]) -> float:
  """Decode + preprocessing CPU seconds per picture, in this process."""
  from mnist_flax import errors, preprocess
  start = time.process_time()
  for path in files:
    try:
      preprocess.read_digits(path)
    except errors.MnistFlaxError:
      pass  # A "no digit" verdict costs its time like any answer.
  return (time.process_time() - start) / len(files)


def read_section(bench: Any) -> dict[str, Any]:
  from mnist_flax.tools.bench_common import run_process, stats
  ckpt_args, note = bench.checkpoint_args()
  out: dict[str, Any] = {**note, "kinds": {}}
  for kind, full, quick in KINDS:
    folder = _folder(bench, kind, quick if bench.plan.quick else full)
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    argv = bench.python_module("mnist_flax.infer", "--i", str(folder), "--json", *ckpt_args)
    walls, answers = [], []
    for _ in range(bench.plan.seeds):
      result = run_process(argv, timeout=3600)
      # 5: some picture had no digit found; 4: one could not be read. Both count as wrong
      # answers here (and are counted), a crash of the command is an error of the section.
      if result.returncode not in (0, 4, 5):
        raise RuntimeError(f"infer exited {result.returncode}: {result.tail()}")
      walls.append(result.wall_seconds)
      answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if len(answers) != len(files):
      raise RuntimeError(f"infer answered {len(answers)} of {len(files)} pictures")
    truths = [_TRUTH.match(pathlib.Path(a["path"]).name).group(1) for a in answers]
    if kind == "nondigits":
      score = sum((a.get("probability") or 0.0) < 0.5 for a in answers) / len(answers)
    else:
      score = sum(a.get("number") == t for a, t in zip(answers, truths)) / len(answers)
    out["kinds"][kind] = {
        "pictures": len(files), "folder": str(folder),
        "score_is": "share said unsure (p < 0.5)" if kind == "nondigits" else "accuracy",
        "score": round(score, 4),
        "images_per_second": stats(len(files) / w for w in walls),
        "wall_seconds": stats(walls),
        "cpu_ms_per_image": round(1000 * _cpu_per_image(files), 2),
        "not_read": sum(a.get("error") is not None for a in answers)}
  return out


def table_rows(entry: dict[str, Any]) -> list[tuple[str, Any, int]]:
  """The benchmark table's rows for this section (label, value, decimals)."""
  rows: list[tuple[str, Any, int]] = []
  for kind, _, _ in KINDS:
    k = (entry.get("kinds") or {}).get(kind) or {}
    what = "unsure share" if kind == "nondigits" else "accuracy"
    count = f", {k['pictures']}" if k else ""
    rows.append((f"read {what} [{kind}{count}]", k.get("score"), 3))
    rows.append((f"read images/s [{kind}]", k.get("images_per_second"), 1))
    rows.append((f"read preprocess cpu ms/image [{kind}]", k.get("cpu_ms_per_image"), 1))
  return rows

