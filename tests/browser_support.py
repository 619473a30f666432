"""What the browser tests share: the system's Chromium (never `playwright install`), how a page is opened,
and the page-side checks and waits they all use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pytest

from tests.harness import HANG_S

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: ViewportSize = {"width": 1400, "height": 1000}  # every page's viewport unless it plays a phone
WAIT_MS = HANG_S * 1000  # Playwright counts in ms; a bound that only catches a hang on a busy machine

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is absent (apt-get install chromium; never `playwright install`)",
    ),
]


@contextmanager
def chromium_page(profile: Path) -> Iterator[tuple[Any, list[str]]]:
    """(page, every URL the page requested) in a fresh headless Chromium with its own profile directory."""
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            user_data_dir=str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=DESKTOP,
        )
        try:
            context.on("request", lambda req: requests.append(req.url))
            page = context.pages[0] if context.pages else context.new_page()
            yield page, requests
        finally:
            context.close()


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``) for tests that need more than `chromium_page`: several
    contexts with separate storage (two browsers, two users) or a page kept across a server restart."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def assert_only_loopback(requests: list[str]) -> None:
    """The offline promise: every request the page made went to 127.0.0.1 (no fonts, CDN, analytics)."""
    assert requests, "the page made no requests at all?"
    outside = [
        u
        for u in requests
        if urlparse(u).scheme not in ("data", "blob") and urlparse(u).hostname != "127.0.0.1"
    ]
    assert outside == [], f"requests left 127.0.0.1: {outside[:10]}"


def wait_text(page: Any, selector: str, text: str) -> None:
    """Wait until the element `selector` shows `text`."""
    page.wait_for_function(
        "([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
        arg=[selector, text],
        timeout=WAIT_MS,
    )
