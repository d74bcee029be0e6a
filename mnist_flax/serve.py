"""A web page to draw or drop a digit, and an HTTP API, with the model kept warm.

    python -m mnist_flax.serve [--checkpoint checkpoints/final] [--host 127.0.0.1] [--port 8000]
                               [--workers N]

* ``/``: a page to draw a digit (mouse, pen or finger) or drop a photo; it answers while you
  draw. Plain HTML, CSS and JavaScript from the package (``mnist_flax/web``): works offline.
* ``POST /api/predict``: one or more images in the multipart field ``file`` (repeatable);
  answers a JSON list with the objects ``infer --json`` prints, in the order sent.
  ``?top_k=N`` (1-10) as ``--top-k``, ``?single=true`` as ``--single``; ``?seen=true`` adds
  ``seen`` to the answer and to each of its ``digits``: the 28x28 image the model saw, as a
  PNG data URL. A file ``infer`` refuses answers 422 (over 20 MB in all: 413) with
  ``{"error", "code", "exit_code", "results"}``: ``infer``'s message for the first such file,
  and every file's object; "no digit found" is an answer (200), as it is for ``infer``.
  Every other refusal is ``{"error", "code"}`` too, never a traceback.
* ``GET /api/health``: the model's fingerprint (sha256 of its weights), its recorded test
  accuracy, the versions, the number of worker processes and how well requests share
  ``predict`` calls (``batching``: every worker's calls and images). OpenAPI docs at ``/docs``.

The model and the preprocessing are loaded once per process; requests that arrive together
share one ``predict`` call (see ``serve_model``). ``--workers N`` server processes share the
port (default: one per usable core, up to 4): one process is bound by Python's GIL to about one
core, so on 2 cores 2 workers answer more images per second (see ``serve_workers``); each holds
its own copy of the model (about 0.26 GB resident), and ``--workers 1`` serves from this one
process. Binds 127.0.0.1 unless ``--host`` says otherwise; Ctrl-C or SIGTERM stops accepting,
finishes the requests in flight and exits 130 or 143. Exit codes: 2 bad command line or the
address cannot be used, 3 checkpoint problem (as ``infer``), 9 a worker process lost while it
loaded the model.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import gc
import os
import pathlib
import platform
import signal
import socket
import sys
from importlib import resources
from typing import Any, AsyncIterator, Sequence

import numpy as np
# FastAPI reads the endpoints' annotations (strings here) in this module's namespace.
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from mnist_flax import errors, infer, predictor
from mnist_flax.serve_model import Batcher, Counts, WarmModel, png_data_url, upload_name

PROG = "mnist_flax.serve"
MAX_BODY_BYTES = 20 * 1024 * 1024  # All files of one request together.
MAX_FILES = 256
BODY_SECONDS = 30.0  # A client slower than this to send its files is dropped (408).
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
READ_THREADS = max(2, CORES)
MAX_WORKERS = 16
# One worker process per usable core, up to this many: beyond, the batches of each get smaller
# while every worker holds its own copy of the model and libraries (about 0.26 GB).
DEFAULT_WORKERS_CAP = 4
DEFAULT_WORKERS = max(1, min(DEFAULT_WORKERS_CAP, CORES))
# The page's files: a fixed list, so no request can name anything else.
_PAGE = {"/": ("index.html", "text/html; charset=utf-8"),
         "/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/app.css": ("app.css", "text/css; charset=utf-8")}
_REFUSED = 422  # HTTP status for a file infer refuses (exit codes 1 and 4).
_CODES = {errors.ImageError: "unreadable_image", errors.InputNotFound: "unreadable_image"}
_MULTIPART_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["file"], "properties": {"file": {
        "type": "array", "items": {"type": "string", "format": "binary"},
        "description": "JPEG, PNG, GIF or BMP images (repeat the field for several)"}}}}}}}


class Refusal(Exception):
  """A request answered with ``{"error", "code"}`` and this status."""

  def __init__(self, status: int, code: str, message: str, **extra: Any):
    super().__init__(message)
    self.status, self.code, self.extra = status, code, extra


def _versions() -> dict[str, str | None]:
  from importlib import metadata
  out: dict[str, str | None] = {"python": platform.python_version()}
  for name in ("mnist_flax", "jax", "jaxlib", "numpy", "pillow", "fastapi", "starlette",
               "uvicorn"):
    try:
      out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      out[name] = None
  return out


def create_app(model: WarmModel, counts: Counts | None = None, workers: int = 1,
               closes_model: bool = False) -> Any:
  """The FastAPI application serving ``model`` (tests drive it with TestClient).

  A worker process of several passes the ``counts`` they share and their number, and has the
  app close the model once it stops serving (``closes_model``: its process ends right after)."""
  batchers: dict[int, Batcher] = {}
  counts = counts if counts is not None else Counts()

  def batcher() -> Batcher:  # One per event loop (TestClient runs its own).
    loop = asyncio.get_running_loop()
    if id(loop) not in batchers:
      batchers.clear()
      batchers[id(loop)] = Batcher(model, counts=counts)
    return batchers[id(loop)]

  @contextlib.asynccontextmanager
  async def lifespan(app: Any) -> AsyncIterator[None]:
    yield
    for b in batchers.values():
      b.close()
    if closes_model:
      readers.shutdown(wait=True)
      model.close()

  app = FastAPI(title="mnist_flax", version=_versions()["mnist_flax"], lifespan=lifespan,
                description="Read handwritten digits: the objects `infer --json` prints.")
  readers = concurrent.futures.ThreadPoolExecutor(READ_THREADS, thread_name_prefix="read")

  def refusal(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "code": code, **extra}, status_code=status)

  @app.exception_handler(Refusal)
  async def _refused(request: Request, e: Refusal) -> JSONResponse:
    return refusal(e.status, e.code, str(e), **e.extra)

  @app.exception_handler(HTTPException)
  async def _http(request: Request, e: HTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "bad_request")
    return refusal(e.status_code, code, str(e.detail))

  @app.exception_handler(RequestValidationError)
  async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
    first = e.errors()[0] if e.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
    return refusal(400, "bad_request", f"{where}: {first.get('msg', 'invalid')}")

  @app.exception_handler(Exception)
  async def _bug(request: Request, e: Exception) -> JSONResponse:
    return refusal(500, "internal", f"internal error ({type(e).__name__}); please report it")

  for route, (name, media) in _PAGE.items():
    app.add_api_route(route, _page(name, media), methods=["GET"], include_in_schema=False)

  @app.get("/api/health", summary="The model served, and the versions")
  async def health() -> dict[str, Any]:
    meta = model.metadata
    calls, images = counts.totals()
    return {"status": "ok", "workers": workers,
            "model": {"fingerprint": model.fingerprint, "checkpoint": model.checkpoint_name,
                      "test_accuracy": meta.get("test_accuracy"), "step": meta.get("step"),
                      "members": (meta.get("model") or {}).get("members", 1)},
            "versions": _versions(),
            # How well concurrent requests share predict calls (every worker's).
            "batching": {"predict_calls": calls, "images": images}}

  async def body(request: Request) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in request.stream():
      received += len(chunk)
      if received > MAX_BODY_BYTES:  # Refused as soon as it shows, never read whole.
        raise Refusal(413, "too_large", _too_large())
      yield chunk

  @app.post("/api/predict", openapi_extra=_MULTIPART_DOC,
            summary="Read the digit in each image, as `infer --json` does")
  async def predict(request: Request,
                    top_k: int = Query(1, ge=1, le=10, description="as infer's --top-k"),
                    single: bool = Query(False, description="as infer's --single"),
                    seen: bool = Query(False, description="add the 28x28 images as PNG")
                    ) -> Any:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
      raise Refusal(413, "too_large", _too_large())
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
      raise Refusal(415, "not_multipart", "send the images as multipart/form-data, in the "
                    "field 'file'")
    parser = MultiPartParser(request.headers, body(request), max_files=MAX_FILES, max_fields=16)
    try:
      form = await asyncio.wait_for(parser.parse(), BODY_SECONDS)
    except asyncio.TimeoutError:
      raise Refusal(408, "timeout", f"the request's files did not arrive within "
                    f"{BODY_SECONDS:g} s") from None
    except MultiPartException as e:
      raise Refusal(400, "bad_request", f"malformed multipart body ({e.message})") from None
    except ClientDisconnect:  # Gone before its files came: nobody to answer.
      return Response(status_code=400)
    try:
      return await _answer(form, top_k, single, seen)
    except Refusal:
      raise
    except Exception as e:  # A bug, not the file's fault: one line here, JSON to the client.
      reason = errors.one_line(e)
      message = f"internal error ({type(e).__name__}: {reason}); please report it"
      print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
      raise Refusal(500, "internal", message) from None
    finally:
      await form.close()

  async def _answer(form: Any, top_k: int, single: bool, seen: bool) -> Any:
    uploads = [v for k, v in form.multi_items() if k == "file" and hasattr(v, "file")]
    if not uploads:
      raise Refusal(400, "no_file", "no image: send one or more in the multipart field 'file'")
    loop = asyncio.get_running_loop()
    b = batcher()
    b.reading(1)
    try:
      names = [upload_name(u.filename, i) for i, u in enumerate(uploads)]
      read = await asyncio.gather(*(loop.run_in_executor(readers, model.read, u.file, name,
                                                         single)
                                    for u, name in zip(uploads, names)))
    finally:
      b.reading(-1)
    fields = [d.field for found, _ in read for d in found or ()]  # Every digit of every file.
    probs = await b.predict(np.stack(fields)) if fields else None
    results, first, start = [], None, 0
    for name, (found, error) in zip(names, read):
      if error is not None:
        results.append(infer.json_failure(name, error))
        if first is None and not isinstance(error, errors.NoDigitFound):
          first = error
        continue
      result, chosen = infer.image_answer(model.preprocess, name, found,
                                          probs[start:start + len(found)], top_k)
      if seen:  # Encoded here, for the digits read only.
        pictures = [png_data_url(found[j].field) for j in chosen]
        result["seen"] = pictures[0] if len(pictures) == 1 else pictures
        for digit, picture in zip(result["digits"], pictures):
          digit["seen"] = picture
      results.append(result)
      start += len(found)
    if first is not None:
      raise Refusal(_REFUSED, _CODES.get(type(first), "unreadable_image"), str(first),
                    exit_code=first.exit_code, results=results)
    return results

  app.state.readers = readers
  return app


def _page(name: str, media: str) -> Any:
  """An endpoint answering one file of the page. It takes no parameters: FastAPI would read
  any as the query's, and a query must never choose what is served."""
  body = resources.files("mnist_flax").joinpath("web", name).read_bytes()
  def page() -> Response:
    return Response(body, media_type=media, headers={"Cache-Control": "no-cache"})
  return page


