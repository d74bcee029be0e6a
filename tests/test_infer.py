"""The infer command as a user runs it: answers, --json, --top-k, folders, --save-preprocessed.

Subprocess tests of ``python -m mnist_flax.infer``. Output formats and exit codes are checked
with a random-weight checkpoint made once per session (no MNIST needed); that the digits are
right is checked on every file in ``test/`` with the shipped ``checkpoints/final``, skipped
until it exists. Hostile inputs are in test_infer_hostile.py.

Run: /work/venv/bin/pytest tests/test_infer.py -q
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_flax.tools import samples

ROOT = Path(__file__).resolve().parent.parent
# The shipped model; TEST_CHECKPOINT points the accuracy checks at another trained one.
REAL_CHECKPOINT = Path(os.environ.get("TEST_CHECKPOINT") or ROOT / "checkpoints" / "final")
SAMPLES = ROOT / "test"
ANSWER = r"The recognized result is (\d+) and the probability is ([01]\.\d{3})(?: \(unsure\))?\."

def infer(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
  result = subprocess.run([sys.executable, "-m", "mnist_flax.infer", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
  assert "Traceback" not in result.stdout + result.stderr, result.stderr
  return result


def _digit(folder: Path, name: str, digit: int, fmt: str | None = None) -> str:
  image = samples.draw_digit(digit, np.random.default_rng(digit))
  (folder / name).parent.mkdir(parents=True, exist_ok=True)
  image.convert("RGB").save(folder / name, fmt)
  return name


@pytest.mark.skipif(not REAL_CHECKPOINT.is_dir(),
                    reason="checkpoints/final not trained yet (the lead is training it)")
def test_printed_ones_are_not_read_as_seven(tmp_path):
  """Printed "1"s with a flag (and a foot), photographed: an MNIST-only reader took 4 of these
  20 for 7s; the shipped one learnt printed digits (configs/shipped.py)."""
  from mnist_flax.tools.samples import kinds
  for index in range(1, 200, 10):  # The printed kind draws the digit index % 10.
    sample = kinds.draw("printed", index, 21)
    (tmp_path / sample.name(index)).write_bytes(sample.jpeg)
  result = infer("--i", str(tmp_path), "--json", "--checkpoint", str(REAL_CHECKPOINT))
  read = [json.loads(line)["number"] for line in result.stdout.splitlines()]
  assert len(read) == 20 and read.count("1") >= 19, read


@pytest.mark.skipif(not REAL_CHECKPOINT.is_dir(),
                    reason="checkpoints/final not trained yet (the lead is training it)")
def test_every_sample_file_is_read_correctly():
  files = sorted(p.name for p in SAMPLES.iterdir() if p.name[0].isdigit())
  assert len(files) >= 40
  result = infer("--i", "test", "--checkpoint", str(REAL_CHECKPOINT))  # One process.
  assert result.returncode == 0 and result.stderr == "", result.stderr
  lines = result.stdout.splitlines()
  assert [line.split(": ", 1)[0] for line in lines] == [f"test/{name}" for name in files]
  wrong = []
  for line, name in zip(lines, files):
    match = re.fullmatch(f"test/{re.escape(name)}: {ANSWER}", line)
    assert match, line
    if match.group(1) != re.match(r"\d+", name).group():  # Names start with the answer.
      wrong.append(line)
  assert wrong == []


def test_single_input_prints_the_bare_sentence(tmp_path: Path, random_checkpoint: Path):
  _digit(tmp_path, "3.png", 3)
  result = infer("--i", "3.png", "--checkpoint", str(random_checkpoint), cwd=tmp_path)
  assert result.returncode == 0 and result.stderr == ""
  assert re.fullmatch(ANSWER + "\n", result.stdout), result.stdout


def test_json_output(tmp_path: Path, random_checkpoint: Path):
  names = [_digit(tmp_path, "3.png", 3), _digit(tmp_path, "7.jpg", 7)]
  result = infer("--json", "--top-k", "2", "--i", *names, "--checkpoint", str(random_checkpoint),
                 cwd=tmp_path)
  assert result.returncode == 0 and result.stderr == ""
  records = [json.loads(line) for line in result.stdout.splitlines()]
  assert [r["path"] for r in records] == names
  for r in records:
    assert {"path", "digit", "probability", "probabilities"} <= set(r)
    probs = r["probabilities"]
    assert len(probs) == 10 and all(0 <= p <= 1 for p in probs)
    assert abs(sum(probs) - 1) < 1e-4
    assert r["digit"] == int(np.argmax(probs)) and r["probability"] == max(probs)
    assert [d for d, _ in r["top_k"]] == list(np.argsort(probs)[::-1][:2])


def test_json_reports_failures_per_input(tmp_path: Path, random_checkpoint: Path):
  _digit(tmp_path, "3.png", 3)
  result = infer("--json", "--i", "3.png", "nope.png", "--checkpoint", str(random_checkpoint),
                 cwd=tmp_path)
  assert result.returncode == 1
  good, missing = [json.loads(line) for line in result.stdout.splitlines()]
  assert good["digit"] in range(10)
  assert missing == {"path": "nope.png", "digit": None, "error": missing["error"],
                     "exit_code": 1} and "nope.png" in missing["error"]
  assert len(result.stderr.splitlines()) == 1


def test_top_k_text(tmp_path: Path, random_checkpoint: Path):
  _digit(tmp_path, "3.png", 3)
  result = infer("--i", "3.png", "--top-k", "3", "--checkpoint", str(random_checkpoint),
                 cwd=tmp_path)
  assert result.returncode == 0 and result.stderr == ""
  match = re.fullmatch(ANSWER[:-2] + r"\. Next: (\d) \(([01]\.\d{3})\), (\d) \(([01]\.\d{3})\)\.\n",
                       result.stdout)
  assert match, result.stdout
  digits = [match.group(i) for i in (1, 3, 5)]
  probs = [float(match.group(i)) for i in (2, 4, 6)]
  assert len(set(digits)) == 3 and probs == sorted(probs, reverse=True)


def test_folders_are_expanded_sorted_by_name(tmp_path: Path, random_checkpoint: Path):
  folder = tmp_path / "scans"
  for name, digit in (("b.png", 1), ("a.jpg", 2), ("10.gif", 3), ("2.bmp", 4)):
    _digit(folder, name, digit, {"gif": "GIF", "bmp": "BMP", "jpg": "JPEG"}.get(name[-3:]))
  (folder / "readme.txt").write_text("not an image")
  (folder / ".hidden.png").write_bytes(b"")
  _digit(folder, "sub/c.png", 5)  # Sub-folders are not entered, and that is said.
  _digit(tmp_path, "first.png", 6)
  result = infer("--i", "first.png", "scans", "--checkpoint", str(random_checkpoint),
                 cwd=tmp_path)
  assert result.returncode == 0
  assert result.stderr == ("mnist_flax.infer: note: scans: 1 subfolder not entered (sub); give "
                           "it as a path to read its images\n")
  paths = [line.split(": ", 1)[0] for line in result.stdout.splitlines()]
  assert paths == ["first.png", "scans/10.gif", "scans/2.bmp", "scans/a.jpg", "scans/b.png"]


def test_save_preprocessed_writes_28x28_pngs(tmp_path: Path, random_checkpoint: Path):
  names = [_digit(tmp_path, f"{d}.png", d) for d in (0, 4, 8)]
  result = infer("--i", *names, "--save-preprocessed", "seen/by/model", "--checkpoint",
                 str(random_checkpoint), cwd=tmp_path)
  assert result.returncode == 0 and result.stderr == ""
  written = sorted((tmp_path / "seen" / "by" / "model").iterdir())
  assert [p.name for p in written] == ["0000_0.png.png", "0001_4.png.png", "0002_8.png.png"]
  for path in written:
    with Image.open(path) as image:
      assert image.format == "PNG" and image.mode == "L" and image.size == (28, 28)
      pixels = np.asarray(image)
    assert pixels.max() == 255 and (pixels < 3).mean() > 0.5  # A white digit on black.


def test_missing_input(tmp_path: Path, random_checkpoint: Path):
  result = infer("--i", "nope.png", "--checkpoint", str(random_checkpoint), cwd=tmp_path)
  assert result.returncode == 1 and result.stdout == ""
  assert result.stderr.splitlines() == ["mnist_flax.infer: error: nope.png: no such file"]


def test_missing_input_among_existing_ones(tmp_path: Path, random_checkpoint: Path):
  _digit(tmp_path, "3.png", 3)
  _digit(tmp_path, "7.png", 7)
  result = infer("--i", "3.png", "nope.png", "7.png", "--checkpoint", str(random_checkpoint),
                 cwd=tmp_path)
  assert result.returncode == 1
  assert [line.split(": ", 1)[0] for line in result.stdout.splitlines()] == ["3.png", "7.png"]
  assert len(result.stderr.splitlines()) == 1 and "nope.png" in result.stderr


def test_paths_need_no_flag(tmp_path: Path, random_checkpoint: Path):
  """``infer 3.png`` (a path as it is), ``-i`` and ``--i`` all read the same; paths may follow
  any flag, and those after --i come first."""
  _digit(tmp_path, "3.png", 3)
  _digit(tmp_path, "7.png", 7)
  ckpt = ("--checkpoint", str(random_checkpoint))
  runs = [infer(*args, *ckpt, cwd=tmp_path) for args in
          (["3.png"], ["-i", "3.png"], ["--i", "3.png"], ["--input", "3.png"])]
  assert all(r.returncode == 0 and r.stderr == "" for r in runs), runs
  assert re.fullmatch(ANSWER + "\n", runs[0].stdout) and {r.stdout for r in runs} == {
      runs[0].stdout}
  mixed = infer("--json", "7.png", *ckpt, "3.png", cwd=tmp_path)
  assert [json.loads(line)["path"] for line in mixed.stdout.splitlines()] == ["7.png", "3.png"]
  flag_first = infer("3.png", "--i", "7.png", *ckpt, cwd=tmp_path)
  assert [line.split(": ", 1)[0] for line in flag_first.stdout.splitlines()] == [
      "7.png", "3.png"]


def test_no_path_is_a_one_line_usage_error(tmp_path: Path):
  result = infer("--json", cwd=tmp_path)
  assert result.returncode == 2 and result.stdout == ""
  assert result.stderr.startswith("mnist_flax.infer: error: no image given") and len(
      result.stderr.splitlines()) == 1


def test_no_digit_is_said_one_way_everywhere(tmp_path: Path, random_checkpoint: Path):
  """A blank picture answers "No digit found." alone, after its path among several or in a
  folder, and as its --json object's error; exit 5, and never a line on stderr."""
  from mnist_flax import infer as infer_lib
  (tmp_path / "scans").mkdir()
  Image.new("L", (200, 200), 255).save(tmp_path / "scans" / "blank.png")
  _digit(tmp_path, "3.png", 3)
  ckpt = ("--checkpoint", str(random_checkpoint))
  said = infer_lib.NO_DIGIT
  alone = infer("scans/blank.png", *ckpt, cwd=tmp_path)
  assert (alone.returncode, alone.stdout, alone.stderr) == (5, f"{said}\n", "")
  folder = infer("scans", *ckpt, cwd=tmp_path)  # One file, from a folder: named.
  assert (folder.returncode, folder.stdout, folder.stderr) == (
      5, f"scans/blank.png: {said}\n", "")
  several = infer("3.png", "scans/blank.png", *ckpt, cwd=tmp_path)
  assert several.returncode == 5 and several.stderr == ""
  assert several.stdout.splitlines()[1] == f"scans/blank.png: {said}"
  as_json = infer("--json", "scans/blank.png", *ckpt, cwd=tmp_path)
  assert as_json.returncode == 5 and as_json.stderr == ""
  assert json.loads(as_json.stdout) == {"path": "scans/blank.png", "digit": None, "error": said,
                                        "exit_code": 5}


