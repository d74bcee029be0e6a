"""Hostile and odd inputs to ``python -m mnist_flax.infer``: never a traceback, never a hang.

Every case builds its file in a temporary folder and runs the real command in a subprocess,
measuring that child's wall time, CPU time and peak RSS (``os.wait4`` on its pid). A bad input
must give its documented exit code and exactly one line on stderr naming it (a "no digit" answer
is one line on stdout instead), within 5 s and 1 GB; the good files of the same call must still
be answered. An odd but valid file must be answered.

To stay fast (about 30 subprocesses), each bad case runs alone (cheap: no JAX is loaded when no
image is readable), then all of them together between two good files (text and JSON), and the
odd-but-valid files in one call.

The model is a random-weight checkpoint made once per session: what is tested here is
robustness, not accuracy. Where the shipped ``checkpoints/final`` exists, the odd-but-valid files
are also checked for the digit drawn in them.

Run: python -m pytest tests/test_infer_hostile.py -q
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest
from PIL import Image, features

from mnist_flax import preprocess
from mnist_flax.tools import samples
from mnist_flax.preprocess import read
from mnist_flax.errors import ImageError

ROOT = Path(__file__).resolve().parent.parent
# The shipped model; TEST_CHECKPOINT points the accuracy checks at another trained one.
REAL_CHECKPOINT = Path(os.environ.get("TEST_CHECKPOINT") or ROOT / "checkpoints" / "final")
SECONDS = 5.0
RSS_MB = 1024
ERROR = "mnist_flax.infer: error: "
NOTE = "mnist_flax.infer: note: "  # Said, not failed: a folder's subfolders not entered.
ANSWER = r"The recognized result is (\d) and the probability is ([01]\.\d{3})(?: \(unsure\))?\."


# --- Running the command -------------------------------------------------------------------


@dataclasses.dataclass
class Run:
  code: int
  out: list[str]
  err: list[str]
  seconds: float
  cpu: float
  rss_mb: float

  def __str__(self) -> str:  # What a failed assertion shows.
    return (f"exit {self.code}, {self.seconds:.2f} s, cpu {self.cpu:.2f} s, "
            f"{self.rss_mb:.0f} MB\nstdout: {self.out}\nstderr: {self.err}")


def time_limit() -> float:
  """5 s on a quiet machine. The tests share 2 cores with other jobs, and the limit is about
  this command's own cost, so it stretches with the load average (at most 3x); the CPU time,
  which other jobs do not inflate, is held to 5 s unstretched."""
  load = os.getloadavg()[0] / (os.cpu_count() or 1)
  return SECONDS * min(3.0, max(1.0, load))


def run_infer(*args: str, cwd: Path, prefix: Sequence[str] = (), timeout: float = 30) -> Run:
  """Runs the infer command; output is captured in files so we can reap with os.wait4, whose
  rusage is this child's alone (RUSAGE_CHILDREN would be the maximum over all earlier ones)."""
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
  command = [*prefix, sys.executable, "-m", "mnist_flax.infer", *args]
  with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
    start = time.monotonic()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=err)
    hung = False
    while True:
      pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
      if pid:
        break
      if time.monotonic() - start > timeout:
        proc.kill()
        pid, status, usage = os.wait4(proc.pid, 0)
        hung = True
        break
      time.sleep(0.005)
    seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # Reaped here; Popen must not wait.
    out.seek(0)
    err.seek(0)
    # Strict UTF-8: names that are not UTF-8 must reach the terminal escaped, not raw.
    stdout, stderr = out.read().decode("utf-8"), err.read().decode("utf-8")
  run = Run(proc.returncode, stdout.splitlines(), stderr.splitlines(), seconds,
            usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)
  assert not hung, f"no answer within {timeout} s (blocked?): {run}"
  return run


def check_clean(run: Run) -> None:
  """What every run owes a user: no traceback, every stderr line one project error (or note)
  line, and the time and memory limits."""
  assert "Traceback" not in "\n".join(run.out + run.err), run
  for line in run.err:
    assert line.startswith((ERROR, NOTE)), f"stray stderr line {line!r}: {run}"
  assert run.seconds < time_limit() and run.cpu < SECONDS, run
  assert run.rss_mb < RSS_MB, run


