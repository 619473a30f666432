"""What the page shows, in headless Chromium against the Ollama stand-in: persistent conversations (sidebar,
reload, restart, rename, export, delete, one browser's conversations invisible to another), the Stop button,
and the page hygiene items (user HTML shown as text, a chart belongs to its answer and follows dark mode,
titles not clipped at 390 px, passages wrap and show ranks, status wording, recommend_machine's machine).

One page session covers all of it (the machine is slow); every wait is on a page condition, never a sleep.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from assistant.ui.conversations import Sidebar
from tests.browser_support import BROWSER_MARKS, DESKTOP, WAIT_MS, launched_chromium
from tests.harness import HANG_S, free_port, serve_app
from tests.ollama_standin import ChatScript, Fault, OllamaStandIn, ToolCallScript
from tests.test_browser import SPEED_ARGS

pytestmark = BROWSER_MARKS

Q1 = "How fast would qwen2.5:32b run on an M3 Max?"
A1 = "On an M3 Max (40-core GPU), qwen2.5:32b should generate about 20 tokens per second [p:bandwidth]."
Q2 = 'Is <img src=x onerror="window.__pwned=1"> or <script>window.__pwned=2</script> *shown* as typed?'
A2 = "It is shown as you typed it."
LONG = " ".join(f"word{i}" for i in range(600))
FOLLOW_UP = "and with 32k context instead?"


@contextlib.contextmanager
def _served(ollama_url: str, data_dir: Path, port: int, **settings: Any) -> Iterator[str]:
    """The real app on a fixed port: a restart keeps the browser origin (and so its storage)."""
    with serve_app(ollama_url, data_dir, port, **settings) as app:
        yield app.url


def _chat_has(page: Any, *fragments: str) -> None:
    page.wait_for_function(
        "(parts) => { const t = document.querySelector('#chatbot')?.innerText || '';"
        " return parts.every(p => t.includes(p)); }",
        arg=list(fragments),
        timeout=WAIT_MS,
    )


def _ask(page: Any, text: str) -> None:
    box = page.locator("#chat-input textarea")
    box.fill(text)
    box.press("Enter")


def _titles(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#conversation-list label").all_inner_texts()]


TITLES_JS = "() => [...document.querySelectorAll('#conversation-list label')].map(l => l.innerText.trim())"


def _wait_titles(page: Any, expected: list[str]) -> None:
    try:
        page.wait_for_function(
            f"(want) => JSON.stringify(({TITLES_JS})()) === JSON.stringify(want)",
            arg=expected,
            timeout=WAIT_MS,
        )
    except Exception as exc:
        raise AssertionError(f"sidebar shows {page.evaluate(TITLES_JS)}, expected {expected}") from exc


def _chart_title_inside(page: Any) -> dict[str, Any]:
    """Bounding boxes of the chat chart's title and its SVG (to check nothing is cut off)."""
    return page.evaluate(
        """() => {
            const svg = document.querySelector('#chat-chart .main-svg');
            const title = document.querySelector('#chat-chart .gtitle');
            const s = svg.getBoundingClientRect(), t = title.getBoundingClientRect();
            return {sl: s.left, sr: s.right, tl: t.left, tr: t.right, tw: t.width,
                    fill: getComputedStyle(title).fill};
        }"""
    )


SIDEBAR_TOGGLE = 'button.toggle-button[aria-label="Toggle Sidebar"]'
TITLE_FITS = """(width) => {
    const svg = document.querySelector('#chat-chart .main-svg');
    const title = document.querySelector('#chat-chart .gtitle');
    if (!svg || !title) return false;
    const s = svg.getBoundingClientRect(), t = title.getBoundingClientRect();
    return s.width <= width && t.width > 0 && t.left >= s.left - 1 && t.right <= s.right + 1;
}"""


