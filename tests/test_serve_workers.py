"""Tests of ``python -m mnist_flax.serve --workers N``: several server processes on one port.

Each starts real servers on free loopback ports: N workers answer as one process does and
count their batches together; a worker killed with SIGKILL is replaced while the others keep
answering; none outlives a parent killed with SIGKILL; a checkpoint refused by the parent, or
by the workers, is one line and exit 3; a bad worker count is exit 2.
(SIGTERM with a request in flight, for one worker and several, is in test_serve.)

Run: python -m pytest tests/test_serve_workers.py -q
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from conftest import ROOT, run_module
from mnist_flax.tools import bench_serve

CHECKPOINT = pathlib.Path(os.environ.get("TEST_CHECKPOINT") or ROOT / "checkpoints" / "final")
SAMPLES = [ROOT / "test" / f"{d}.jpg" for d in range(10)]


def _answers(host: str, port: int) -> list[Any]:
  client = bench_serve.Client(host, port)
  status, answers = client.predict([(p.name, p.read_bytes()) for p in SAMPLES])
  client.close()
  assert status == 200, answers
  return answers


def _one(host: str, port: int, digit: int) -> int:
  """Posts test/DIGIT.jpg on a new connection: the digit answered."""
  client = bench_serve.Client(host, port)
  try:
    status, answer = client.predict([(f"{digit}.jpg", SAMPLES[digit].read_bytes())])
  finally:
    client.close()
  assert status == 200, answer
  return answer[0]["digit"]


def _workers(parent: int) -> set[int]:
  """The server workers of process ``parent`` (its children but multiprocessing's tracker)."""
  found = set()
  for entry in pathlib.Path("/proc").iterdir():
    try:
      stat = (entry / "stat").read_text()
      cmdline = (entry / "cmdline").read_bytes()
    except (OSError, ValueError):
      continue
    if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in cmdline:
      found.add(int(entry.name))
  return found


def test_two_workers_answer_as_one_process_and_count_batches_together() -> None:
  with bench_serve.running_server("--checkpoint", str(CHECKPOINT), "--workers", "1") as one:
    alone = _answers(*one[:2])
  with bench_serve.running_server("--checkpoint", str(CHECKPOINT), "--workers", "2") as (
      host, port, proc):
    assert len(_workers(proc.pid)) == 2
    assert _answers(host, port) == alone
    client = bench_serve.Client(host, port)
    health = client.get("/api/health")
    assert health["workers"] == 2 and len(health["model"]["fingerprint"]) == 64
    before = health["batching"]
    client.close()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:  # Over both workers' connections.
      digits = list(pool.map(lambda i: _one(host, port, i % 10), range(48)))
    assert digits == [i % 10 for i in range(48)]
    client = bench_serve.Client(host, port)
    after = client.get("/api/health")["batching"]
    client.close()
    # Whichever worker answers /api/health, it counts every worker's predict calls.
    assert after["images"] - before["images"] == 48
    assert 1 <= after["predict_calls"] - before["predict_calls"] <= 48


def test_a_killed_worker_is_replaced_and_the_others_keep_answering() -> None:
  with bench_serve.running_server("--checkpoint", str(CHECKPOINT), "--workers", "2") as (
      host, port, proc):
    first, second = sorted(_workers(proc.pid))
    os.kill(first, signal.SIGKILL)
    assert [_one(host, port, d) for d in range(10)] == list(range(10))  # The other answers.
    replacement = _new_worker(proc.pid, {first, second})
    # The other killed in turn: the replacements answer (a connection waits in the listening
    # socket's queue until one of them serves).
    os.kill(second, signal.SIGKILL)
    assert [_one(host, port, d) for d in (3, 7, 1)] == [3, 7, 1]
    assert _new_worker(proc.pid, {first, second, replacement})
    assert [_one(host, port, d) for d in range(10)] == list(range(10))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143
    assert proc.stderr.read() == ""  # Workers dying and replaced is not an error to print.


def _new_worker(parent: int, known: set[int]) -> int:
  """The pid of a worker of ``parent`` not in ``known``, once there is one."""
  deadline = time.monotonic() + 60
  while not _workers(parent) - known:
    assert time.monotonic() < deadline, "no worker replaced the killed one"
    time.sleep(0.1)
  return min(_workers(parent) - known)


_NAN_CHECKPOINT = """
import sys
import jax, numpy as np
from mnist_flax import checkpoint, predictor
model_config, variables, metadata = predictor.load_final(sys.argv[1])
variables = jax.tree.map(lambda x: np.full_like(np.asarray(x), np.nan), variables)
checkpoint.promote_final(sys.argv[2], variables, {"step": 0, "model": model_config})
"""


@pytest.mark.parametrize("damage", ["manifest", "nan weights"])
def test_a_bad_checkpoint_with_two_workers_is_one_line_and_exit_3(
    tmp_path: pathlib.Path, random_checkpoint: pathlib.Path, damage: str) -> None:
  if damage == "manifest":  # Refused by the parent before any worker starts.
    final = tmp_path / "final"
    shutil.copytree(random_checkpoint, final)
    victim = next(p for p in sorted(final.rglob("*")) if p.is_file() and "manifest" not in
                  p.name.lower())
    victim.write_bytes(victim.read_bytes() + b"x")
  else:  # Whole and sealed, but every worker finds it unusable once loaded.
    subprocess.run([sys.executable, "-c", _NAN_CHECKPOINT, str(random_checkpoint),
                    str(tmp_path)], cwd=ROOT, check=True, capture_output=True, timeout=300)
    final = tmp_path / "checkpoints" / "final"
  start = time.monotonic()
  result = run_module("mnist_flax.serve", "--port", "0", "--workers", "2", "--checkpoint",
                      str(final), timeout=300)
  assert result.returncode == 3, result.stderr
  assert result.stdout == "" and "Traceback" not in result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("mnist_flax.serve: error: "), result.stderr
  assert ("manifest" if damage == "manifest" else "non-finite") in lines[0]
  if damage == "manifest":
    assert time.monotonic() - start < 30  # No JAX imported, let alone N times.


@pytest.mark.parametrize("value", ["0", "17", "two"])
def test_a_bad_worker_count_is_exit_2(value: str) -> None:
  result = run_module("mnist_flax.serve", "--port", "0", "--workers", value, timeout=60)
  assert result.returncode == 2 and "--workers" in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1


def test_workers_stop_when_the_parent_is_killed() -> None:
  with bench_serve.running_server("--checkpoint", str(CHECKPOINT), "--workers", "2") as (
      host, port, proc):
    workers = _workers(proc.pid)
    assert len(workers) == 2
    proc.kill()  # SIGKILL: nothing is passed on to the workers.
    proc.wait()
    deadline = time.monotonic() + 30
    while any(pathlib.Path(f"/proc/{pid}").exists() for pid in workers):
      assert time.monotonic() < deadline, "a worker outlived its parent"
      time.sleep(0.2)


def test_counts_are_shared_and_a_crowded_worker_closes_connections() -> None:
  import asyncio
  import multiprocessing
  from mnist_flax.serve_model import Counts
  from mnist_flax.serve_workers import _Balance
  shared = Counts.shared_array(multiprocessing.get_context("spawn"))
  busy, idle = Counts(shared), Counts(shared)  # Two slots (here of one process).
  busy.add(3)
  idle.add(1)
  assert busy.totals() == idle.totals() == (2, 4)
  assert Counts().totals() == (0, 0)  # Alone: its own figures only.
  sent: list[Any] = []

  async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})

  async def answer(balance: _Balance) -> list[tuple[bytes, bytes]]:
    async def send(message: Any) -> None:
      sent.append(message)
    await balance({"type": "http"}, None, send)
    return sent[-2]["headers"]

  assert asyncio.run(answer(_Balance(app, busy))) == []  # Even: the connection stays.
  busy.opened(2)  # Two more requests open here than there: this answer closes.
  assert asyncio.run(answer(_Balance(app, busy))) == [(b"connection", b"close")]
  assert asyncio.run(answer(_Balance(app, idle))) == []
  busy.opened(-2)
  assert not busy.crowded() and asyncio.run(answer(_Balance(app, busy))) == []