def _too_large() -> str:
  return f"the upload is over {MAX_BODY_BYTES // 2**20} MB (the limit for one request)"


def _parser() -> argparse.ArgumentParser:
  p = errors.ArgumentParser(prog="python -m mnist_flax.serve", description=__doc__.split("\n\n")[0])
  p.add_argument("--checkpoint", default=None, metavar="DIR",
                 help="promoted checkpoint to serve (default: checkpoints/final)")
  p.add_argument("--host", default="127.0.0.1",
                 help="address to listen on (default 127.0.0.1: this machine only)")
  p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free one)")
  p.add_argument("--workers", type=_workers, default=DEFAULT_WORKERS, metavar="N",
                 help=f"server processes sharing the port (default {DEFAULT_WORKERS}: one per "
                 f"usable core, up to {DEFAULT_WORKERS_CAP}; 1 to {MAX_WORKERS})")
  return p


def _workers(value: str) -> int:
  if not value.strip().isdigit() or not 1 <= int(value) <= MAX_WORKERS:
    raise argparse.ArgumentTypeError(f"{value!r} is not a number from 1 to {MAX_WORKERS}")
  return int(value)


def _listen(host: str, port: int) -> socket.socket:
  """The listening socket, bound before the model loads so a taken port costs nothing."""
  if not 0 <= port <= 65535:
    raise errors.ConfigError(f"--port {port}: not a port number (0-65535)")
  try:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(2048)
  except OSError as e:
    raise errors.ConfigError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
  sock.set_inheritable(True)
  return sock


