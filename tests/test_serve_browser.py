"""The page of ``python -m mnist_flax.serve`` in a real browser: Debian's chromium, driven by
Playwright for Python (Playwright's own browser download is not used).

Starts the server on a free loopback port, draws a 7 and then a 1 with mouse moves on the pad,
checks the answer, clears, uploads test/3.jpg through the file picker, checks the answer and
the 28x28 image shown, and saves screenshots (desktop and phone-sized) into the test's
folder, or into $SCREENSHOT_DIR when set. ``.ci/run`` installs chromium when it is missing, so
this test runs in CI; it fails (it does not skip) when the browser cannot start.

Run: python -m pytest tests/test_serve_browser.py -v
"""

from __future__ import annotations

import os
import pathlib
import re
from typing import Iterator

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from conftest import ROOT
from mnist_flax.tools import bench_serve
from test_serve import _number_photo

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
CHECKPOINT = pathlib.Path(os.environ.get("TEST_CHECKPOINT") or ROOT / "checkpoints" / "final")
# Strokes in fractions of the pad: a 7 (bar, then the long diagonal) and a 1.
SEVEN = [[(0.22, 0.2), (0.78, 0.2), (0.45, 0.85)]]
ONE = [[(0.5, 0.12), (0.5, 0.88)]]

# A calibrated probability shows as 0.xyz or, for a sure answer, 1.000.
PROBABILITY = re.compile(r"probability [01]\.\d{3}")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
  with bench_serve.running_server("--checkpoint", str(CHECKPOINT)) as (host, port, _):
    yield f"http://{host}:{port}/"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
  with sync_playwright() as p:
    b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    yield b
    b.close()


def shots(tmp_path: pathlib.Path) -> pathlib.Path:
  folder = pathlib.Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
  folder.mkdir(parents=True, exist_ok=True)
  return folder


def draw(page: Page, strokes: list[list[tuple[float, float]]]) -> None:
  box = page.get_by_test_id("pad").bounding_box()
  assert box and box["width"] > 100
  at = lambda p: (box["x"] + p[0] * box["width"], box["y"] + p[1] * box["height"])
  for stroke in strokes:
    page.mouse.move(*at(stroke[0]))
    page.mouse.down()
    for point in stroke[1:]:
      page.mouse.move(*at(point), steps=12)
    page.mouse.up()


def seen_image(page: Page) -> None:
  image = page.get_by_test_id("seen").locator("img")
  expect(image).to_have_count(1)
  expect(image).to_be_visible()
  assert image.evaluate("img => img.complete && img.naturalWidth") == 28


def test_browser_draw_clear_and_upload(browser: object, url: str, tmp_path: pathlib.Path) -> None:
  page = browser.new_page(viewport={"width": 1000, "height": 760})
  errors: list[str] = []
  page.on("pageerror", lambda e: errors.append(str(e)))
  outside: list[str] = []
  # Only this server (and the photo shown from memory): no CDN, no fonts, nothing else.
  page.on("request", lambda r: None if r.url.startswith((url, "blob:" + url, "data:"))
          else outside.append(r.url))
  page.goto(url)
  answer, probability = page.get_by_test_id("answer"), page.get_by_test_id("probability")
  expect(answer).to_have_text("?")

  draw(page, SEVEN)
  expect(answer).to_have_text("7", timeout=10_000)
  expect(probability).to_have_text(PROBABILITY)
  seen_image(page)
  assert page.locator("#bars li").count() == 3

  page.get_by_test_id("clear").click()
  expect(answer).to_have_text("?")
  expect(page.get_by_test_id("seen").locator("img")).to_have_count(0)
  draw(page, ONE)
  expect(answer).to_have_text("1", timeout=10_000)
  page.get_by_test_id("clear").click()

  page.get_by_test_id("upload").set_input_files(str(ROOT / "test" / "3.jpg"))
  expect(answer).to_have_text("3", timeout=10_000)
  expect(probability).to_have_text(PROBABILITY)
  seen_image(page)
  expect(page.locator("#photo-img")).to_be_visible()
  page.screenshot(path=str(shots(tmp_path) / "serve.png"), full_page=True)

  # A file infer refuses: its message on the page, no answer.
  page.get_by_test_id("upload").set_input_files(files=[{
      "name": "notes.png", "mimeType": "image/png", "buffer": b"shopping list\n"}])
  expect(page.locator("#message")).to_contain_text("notes.png is a text file", timeout=10_000)
  expect(answer).to_have_text("?")
  assert errors == [] and outside == [], (errors, outside)
  page.close()


def test_browser_phone_sized_page_draws_with_touch(browser: object, url: str,
                                                   tmp_path: pathlib.Path) -> None:
  page = browser.new_page(viewport={"width": 390, "height": 844}, has_touch=True,
                          is_mobile=True, device_scale_factor=2)
  page.goto(url)
  # Everything fits the width: no sideways scrolling, and the pad is all on screen.
  assert page.evaluate("document.documentElement.scrollWidth") <= 390
  box = page.get_by_test_id("pad").bounding_box()
  assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["width"] >= 250
  # A finger: pointer events of type touch, sent through the DevTools protocol.
  cdp = page.context.new_cdp_session(page)
  points = [(0.5, 0.12 + 0.76 * i / 15) for i in range(16)]
  at = lambda p: {"x": box["x"] + p[0] * box["width"], "y": box["y"] + p[1] * box["height"]}
  cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [at(points[0])]})
  for p in points[1:]:
    cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [at(p)]})
  cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
  expect(page.get_by_test_id("answer")).to_have_text("1", timeout=10_000)
  page.screenshot(path=str(shots(tmp_path) / "serve_phone.png"), full_page=True)
  page.close()


def test_browser_shows_each_digit_of_a_number(browser: object, url: str,
                                              tmp_path: pathlib.Path) -> None:
  """A photo of "42": each digit listed with its probability, its box drawn over the photo,
  its own 28x28 shown."""
  page = browser.new_page(viewport={"width": 1000, "height": 760})
  page.goto(url)
  page.get_by_test_id("upload").set_input_files(files=[{
      "name": "42.png", "mimeType": "image/png", "buffer": _number_photo((4, 2))}])
  expect(page.get_by_test_id("answer")).to_have_text("42", timeout=10_000)
  expect(page.get_by_test_id("probability")).to_have_text(PROBABILITY)
  expect(page.locator("#digits li")).to_have_count(2)
  expect(page.locator("#digits li").first).to_contain_text("4 (0.")
  expect(page.locator("#boxes rect")).to_have_count(2)
  left, right = (float(page.locator("#boxes rect").nth(i).get_attribute("x")) for i in (0, 1))
  assert left < right
  expect(page.get_by_test_id("seen").locator("img")).to_have_count(2)
  page.screenshot(path=str(shots(tmp_path) / "serve_number.png"), full_page=True)
  page.close()
