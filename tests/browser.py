"""Headless Debian chromium driven by Playwright: load a page, collect every error it reports."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As the environment's own probe starts it: no sandbox as root, no background traffic on a closed network.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class Rendered:
    errors: list[str]  # console errors, page errors, failed requests
    broken_images: list[str]  # <img> that did not decode (naturalWidth 0)
    images: int
    tables: dict[str, list[dict]]  # table id -> rows as {data-key, cells}
    headings: list[str]
    text: str


def render(html: Path) -> Rendered:
    """Open the file in chromium and read back what a person would see."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is needed for the browser tests: apt-get install chromium (make test does)")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda message: errors.append(f"console {message.type}: {message.text}")
                    if message.type in ("error", "warning") else None)
            page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
            page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url}"))
            page.goto(Path(html).resolve().as_uri(), wait_until="load")
            broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                                   ".map(i => i.alt)")
            images = page.evaluate("document.images.length")
            tables = page.evaluate("""Object.fromEntries(Array.from(document.querySelectorAll('table[id]')).map(t =>
                [t.id, Array.from(t.tBodies[0].rows).map(r => ({key: r.dataset.key || null,
                  cells: Array.from(r.cells).map(c => c.innerText)}))]))""")
            headings = page.evaluate("Array.from(document.querySelectorAll('h2, h3')).map(h => h.innerText)")
            text = page.evaluate("document.body.innerText")
        finally:
            browser.close()
    return Rendered(errors, broken, images, tables, headings, text)