# --- Checkpoints ---------------------------------------------------------------------------

# --- Building the files --------------------------------------------------------------------


def _digit(digit: int, size: tuple[int, int] = (280, 280), **style) -> Image.Image:
  return samples.draw_digit(digit, np.random.default_rng(digit), size=size, **style)


def _encoded(image: Image.Image, fmt: str, **params) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, fmt, **params)
  return buffer.getvalue()


def _png(width: int, height: int, idat: bytes, *, bad_crc: bool = False) -> bytes:
  def chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) ^ (0xFFFFFFFF if bad_crc and kind == b"IHDR" else 0)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc & 0xFFFFFFFF)
  header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) +
          chunk(b"IEND", b""))


def _bomb(width: int, height: int, rows: int) -> bytes:
  """A valid header for width x height, with only ``rows`` rows of zeros: tiny on disk."""
  z = zlib.compressobj(9)
  row = bytes(1 + (width + 7) // 8)
  return _png(width, height, b"".join([z.compress(row) for _ in range(rows)] + [z.flush()]))


def _sparse(path: Path, head: bytes, size: int) -> None:
  """``head`` then zeros up to ``size`` bytes, without writing them (a sparse file)."""
  with open(path, "wb") as f:
    f.write(head)
    f.truncate(size)
  if os.stat(path).st_blocks * 512 > 16 << 20:  # The filesystem wrote the zeros out.
    path.unlink()
    pytest.skip("filesystem without sparse files: would write gigabytes")


def _write(name: str, data: bytes) -> Callable[[Path], str]:
  def build(folder: Path) -> str:
    (folder / name).write_bytes(data)
    return name
  return build


def _save(name: str, make: Callable[[], Image.Image], fmt: str | None = None,
          **params) -> Callable[[Path], str]:
  def build(folder: Path) -> str:
    make().save(folder / os.fsdecode(name), fmt, **params)
    return os.fsdecode(name)
  return build


def _truncated(name: str, fmt: str) -> Callable[[Path], str]:
  def build(folder: Path) -> str:
    data = _encoded(_digit(5).convert("RGB"), fmt)
    (folder / name).write_bytes(data[:len(data) // 2])
    return name
  return build


def _symlink(name: str, target: str, *more: tuple[str, str]) -> Callable[[Path], str]:
  def build(folder: Path) -> str:
    for link, to in ((name, target), *more):
      os.symlink(to, folder / link)
    return name
  return build


def _folder(name: str, files: dict[str, bytes]) -> Callable[[Path], str]:
  def build(folder: Path) -> str:
    (folder / name).mkdir()
    for child, data in files.items():
      (folder / name / child).write_bytes(data)
    return name
  return build


def _fifo(name: str) -> Callable[[Path], str]:
  def build(folder: Path) -> str:
    os.mkfifo(folder / name)
    return name
  return build


def _sparse_file(name: str, head: bytes, size: int) -> Callable[[Path], str]:
  def build(folder: Path) -> str:
    _sparse(folder / name, head, size)
    return name
  return build


def _gif_header(width: int, height: int) -> bytes:
  return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)


def _gif_bomb() -> bytes:
  """A real 10x10 GIF whose screen and frame claim 65535x65535: 4.3 gigapixels."""
  data = bytearray(_encoded(Image.new("L", (10, 10)), "GIF"))
  flags = data[10]
  i = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)  # After the colour table.
  while data[i] == 0x21:  # Skip extension blocks up to the image descriptor.
    i += 2
    while data[i]:
      i += data[i] + 1
    i += 1
  assert data[i] == 0x2C
  data[6:10] = struct.pack("<HH", 65_535, 65_535)
  data[i + 5:i + 9] = struct.pack("<HH", 65_535, 65_535)
  return bytes(data)


def _animated(folder: Path) -> str:
  first = _digit(3, (160, 160)).convert("P")
  frames = []
  for i in range(499):  # Each frame differs (a moving dot) so Pillow keeps all 500.
    frame = _digit(8, (160, 160)).convert("P")
    frame.putpixel((i % 160, i // 160), 0)
    frames.append(frame)
  first.save(folder / "anim500.gif", save_all=True, append_images=frames, duration=20)
  with Image.open(folder / "anim500.gif") as check:
    assert check.n_frames == 500
  return "anim500.gif"


def _exif_rotated(folder: Path) -> str:
  exif = Image.Exif()
  exif[0x0112] = 6  # Show after rotating 90 degrees clockwise: stored lying down.
  image = _digit(9, (280, 200)).convert("RGB").transpose(Image.Transpose.ROTATE_90)
  image.save(folder / "rotated.jpg", "JPEG", quality=92, exif=exif.tobytes())
  with Image.open(folder / "rotated.jpg") as check:  # Really stored lying down, tagged.
    assert check.size == (200, 280) and check.getexif().get(0x0112) == 6
  return "rotated.jpg"


def _palette_transparent(folder: Path) -> str:
  p = _digit(5).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
  p.save(folder / "palette.png", transparency=p.getpixel((0, 0)))
  with Image.open(folder / "palette.png") as check:
    assert check.mode == "P" and "transparency" in check.info
  return "palette.png"


def _transparent_gif(folder: Path) -> str:
  # A drawing app's export: black strokes on a transparent sheet whose hidden colour is
  # black too, so only the transparency tells ink from paper.
  ink = np.asarray(_digit(8).convert("L")) < 128
  image = Image.fromarray(ink.astype(np.uint8), "P")
  image.putpalette([0, 0, 0, 12, 12, 12] + [0, 0, 0] * 254)
  image.save(folder / "sheet.gif", transparency=0, optimize=False)
  with Image.open(folder / "sheet.gif") as check:
    assert check.info.get("transparency") is not None
  return "sheet.gif"


def _huge_photo() -> Image.Image:
  return _digit(7, (1000, 750), ink=(40, 40, 90), paper=(235, 230, 215)).resize(
      (8000, 6000), Image.Resampling.BILINEAR)


def _gray16() -> Image.Image:
  return Image.fromarray(np.asarray(_digit(2).convert("L"), np.uint16) * 257)


# Names that are not UTF-8 (a Latin-1 file system, a zip from another OS): built as bytes,
# passed as Python passes them (surrogate escapes), shown as \xNN.
LATIN1_BAD = os.fsdecode(b"caf\xe9.png")
LATIN1_GOOD = os.fsdecode(b"d\xe9j\xe0 vu 5.png")


def _shown(name: str) -> str:
  return os.fsencode(name).decode("utf-8", "backslashreplace").replace("\n", "\\n")


@dataclasses.dataclass(frozen=True)
class Case:
  id: str
  build: Callable[[Path], str]  # Writes the input into the folder; returns its path there.
  code: int  # 0 answered, 5 no digit, else the error's exit code
  says: str = ""  # A word the one error line must contain.
  digit: int | None = None  # For answered files: the digit drawn.
  needs: str = ""  # A Pillow feature the builder needs.


BAD = [
    Case("zero_byte", _write("zero_byte.jpg", b""), 4, "empty"),
    Case("truncated_jpeg", _truncated("truncated.jpg", "JPEG"), 4, "truncated"),
    Case("truncated_png", _truncated("truncated.png", "PNG"), 4, "truncated"),
    Case("truncated_gif", _truncated("truncated.gif", "GIF"), 4, "GIF"),
    Case("truncated_bmp", _truncated("truncated.bmp", "BMP"), 4, "truncated"),
    Case("text_as_jpg", _write("notes.jpg", b"shopping list\nmilk\n"), 4, "text file"),
    Case("html_as_png", _write("page.png", b"<!DOCTYPE html><html><body>404</body></html>"),
         4, "HTML"),
    Case("svg_as_png", _write("vector.png", b'<svg xmlns="http://www.w3.org/2000/svg"/>'),
         4, "SVG"),
    Case("pdf_as_jpg", _write("scan.jpg", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), 4, "PDF"),
    Case("heic_as_jpg", _write("iphone.jpg", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(64)),
         4, "HEIC"),
    Case("tiff_as_png", _save("scan_tiff.png", lambda: _digit(1), "TIFF"), 4, "TIFF"),
    Case("webp_as_jpg", _save("web.jpg", lambda: _digit(1), "WEBP"), 4, "WEBP", needs="webp"),
    Case("png_0x0", _write("empty_dims.png", _png(0, 0, zlib.compress(b""))), 4, "PNG"),
    Case("png_bad_crc", _write("bad_crc.png", _png(20, 20, zlib.compress(bytes(60)),
                                                   bad_crc=True)), 4, "bad_crc.png"),
    Case("bomb_40000", _write("bomb40k.png", _bomb(40_000, 40_000, 64)), 4, "too large"),
    Case("bomb_9000", _write("bomb9k.png", _bomb(9_000, 9_000, 9_000)), 4, "too large"),
    Case("gif_bomb", lambda folder: _write("bomb.gif", _gif_bomb())(folder), 4, "too large"),
    Case("sparse_20gib", _sparse_file("endless.jpg", b"\xff\xd8\xff\xe0", 20 << 30), 4,
         "too big"),
    Case("stall_jpeg", _sparse_file("stall.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", 512 << 20),
         4, "no image data"),
    Case("stall_gif", _sparse_file("stall.gif", _gif_header(100, 100), 512 << 20), 4,
         "no image data"),
    Case("dev_zero", _symlink("zeros.jpg", "/dev/zero"), 4, "not a regular file"),
    Case("fifo", _fifo("pipe.png"), 4, "not a regular file"),
    Case("dir_named_png", _folder("x.png", {}), 1, "folder"),
    Case("empty_folder", _folder("nothing_here", {}), 1, "folder"),
    Case("folder_of_non_images", _folder("docs", {"a.txt": b"x", "b.html": b"<html>",
                                                  "c.jpg": b"not really"}), 1, "folder"),
    Case("broken_symlink", _symlink("dangling.png", "gone.png"), 1, "broken symbolic link"),
    Case("symlink_loop", _symlink("loop_a.png", "loop_b.png", ("loop_b.png", "loop_a.png")),
         4, "symbolic link loop"),
    Case("missing", lambda folder: "missing.png", 1, "no such file"),
    Case("newline_in_name", _write("bad\nname.png", b"plain text"), 4, "text file"),
    Case("latin1_name", _write(LATIN1_BAD, b"<html></html>"), 4, "HTML"),
    Case("all_black", _save("black.png", lambda: Image.new("L", (200, 200), 0)), 5),
    Case("all_white", _save("white.jpg", lambda: Image.new("RGB", (300, 200), "white"),
                            "JPEG"), 5),
    Case("1x1", _save("dot.png", lambda: Image.new("L", (1, 1), 0)), 5),
    Case("100000x1", _save("line.png", lambda: Image.new("L", (100_000, 1), 255)), 5),
]

ODD_BUT_VALID = [
    Case("animated_gif_500_frames", _animated, 0, digit=3),
    Case("gray16_png", _save("gray16.png", _gray16), 0, digit=2),
    Case("cmyk_jpeg", _save("cmyk.jpg", lambda: _digit(6, ink=(20, 30, 120), paper=(
        250, 245, 230)).convert("CMYK"), "JPEG", quality=90), 0, digit=6),
    Case("palette_png_transparency", _palette_transparent, 0, digit=5),
    Case("exif_rotated_jpeg", _exif_rotated, 0, digit=9),
    Case("png_named_jpg", _save("really_png.jpg", lambda: _digit(4), "PNG"), 0, digit=4),
    Case("transparent_gif", _transparent_gif, 0, digit=8),
    Case("bmp_1bit", _save("bilevel.bmp", lambda: _digit(0).convert("1"), "BMP"), 0, digit=0),
    Case("jpeg_garbage_appended", lambda folder: (
        (folder / "tail.jpg").write_bytes(_encoded(_digit(1).convert("RGB"), "JPEG") +
                                          os.urandom(5000)), "tail.jpg")[1], 0, digit=1),
    Case("progressive_jpeg", _save("progressive.jpg", lambda: _digit(2).convert("RGB"), "JPEG",
                                   progressive=True, quality=80), 0, digit=2),
    Case("spaces_in_name", _save("my digit 3.png", lambda: _digit(3)), 0, digit=3),
    Case("latin1_name", _save(LATIN1_GOOD, lambda: _digit(5)), 0, digit=5),
]
HUGE = Case("huge_8000x6000_photo", _save("photo.jpg", _huge_photo, "JPEG", quality=85), 0,
            digit=7)


def _available(cases: list[Case]) -> list[Case]:
  return [c for c in cases if not c.needs or features.check(c.needs)]


def _good(folder: Path, name: str, digit: int) -> str:
  _digit(digit).save(folder / name)
  return name


# --- Each bad input alone ------------------------------------------------------------------


@pytest.mark.parametrize("case", _available(BAD), ids=lambda c: c.id)
def test_bad_input_alone(case: Case, tmp_path: Path, random_checkpoint: Path):
  name = case.build(tmp_path)
  run = run_infer("--i", name, "--checkpoint", str(random_checkpoint), cwd=tmp_path)
  check_clean(run)
  assert run.code == case.code, run
  if case.code == 5:  # An answer, not a failure: on stdout, nothing on stderr.
    assert run.out == ["No digit found."] and run.err == [], run
  else:
    assert run.out == [] and len(run.err) == 1, run
    assert _shown(name) in run.err[0] and case.says in run.err[0], run


# --- All of them between good files --------------------------------------------------------


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[Case, str]]]:
  folder = tmp_path_factory.mktemp("bad")
  built = [(case, case.build(folder)) for case in _available(BAD)]
  _good(folder, "good_first.png", 3)
  _good(folder, "good_last.png", 7)
  return folder, built


def test_bad_inputs_between_good_ones(bad_folder, random_checkpoint: Path):
  folder, built = bad_folder
  names = [name for _, name in built]
  run = run_infer("--i", "good_first.png", *names, "good_last.png",
                  "--checkpoint", str(random_checkpoint), cwd=folder)
  check_clean(run)
  assert run.code == built[0][0].code  # The first failing input's code.
  expected_out = [f"good_first.png: {ANSWER}"]
  expected_out += [re.escape(f"{_shown(name)}: No digit found.") for case, name in built
                   if case.code == 5]
  expected_out.append(f"good_last.png: {ANSWER}")
  assert len(run.out) == len(expected_out), run
  for line, pattern in zip(run.out, expected_out):
    assert re.fullmatch(pattern, line), (line, pattern)
  errors = [(case, name) for case, name in built if case.code not in (0, 5)]
  assert len(run.err) == len(errors), run  # One line per bad input, in input order.
  for line, (case, name) in zip(run.err, errors):
    assert _shown(name) in line and case.says in line, (case.id, line)


def test_bad_inputs_between_good_ones_json(bad_folder, random_checkpoint: Path):
  folder, built = bad_folder
  built = built[::-1]  # Another first failure, so the exit code follows input order.
  run = run_infer("--json", "--i", "good_first.png", *[name for _, name in built],
                  "good_last.png", "--checkpoint", str(random_checkpoint), cwd=folder)
  check_clean(run)
  assert run.code == built[0][0].code
  records = [json.loads(line) for line in run.out]
  assert [r["path"] for r in records] == (
      ["good_first.png"] + [_shown(name) for _, name in built] + ["good_last.png"])
  for record in (records[0], records[-1]):
    assert record["digit"] in range(10) and len(record["probabilities"]) == 10
  for record, (case, _) in zip(records[1:-1], built):
    assert record["digit"] is None and record["exit_code"] == case.code, (case.id, record)
    assert case.says in record["error"], (case.id, record)
  # One line per refused input; "no digit" is an answer, in its object only.
  assert len(run.err) == len([case for case, _ in built if case.code != 5]), run


# --- Odd but valid files -------------------------------------------------------------------


def _answers(run: Run, names: list[str]) -> dict[str, int]:
  digits = {}
  for line, name in zip(run.out, names):
    match = re.fullmatch(f"{re.escape(_shown(name))}: {ANSWER}", line)
    assert match, (line, name)
    digits[name] = int(match.group(1))
  assert len(run.out) == len(names), run
  return digits


def _checkpoint_for_digits(random_checkpoint: Path) -> tuple[Path, bool]:
  """The shipped model where it exists (then the digits must be right), else random weights."""
  if REAL_CHECKPOINT.is_dir():
    return REAL_CHECKPOINT, True
  return random_checkpoint, False


def test_odd_but_valid_files_are_answered(tmp_path: Path, random_checkpoint: Path):
  names = [case.build(tmp_path) for case in ODD_BUT_VALID]
  # A folder with non-images beside its images: only the images are answered, in order.
  mixed = tmp_path / "mixed"
  mixed.mkdir()
  _good(mixed, "a.png", 2)
  _digit(7).convert("RGB").save(mixed / "b.jpg")
  (mixed / "notes.txt").write_text("not an image")
  (mixed / "c.jpg").write_text("a text file named like an image")
  (mixed / ".hidden.png").write_bytes(b"")
  os.mkfifo(mixed / "d_pipe.png")  # Must be skipped without blocking.
  os.symlink("nowhere.png", mixed / "e_broken.png")
  os.symlink("f_loop.png", mixed / "f_loop.png")
  (mixed / "sub").mkdir()
  _good(mixed / "sub", "g.png", 1)  # Folders are not entered, and that is said.
  checkpoint, real = _checkpoint_for_digits(random_checkpoint)
  run = run_infer("--i", *names, "mixed", "--checkpoint", str(checkpoint), cwd=tmp_path)
  check_clean(run)
  assert run.code == 0 and run.err == [
      f"{NOTE}mixed: 1 subfolder not entered (sub); give it as a path to read its images",
      f"{NOTE}mixed: 1 file named like a picture is not a JPEG, PNG, GIF or BMP image (c.jpg); "
      "skipped (give a file as a path to see why)"], run
  digits = _answers(run, names + ["mixed/a.png", "mixed/b.jpg"])
  if real:
    expected = {name: case.digit for case, name in zip(ODD_BUT_VALID, names)}
    expected.update({"mixed/a.png": 2, "mixed/b.jpg": 7})
    assert digits == expected


def test_huge_legal_photo_is_answered_in_time(tmp_path: Path, random_checkpoint: Path):
  name = HUGE.build(tmp_path)
  assert Image.open(tmp_path / name).size == (8000, 6000)
  checkpoint, real = _checkpoint_for_digits(random_checkpoint)
  run = run_infer("--i", name, "--checkpoint", str(checkpoint), cwd=tmp_path)
  check_clean(run)
  assert run.code == 0 and len(run.out) == 1 and run.err == [], run
  match = re.fullmatch(ANSWER, run.out[0])
  assert match, run
  if real:
    assert int(match.group(1)) == HUGE.digit


@pytest.mark.skipif(not REAL_CHECKPOINT.is_dir(),
                    reason="checkpoints/final not trained yet: digits checked once it exists")
def test_real_model_reads_odd_files_correctly():
  """A marker in the report: the digit checks above ran against the shipped model."""


# --- Permissions, pipes, the command line --------------------------------------------------


def _without_root_override() -> list[str]:
  """A prefix that runs the command without the capabilities that let root read any file."""
  if os.geteuid() != 0:
    return []
  if shutil.which("setpriv") is None:
    pytest.skip("running as root and setpriv is missing: permission bits cannot be tested")
  caps = "-dac_override,-dac_read_search"
  return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--"]


def test_unreadable_file_between_good_ones(tmp_path: Path, random_checkpoint: Path):
  prefix = _without_root_override()
  _good(tmp_path, "good_first.png", 3)
  _good(tmp_path, "secret.png", 4)  # A real image: only the permission is missing.
  (tmp_path / "secret.png").chmod(0)
  _good(tmp_path, "good_last.png", 7)
  run = run_infer("--i", "good_first.png", "secret.png", "good_last.png",
                  "--checkpoint", str(random_checkpoint), cwd=tmp_path, prefix=prefix)
  check_clean(run)
  assert run.code == 4, run
  assert len(run.err) == 1 and "secret.png" in run.err[0] and "Permission denied" in run.err[0]
  assert [line.split(":")[0] for line in run.out] == ["good_first.png", "good_last.png"], run


def test_output_closed_early_is_quiet(tmp_path: Path):
  # `infer ... | head -1`: thousands of answers (cheap "no digit" ones, no JAX needed) into
  # a pipe whose reader has gone.
  Image.new("L", (8, 8), 255).save(tmp_path / "blank.png")
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  proc = subprocess.Popen([sys.executable, "-m", "mnist_flax.infer", "--i",
                           *["blank.png"] * 4000], cwd=tmp_path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  assert proc.stdout is not None and proc.stderr is not None
  proc.stdout.readline()
  proc.stdout.close()
  stderr = proc.stderr.read().decode()
  assert proc.wait(timeout=30) == 141 and stderr == "", stderr


@pytest.mark.parametrize("args, says", [
    (["--top-k", "0"], "--top-k"),
    (["--top-k", "11"], "--top-k"),
    (["--top-k", "three"], "--top-k"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["--save-preprocessed", "good.png/out"], "--save-preprocessed"),
    (["--save-preprocessed", "/proc/no_such_dir/out"], "--save-preprocessed"),
], ids=["top_k_0", "top_k_11", "top_k_word", "unknown_flag", "save_under_a_file",
        "save_under_proc"])
def test_bad_command_line(args: list[str], says: str, tmp_path: Path):
  _good(tmp_path, "good.png", 3)
  run = run_infer("--i", "good.png", *args, cwd=tmp_path)
  check_clean(run)
  assert run.code == 2 and run.out == [] and len(run.err) == 1, run
  assert says in run.err[0], run


def test_no_input_path(tmp_path: Path):
  run = run_infer(cwd=tmp_path)
  check_clean(run)
  assert run.code == 2 and len(run.err) == 1 and "no image given" in run.err[0], run


def test_read_only_output_folder(tmp_path: Path, random_checkpoint: Path):
  prefix = _without_root_override()
  _good(tmp_path, "good.png", 3)
  (tmp_path / "locked").mkdir(mode=0o555)
  run = run_infer("--i", "good.png", "--save-preprocessed", "locked",
                  "--checkpoint", str(random_checkpoint), cwd=tmp_path, prefix=prefix)
  check_clean(run)
  assert run.code == 2 and len(run.err) == 1 and "locked" in run.err[0], run


@pytest.mark.parametrize("make", ["missing", "empty_folder"])
def test_checkpoint_problem(make: str, tmp_path: Path):
  _good(tmp_path, "good.png", 3)
  if make == "empty_folder":
    (tmp_path / "ckpt").mkdir()
  run = run_infer("--i", "good.png", "--checkpoint", "ckpt", cwd=tmp_path)
  check_clean(run)
  assert run.code == 3 and run.out == [] and len(run.err) == 1, run
  assert "train one with: python -m mnist_flax.main" in run.err[0], run


# --- The reading safeguards, in process ----------------------------------------------------


def test_time_budget_stops_any_slow_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
  _good(tmp_path, "fine.png", 3)
  monkeypatch.setattr(read, "_READ_SECONDS", -1.0)  # Already spent.
  with pytest.raises(ImageError, match="gave up reading .*fine.png"):
    preprocess.open_image(tmp_path / "fine.png")


def test_crawl_through_junk_is_stopped_fast(tmp_path: Path):
  _sparse(tmp_path / "stall.gif", _gif_header(50, 50), 256 << 20)
  start = time.perf_counter()
  with pytest.raises(ImageError, match="no image data"):
    preprocess.open_image(tmp_path / "stall.gif")
  assert time.perf_counter() - start < 1.5
