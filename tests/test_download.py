"""Tests for mnist_flax.download: real TFDS downloads from loopback servers only, no internet."""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import functools
import gzip
import hashlib
import http.server
import os
import pathlib
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from mnist_flax import download
from mnist_flax.errors import DataError

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
  # A proxy from the environment would carry loopback requests off this machine.
  for name in _PROXY_VARS:
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
  monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def _idx_files() -> dict[str, bytes]:
  """Tiny but valid gzipped IDX files: a few 28x28 images and their labels per split."""

  def images(count: int, seed: int) -> bytes:
    pixels = bytes((seed + 37 * i) % 256 for i in range(count * 28 * 28))
    return struct.pack(">IIII", 0x803, count, 28, 28) + pixels

  def labels(values: bytes) -> bytes:
    return struct.pack(">II", 0x801, len(values)) + values

  raw = {
      "train-images-idx3-ubyte.gz": images(3, seed=1),
      "train-labels-idx1-ubyte.gz": labels(bytes([7, 2, 1])),
      "t10k-images-idx3-ubyte.gz": images(2, seed=2),
      "t10k-labels-idx1-ubyte.gz": labels(bytes([0, 4])),
  }
  return {name: gzip.compress(data, mtime=0) for name, data in raw.items()}


def _checksums(files: dict[str, bytes]) -> dict[str, tuple[int, str]]:
  return {name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in files.items()}


@contextlib.contextmanager
def _http_server(root: pathlib.Path) -> Iterator[str]:
  """Serves ``root`` on 127.0.0.1; yields the base URL."""

  class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
      pass

  server = http.server.ThreadingHTTPServer(
      ("127.0.0.1", 0), functools.partial(QuietHandler, directory=os.fspath(root))
  )
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield f"http://127.0.0.1:{server.server_address[1]}/"
  finally:
    server.shutdown()
    server.server_close()


@contextlib.contextmanager
def _stalling_server(first_bytes: bytes) -> Iterator[str]:
  """Accepts connections, sends ``first_bytes`` (maybe nothing) and then never another byte."""
  listener = socket.create_server(("127.0.0.1", 0))
  connections: list[socket.socket] = []

  def serve() -> None:
    while True:
      try:
        connection, _ = listener.accept()
      except OSError:
        return
      connections.append(connection)
      connection.sendall(first_bytes)

  threading.Thread(target=serve, daemon=True).start()
  try:
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
  finally:
    listener.close()
    for connection in connections:
      connection.close()


def _closed_port_url() -> str:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  return f"http://127.0.0.1:{port}/"


def _urls(base: str) -> dict[str, str]:
  return {name: base + name for name in download.MNIST_FILES}


def _served(tmp_path: pathlib.Path, files: dict[str, bytes]) -> pathlib.Path:
  root = tmp_path / "mirror"
  root.mkdir()
  for name, data in files.items():
    (root / name).write_bytes(data)
  return root


def _complete_looking_files(cache: pathlib.Path) -> list[pathlib.Path]:
  """Files a later run could take as downloaded: anything outside TFDS's tmp dirs."""
  return [
      p for p in cache.rglob("*")
      if p.is_file() and not any(".tmp." in part for part in p.relative_to(cache).parts)
  ]


def test_registered_sources_are_tfds_mnist_mirror() -> None:
  urls, checksums = download.registered_sources()
  assert set(urls) == set(checksums) == set(download.MNIST_FILES)
  assert all(url.startswith("https://storage.googleapis.com/cvdf-datasets/mnist/") for url in
             urls.values())
  assert checksums["train-images-idx3-ubyte.gz"][0] == 9912422


def test_downloads_with_canonical_names_then_reuses_cache_offline(
    tmp_path: pathlib.Path, capfd: pytest.CaptureFixture[str]
) -> None:
  files = _idx_files()
  cache = tmp_path / "cache"
  with _http_server(_served(tmp_path, files)) as base:
    folder = download.fetch_mnist(
        cache, urls=_urls(base), checksums=_checksums(files), timeout=5.0, progress=True
    )
  assert folder == cache / "mnist_idx"
  assert sorted(p.name for p in folder.iterdir()) == sorted(download.MNIST_FILES)
  for name, data in files.items():
    assert (folder / name).read_bytes() == data
  assert "Dl Completed" in capfd.readouterr().err  # TFDS's own tqdm bar
  assert len(list((cache / "mnist").glob("*.INFO"))) == 4  # TFDS's cache, shared with tfds.load
  assert not list((cache / "mnist").glob("*.tmp.*"))

  # Server gone and the URLs now lead nowhere: only the cache can answer.
  start = time.monotonic()
  again = download.fetch_mnist(
      cache, urls=_urls(_closed_port_url()), checksums=_checksums(files), progress=False
  )
  assert again == folder
  assert time.monotonic() - start < 1.0


