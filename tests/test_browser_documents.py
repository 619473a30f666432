"""The "Documents & models" tab in a real browser (headless Debian Chromium via Playwright) with the stand-in.

A user uploads a note and sees it listed; pulls a model and sees the progress bar part-way (the stand-in holds
the pull half-way on a gate, so the test waits on page conditions, never on time) and then the model selected
in the chat's picker; and a message over the length limit stays in the input box with advice pointing to the
tab. Everything the page loads stays on 127.0.0.1.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from assistant.ui import MAX_INPUT_CHARS
from tests.harness import HANG_S, save_screenshot, serve_app
from tests.ollama_standin import LLAMA31_8B

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
WAIT_MS = HANG_S * 1000  # only catches a hang

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is absent (apt-get install chromium; never `playwright install`)",
    ),
]


@pytest.fixture
def app_url(standin: Any) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="advisor-ui-") as tmp, serve_app(standin.url, Path(tmp)) as app:
        yield app.url


@pytest.fixture
def page_and_requests(tmp_path: Path) -> Iterator[tuple[Any, list[str]]]:
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            context.on("request", lambda req: requests.append(req.url))
            page = context.pages[0] if context.pages else context.new_page()
            yield page, requests
        finally:
            context.close()


def _wait_text(page: Any, selector: str, text: str) -> None:
    page.wait_for_function(
        "([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
        arg=[selector, text],
        timeout=WAIT_MS,
    )


def test_upload_a_document_and_pull_a_model_from_the_page(
    standin: Any, app_url: str, page_and_requests: tuple[Any, list[str]], tmp_path: Path
) -> None:
    page, requests = page_and_requests
    note = tmp_path / "desk-notes.md"
    note.write_text(
        "# Desk setup notes\n\n## Power\n\nThe quokka-lamp on the desk draws 9 watts.\n", encoding="utf-8"
    )
    page.goto(app_url, wait_until="load")
    page.get_by_role("tab", name="Documents & models").click()
    _wait_text(page, "#documents-summary", "No documents yet")

    # Upload, add, and see it listed (and searchable).
    page.locator("#documents-upload input[type=file]").set_input_files(str(note))
    # The finished upload (the file table), not the "Uploading 1 file..." row that shows the name earlier:
    # Gradio refuses a click on Add while an upload is still pending.
    page.wait_for_selector(
        "#documents-upload .file-preview td.filename[aria-label='desk-notes.md']", timeout=WAIT_MS
    )
    page.click("#documents-add")
    _wait_text(page, "#documents-status", "Added Desk setup notes")
    _wait_text(page, "#documents-list", "Desk setup notes — markdown, 1 passage, desk-notes.md")
    assert "1 document" in page.inner_text("#documents-summary")

    # Pull: the progress bar part-way through, then the model selected in the chat's picker.
    standin.pull_gate = threading.Event()
    try:
        name = page.locator("#pull-model-name input")
        name.fill("qwen2.5:32b")
        name.press("Enter")
        page.click("#pull-model")
        page.wait_for_selector("#pull-progress progress[value]", timeout=WAIT_MS)
        _wait_text(page, "#pull-progress", "50%")
        value = float(page.locator("#pull-progress progress").get_attribute("value") or "nan")
        assert 0.0 < value < 1.0
        save_screenshot(page, "documents-and-models", full_page=True)
    finally:
        standin.pull_gate.set()
    _wait_text(page, "#pull-progress", "qwen2.5:32b is installed and selected")
    assert page.locator("#pull-progress progress").count() == 0  # the bar is gone when done

    page.get_by_role("tab", name="Chat").click()
    picked = "() => document.querySelector('#model-picker input')?.value === 'qwen2.5:32b'"
    page.wait_for_function(picked, timeout=WAIT_MS)
    # A model appearing later (pulled in a terminal) updates the picker's list on the status timer, but
    # leaves the selection alone.
    _wait_text(page, "#ollama-status", "3 tool-capable model(s)")
    standin.add_model(LLAMA31_8B)
    _wait_text(page, "#ollama-status", "4 tool-capable model(s)")
    page.click("#model-picker input")
    page.get_by_role("option", name="llama3.1:8b").wait_for(state="visible", timeout=WAIT_MS)
    page.keyboard.press("Escape")
    page.wait_for_function(picked, timeout=WAIT_MS)

    # An over-long message: refused with advice pointing to the tab, and still in the box.
    long_text = "Please read this log: " + "x" * MAX_INPUT_CHARS
    box = page.locator("#chat-input textarea")
    box.fill(long_text)
    box.press("Enter")
    _wait_text(page, "#chatbot", "Documents & models")
    assert box.input_value() == long_text

    outside = [
        u
        for u in requests
        if urlparse(u).scheme not in ("data", "blob") and urlparse(u).hostname != "127.0.0.1"
    ]
    assert outside == []
