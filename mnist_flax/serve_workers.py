"""Several server processes on one port: ``python -m mnist_flax.serve --workers N`` (N > 1).

    code = serve_workers.run(sock, checkpoint, workers=2)   # from serve.run: the exit code

One server process is bound by its GIL: reading uploads, HTTP and JSON all take turns on one
core. With N workers, uvicorn's own supervisor (``uvicorn.supervisors.Multiprocess``: spawned
processes, a dead or hung one replaced, SIGHUP restarts them one by one, SIGTTIN/SIGTTOU add or
remove one) runs N copies of the server on the listening socket the parent bound; the kernel
hands each connection to one of them.

The parent imports no JAX. It checks the checkpoint first (missing or damaged: exit 3 within
seconds, as with one process), then starts the workers. Each loads the model and reports to the
parent through a queue: its fingerprint, or the one line of its failure, which the parent prints
once before exiting with that line's code (a worker that cannot load is never retried: the next
would fail alike). The parent prints the ``serving http://...`` line once every worker serves.
Later, a worker that cannot load (the checkpoint damaged meanwhile) is said in one line too: a
dead worker's replacement then stops the server with its code; SIGHUP's restart keeps the
workers serving. (A replacement or a restart loads the checkpoint as it is then: a newly
promoted model is served by SIGHUP, with no gap.) Ctrl-C or SIGTERM: the parent closes its copy
of the socket, every worker finishes its requests in flight, and the parent exits 130 or 143.
The batching figures of /api/health are the whole server's (``serve_model.Counts``, in shared
memory, which also holds the requests each worker has open: a worker with clearly more than
another closes connections after their answer, so that their clients connect again, to a less
busy worker: ``_Balance``).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import pathlib
import signal
import socket
import threading
import time
import traceback
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from mnist_flax import errors, integrity, serve
from mnist_flax.serve_model import Counts

# A worker that does not answer the supervisor's ping for this long is killed and replaced.
# Generous: on a loaded machine a busy worker's ping thread waits its turn for the GIL.
HEALTHCHECK_SECONDS = 10
START_SECONDS = 600.0  # Loading and compiling, many workers on few cores, a cold cache.
_context = multiprocessing.get_context("spawn")  # uvicorn's: no fork of a threaded process.


def worker_app(checkpoint: str, workers: int, counts: Any, reports: Any) -> Any:
  """One worker's app (uvicorn's app factory, called in the worker): loads the model, then
  reports ``(pid, fingerprint, accuracy)`` or ``(pid, None, (message, exit code))``."""
  errors.quiet_background_threads()
  try:
    shared_counts = Counts(counts)
    model, app = serve.warm_app(pathlib.Path(checkpoint), counts=shared_counts,
                                workers=workers, closes_model=True)
  except BaseException as e:  # Told once, by the parent; no traceback here.
    if os.environ.get(errors.TRACEBACK_ENV) and not isinstance(e, errors.MnistFlaxError):
      traceback.print_exc()
    failure = e if isinstance(e, errors.MnistFlaxError) else errors.internal_error(e)
    reports.put((os.getpid(), None, (errors.one_line(failure), failure.exit_code)))
    # The code uvicorn's supervisor does not restart; os._exit, as JAX's threads may hang exit.
    os._exit(STARTUP_FAILURE)
  reports.put((os.getpid(), model.fingerprint, model.metadata.get("test_accuracy")))
  threading.Thread(target=_stop_if_orphaned, args=(os.getppid(),), daemon=True).start()
  return _Balance(app, shared_counts)


def _stop_if_orphaned(parent: int) -> None:
  """Stops this worker, gracefully, once its parent has gone (killed with SIGKILL, which no
  supervisor can pass on): no orphan keeps the port."""
  while os.getppid() == parent:
    time.sleep(1.0)
  os.kill(os.getpid(), signal.SIGTERM)


class _Balance:
  """Closes a connection after its answer while this worker has clearly more requests open
  than another: the client connects again, and the new connection goes to the worker that
  accepts first, most often the idle one.

  Why: clients keep their connection, and the kernel hands each new one to whichever worker
  wakes first, which then takes every connection waiting (uvloop accepts until none is left):
  8 clients connecting at once split 6/2 over 2 workers more often than 4/4, and the busier
  worker, bound by its GIL, did 62-77% of the work.
  """

  def __init__(self, app: Any, counts: Counts):
    self.app, self.counts = app, counts

  async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
      return await self.app(scope, receive, send)

    async def sending(message: Any) -> None:
      if message["type"] == "http.response.start" and self.counts.crowded():
        message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
      await send(message)

    self.counts.opened(1)
    try:
      await self.app(scope, receive, sending)
    finally:
      self.counts.opened(-1)


class _Quiet(logging.Filter):
  """Drops the supervisor's own note on a worker that failed to start: the parent prints the
  worker's reason instead."""

  def filter(self, record: logging.LogRecord) -> bool:
    return "failed to start" not in record.getMessage()


