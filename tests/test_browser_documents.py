"""The "Documents & models" tab in a real browser (headless Debian Chromium via Playwright) with the stand-in.

A user uploads a note and sees it listed; pulls a model and sees the progress bar part-way (the stand-in holds
the pull half-way on a gate, so the test waits on page conditions, never on time) and then the model selected
in the chat's picker; and a message over the length limit stays in the input box with advice pointing to the
tab. Everything the page loads stays on 127.0.0.1.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from assistant.ui import MAX_INPUT_CHARS
from tests.browser_support import BROWSER_MARKS, WAIT_MS, assert_only_loopback, wait_text
from tests.harness import save_screenshot
from tests.ollama_standin import LLAMA31_8B

pytestmark = BROWSER_MARKS


def test_upload_a_document_and_pull_a_model_from_the_page(
    standin: Any, app_url: str, browser_page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    page, requests = browser_page
    note = tmp_path / "desk-notes.md"
    note.write_text(
        "# Desk setup notes\n\n## Power\n\nThe quokka-lamp on the desk draws 9 watts.\n", encoding="utf-8"
    )
    page.goto(app_url, wait_until="load")
    page.get_by_role("tab", name="Documents & models").click()
    wait_text(page, "#documents-summary", "No documents yet")

    # Upload, add, and see it listed (and searchable).
    page.locator("#documents-upload input[type=file]").set_input_files(str(note))
    # The finished upload (the file table), not the "Uploading 1 file..." row that shows the name earlier:
    # Gradio refuses a click on Add while an upload is still pending.
    page.wait_for_selector(
        "#documents-upload .file-preview td.filename[aria-label='desk-notes.md']", timeout=WAIT_MS
    )
    page.click("#documents-add")
    wait_text(page, "#documents-status", "Added Desk setup notes")
    wait_text(page, "#documents-list", "Desk setup notes — markdown, 1 passage, desk-notes.md")
    assert "1 document" in page.inner_text("#documents-summary")

    # Pull: the progress bar part-way through, then the model selected in the chat's picker.
    standin.pull_gate = threading.Event()
    try:
        name = page.locator("#pull-model-name input")
        name.fill("qwen2.5:32b")
        name.press("Enter")
        page.click("#pull-model")
        page.wait_for_selector("#pull-progress progress[value]", timeout=WAIT_MS)
        wait_text(page, "#pull-progress", "50%")
        value = float(page.locator("#pull-progress progress").get_attribute("value") or "nan")
        assert 0.0 < value < 1.0
        save_screenshot(page, "documents-and-models", full_page=True)
    finally:
        standin.pull_gate.set()
    wait_text(page, "#pull-progress", "qwen2.5:32b is installed and selected")
    assert page.locator("#pull-progress progress").count() == 0  # the bar is gone when done

    page.get_by_role("tab", name="Chat").click()
    picked = "() => document.querySelector('#model-picker input')?.value === 'qwen2.5:32b'"
    page.wait_for_function(picked, timeout=WAIT_MS)
    # A model appearing later (pulled in a terminal) updates the picker's list on the status timer, but
    # leaves the selection alone.
    wait_text(page, "#ollama-status", "3 tool-capable model(s)")
    standin.add_model(LLAMA31_8B)
    wait_text(page, "#ollama-status", "4 tool-capable model(s)")
    page.click("#model-picker input")
    page.get_by_role("option", name="llama3.1:8b").wait_for(state="visible", timeout=WAIT_MS)
    page.keyboard.press("Escape")
    page.wait_for_function(picked, timeout=WAIT_MS)

    # An over-long message: refused with advice pointing to the tab, and still in the box.
    long_text = "Please read this log: " + "x" * MAX_INPUT_CHARS
    box = page.locator("#chat-input textarea")
    box.fill(long_text)
    box.press("Enter")
    wait_text(page, "#chatbot", "Documents & models")
    assert box.input_value() == long_text

    assert_only_loopback(requests)
