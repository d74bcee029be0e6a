"""The ``serve`` section of ``python -m mnist_flax.tools.benchmark``: the HTTP server over loopback.

    python -m mnist_flax.tools.benchmark --only serve --table

Starts ``python -m mnist_flax.serve`` on a free loopback port and measures, with plain
``http.client`` connections kept alive (the cheapest client, so the figures are the server's):

* the latency of one small image (``test/3.jpg``, 7 KB) sent again and again by one client:
  p50 and p99 (target: p50 under 10 ms);
* images/s with 8 clients sending one image per request (the ten ``test/N.jpg``, cycled), all
  at once, and how many images each batched ``predict`` call took on average (over every
  worker process of the server, which runs with its default ``--workers``);
* next to them, what ``infer`` costs per image for the same files: one cold process for
  ``test/3.jpg``, and one process given every file the 8 clients sent.

Also used by the tests to start a server and to build multipart bodies.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from typing import Any, Iterator, Sequence

from mnist_flax.constants import PROJECT_ROOT

SMALL_IMAGE = "test/3.jpg"
CLIENTS = 8
START_SECONDS = 180.0


def multipart_body(files: Sequence[tuple[str, bytes]], field: str = "file") -> tuple[bytes, str]:
  """(body, content type) of a multipart/form-data request carrying ``files``."""
  boundary = uuid.uuid4().hex
  parts = []
  for name, data in files:
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                 f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                 .encode() + data + b"\r\n")
  return b"".join(parts) + f"--{boundary}--\r\n".encode(), \
      f"multipart/form-data; boundary={boundary}"


@contextlib.contextmanager
def running_server(*args: str, env: dict[str, str] | None = None
                   ) -> Iterator[tuple[str, int, subprocess.Popen]]:
  """``python -m mnist_flax.serve --port 0 ARGS``: yields (host, port, process) once it serves;
  stops it with SIGTERM (then SIGKILL) on the way out."""
  proc = subprocess.Popen([sys.executable, "-m", "mnist_flax.serve", "--port", "0", *args],
                          cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True, env=env)
  try:
    deadline = time.monotonic() + START_SECONDS
    line = ""
    while "serving http://" not in line:
      ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
      line = proc.stdout.readline() if ready else ""
      if not ready or (not line and proc.poll() is not None):
        why = proc.stderr.read()[-2000:] if proc.poll() is not None else "no answer in time"
        raise RuntimeError(f"the server did not start: {why}")
    address = line.split("serving http://", 1)[1].split("/", 1)[0]
    host, port = address.rsplit(":", 1)
    yield host.strip("[]"), int(port), proc
  finally:
    if proc.poll() is None:
      proc.send_signal(signal.SIGTERM)
      try:
        proc.wait(30)
      except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
      stream.close()


class Client:
  """One keep-alive connection posting images to /api/predict."""

  def __init__(self, host: str, port: int):
    self._conn = http.client.HTTPConnection(host, port, timeout=60)

  def predict(self, files: Sequence[tuple[str, bytes]]) -> tuple[int, Any]:
    return self.post(*multipart_body(files))

  def post(self, body: bytes, kind: str) -> tuple[int, Any]:
    """Posts a body built by multipart_body (built once: the client's cost is not measured)."""
    self._conn.request("POST", "/api/predict", body, {"Content-Type": kind})
    response = self._conn.getresponse()
    return response.status, json.loads(response.read())

  def get(self, path: str) -> Any:
    self._conn.request("GET", path)
    return json.loads(self._conn.getresponse().read())

  def close(self) -> None:
    self._conn.close()


def _percentile(values: Sequence[float], q: float) -> float:
  ordered = sorted(values)
  return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def measure(host: str, port: int, sequential: int, concurrent: int) -> dict[str, Any]:
  """The figures over a running server: ``sequential`` single-image requests from one client,
  then ``concurrent`` requests spread over CLIENTS clients."""
  small = (PROJECT_ROOT / SMALL_IMAGE).read_bytes()
  small_body = multipart_body([("3.jpg", small)])
  client = Client(host, port)
  for _ in range(20):  # Warm-up: connection, threads, caches.
    client.post(*small_body)
  latencies = []
  for _ in range(sequential):
    start = time.perf_counter()
    status, answer = client.post(*small_body)
    latencies.append(1000 * (time.perf_counter() - start))
    if status != 200 or answer[0]["digit"] != 3:
      raise RuntimeError(f"the server answered {status} {answer}")
  before = client.get("/api/health")["batching"]
  files = [PROJECT_ROOT / "test" / f"{i % 10}.jpg" for i in range(concurrent)]
  payloads = [(p.name, p.read_bytes()) for p in files]
  bodies = [multipart_body([payload]) for payload in payloads]
  wrong: list[Any] = []
  def work(k: int) -> None:
    mine = Client(host, port)
    try:
      for i in range(k, concurrent, CLIENTS):
        status, answer = mine.post(*bodies[i])
        if status != 200 or answer[0]["digit"] != i % 10:
          wrong.append((payloads[i][0], status, answer))
    finally:
      mine.close()
  threads = [threading.Thread(target=work, args=(k,)) for k in range(CLIENTS)]
  start = time.perf_counter()
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  wall = time.perf_counter() - start
  client.close()  # Idle past the server's keep-alive meanwhile: a new one asks.
  client = Client(host, port)
  health = client.get("/api/health")
  after = health["batching"]  # Every worker process's calls, whichever answered.
  client.close()
  calls = after["predict_calls"] - before["predict_calls"]
  return {
      "image": SMALL_IMAGE, "image_bytes": len(small), "sequential_requests": sequential,
      "latency_ms": {"p50": round(statistics.median(latencies), 3),
                     "p99": round(_percentile(latencies, 99), 3),
                     "min": round(min(latencies), 3), "max": round(max(latencies), 3)},
      "server_workers": health.get("workers", 1),
      "concurrent_clients": CLIENTS, "concurrent_requests": concurrent,
      "concurrent_seconds": round(wall, 4), "images_per_second": round(concurrent / wall, 1),
      "wrong_answers": len(wrong),
      "images_per_predict_call": round((after["images"] - before["images"]) / max(calls, 1), 2),
      "files": [str(p.relative_to(PROJECT_ROOT)) for p in files],
  }


def serve_section(bench: Any) -> dict[str, Any]:
  """The benchmark's section (``bench``: benchmark.Benchmark, for its plan and helpers)."""
  from mnist_flax.tools import benchmark
  ckpt_args, note = bench.checkpoint_args()
  quick = bench.plan.quick
  sequential, concurrent = (30, 80) if quick else (500, 2000)
  start = time.perf_counter()
  with running_server(*ckpt_args) as (host, port, _):
    started = time.perf_counter() - start
    out = measure(host, port, sequential, concurrent)
  # infer for the same files: a cold process for the one image, one process for all of them.
  cold = bench.results.get("infer_cold") or {}
  if cold.get("status") == "ok":
    cold_seconds = cold["wall_seconds"]["median"]
  else:  # The infer_cold section did not run: the median of a few cold processes here.
    cold_seconds = statistics.median(benchmark.run_process(bench.python_module(
        "mnist_flax.infer", "--i", SMALL_IMAGE, *ckpt_args), timeout=600).wall_seconds
        for _ in range(1 if quick else 3))
  result = benchmark.run_process(bench.python_module(
      "mnist_flax.infer", "--i", *out["files"], "--json", *ckpt_args), timeout=3600)
  if result.returncode != 0:
    raise RuntimeError(f"infer exited {result.returncode}: {result.tail()}")
  out.pop("files")
  return {**note, "server_start_seconds": round(started, 3), **out,
          "latency_target_ms_p50": 10, "images_per_second_target": 300,
          "infer_cold_seconds_per_image": round(cold_seconds, 4),
          "infer_same_files_seconds_per_image": round(result.wall_seconds / concurrent, 6),
          "infer_same_files_images_per_second": round(concurrent / result.wall_seconds, 1)}


def table_rows(entry: dict[str, Any]) -> list[tuple[str, Any, int]]:
  """The benchmark table's rows for this section (label, value, decimals)."""
  latency = entry.get("latency_ms") or {}
  return [("serve latency ms p50 [1 image, 1 client]", latency.get("p50"), 2),
          ("serve latency ms p99 [1 image, 1 client]", latency.get("p99"), 2),
          (f"serve images/s [{CLIENTS} clients]", entry.get("images_per_second"), 0),
          ("serve images per predict call", entry.get("images_per_predict_call"), 2),
          ("infer s/image [cold, same image]", entry.get("infer_cold_seconds_per_image"), 3),
          ("infer images/s [one process, same files]",
           entry.get("infer_same_files_images_per_second"), 0)]