class Supervisor:
  """uvicorn's Multiprocess, waiting for every worker before the serving line, and turning
  how it ended into an exit code."""

  def __init__(self, sock: socket.socket, checkpoint: pathlib.Path, workers: int):
    self.sock = sock
    self.reports = _context.SimpleQueue()
    app = functools.partial(worker_app, str(checkpoint), workers,
                            Counts.shared_array(_context), self.reports)
    config = uvicorn.Config(app, factory=True, workers=workers,
                            timeout_worker_healthcheck=HEALTHCHECK_SECONDS,
                            **serve.uvicorn_options())
    logging.getLogger("uvicorn.error").addFilter(_Quiet())
    self.failure: errors.MnistFlaxError | None = None
    self._reported: dict[int, tuple[str, float | None]] = {}
    self.signal: int | None = None
    self.serving = False  # Set once the serving line is out.
    supervisor = self

    class _Multiprocess(Multiprocess):
      def handle_int(self) -> None:
        supervisor.signal = supervisor.signal or signal.SIGINT
        super().handle_int()

      def handle_term(self) -> None:
        supervisor.signal = supervisor.signal or signal.SIGTERM
        super().handle_term()

    self.multiprocess = _Multiprocess(config, [sock])  # Takes over SIGINT, SIGTERM, SIGHUP...

  def run(self) -> int:
    """Starts the workers, serves until a signal or a failure; the exit code."""
    mp = self.multiprocess
    try:
      mp.init_processes()
      ready = self._wait_for_workers()
      if ready is not None:
        serve.announce(self.sock, *ready)
        self.serving = True
        while not mp.should_exit.wait(0.5):
          mp.handle_signals()
          mp.keep_subprocess_alive()
          self._read_reports()
    finally:
      # Refused from now on, once each worker has closed its copy too.
      self.sock.close()
      mp.should_exit.set()
      mp.terminate_all()  # SIGTERM: each answers its requests in flight, then ends.
      mp.join_all()
    self._read_reports()
    if self.signal is not None:  # Stopped as asked, whatever a restart said meanwhile.
      return 128 + self.signal
    if self.failure is not None:
      if self.serving:  # Said already.
        return self.failure.exit_code
      raise self.failure
    raise errors.LostProcess("a server worker process could not start")

  def _wait_for_workers(self) -> tuple[str, float | None] | None:
    """(fingerprint, accuracy) once every worker serves; None when stopped or failed first."""
    mp = self.multiprocess
    deadline = time.monotonic() + START_SECONDS
    while True:
      mp.handle_signals()
      loaded = self._read_reports()
      if mp.should_exit.is_set() or self.failure is not None:
        return None
      if all(p.pid in loaded for p in mp.processes):
        break
      gone = [p for p in mp.processes if p.pid not in loaded and not p.process.is_alive()]
      if gone:
        self._read_reports()  # A worker that failed said why before it ended.
        self.failure = self.failure or errors.LostProcess(
            f"a server worker process (pid {gone[0].pid}) ended with code "
            f"{gone[0].exitcode} while it loaded the model")
        return None
      if time.monotonic() > deadline:
        self.failure = errors.LostProcess(f"the server workers did not load the model within "
                                          f"{START_SECONDS:g} s")
        return None
      time.sleep(0.05)
    for p in mp.processes:  # Loaded: now their uvicorn starts serving, in a moment.
      if not p.wait_until_ready(START_SECONDS, mp.should_exit):
        if not mp.should_exit.is_set():
          self.failure = errors.LostProcess(f"a server worker process (pid {p.pid}) did "
                                            "not start serving")
        return None
    fingerprints = {loaded[p.pid] for p in mp.processes}
    if len(fingerprints) > 1:  # The checkpoint was replaced while they loaded it.
      self.failure = errors.CheckpointError("the checkpoint changed while the server workers "
                                            "loaded it; start the server again")
      return None
    return next(iter(fingerprints))

  def _read_reports(self) -> dict[int, tuple[str, float | None]]:
    """The workers' reports so far (pid -> (fingerprint, accuracy)).

    A failure while starting stops the server, with that failure. Once serving, a worker
    that cannot load (a crashed one's replacement, or SIGHUP's restart, after the checkpoint
    was damaged) is said at once; uvicorn's supervisor then stops (a replacement) or keeps
    the workers it has (a restart)."""
    while not self.reports.empty():
      pid, fingerprint, detail = self.reports.get()
      if fingerprint is not None:
        self._reported[pid] = (fingerprint, detail)
      elif self.serving:
        self.failure = errors.MnistFlaxError(*detail)
        errors.report(self.failure, serve.PROG)
      elif self.failure is None:
        self.failure = errors.MnistFlaxError(*detail)
        self.multiprocess.should_exit.set()
    return self._reported


def run(sock: socket.socket, checkpoint: pathlib.Path, workers: int) -> int:
  """Serves with ``workers`` processes on ``sock``; the exit code (see the module's text)."""
  integrity.checked_final(checkpoint)  # Exit 3 now, not once N workers have imported JAX.
  return Supervisor(sock, checkpoint, workers).run()