def test_a_folder_of_one_image_names_it(tmp_path: Path, random_checkpoint: Path):
  _digit(tmp_path / "one", "3.png", 3)
  for sub in ("a", "b", "c", "d"):
    (tmp_path / "one" / sub).mkdir()
  (tmp_path / "one" / ".git").mkdir()  # Hidden, as hidden files are: not mentioned.
  result = infer("one", "--checkpoint", str(random_checkpoint), cwd=tmp_path)
  assert result.returncode == 0
  assert re.fullmatch(f"one/3.png: {ANSWER}\n", result.stdout), result.stdout
  assert result.stderr == ("mnist_flax.infer: note: one: 4 subfolders not entered (a, b, c and "
                           "1 more); give them as paths to read their images\n")


def test_a_call_in_process_leaves_the_collector_as_it_was(tmp_path: Path,
                                                          random_checkpoint: Path, capsys):
  """infer pauses Python's cyclic collector while JAX loads (a cold-start cost); a program that
  calls main() gets it back as it had it, on or off."""
  import gc
  from mnist_flax import infer as infer_lib
  _digit(tmp_path, "3.png", 3)
  try:
    for enabled in (True, False):
      (gc.enable if enabled else gc.disable)()
      args = ["--i", str(tmp_path / "3.png"), "--checkpoint", str(random_checkpoint)]
      assert infer_lib.main(args) == 0
      assert gc.isenabled() == enabled
  finally:
    gc.enable()
  assert re.fullmatch(f"{ANSWER}\n{ANSWER}\n", capsys.readouterr().out)


