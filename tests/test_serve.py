"""Tests of ``python -m mnist_flax.serve``'s API: answers, batches, hostile files, limits.

Most go through FastAPI's TestClient on the app serving the shipped model; the ones about the
network (a body refused before it is read whole, a stalled client, SIGTERM with a request in
flight) start the real server on a free loopback port. Hostile files are test_infer_hostile's cases
that can be uploaded (regular files up to the size limit); each must be refused with infer's
own message for the same file.

Run: python -m pytest tests/test_serve.py -q
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import select
import signal
import socket
import time
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from conftest import ROOT, run_module
from mnist_flax import serve
from mnist_flax.tools import bench_serve
from mnist_flax.serve_model import WarmModel
from test_infer_hostile import BAD, _available

CHECKPOINT = pathlib.Path(os.environ.get("TEST_CHECKPOINT") or ROOT / "checkpoints" / "final")
SAMPLES = [ROOT / "test" / f"{d}.jpg" for d in range(10)]  # One of each digit.
LIMIT = serve.MAX_BODY_BYTES


@pytest.fixture(scope="module")
def model() -> Iterator[WarmModel]:
  warm = WarmModel.load(CHECKPOINT)
  yield warm
  warm.close()


@pytest.fixture(scope="module")
def client(model: WarmModel) -> Iterator[TestClient]:
  with TestClient(serve.create_app(model)) as c:
    yield c


def post(client: TestClient, *files: tuple[str, bytes], query: str = "") -> Any:
  return client.post("/api/predict" + query, files=[("file", f) for f in files])


def infer_json(*args: str, cwd: pathlib.Path = ROOT) -> list[dict[str, Any]]:
  result = run_module("mnist_flax.infer", "--json", "--checkpoint", str(CHECKPOINT), *args,
                      cwd=cwd)
  return [json.loads(line) for line in result.stdout.splitlines()]


def test_answers_are_the_objects_infer_json_prints(client: TestClient) -> None:
  expected = infer_json("--top-k", "3", "--i", *(p.name for p in SAMPLES), cwd=ROOT / "test")
  response = post(client, *((p.name, p.read_bytes()) for p in SAMPLES), query="?top_k=3")
  assert response.status_code == 200, response.text
  answers = response.json()
  assert [a["digit"] for a in answers] == list(range(10))
  for got, want in zip(answers, expected):
    assert got.keys() == want.keys() and got["path"] == want["path"]
    assert got["digit"] == want["digit"] and len(got["top_k"]) == 3
    assert got["probabilities"] == pytest.approx(want["probabilities"], abs=2e-6)
  one = post(client, ("3.jpg", SAMPLES[3].read_bytes())).json()
  assert len(one) == 1 and one[0]["digit"] == 3 and len(one[0]["top_k"]) == 1


def test_seen_is_the_28x28_png_the_model_saw(client: TestClient) -> None:
  import base64, io
  from PIL import Image
  answer = post(client, ("7.jpg", SAMPLES[7].read_bytes()), query="?seen=true").json()[0]
  prefix = "data:image/png;base64,"
  assert answer["seen"].startswith(prefix)
  image = Image.open(io.BytesIO(base64.b64decode(answer["seen"][len(prefix):])))
  assert image.size == (28, 28) and image.mode == "L" and image.getextrema()[1] > 200


def _number_photo(digits: tuple[int, ...]) -> bytes:
  import io
  import numpy as np
  from PIL import Image
  from mnist_flax.tools import samples
  photo = Image.new("L", (20 + 190 * len(digits), 220), 255)
  for i, digit in enumerate(digits):
    photo.paste(samples.draw_digit(digit, np.random.default_rng(digit), size=(180, 180))
                .convert("L"), (20 + 190 * i, 20))
  data = io.BytesIO()
  photo.save(data, "PNG")
  return data.getvalue()


def test_a_number_is_read_digit_by_digit_with_boxes(client: TestClient) -> None:
  photo = _number_photo((4, 2))
  want = infer_json_bytes(("42.png", photo))
  answer = post(client, ("42.png", photo), query="?seen=true").json()[0]
  assert answer["number"] == "42" and answer["digit"] is None, answer
  assert [d["digit"] for d in answer["digits"]] == [4, 2]
  left, right = (d["box"] for d in answer["digits"])
  assert left[2] <= right[0] + 5 and all(d["seen"].startswith("data:image/png") for d in
                                          answer["digits"])
  assert len(answer["seen"]) == 2
  assert {k: v for k, v in answer.items() if k != "seen"} == {
      **want, "digits": [{**d, "seen": s["seen"]} for d, s in zip(want["digits"],
                                                                  answer["digits"])]}
  single = post(client, ("42.png", photo), query="?single=true").json()[0]
  assert len(single["digits"]) == 1 and single["digit"] in (4, 2)


def infer_json_bytes(file: tuple[str, bytes]) -> dict[str, Any]:
  import tempfile
  with tempfile.TemporaryDirectory() as folder:
    (pathlib.Path(folder) / file[0]).write_bytes(file[1])
    return infer_json("--i", file[0], cwd=pathlib.Path(folder))[0]


def test_health_names_the_model_and_versions(client: TestClient, model: WarmModel) -> None:
  health = client.get("/api/health").json()
  assert health["status"] == "ok" and len(health["model"]["fingerprint"]) == 64
  assert health["model"]["fingerprint"] == model.fingerprint
  assert health["model"]["test_accuracy"] == model.metadata.get("test_accuracy")
  assert all(health["versions"][k] for k in ("mnist_flax", "jax", "fastapi", "uvicorn"))
  assert str(CHECKPOINT.parent) not in json.dumps(health)  # No server path is shown.


def test_page_and_docs_are_served_and_nothing_else(client: TestClient) -> None:
  page = client.get("/")
  assert page.status_code == 200 and 'data-testid="pad"' in page.text
  for hook in ("pad", "clear", "upload", "answer", "probability", "seen"):
    assert f'data-testid="{hook}"' in page.text
  assert "http" not in client.get("/app.js").text.replace("http://www.w3.org/2000/svg", "")
  assert client.get("/docs").status_code == 200
  assert "/api/predict" in client.get("/openapi.json").json()["paths"]
  assert client.get("/?body=<script>").text == page.text  # The query chooses nothing.
  for path in ("/../pyproject.toml", "/%2e%2e/pyproject.toml", "/web/index.html",
               "/etc/passwd", "/app.js/../../serve.py"):
    response = client.get(path)
    assert response.status_code == 404 and response.json()["code"] == "not_found", path


def test_an_upload_name_is_a_label_never_a_path(client: TestClient,
                                               tmp_path: pathlib.Path) -> None:
  target = tmp_path / "evil.png"
  for name in (f"../../../..{target}", str(target), "..\\..\\evil.png"):
    response = post(client, (name, b"not an image"))
    assert response.status_code == 422
    assert response.json()["error"].startswith("evil.png is a text file"), response.json()
    assert not target.exists()
  answer = post(client, ("/etc/passwd", SAMPLES[3].read_bytes())).json()[0]
  assert answer["path"] == "passwd" and answer["digit"] == 3


def _uploadable(case: Any, folder: pathlib.Path) -> tuple[str, str, bytes] | None:
  """(name built, name sent, bytes) for a case that is a regular file within the limit."""
  try:
    name = case.build(folder)
  except pytest.skip.Exception:  # A sparse file on a filesystem without them: too big anyway.
    return None
  path = folder / name
  if path.is_symlink() or not path.is_file() or path.stat().st_size > LIMIT:
    return None
  sent = name if name.isprintable() and name.isascii() else "renamed.png"
  return name, sent, path.read_bytes()


def test_every_hostile_file_infer_refuses_is_refused_in_its_words(
    client: TestClient, tmp_path: pathlib.Path) -> None:
  cases = [(c, _uploadable(c, tmp_path)) for c in _available(BAD)]
  cases = [(c, up) for c, up in cases if up is not None]
  assert len(cases) >= 15
  said = {o["path"]: o for o in infer_json("--i", *(name for _, (name, _, _) in cases),
                                           cwd=tmp_path)}
  good = ("good.jpg", SAMPLES[4].read_bytes())
  for case, (name, sent, data) in cases:
    response = post(client, (sent, data))
    body = response.json()
    want = said[_shown(name)]
    assert want["exit_code"] == case.code, (case.id, want)
    if case.code == 5:  # No digit is an answer, as it is for infer.
      assert response.status_code == 200, (case.id, body)
      assert body == [{**want, "path": sent, "error": want["error"].replace(want["path"], sent)}]
      continue
    assert response.status_code == 422, (case.id, response.status_code, body)
    assert body["code"] == "unreadable_image" and body["exit_code"] == case.code
    assert body["error"] == want["error"].replace(want["path"], sent), case.id
    assert case.says in body["error"], case.id
    # The others of a batch are still answered, and so is the next request.
    mixed = post(client, good, (sent, data))
    assert mixed.status_code == 422 and mixed.json()["results"][0]["digit"] == 4, case.id
    assert mixed.json()["results"][1] == {**want, "path": sent, "error": body["error"]}
  assert post(client, good).json()[0]["digit"] == 4


@pytest.mark.parametrize("request_kind, status, code", [
    ("no file field", 400, "no_file"), ("not multipart", 415, "not_multipart"),
    ("malformed multipart", 400, ("bad_request", "no_file")), ("top_k 0", 400, "bad_request"),
    ("GET predict", 405, "method_not_allowed")])
def test_bad_requests_are_json_refusals(client: TestClient, request_kind: str, status: int,
                                        code: str | tuple[str, ...]) -> None:
  url = "/api/predict"
  response = {
      "no file field": lambda: client.post(url, files=[("image", ("3.jpg", b"x"))]),
      "not multipart": lambda: client.post(url, content=b"\xff\xd8\xff",
                                           headers={"content-type": "image/jpeg"}),
      "malformed multipart": lambda: client.post(url, content=b"--x\r\nnonsense", headers={
          "content-type": "multipart/form-data; boundary=x"}),
      "top_k 0": lambda: post(client, ("3.jpg", SAMPLES[3].read_bytes()), query="?top_k=0"),
      "GET predict": lambda: client.get(url),
  }[request_kind]()
  assert response.status_code == status, response.text
  body = response.json()
  assert body["code"] in ((code,) if isinstance(code, str) else code), body
  assert isinstance(body["error"], str) and body["error"]


def test_over_20_mb_is_413(client: TestClient) -> None:
  big = post(client, ("big.bmp", bytes(LIMIT + 1)))
  assert big.status_code == 413 and big.json()["code"] == "too_large"
  assert "20 MB" in big.json()["error"]
  # Refused on the announced length alone, whatever follows.
  lying = client.post("/api/predict", content=b"tiny", headers={
      "content-type": "multipart/form-data; boundary=x", "content-length": str(LIMIT + 1)})
  assert lying.status_code == 413 and lying.json()["code"] == "too_large"


def test_concurrent_requests_answer_as_sequential_ones(client: TestClient,
                                                       model: WarmModel) -> None:
  files = [(p.name, p.read_bytes()) for p in SAMPLES] * 4
  one = lambda f: post(client, f, query="?top_k=3").json()[0]
  sequential = [one(f) for f in files]
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    concurrent_ = list(pool.map(one, files))
  for a, b in zip(sequential, concurrent_):
    assert a["path"] == b["path"] and a["digit"] == b["digit"]
    assert a["top_k"][0] == pytest.approx(b["top_k"][0], abs=2e-6)
    assert a["probabilities"] == pytest.approx(b["probabilities"], abs=2e-6)
  assert [a["digit"] for a in sequential] == list(range(10)) * 4


def _shown(name: str) -> str:
  return os.fsencode(name).decode("utf-8", "backslashreplace").replace("\n", "\\n")


# --- The real server over loopback ---------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
  with bench_serve.running_server("--checkpoint", str(CHECKPOINT)) as (host, port, proc):
    yield host, port
    # However its clients left (mid-upload, refused, stalled), it stops cleanly and quietly.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 143
    assert proc.stderr.read() == ""


def _raw(host: str, port: int, head: str, body: bytes = b"") -> socket.socket:
  sock = socket.create_connection((host, port), timeout=10)
  sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
  return sock


def _response(sock: socket.socket) -> bytes:
  data = b""
  try:
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
      chunk = sock.recv(65536)
      if not chunk:
        break
      data += chunk
  except ConnectionResetError:  # Closed after answering: what was read is the answer.
    pass
  return data


def test_server_refuses_an_oversized_body_before_reading_it(server: tuple[str, int]) -> None:
  host, port = server
  # Announced: refused at once, though only a few bytes follow.
  sock = _raw(host, port, "POST /api/predict HTTP/1.1\nHost: x\nContent-Type: multipart/"
              f"form-data; boundary=x\nContent-Length: {100 * LIMIT}\n", b"--x\r\n")
  start = time.monotonic()
  answer = _response(sock)
  assert answer.startswith(b"HTTP/1.1 413") and b'"too_large"' in answer, answer[:300]
  assert time.monotonic() - start < 5
  sock.close()
  # Unannounced (chunked): refused once 20 MB have come, long before the 200 MB sent.
  sock = _raw(host, port, "POST /api/predict HTTP/1.1\nHost: x\nContent-Type: multipart/"
              "form-data; boundary=x\nTransfer-Encoding: chunked\n")
  part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.bmp"\r\n\r\n'
  sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
  chunk, sent = b"%x\r\n%s\r\n" % (1 << 20, bytes(1 << 20)), 0
  try:
    for _ in range(200):
      sock.sendall(chunk)
      sent += 1
      if select.select([sock], [], [], 0)[0]:
        break
  except (BrokenPipeError, ConnectionResetError):
    pass
  answer = _response(sock)
  assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
  assert sent < 60, sent
  sock.close()


def test_stalled_clients_do_not_hold_up_others(server: tuple[str, int]) -> None:
  host, port = server
  stalled = [_raw(host, port, "POST /api/predict HTTP/1.1\nHost: x\nContent-Type: multipart/"
                  "form-data; boundary=x\nContent-Length: 100000\n", b"--x\r\nContent-")
             for _ in range(20)]
  stalled += [socket.create_connection((host, port)) for _ in range(20)]  # Not a byte sent.
  for s in stalled[20:]:
    s.sendall(b"POST /api/pre")
  try:
    client = bench_serve.Client(host, port)
    for digit in (3, 7):
      start = time.monotonic()
      status, answer = client.predict([(f"{digit}.jpg", SAMPLES[digit].read_bytes())])
      assert status == 200 and answer[0]["digit"] == digit
      assert time.monotonic() - start < 2
    client.close()
  finally:
    for s in stalled:
      s.close()


def test_concurrent_clients_are_answered_right(server: tuple[str, int]) -> None:
  figures = bench_serve.measure(*server, sequential=5, concurrent=48)
  assert figures["wrong_answers"] == 0
  assert figures["images_per_predict_call"] >= 1
  assert figures["latency_ms"]["p50"] > 0 and figures["images_per_second"] > 0


class _CountingModel:
  def __init__(self) -> None:
    self.calls: list[int] = []

  def predict(self, images: Any) -> Any:
    self.calls.append(len(images))
    return images.reshape(len(images), -1)[:, :10]


def test_batcher_gathers_requests_being_read_and_never_waits_alone() -> None:
  import asyncio
  import numpy as np
  from mnist_flax.serve_model import Batcher
  model = _CountingModel()

  async def scenario() -> tuple[list[Any], float]:
    b = Batcher(model, wait=5.0)  # Long: only the end of the others' reading may end it.
    async def request(k: int, delay: float) -> Any:
      await asyncio.sleep(delay)  # Reading its file.
      b.reading(-1)
      return await b.predict(np.full((k, 28, 28), k, np.float32))
    b.reading(3)
    answers = await asyncio.gather(request(1, 0.0), request(2, 0.05), request(3, 0.1))
    start = asyncio.get_running_loop().time()
    await b.predict(np.zeros((1, 28, 28), np.float32))  # Alone: answered without waiting.
    alone = asyncio.get_running_loop().time() - start
    b.close()
    return answers, alone

  answers, alone = asyncio.run(scenario())
  assert model.calls == [6, 1]  # Three requests (1 + 2 + 3 images) in one call.
  assert [a.shape[0] for a in answers] == [1, 2, 3]
  assert [float(a[0, 0]) for a in answers] == [1, 2, 3]  # Each got its own rows back.
  assert alone < 1.0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_finishes_the_request_in_flight_then_exits_143(workers: str) -> None:
  with bench_serve.running_server("--checkpoint", str(CHECKPOINT), "--workers", workers) as (
      host, port, proc):
    body, kind = bench_serve.multipart_body([("3.jpg", SAMPLES[3].read_bytes())])
    sock = _raw(host, port, f"POST /api/predict HTTP/1.1\nHost: x\nContent-Type: {kind}\n"
                f"Content-Length: {len(body)}\n", body[:100])
    time.sleep(0.3)  # The request is in flight: its headers are in, its body half-sent.
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(ConnectionRefusedError):  # No longer accepting connections...
      socket.create_connection((host, port), timeout=2)
    sock.sendall(body[100:])  # ... but the one in flight is answered.
    answer = _response(sock)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])[0]["digit"] == 3
    assert proc.wait(30) == 143
    assert proc.stderr.read() == ""
