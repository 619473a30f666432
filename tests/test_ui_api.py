"""The UI's chat through its named API endpoint (gradio_client), against the stand-in.

One conversation per session: two clients chatting at the same time must never see each other's messages,
and a client's second turn must carry its own first turn. Also: the status probe recovers by itself when
Ollama comes up after the app started.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from assistant.config import Settings
from tests.harness import HANG_S, chat_client
from tests.ollama_standin import ChatScript, OllamaStandIn, ToolCallScript


def _echo_responder(request: Any) -> str:
    """Answer with the last user message, so each reply shows which conversation it belongs to."""
    users = [m for m in request.messages if m.get("role") == "user"]
    return "echo: " + " | ".join(str(m.get("content", "")) for m in users)


def test_chat_api_runs_a_tool_and_reports_speed(standin: OllamaStandIn, served: tuple[str, Any]) -> None:
    url, _ = served
    standin.script_chat(
        ChatScript(
            tool_calls=(
                ToolCallScript(
                    "check_memory_fit", {"chip": "M4 Pro", "memory_gb": 48, "model": "llama3.3:70b"}
                ),
            ),
            tokens_per_second=40.0,
        ),
        ChatScript(text="It does not fit in the default GPU budget.", tokens_per_second=40.0),
    )
    answer, summary = chat_client(url).predict(
        "Will llama3.3:70b fit on a 48 GB M4 Pro?", "", api_name="/chat"
    )
    assert answer == "It does not fit in the default GPU budget."
    assert [(c["name"], c["ok"]) for c in summary["tool_calls"]] == [("check_memory_fit", True)]
    assert summary["tool_calls"][0]["arguments"]["chip"] == "M4 Pro"
    assert summary["tokens_per_second"] == pytest.approx(40.0, rel=0.01)
    assert "error" not in summary


def test_sessions_do_not_share_conversations(standin: OllamaStandIn, served: tuple[str, Any]) -> None:
    url, _ = served
    standin.chat_responder = _echo_responder
    a, b = chat_client(url), chat_client(url)
    results: dict[str, Any] = {}

    def chat(name: str, client: Any, texts: list[str]) -> None:
        results[name] = [client.predict(t, "", api_name="/chat")[0] for t in texts]

    threads = [
        threading.Thread(target=chat, args=("a", a, ["alpha one", "alpha two"])),
        threading.Thread(target=chat, args=("b", b, ["beta one", "beta two"])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results["a"][1] == "echo: alpha one | alpha two"
    assert results["b"][1] == "echo: beta one | beta two"


def test_status_recovers_when_ollama_comes_up(standin: OllamaStandIn) -> None:
    from assistant.ollama import OllamaLayer
    from assistant.ui import StatusProbe, status_markdown

    settings = Settings(ollama_host=standin.url)
    probe = StatusProbe(OllamaLayer(standin.url, timeout_s=HANG_S), standin.url, ttl_s=0.0)
    with standin.down():
        down = probe.status()
        assert not down.ok
        assert "not reachable" in status_markdown(down, settings, None)
    up = probe.status()
    assert up.ok and "qwen2.5:7b" in up.chat_models
    assert "gemma2:9b" not in up.chat_models  # installed, but no tool calling
    assert status_markdown(up, settings, "hybrid").startswith("🟢")