def _luminance(css_colour: str) -> float:
    r, g, b = (int(x) for x in re.findall(r"\d+", css_colour)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_conversations_stop_and_page_hygiene(standin: OllamaStandIn, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    with launched_chromium() as browser:  # one browser: this page's context, and later a stranger's
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        with _served(standin.url, data_dir, port) as url:
            page.goto(url + "?__theme=dark", wait_until="load")
            page.wait_for_selector("#conversation-list", timeout=WAIT_MS)

            # 1. A tool-using answer: its chart shows, follows dark mode, and its title is not clipped.
            standin.script_chat(
                ChatScript(tool_calls=(ToolCallScript(name="estimate_speed", arguments=SPEED_ARGS),)),
                ChatScript(text=A1),
            )
            _ask(page, Q1)
            _chat_has(page, "about 20 tokens per second", "tokens/s")
            page.wait_for_selector("#chat-chart .gtitle", timeout=WAIT_MS)
            try:
                page.wait_for_function(TITLE_FITS, arg=1400, timeout=WAIT_MS)
            except Exception as exc:
                raise AssertionError(f"chart title clipped: {_chart_title_inside(page)}") from exc
            box = _chart_title_inside(page)
            assert _luminance(box["fill"]) > 0.6, f"chart text is dark on a dark page: {box['fill']}"
            page.click(SIDEBAR_TOGGLE)  # as on a phone, where the page starts with the sidebar closed
            page.set_viewport_size({"width": 390, "height": 844})
            # Plotly re-lays the chart out after a resize (debounced): wait for a fitted title, or fail.
            try:
                page.wait_for_function(TITLE_FITS, arg=390, timeout=WAIT_MS)
            except Exception as exc:
                raise AssertionError(f"chart title clipped at 390 px: {_chart_title_inside(page)}") from exc
            page.set_viewport_size({"width": 1400, "height": 1000})
            page.click(SIDEBAR_TOGGLE)
            page.locator("#rename-conversation").wait_for(state="visible", timeout=WAIT_MS)

            # Passages in the chat: ranks, not fusion scores; no line breaks inside a sentence.
            page.locator("#chatbot").get_by_text("passages from the knowledge base").first.click()
            page.wait_for_function(
                "() => document.querySelectorAll('#chatbot blockquote').length > 0", timeout=WAIT_MS
            )
            chat_text = page.inner_text("#chatbot")
            assert "#1 ·" in chat_text and not re.search(r"score \d\.\d{3}", chat_text)
            breaks = page.evaluate("() => document.querySelectorAll('#chatbot blockquote p br').length")
            assert breaks == 0, "passages break lines mid-sentence in the chat"

            # 2. User HTML is text; an answer without a chart clears the previous answer's chart.
            standin.script_chat(ChatScript(text=A2))
            _ask(page, Q2)
            _chat_has(page, A2)
            page.wait_for_function(
                "() => !document.querySelector('#chat-chart .js-plotly-plot')", timeout=WAIT_MS
            )
            _chat_has(page, '<img src=x onerror="window.__pwned=1">', "<script>window.__pwned=2</script>")
            _chat_has(page, "*shown*")
            assert page.evaluate("() => document.querySelectorAll('#chatbot img[src=\"x\"]').length") == 0
            assert page.evaluate("() => window.__pwned === undefined")

            # 3. Stop: the stream to Ollama is closed and the partial answer stays, marked.
            standin.script_chat(ChatScript(text=LONG, token_delay_s=0.05))
            _ask(page, "Tell me everything, at length.")
            _chat_has(page, "word3 ")
            page.click("#stop")
            _chat_has(page, "— stopped")
            assert standin.wait_chat_aborted(HANG_S), "Stop did not close the HTTP stream to Ollama"
            assert "word599" not in page.inner_text("#chatbot")
            _wait_titles(page, [Q1])  # the stopped turn stays in the same conversation

            # 4. Reload: the same conversation comes back, and a follow-up carries the earlier questions.
            page.reload(wait_until="load")
            _chat_has(page, Q1, A2, "— stopped")
            _wait_titles(page, [Q1])
            # The meter of a reopened conversation does not claim the chat has not started.
            page.wait_for_function(
                "() => (document.querySelector('#context-meter')?.innerText || '').includes('next message')",
                timeout=WAIT_MS,
            )
            assert "first message" not in page.inner_text("#context-meter")
            # The question box gets most of its row, not a sliver beside two wide buttons.
            widths = page.evaluate(
                "() => [document.querySelector('#chat-input').getBoundingClientRect().width,"
                " document.querySelector('#send').getBoundingClientRect().width]"
            )
            assert widths[0] > 2 * widths[1], f"question box {widths[0]:.0f} px, Send {widths[1]:.0f} px"
            standin.clear_requests()
            standin.script_chat(ChatScript(text="With 32k context it still fits."))
            _ask(page, FOLLOW_UP)
            _chat_has(page, "it still fits")
            users = [m["content"] for m in standin.last_chat_request().messages if m["role"] == "user"]
            assert users[0] == Q1 and users[-1] == FOLLOW_UP and len(users) == 4, users

            # 5. Rename, export as Markdown.
            title_box = page.locator("#conversation-title textarea, #conversation-title input").first
            title_box.fill("Speed on an M3 Max")
            page.click("#rename-conversation")
            _wait_titles(page, ["Speed on an M3 Max"])
            page.click("#export-conversation")
            link = page.locator("#conversation-export a[href]").first
            link.wait_for(state="attached", timeout=WAIT_MS)
            href = link.get_attribute("href")
            assert href is not None
            exported = page.request.get(href).text()
            for part in (
                "# Speed on an M3 Max",
                Q1,
                A1,
                "### Tool call: `estimate_speed`",
                '"gpu_cores": 40',
            ):
                assert part in exported, part
            assert '"expected_tokens_per_second"' in exported and "Stopped by the user" in exported
            assert "### Passages" in exported and Q2 in exported

        # 6. Restart (same data directory, same address): the browser finds its conversation again.
        with _served(standin.url, data_dir, port) as url:
            page.goto(url + "?__theme=dark", wait_until="load")
            _wait_titles(page, ["Speed on an M3 Max"])
            _chat_has(page, Q1, FOLLOW_UP, "it still fits")

            # New conversation, then reopen the old one from the sidebar.
            page.click("#new-conversation")
            page.wait_for_function(
                "() => !(document.querySelector('#chatbot')?.innerText || '').includes('it still fits')",
                timeout=WAIT_MS,
            )
            page.locator("#conversation-list label", has_text="Speed on an M3 Max").click()
            _chat_has(page, Q1, "it still fits")

            # 7. Another browser (its own storage) sees none of it.
            # It is a phone (390 px): the sidebar starts closed, so nothing covers the chat's input box.
            stranger = browser.new_context(viewport={"width": 390, "height": 844})
            other = stranger.new_page()
            other.goto(url, wait_until="load")
            other.wait_for_selector("#conversation-list", timeout=WAIT_MS)
            other.wait_for_function(
                """() => { const box = document.querySelector('#chat-input textarea');
                    if (!box) return false;
                    box.scrollIntoView({block: 'center'});
                    const r = box.getBoundingClientRect();
                    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
                    return hit !== null && box.contains(hit); }""",
                timeout=WAIT_MS,
            )
            assert _titles(other) == [] and Q1 not in other.inner_text("#chatbot")
            # On the phone the question box, Send and Stop share one line.
            tops = other.evaluate(
                "() => ['#chat-input', '#send', '#stop']"
                ".map(s => document.querySelector(s).getBoundingClientRect())"
                ".map(r => Math.round(r.top + r.height / 2))"
            )
            assert max(tops) - min(tops) < 30, f"input row wraps at 390 px (middles at {tops})"
            stranger.close()

            # 8. Tools tab: recommend_machine names the machine, its price and its speed.
            page.get_by_role("tab", name="Tools").click()
            page.get_by_role("tab", name="recommend_machine").click()
            budget = "#recommend_machine-budget_usd textarea, #recommend_machine-budget_usd input"
            page.locator(budget).first.fill("1500")
            page.click("#run-recommend_machine")
            page.wait_for_function(
                "() => (document.querySelector('#summary-recommend_machine')?.innerText || '')"
                ".includes('Recommended machine')",
                timeout=WAIT_MS,
            )
            summary = page.inner_text("#summary-recommend_machine")
            assert re.search(r"Mac mini M4 Pro.*about \$1,200 · ~\d+ tokens/s", summary), summary
            page.get_by_role("tab", name="Chat").click()

            # 9. Delete empties the list.
            page.click("#delete-conversation")
            _wait_titles(page, [])

            # 10. Ollama stops after a working chat: the status says so, and search is keywords-only.
            with standin.down():
                page.wait_for_function(
                    "() => (document.querySelector('#ollama-status')?.innerText || '')"
                    ".includes('stopped answering')",
                    timeout=WAIT_MS,
                )
                status = page.inner_text("#ollama-status")
                assert "not seem to be installed" not in status and "hybrid" not in status, status
                # A question asked now gets the same wording in the chat, not "not installed".
                _ask(page, "Are you still there?")
                _chat_has(page, "Are you still there?", "⚠️ Ollama stopped answering")
                assert "not seem to be installed" not in page.inner_text("#chatbot")
        context.close()


def test_with_auth_conversations_belong_to_the_signed_in_user(standin: OllamaStandIn, tmp_path: Path) -> None:
    """With --auth the owner is the user, not the browser: another browser signed in as the same user finds
    the conversation; the browser id plays no part."""
    with (
        _served(standin.url, tmp_path / "data", free_port(), auth="ann:s3cret-long-enough") as url,
        launched_chromium() as browser,
    ):
        pages = []
        for _ in range(2):  # two browsers with separate storage, the same user
            context = browser.new_context(viewport=DESKTOP)
            login = context.request.post(
                url + "login", form={"username": "ann", "password": "s3cret-long-enough"}
            )
            assert login.ok, login.status
            page = context.new_page()
            page.goto(url, wait_until="load")
            page.wait_for_selector("#conversation-list", timeout=WAIT_MS)
            pages.append(page)
        standin.script_chat(ChatScript(text="Signed-in answer."))
        _ask(pages[0], "A question from Ann")
        _chat_has(pages[0], "Signed-in answer.")
        _wait_titles(pages[0], ["A question from Ann"])
        pages[1].reload(wait_until="load")
        _wait_titles(pages[1], ["A question from Ann"])
        _chat_has(pages[1], "Signed-in answer.")


def test_stop_while_ollama_evaluates_the_prompt_closes_the_request(
    standin: OllamaStandIn, tmp_path: Path, browser_page: tuple[Any, list[str]]
) -> None:
    """No token yet (a long prompt evaluation): the Stop button ends the turn and Ollama's request at once."""
    page, _ = browser_page
    with _served(standin.url, tmp_path / "data", free_port()) as url:
        page.goto(url, wait_until="load")
        page.wait_for_selector("#conversation-list", timeout=WAIT_MS)
        standin.clear_requests()
        standin.script_chat(ChatScript(text="never shown", fault=Fault.slow(600.0)))
        _ask(page, "A question behind a very long prompt")
        standin.wait_for_request("/api/chat")
        _chat_has(page, "Note")  # the folded "Waiting for Ollama…" note: no further event until a token
        page.click("#stop")
        _chat_has(page, "— stopped before the answer began.")
        assert standin.wait_chat_aborted(HANG_S), "Stop did not close the request to Ollama"
        standin.script_chat(ChatScript(text="Answered right away."))
        _ask(page, "A short one?")
        _chat_has(page, "Answered right away.")


def test_no_question_before_the_page_knows_whose_it_is(
    standin: OllamaStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    browser_page: tuple[Any, list[str]],
) -> None:
    """The page-load handler (owner, latest conversation) is held: meanwhile the question box and Send are
    disabled. A question asked before it finished ran in a session with no owner: answered, never saved
    (empty sidebar, lost on reload), and the late load replaced that session; on a busy machine the hygiene
    test above failed that way after Stop and reload."""
    page, _ = browser_page
    loading = threading.Event()
    release = threading.Event()
    on_load = Sidebar.on_load

    def held_on_load(self: Sidebar, browser_id: Any, request: gr.Request) -> tuple[Any, ...]:
        loading.set()
        release.wait(HANG_S)
        return on_load(self, browser_id, request)

    monkeypatch.setattr(Sidebar, "on_load", held_on_load)
    with _served(standin.url, tmp_path / "data", free_port()) as url:
        page.goto(url, wait_until="load")
        assert loading.wait(HANG_S), "the page-load handler never ran"
        page.wait_for_selector("#chat-input textarea", timeout=WAIT_MS)
        assert not page.locator("#chat-input textarea").is_editable()
        assert page.locator("#send").is_disabled()
        release.set()
        standin.script_chat(ChatScript(text="Saved as soon as asked."))
        _ask(page, "The first thing I type")  # Playwright's fill waits for the box to become editable
        _chat_has(page, "Saved as soon as asked.", "tokens/s")
        _wait_titles(page, ["The first thing I type"])
        page.reload(wait_until="load")
        _chat_has(page, "The first thing I type", "Saved as soon as asked.")
