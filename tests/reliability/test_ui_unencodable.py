"""What the UI shows must always be encodable: tool arguments Gradio cannot encode must not break /chat.

`10**30` (beyond 64-bit integers) and JSON nested 800 deep in a tool call's arguments made the turn summary
unencodable ("Could not postprocess output component"), and the user got no answer. Also: a 5 MB tool-call
argument must not be blamed on the user's message, and a 1 MB user message is told the limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.ui import MAX_INPUT_CHARS
from tests.harness import chat_client, serve_app
from tests.ollama_standin import ChatScript, OllamaStandIn, ToolCallScript


@pytest.fixture
def url(standin: OllamaStandIn, tmp_path: Path) -> Iterator[str]:
    with serve_app(standin.url, tmp_path) as app:
        yield app.url


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"n": value}
    return value


@pytest.mark.parametrize(
    "arguments",
    [
        {"chip": "M4 Pro", "model": "llama3.1:8b", "context_tokens": 10**30},
        {"chip": "M4 Pro", "model": "llama3.1:8b", "extra": _nested(800)},
    ],
    ids=["int-10e30", "nested-800"],
)
def test_unencodable_tool_arguments_still_give_an_answer(
    standin: OllamaStandIn, url: str, arguments: dict[str, Any]
) -> None:
    standin.script_chat(
        ChatScript(tool_calls=(ToolCallScript("estimate_speed", arguments),)),
        ChatScript(text="Here is the answer anyway."),
    )
    answer, summary = chat_client(url).predict("How fast?", "", api_name="/chat")
    assert answer == "Here is the answer anyway.", summary
    assert "error" not in summary, summary
    assert [c["name"] for c in summary["tool_calls"]] == ["estimate_speed"]
    assert len(json.dumps(summary)) < 100_000  # bounded


def test_huge_tool_argument_is_not_blamed_on_the_user(standin: OllamaStandIn, url: str) -> None:
    standin.script_chat(
        ChatScript(tool_calls=(ToolCallScript("lookup_benchmarks", {"query": "x" * 5_000_000}),)),
        ChatScript(text="Answer after a huge call."),
    )
    answer, summary = chat_client(url).predict("Benchmarks?", "", api_name="/chat")
    assert answer == "Answer after a huge call.", summary
    assert "error" not in summary, summary
    (call,) = summary["tool_calls"]
    assert call["ok"] is False and "5,000,0" in call["error"] and "limit" in call["error"], call
    assert "your message" not in json.dumps(summary).lower()
    assert len(json.dumps(summary)) < 100_000


def test_oversized_user_message_is_told_the_limit(url: str) -> None:
    answer, summary = chat_client(url).predict("x" * 1_000_000, "", api_name="/chat")
    assert f"{MAX_INPUT_CHARS:,}" in summary["error"] and "1,000,000" in summary["error"], summary


def test_tool_budget_exhausted_gives_a_clear_message_not_an_empty_answer(
    standin: OllamaStandIn, url: str
) -> None:
    call = ChatScript(
        tool_calls=(ToolCallScript("estimate_speed", {"chip": "M4 Pro", "model": "llama3.1:8b"}),)
    )
    standin.chat_responder = lambda _request: call
    answer, summary = chat_client(url).predict("Loop forever", "", api_name="/chat")
    assert answer.strip(), summary
    assert "tool" in answer.lower(), answer


def test_lone_surrogate_through_the_ui_api_gets_an_answer(standin: OllamaStandIn, url: str) -> None:
    """gradio_client cannot even send one, but any HTTP client can: JSON escapes decode to lone surrogates."""
    import httpx

    standin.script_chat("First.")
    body = json.dumps({"data": ["Half an emoji \ud83d here", ""]})  # ensure_ascii: the escape goes as is
    assert "\\ud83d" in body
    with httpx.Client(timeout=60, trust_env=False) as http:
        started = http.post(
            url + "gradio_api/call/chat", content=body, headers={"Content-Type": "application/json"}
        )
        assert started.status_code == 200, started.text
        stream = http.get(url + f"gradio_api/call/chat/{started.json()['event_id']}").text
    assert "event: complete" in stream and "First." in stream, stream
    assert "event: error" not in stream, stream
    user = [m for m in standin.chat_requests()[-1].messages if m.get("role") == "user"][-1]
    assert user["content"] == "Half an emoji \ufffd here"