# --- Many files: worker processes ----------------------------------------------------------


_INFER_WITH = """
import os, sys
from mnist_flax import infer, reader_pool
if sys.argv[1] == "workers":
  reader_pool.cpu_times = lambda: None  # As if the cores were idle: workers whatever the load.
else:
  reader_pool.POOL_MIN_FILES = 10**9  # Never: every file read in this process.
code = infer.main(sys.argv[2:])
sys.stdout.flush(); sys.stderr.flush()
os._exit(code)
"""


def _infer_with(how: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
  result = subprocess.run([sys.executable, "-c", _INFER_WITH, how, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
  assert "Traceback" not in result.stdout + result.stderr, result.stderr
  return result


def test_many_files_in_workers_keep_order_and_per_file_errors(tmp_path: Path,
                                                              random_checkpoint: Path):
  """From reader_pool.POOL_MIN_FILES files on (and idle cores), worker processes read them:
  the same answers in the same order as reading them in one process, one line per bad file,
  the first failure's exit code."""
  folder = tmp_path / "many"
  folder.mkdir()
  names = []
  for i in range(40):
    digit = i % 10
    fmt = ("PNG", "JPEG", "GIF", "BMP")[i % 4]
    names.append(_digit(folder, f"{i:02d}_{digit}.{fmt.lower()}", digit, fmt))
  (folder / "05_bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)  # Corrupt header.
  Image.new("L", (200, 200), 255).save(folder / "17_blank.png")  # No digit.
  (folder / "30_truncated.jpg").write_bytes((folder / names[1]).read_bytes()[:300])
  args = ("--i", "many", "--checkpoint", str(random_checkpoint))
  result = _infer_with("workers", *args, cwd=tmp_path)
  lines = result.stdout.splitlines()
  shown = [line.split(": ", 1)[0] for line in lines]
  expected = sorted(names + ["17_blank.png"])
  assert shown == [f"many/{name}" for name in expected]  # In order, "no digit" included.
  assert lines[shown.index("many/17_blank.png")] == "many/17_blank.png: No digit found."
  errors = result.stderr.splitlines()
  assert len(errors) == 2 and "05_bad.png" in errors[0] and "30_truncated.jpg" in errors[1]
  assert all(e.startswith("mnist_flax.infer: error: ") for e in errors)
  assert result.returncode == 4  # 05_bad.png comes first.
  serial = _infer_with("serial", *args, cwd=tmp_path)
  assert (serial.returncode, serial.stdout, serial.stderr) == (
      result.returncode, result.stdout, result.stderr)


_ROUND_TRIP = """
import sys, types
import numpy as np
from mnist_flax import preprocess, reader_pool
found = [preprocess.Digit(np.full((28, 28), 0.5, np.float32), (1, 2, 3, 4)),
         preprocess.Digit(np.eye(28, dtype=np.float32), (5, 6, 7, 8), 0, (1, 2), 1)]
fake = types.SimpleNamespace(Digit=preprocess.Digit, read_digits=lambda path, single: found)
workers = reader_pool.Workers(fake, sys.argv[1:], 2)
try:
  read = workers.results(help_here=False)
finally:
  workers.close()
key = lambda d: (d.box, d.split_of, d.span, d.row, d.field.tolist())
print(all(error is None and list(map(key, got)) == list(map(key, found)) for got, error in read))
"""


def test_workers_return_every_field_of_each_digit():
  """What a worker process found comes back whole: boxes, pieces' spans and rows, fields."""
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
  result = subprocess.run([sys.executable, "-c", _ROUND_TRIP, "a.png", "b.png", "c.png"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
  assert (result.returncode, result.stdout, result.stderr) == (0, "True\n", "")


_CRASH_HANG = """
import os, signal, sys, time
from mnist_flax import preprocess, reader_pool
real = preprocess.read_digits
def fake(path, single=False):
  if path.endswith("crash.png"):
    os.kill(os.getpid(), signal.SIGSEGV)
  if path.endswith("hang.png"):
    time.sleep(3600)
  return real(path, single)
preprocess.read_digits = fake
reader_pool.FILE_SECONDS = 2.0
paths = sys.argv[1:]
workers = reader_pool.Workers(preprocess, paths, 2)
try:
  read = workers.results(help_here=False)
finally:
  workers.close()
for path, (array, error) in zip(paths, read):
  print(os.path.basename(path), "ok" if error is None else f"{type(error).__name__}: {error}")
"""


def test_worker_that_crashes_or_hangs_costs_one_file(tmp_path: Path):
  """A worker killed by a signal or stuck on a file: that file is reported (one line, named),
  the others are read, nothing hangs."""
  paths = []
  for i, name in enumerate(["a.png", "crash.png", "b.png", "hang.png", "c.png", "d.png",
                            "e.png", "f.png"]):
    paths.append(str(tmp_path / _digit(tmp_path, name, i)))
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
  result = subprocess.run([sys.executable, "-c", _CRASH_HANG, *paths], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
  assert result.returncode == 0 and result.stderr == "", result.stderr
  lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
  assert list(lines) == [os.path.basename(p) for p in paths]
  assert lines["crash.png"].startswith("ImageError: ") and "SIGSEGV" in lines["crash.png"]
  assert "crash.png" in lines["crash.png"]
  assert lines["hang.png"].startswith("ImageError: gave up reading ") and "hang.png" in lines[
      "hang.png"]
  assert all(lines[name] == "ok" for name in lines if name not in ("crash.png", "hang.png"))


@pytest.mark.parametrize("others_busy, workers", [(0.0, 2), (0.5, 2), (1.5, 0), (2.0, 0)])
def test_workers_start_only_when_other_work_leaves_cores_idle(monkeypatch, others_busy,
                                                             workers):
  """This process's own busy core (it is importing the image libraries while the sample is
  taken) is not load; other processes' work is."""
  from mnist_flax import reader_pool
  monkeypatch.setattr(reader_pool.os, "cpu_count", lambda: 2)
  monkeypatch.setattr(reader_pool.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
  monkeypatch.delitem(sys.modules, "jax", raising=False)  # As in the command, before JAX.
  ticks = 100  # Per core over the sample; this process is busy on one core throughout.
  own = ticks
  idle = 2 * ticks - own - others_busy * ticks
  after = (idle, 2 * ticks, own)
  monkeypatch.setattr(reader_pool, "cpu_times", lambda: after)
  assert reader_pool.worker_count(1000, (0.0, (0, 0, 0.0))) == workers
