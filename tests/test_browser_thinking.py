"""Thinking in a real browser: a thinking-capable model's reasoning is folded away, never in the answer.

Ollama >= 0.12 makes models whose capabilities list "thinking" think by default. The chat shows the reasoning
in its own collapsed "💭 Thinking" message that opens on a click; the answer bubble holds only the answer.
Uses the system's /usr/bin/chromium (skips when absent), like tests/test_browser.py.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import serve_app
from tests.ollama_standin import QWEN3_8B, ChatScript, OllamaStandIn
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)"
    ),
]

THOUGHT = "The user wants a speed figure; bandwidth over model size gives the ceiling."
ANSWER = "About twenty tokens per second on that machine."


@pytest.fixture
def thinking_app(standin: OllamaStandIn) -> Iterator[str]:
    standin.add_model(QWEN3_8B)
    with (
        tempfile.TemporaryDirectory(prefix="advisor-ui-") as tmp,
        serve_app(standin.url, Path(tmp), chat_model="qwen3:8b") as app,
    ):
        yield app.url


def test_thinking_is_folded_and_not_in_the_answer(
    standin: OllamaStandIn, thinking_app: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    standin.script_chat(ChatScript(text=ANSWER, thinking=THOUGHT))
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page: Any = context.pages[0] if context.pages else context.new_page()
            page.goto(thinking_app, wait_until="load")
            page.wait_for_selector("#chat-input textarea", timeout=30_000)
            box = page.locator("#chat-input textarea")
            box.fill("How fast is qwen2.5:32b on an M3 Max?")
            box.press("Enter")
            chat = page.locator("#chatbot")
            chat.get_by_text("tokens/s").first.wait_for(state="visible", timeout=60_000)
            title = chat.get_by_text("Thinking").first
            assert title.is_visible()
            assert ANSWER in chat.inner_text()
            assert not chat.get_by_text(THOUGHT).first.is_visible(), "thinking must be folded"
            answer = chat.get_by_text(ANSWER).first
            assert THOUGHT not in answer.inner_text()
            title.click()
            chat.get_by_text(THOUGHT).first.wait_for(state="visible", timeout=10_000)
        finally:
            context.close()
    assert "think" not in (standin.last_chat_request().json or {})
