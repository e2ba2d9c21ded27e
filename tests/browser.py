"""A real browser for the HTML pages the project writes (the report, the compare page): headless
Chromium loads a page with a probe that records load errors, failed images, uncaught exceptions,
console errors and sideways overflow, and takes a screenshot."""

from __future__ import annotations

import html
import os
import re
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))

# Injected into a copy of the page: records load errors (capture phase also sees failed <img>),
# uncaught exceptions and console.error calls, then on load writes what it found onto <html>.
PROBE = """<script>(function () {
  var errors = [];
  addEventListener("error", function (e) {
    errors.push(e.message || "failed to load " + (e.target && (e.target.currentSrc || e.target.src)));
  }, true);
  var consoleError = console.error;
  console.error = function () { errors.push([].join.call(arguments, " ")); consoleError.apply(console, arguments); };
  addEventListener("load", function () {
    var images = [].slice.call(document.images), root = document.documentElement;
    root.dataset.imagesLoaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length
      + "/" + images.length;
    root.dataset.errors = JSON.stringify(errors);
    root.dataset.overflow = String(root.scrollWidth - root.clientWidth);
  });
})();</script>"""

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"headless Chromium not found at {CHROMIUM} (`make test` installs it: apt-get install chromium)",
)


def render_in_chromium(page_html: str, directory: Path, width: int, height: int) -> tuple[dict, str, Path]:
    """Load the page with the probe in headless Chromium; returns the probe's findings, stderr, screenshot."""
    head = page_html.index("<head>") + len("<head>")
    page = directory / "page.html"
    page.write_text(page_html[:head] + PROBE + page_html[head:], encoding="utf-8")
    screenshot = directory / f"screenshot-{width}x{height}.png"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        f"--user-data-dir={directory / 'chromium-profile'}",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        f"--window-size={width},{height}",
        f"--screenshot={screenshot}",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    root = re.search(r"<html[^>]*>", done.stdout)
    assert root, f"no DOM dumped: {done.stdout[:500]!r}"
    found = {key: html.unescape(value) for key, value in re.findall(r'data-([a-z-]+)="([^"]*)"', root.group(0))}
    return found, done.stderr, screenshot


def check_screenshot(path: Path, width: int, height: int) -> None:
    import matplotlib.image

    assert path.exists() and path.stat().st_size > 20_000
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (height, width)
    assert pixels[..., :3].std() > 0.05  # text, tables and plots, not a blank page
