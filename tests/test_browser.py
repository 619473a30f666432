"""The chat in a real browser: headless Debian Chromium, driven by Playwright, against the Ollama stand-in.

Checks what a user sees — the streamed answer, the tool-call message, the tokens/s line, the chart, a
Tools-tab form — and the offline promise: every request the page makes goes to 127.0.0.1 (no fonts, CDN,
analytics).
Never runs `playwright install`: it uses the system's /usr/bin/chromium and skips when that is absent
(tests/browser_support.py; the `app_url` and `browser_page` fixtures are in tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser_support import BROWSER_MARKS, WAIT_MS, assert_only_loopback
from tests.harness import save_screenshot, serve_app

# Records every distinct length the chat's text takes while it changes, from inside the page: a
# MutationObserver sees each streamed update, however slowly the test process is scheduled.
WATCH_CHAT = """
() => {
  window.__chatLengths = [];
  const chat = document.querySelector('#chatbot');
  const seen = () => {
    if (!chat.innerText.includes('On an M3 Max')) return;  // only the answer's own growth counts
    const n = chat.innerText.length;
    const lengths = window.__chatLengths;
    if (lengths[lengths.length - 1] !== n) lengths.push(n);
  };
  new MutationObserver(seen).observe(chat, {subtree: true, childList: true, characterData: true});
}
"""

pytestmark = BROWSER_MARKS

ANSWER = (
    "On an M3 Max (40-core GPU), qwen2.5:32b at Q4_K_M should generate about 20 tokens per second; "
    "the bandwidth ceiling is a little higher."
)
SPEED_ARGS = {"chip": "M3 Max", "gpu_cores": 40, "model": "qwen2.5:32b"}


def test_chat_streams_answer_with_tool_call_offline(
    standin: Any, app_url: str, browser_page: tuple[Any, list[str]]
) -> None:
    from tests.ollama_standin import ChatScript, ToolCallScript

    page, requests = browser_page
    standin.script_chat(
        ChatScript(tool_calls=(ToolCallScript(name="estimate_speed", arguments=SPEED_ARGS),)),
        ChatScript(text=ANSWER, token_delay_s=0.03),
    )
    page.goto(app_url, wait_until="load")
    page.wait_for_selector("#ollama-status", timeout=WAIT_MS)
    assert "Ollama" in page.inner_text("#ollama-status")

    box = page.locator("#chat-input textarea")
    box.fill("How fast would qwen2.5:32b run on an M3 Max?")

    chat = page.locator("#chatbot")
    final_fragment = "a little higher"
    page.evaluate(WATCH_CHAT)
    box.press("Enter")
    # Streaming: the answer is seen growing (several distinct lengths) before it is complete.
    page.wait_for_function(
        "f => document.querySelector('#chatbot').innerText.includes(f)"
        " && document.querySelector('#chatbot').innerText.includes('tokens/s')",
        arg=final_fragment,
        timeout=WAIT_MS,
    )
    lengths = page.evaluate("window.__chatLengths")
    seen_lengths = {n for n in lengths if n > 0}
    text = chat.inner_text()
    assert final_fragment in text, text
    assert len(seen_lengths) >= 2, f"the answer did not stream (it appeared all at once: {lengths})"
    assert "estimate_speed" in text  # the collapsible tool-call message
    assert "tokens/s" in text  # the speed line under the answer
    assert "How fast would qwen2.5:32b" in text

    # The tool message opens to show arguments and result.
    # The speed-vs-bandwidth chart rendered (plotly from Gradio's own bundle).
    page.wait_for_selector("#chat-chart .js-plotly-plot, #chat-chart .plotly", timeout=WAIT_MS)
    chat.get_by_text("estimate_speed").first.click()
    chat.get_by_text("expected_tokens_per_second").first.wait_for(state="visible", timeout=WAIT_MS)
    assert chat.get_by_text('"chip": "M3 Max"').first.is_visible()  # the arguments, too
    page.wait_for_function(  # the accordion has finished opening (its height stopped changing)
        """() => new Promise(done => {
          let last = -1;
          const tick = () => {
            const h = document.querySelector('#chatbot').scrollHeight;
            if (h === last) return done(true);
            last = h;
            requestAnimationFrame(() => requestAnimationFrame(tick));
          };
          tick();
        })""",
        timeout=WAIT_MS,
    )

    shot = save_screenshot(page, "chat")  # also the README's picture (ADVISOR_DOCS_SCREENSHOTS=1)
    assert shot.stat().st_size > 10_000

    # The model saw our tool result on its second call.
    chat_calls = standin.chat_requests()
    assert len(chat_calls) >= 2
    assert any(m.get("role") == "tool" for m in chat_calls[-1].json["messages"])
    assert_only_loopback(requests)


def test_tools_tab_form_runs_without_a_model(app_url: str, browser_page: tuple[Any, list[str]]) -> None:
    page, requests = browser_page
    page.goto(app_url, wait_until="load")
    page.get_by_role("tab", name="Tools").click()
    page.get_by_role("tab", name="check_memory_fit").click()
    for field, value in (("chip", "M4 Pro"), ("memory_gb", "48"), ("model", "llama3.3:70b")):
        page.locator(f"#check_memory_fit-{field} textarea, #check_memory_fit-{field} input").first.fill(value)
    page.click("#run-check_memory_fit")
    page.wait_for_function(
        "() => (document.querySelector('#summary-check_memory_fit')?.innerText || '').includes('verdict')",
        timeout=WAIT_MS,
    )
    summary = page.inner_text("#summary-check_memory_fit")
    assert "verdict: partial_offload" in summary and "max context tokens" in summary
    page.wait_for_selector("#tools-chart-check_memory_fit .js-plotly-plot", timeout=WAIT_MS)
    save_screenshot(page, "tools", full_page=True)
    assert_only_loopback(requests)


def test_context_meter_and_left_out_notice_in_the_page(
    standin: Any, browser_page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    """The meter shows used / window after an answer; what a small window leaves out is said in the chat."""
    from tests.ollama_standin import ChatScript

    page, requests = browser_page
    long_answer = "Memory bandwidth bounds decode speed. " * 240  # ~9 KB: no room for it next to turn 2
    standin.script_chat(ChatScript(text=long_answer), ChatScript(text="Short follow-up answer."))
    with serve_app(standin.url, tmp_path / "data", num_ctx=6144) as app:
        page.goto(app.url, wait_until="load")
        page.wait_for_selector("#context-meter", timeout=WAIT_MS)
        assert "6,144 tokens" in page.inner_text("#context-meter")
        box = page.locator("#chat-input textarea")
        chat = page.locator("#chatbot")
        box.fill("Why does bandwidth matter?")
        box.press("Enter")
        chat.get_by_text("tokens/s").first.wait_for(timeout=WAIT_MS)
        page.wait_for_function(
            "() => (document.querySelector('#context-meter')?.innerText || '').includes('/ 6,144 tokens')",
            timeout=WAIT_MS,
        )
        box.fill("And on an M4 Pro?")
        box.press("Enter")
        chat.get_by_text("Short follow-up answer").first.wait_for(timeout=WAIT_MS)
        notice = chat.get_by_text("Left out of this request").first
        notice.wait_for(state="visible", timeout=WAIT_MS)  # in plain sight, not inside a folded note
        assert "earlier answer" in notice.inner_text()
        assert "All 1 of your earlier questions are still included" in notice.inner_text()
        sent = [m["content"] for m in standin.last_chat_request().messages if m["role"] == "user"]
        assert sent == ["Why does bandwidth matter?", "And on an M4 Pro?"]
        save_screenshot(page, "context")
    assert_only_loopback(requests)
