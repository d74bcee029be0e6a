"""Fetches the four canonical MNIST IDX files through tensorflow-datasets, without TensorFlow.

Training reads MNIST from a folder holding ``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz``.
When the user gives no such folder (``data.dir`` / ``MNIST_DATA_DIR``), this module gets one::

  from mnist_flax.download import fetch_mnist
  folder = fetch_mnist()  # e.g. ~/tensorflow_datasets/downloads/mnist_idx

Downloads go through ``tfds.download.DownloadManager`` with the URLs, sizes and sha256 sums that
tensorflow-datasets registers for its ``mnist`` dataset, so TFDS verifies every byte and shares its
cache with ``tfds.load("mnist")``. The TFDS *builder* is not used: it needs TensorFlow to decode
the files, and TensorFlow is not a dependency. Failures (offline, mirror silent, bad checksum) raise
``DataError`` once the mirror has been unreachable or silent for ``timeout`` seconds, with a message
on how to use local files instead.

Cache layout under ``cache_dir`` (default ``$TFDS_DATA_DIR/downloads``, else
``~/tensorflow_datasets/downloads``, the folder TFDS itself downloads to)::

  mnist/<TFDS hashed name>.gz[.INFO]  files as TFDS stores them (TFDS's own convention)
  mnist_idx/<canonical name>.gz       symlinks to those (copies where symlinks fail)

A later call whose ``mnist_idx`` files have the registered size and sha256 returns at once,
without network and without importing tensorflow-datasets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import hashlib
import importlib.util
import json
import logging
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

from mnist_flax import data
from mnist_flax.constants import FILES_GZ
from mnist_flax.errors import DataError, one_line

MNIST_FILES: tuple[str, ...] = FILES_GZ  # As TFDS registers and downloads them.

# TFDS's name for the dataset: its checksum file is url_checksums/mnist.txt and the builder
# downloads into downloads/mnist/, which we share so neither side downloads twice.
_TFDS_NAME = "mnist"
_IDX_SUBDIR = "mnist_idx"
_POLL_SECONDS = 0.2
# The helper's first import of tensorflow-datasets compiles its bytecode: seconds on a fresh
# install, on a busy machine more than a short `timeout`. That is not the mirror being silent, so
# the silence clock starts once the helper says it is ready; start-up has this bound of its own.
_STARTUP_SECONDS = 120.0
_READY = "ready"

# TFDS blocks on an unresponsive mirror forever and retries refused connections for minutes, and
# its download threads are joined at interpreter exit, so a thread we stopped waiting for would
# still hang the process at exit. A child process is the only download we can really abandon.
_CHILD_CODE = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from mnist_flax.download import _tfds_download_child; _tfds_download_child(sys.argv[2])"
)


def fetch_mnist(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    timeout: float = 10.0,
    progress: bool = True,
    urls: Mapping[str, str] | None = None,
    checksums: Mapping[str, tuple[int, str]] | None = None,
    flag: str = data.CONFIG_FLAG,
) -> pathlib.Path:
  """Returns a directory holding the four canonical MNIST ``.gz`` IDX files, downloading if needed.

  Args:
    cache_dir: TFDS download directory to use; default ``$TFDS_DATA_DIR/downloads`` or
      ``~/tensorflow_datasets/downloads``.
    timeout: seconds the mirror may stay unreachable or silent before giving up. A download that
      keeps receiving data is not cut off, however slow.
    progress: show TFDS's tqdm progress bars on stderr.
    urls: canonical file name -> URL; default TFDS's registered MNIST mirror. For tests and
      private mirrors.
    checksums: canonical file name -> (size in bytes, sha256 hex); default TFDS's registered
      values, which the downloaded files must match.
    flag: the calling command's own flag for a local folder, named in the error's hint.

  Returns:
    ``<cache_dir>/mnist_idx``, holding the files named as in ``MNIST_FILES``.

  Raises:
    DataError: the files could not be downloaded or failed verification.
  """
  try:
    return _fetch(cache_dir, timeout, progress, urls, checksums)
  except _DownloadFailed as e:
    raise DataError(f"could not download MNIST through tensorflow-datasets ({e}); use local "
                    f"files instead: {data.how_to_point(flag)}") from e


def _fetch(cache_dir: str | os.PathLike[str] | None, timeout: float, progress: bool,
           urls: Mapping[str, str] | None,
           checksums: Mapping[str, tuple[int, str]] | None) -> pathlib.Path:
  start = time.monotonic()
  urls, checksums = _sources(urls, checksums)
  download_dir = (
      _default_download_dir() if cache_dir is None else pathlib.Path(cache_dir).expanduser()
  )
  idx_dir = download_dir / _IDX_SUBDIR
  if all(_matches(idx_dir / name, checksums[name]) for name in MNIST_FILES):
    return idx_dir

  reason = _unreachable_reason(urls.values(), max(0.1, timeout - (time.monotonic() - start)))
  if reason:
    raise _download_failed(reason)

  # TFDS trusts its cache by file name alone, so a damaged cached file gets one re-download.
  for _ in range(2):
    downloaded = _download_with_tfds(download_dir, urls, checksums, timeout, progress)
    damaged = [name for name, path in downloaded.items() if not _matches(path, checksums[name])]
    if not damaged:
      break
    for name in damaged:
      downloaded[name].unlink(missing_ok=True)
      downloaded[name].with_name(downloaded[name].name + ".INFO").unlink(missing_ok=True)
  else:
    raise _download_failed(f"{', '.join(damaged)} failed the size/sha256 check twice")

  try:
    _publish(idx_dir, downloaded)
  except OSError as e:
    raise _download_failed(f"cannot write {idx_dir}: {e.strerror or e}") from e
  return idx_dir


def registered_sources() -> tuple[dict[str, str], dict[str, tuple[int, str]]]:
  """Returns TFDS's registered MNIST (urls, checksums), keyed by canonical file name.

  Reads ``tensorflow_datasets/url_checksums/mnist.txt`` (url, size, sha256, file name per line)
  as a text file, the table the TFDS MNIST builder itself loads: asking the builder instead costs
  the tensorflow-datasets import, and its ``url_infos`` needs ``importlib_resources``.
  """
  spec = importlib.util.find_spec("tensorflow_datasets")  # locates without importing
  if spec is None or not spec.submodule_search_locations:
    raise _download_failed("tensorflow-datasets is not installed")
  table = pathlib.Path(list(spec.submodule_search_locations)[0], "url_checksums", "mnist.txt")
  urls: dict[str, str] = {}
  checksums: dict[str, tuple[int, str]] = {}
  try:
    lines = table.read_text().splitlines()
  except OSError as e:
    raise _download_failed(f"cannot read TFDS's MNIST checksums {table}: {e.strerror}") from e
  for line in lines:
    fields = line.strip().split("\t")
    if len(fields) < 3 or line.startswith("#"):
      continue
    url, size, sha256 = fields[:3]
    name = fields[3] if len(fields) > 3 else url.rsplit("/", 1)[-1]
    if name in MNIST_FILES:
      urls[name] = url
      checksums[name] = (int(size), sha256)
  if set(urls) != set(MNIST_FILES):
    raise _download_failed(f"{table} does not list all four MNIST files")
  return urls, checksums


def _sources(
    urls: Mapping[str, str] | None, checksums: Mapping[str, tuple[int, str]] | None
) -> tuple[dict[str, str], dict[str, tuple[int, str]]]:
  if urls is None or checksums is None:
    registered_urls, registered_checksums = registered_sources()
    urls = registered_urls if urls is None else urls
    checksums = registered_checksums if checksums is None else checksums
  for what, mapping in (("urls", urls), ("checksums", checksums)):
    if set(mapping) != set(MNIST_FILES):
      raise ValueError(f"{what} must have exactly the keys {MNIST_FILES}, got {sorted(mapping)}")
  return dict(urls), {name: (int(size), sha) for name, (size, sha) in checksums.items()}


def _default_download_dir() -> pathlib.Path:
  # Same rule as tensorflow_datasets.core.constants.get_default_data_dir, without importing it.
  data_dir = os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
  return pathlib.Path(data_dir).expanduser() / "downloads"


class _DownloadFailed(DataError):
  """Why the download failed, in one line; ``fetch_mnist`` adds how to use local files."""


def _download_failed(reason: str) -> DataError:
  return _DownloadFailed(one_line(reason))


def _matches(path: pathlib.Path, expected: tuple[int, str]) -> bool:
  """Whether ``path`` is a file with the expected (size, sha256)."""
  size, sha256 = expected
  try:
    if path.stat().st_size != size:  # cheap reject before hashing
      return False
    digest = hashlib.sha256()
    with path.open("rb") as f:
      while block := f.read(1 << 20):
        digest.update(block)
  except OSError:
    return False
  return digest.hexdigest() == sha256


def _endpoint(url: str) -> tuple[str, int]:
  """The (host, port) a download of ``url`` connects to first: the mirror or its proxy."""
  parts = urllib.parse.urlsplit(url)
  host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
  # requests, which TFDS downloads with, takes proxies from the same environment variables.
  proxies = urllib.request.getproxies_environment()
  proxy = proxies.get(parts.scheme) or proxies.get("all")
  if proxy and not urllib.request.proxy_bypass_environment(host, proxies):
    proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    default_port = 443 if proxy_parts.scheme == "https" else 80
    return proxy_parts.hostname or "", proxy_parts.port or default_port
  return host, port


def _unreachable_reason(urls: Iterable[str], timeout: float) -> str | None:
  """Tries a TCP connection to each mirror; returns why one failed, or None if all answered."""
  endpoints = sorted({_endpoint(url) for url in urls})
  outcome: list[str | None] = []

  def probe() -> None:
    for host, port in endpoints:
      try:
        socket.create_connection((host, port), timeout=timeout).close()
      except socket.gaierror:
        outcome.append(f"cannot resolve host {host}; offline?")
        return
      except TimeoutError:
        outcome.append(f"{host}:{port} did not answer within {timeout:g} s")
        return
      except ConnectionRefusedError:
        outcome.append(f"{host}:{port} refused the connection")
        return
      except OSError as e:
        outcome.append(f"{host}:{port} unreachable: {e.strerror or e}")
        return
    outcome.append(None)

  # Name resolution has no timeout of its own; a daemon thread can be left behind harmlessly.
  thread = threading.Thread(target=probe, name="mnist-mirror-probe", daemon=True)
  thread.start()
  thread.join(timeout)
  if not outcome:
    return f"no answer from {', '.join(h for h, _ in endpoints)} within {timeout:g} s"
  return outcome[0]


def _download_with_tfds(
    download_dir: pathlib.Path,
    urls: Mapping[str, str],
    checksums: Mapping[str, tuple[int, str]],
    timeout: float,
    progress: bool,
) -> dict[str, pathlib.Path]:
  """Runs the TFDS download in a child process, killed once no data arrived for ``timeout`` s."""
  # TFDS downloads into <download_dir>/mnist/<name>.tmp.<uuid>/ and renames the file out only
  # after its checksum matched, so those files show progress and never look complete.
  tmp_glob = f"{_TFDS_NAME}/*.tmp.*"
  tmp_dirs_before = set(download_dir.glob(tmp_glob))
  spec = {
      "download_dir": os.fspath(download_dir),
      "progress": progress,
      "files": {name: [urls[name], *checksums[name]] for name in MNIST_FILES},
  }
  package_parent = os.fspath(pathlib.Path(__file__).resolve().parent.parent)
  process = subprocess.Popen(
      [sys.executable, "-c", _CHILD_CODE, package_parent, json.dumps(spec)],
      stdin=subprocess.DEVNULL,
      stdout=subprocess.PIPE,
      stderr=None if progress else subprocess.DEVNULL,
      text=True,
  )
  lines: list[str] = []  # the child's stdout: _READY, then its JSON result
  reader = threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True)
  reader.start()
  seen_sizes: dict[pathlib.Path, int] = {}
  launched = time.monotonic()
  last_data: float | None = None  # set once the child is ready to download
  try:
    while True:
      try:
        process.wait(timeout=_POLL_SECONDS)
        break
      except subprocess.TimeoutExpired:
        pass
      now = time.monotonic()
      if last_data is None:
        if _READY + "\n" in lines:
          last_data = now
        elif now - launched >= _STARTUP_SECONDS:
          raise _download_failed(
              f"the download helper did not start within {_STARTUP_SECONDS:g} s")
        continue
      try:
        partial = list(download_dir.glob(f"{tmp_glob}/*"))
      except OSError:  # A temporary folder moved or removed while it was listed.
        partial = []
      for path in partial:
        try:
          size = path.stat().st_size
        except OSError:  # renamed out as complete since the glob
          continue
        if size > seen_sizes.get(path, 0):
          seen_sizes[path] = size
          last_data = now
      if now - last_data >= timeout:
        hosts = ", ".join(sorted({urllib.parse.urlsplit(u).hostname or u for u in urls.values()}))
        raise _download_failed(f"no data from {hosts} for {timeout:g} s")
    reader.join()
    result = _child_result("".join(lines), process.returncode)
    if "error" in result:
      raise _download_failed(result["error"])
    return {name: pathlib.Path(path) for name, path in result["paths"].items()}
  except BaseException:
    if process.poll() is None:
      process.kill()
      process.wait()
    # A killed or failed download leaves a tmp dir behind; ours are the ones that are new.
    for tmp_dir in set(download_dir.glob(tmp_glob)) - tmp_dirs_before:
      shutil.rmtree(tmp_dir, ignore_errors=True)
    raise


def _child_result(output: str, returncode: int) -> dict[str, object]:
  lines = [line for line in output.splitlines() if line.strip()]
  try:
    result = json.loads(lines[-1])
  except (IndexError, ValueError):
    return {"error": f"the download helper process exited with code {returncode}"}
  return result if isinstance(result, dict) else {"error": "the download helper misbehaved"}


def _publish(idx_dir: pathlib.Path, downloaded: Mapping[str, pathlib.Path]) -> None:
  """Makes ``idx_dir/<canonical name>`` point at the TFDS files, each replaced atomically."""
  idx_dir.mkdir(parents=True, exist_ok=True)
  for name, source in downloaded.items():
    staging = idx_dir / f".{name}.{os.getpid()}.tmp"
    staging.unlink(missing_ok=True)
    try:
      # Relative, so the cache folder can be moved or mounted elsewhere.
      os.symlink(os.path.relpath(source, idx_dir), staging)
    except OSError:
      shutil.copyfile(source, staging)
    os.replace(staging, idx_dir / name)


def _tfds_download_child(spec_json: str) -> None:
  """Child process body: downloads with TFDS and prints ``{"paths": ...}`` or ``{"error": ...}``."""
  # tfds.download is lazy and TensorFlow-free; only the dataset builders need TensorFlow.
  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core import utils as tfds_utils
  from tensorflow_datasets.core.download import checksums as tfds_checksums
  from tensorflow_datasets.core.download import download_manager as tfds_download_manager
  # pylint: enable=g-import-not-at-top

  print(_READY, flush=True)  # the parent's silence clock starts now
  spec = json.loads(spec_json)
  if not spec["progress"]:
    tfds.disable_progress_bar()
  # urllib3 logs every one of TFDS's retries; the parent reports the outcome in one line.
  logging.getLogger("urllib3").setLevel(logging.ERROR)
  files: dict[str, list] = spec["files"]
  url_infos = {
      url: tfds_checksums.UrlInfo(size=tfds_utils.Size(size), checksum=sha256, filename=name)
      for name, (url, size, sha256) in files.items()
  }
  try:
    manager = tfds.download.DownloadManager(
        download_dir=spec["download_dir"],
        dataset_name=_TFDS_NAME,
        url_infos=url_infos,
        force_checksums_validation=True,
    )
    paths = manager.download({name: url for name, (url, _, _) in files.items()})
    result: dict[str, object] = {"paths": {name: os.fspath(p) for name, p in paths.items()}}
  except tfds_download_manager.NonMatchingChecksumError as e:
    # TFDS's message spans lines and names its tmp path; the URL is what the user needs.
    url = str(e).split(",", 1)[0].removeprefix("Artifact ").strip()
    result = {"error": f"{url} does not have the registered size and sha256"}
  except Exception as e:  # everything becomes a one-line reason for the parent's DataError
    first_line = (str(e).strip().splitlines() or [""])[0]
    result = {"error": f"{type(e).__name__}: {first_line}"[:300]}
  print(json.dumps(result), flush=True)