def test_slow_helper_start_is_not_taken_for_a_silent_mirror(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
  # A fresh install compiles tensorflow-datasets' bytecode on its first import: seconds.
  monkeypatch.setattr(download, "_CHILD_CODE", "import time; time.sleep(3); " + download._CHILD_CODE)
  files = _idx_files()
  with _http_server(_served(tmp_path, files)) as base:
    folder = download.fetch_mnist(
        tmp_path / "cache", urls=_urls(base), checksums=_checksums(files), timeout=1.0,
        progress=False,
    )
  assert all((folder / name).read_bytes() == data for name, data in files.items())


def test_damaged_cache_is_downloaded_again(
    tmp_path: pathlib.Path, capfd: pytest.CaptureFixture[str]
) -> None:
  files = _idx_files()
  cache = tmp_path / "cache"
  kwargs = dict(checksums=_checksums(files), timeout=5.0, progress=False)
  with _http_server(_served(tmp_path, files)) as base:
    folder = download.fetch_mnist(cache, urls=_urls(base), **kwargs)
    # Same size, other bytes: TFDS would still take its cached file by name.
    target = (folder / "train-labels-idx1-ubyte.gz").resolve()
    target.write_bytes(bytes(len(files["train-labels-idx1-ubyte.gz"])))
    capfd.readouterr()
    assert download.fetch_mnist(cache, urls=_urls(base), **kwargs) == folder
  assert (folder / "train-labels-idx1-ubyte.gz").read_bytes() == files["train-labels-idx1-ubyte.gz"]
  assert capfd.readouterr().err == ""  # progress=False keeps TFDS quiet


def test_checksum_mismatch_leaves_nothing_that_looks_complete(tmp_path: pathlib.Path) -> None:
  files = _idx_files()
  expected = _checksums(files)
  served = dict(files, **{"t10k-labels-idx1-ubyte.gz": gzip.compress(b"not the right bytes")})
  cache = tmp_path / "cache"
  with _http_server(_served(tmp_path, served)) as base:
    with pytest.raises(DataError) as error:
      download.fetch_mnist(cache, urls=_urls(base), checksums=expected, timeout=5.0,
                           progress=False)
  message = str(error.value)
  assert "t10k-labels-idx1-ubyte.gz" in message and "sha256" in message
  assert "\n" not in message and error.value.exit_code == 6
  assert not (cache / "mnist_idx").exists()
  leftovers = _complete_looking_files(cache)
  # The three good files may stay in TFDS's cache (verified, reusable); the bad one must not.
  assert all(p.name.startswith("127.0.0.1") for p in leftovers)
  assert not any("t10k-labels" in p.name for p in leftovers)
  assert not list(cache.rglob("*.tmp.*"))


def _assert_fails_fast(cache: pathlib.Path, urls: dict[str, str], timeout: float) -> str:
  start = time.monotonic()
  with pytest.raises(DataError) as error:
    download.fetch_mnist(cache, urls=urls, timeout=timeout, progress=False)
  # On top of `timeout`: the probe and the helper's start-up (importing tensorflow-datasets).
  assert time.monotonic() - start < timeout + 10.0
  message = str(error.value)
  assert "--config.data.dir=" in message and "MNIST_DATA_DIR=" in message
  assert "\n" not in message
  return message


def test_closed_port_fails_within_timeout(tmp_path: pathlib.Path) -> None:
  message = _assert_fails_fast(tmp_path / "cache", _urls(_closed_port_url()), timeout=3.0)
  assert "refused" in message


def test_failed_download_names_the_flag_of_the_command_at_hand(tmp_path: pathlib.Path) -> None:
  with pytest.raises(DataError) as error:
    download.fetch_mnist(tmp_path / "cache", urls=_urls(_closed_port_url()), timeout=3.0,
                         progress=False, flag="--data_dir")
  message = str(error.value)
  assert "use local files instead: --data_dir=/path/to/mnist or MNIST_DATA_DIR=" in message
  assert "--config" not in message and "\n" not in message
  assert all(name in message for name in download.MNIST_FILES)


@pytest.mark.parametrize(
    "first_bytes",
    [
        pytest.param(b"", id="never-answers"),
        pytest.param(
            b"HTTP/1.0 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"\x1f\x8b" + bytes(998),
            id="stalls-mid-file",
        ),
    ],
)
def test_silent_mirror_fails_within_timeout(tmp_path: pathlib.Path, first_bytes: bytes) -> None:
  cache = tmp_path / "cache"
  with _stalling_server(first_bytes) as base:
    message = _assert_fails_fast(cache, _urls(base), timeout=2.0)
  assert "no data from 127.0.0.1" in message
  assert _complete_looking_files(cache) == []
  assert not list(cache.rglob("*.tmp.*"))


def test_no_tensorflow_imported(tmp_path: pathlib.Path) -> None:
  files = _idx_files()
  with _http_server(_served(tmp_path, files)) as base:
    script = textwrap.dedent(f"""
        import sys
        import mnist_flax.download as download
        from mnist_flax.errors import DataError
        assert "tensorflow_datasets" not in sys.modules  # imported lazily, in the helper only
        for base in ({base!r}, {_closed_port_url()!r}):
          urls = {{name: base + name for name in download.MNIST_FILES}}
          try:
            download.fetch_mnist({os.fspath(tmp_path / "cache")!r}, urls=urls, timeout=5,
                                 progress=False)  # registered checksums: mismatch
          except DataError:
            pass
          else:
            raise AssertionError("fetch should have failed")
        print(sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        cwd=pathlib.Path(download.__file__).parent.parent,
    )
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "[]"