def warm_app(checkpoint: pathlib.Path, **app_options: Any) -> tuple[WarmModel, Any]:
  """(the model, loaded and compiled; its app, see ``create_app``) for one serving process."""
  model = WarmModel.load(checkpoint)
  import cv2
  cv2.setNumThreads(1)  # The reader threads are the parallelism: OpenCV's own would queue.
  app = create_app(model, **app_options)
  # What is loaded stays (the libraries', the model's: ~150,000 objects): out of the collector's
  # sight, where each full collection scanned it all, 150 ms with every request waiting.
  gc.freeze()
  return model, app


def announce(sock: socket.socket, fingerprint: str, accuracy: float | None) -> None:
  """The line saying the server answers (tests and the benchmark wait for it)."""
  host, port = sock.getsockname()[:2]
  shown_host = f"[{host}]" if ":" in host else host
  print(f"{PROG}: serving http://{shown_host}:{port}/ (model {fingerprint[:12]}"
        + (f", test accuracy {100 * accuracy:.2f}%" if accuracy else "")
        + "); Ctrl-C stops", flush=True)


def uvicorn_options() -> dict[str, Any]:
  """uvicorn's settings, the same for one process and for each worker."""
  return dict(log_level="warning", access_log=False, timeout_keep_alive=5,
              timeout_graceful_shutdown=30, limit_concurrency=1024)


def run(args: argparse.Namespace) -> int:
  sock = _listen(args.host, args.port)
  checkpoint = predictor.resolve_checkpoint(args.checkpoint)
  if args.workers > 1:
    from mnist_flax import serve_workers
    return serve_workers.run(sock, checkpoint, args.workers)
  model, app = warm_app(checkpoint)
  import uvicorn
  announce(sock, model.fingerprint, model.metadata.get("test_accuracy"))
  # uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again with the handlers
  # it found: these turn that into an exit code, after the clean-up below.
  signal.signal(signal.SIGTERM, _stopped)
  signal.signal(signal.SIGINT, _stopped)
  config = uvicorn.Config(app, **uvicorn_options())
  try:
    uvicorn.Server(config).run(sockets=[sock])
  finally:
    app.state.readers.shutdown(wait=True)
    model.close()
  return 0


class _Stopped(Exception):
  pass


def _stopped(signum: int, frame: Any) -> None:
  raise _Stopped(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
  if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # As infer: tiny matrices only.

  def until_stopped() -> int:
    try:
      return run(_parser().parse_args(argv))
    except _Stopped as e:  # After the requests in flight were answered.
      return e.args[0]

  return errors.run_command(PROG, until_stopped)


if __name__ == "__main__":
  sys.exit(main())
