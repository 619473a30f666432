"""A hung Ollama (accepts the connection, never answers) must not hold the user in silence.

Within 2 s the turn says it is waiting for Ollama (an event the UI renders); search falls back to keywords
when the question's embedding stalls; and the whole wait is bounded by one setting (request_timeout_s).
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest

from assistant.events import AgentEvent, DoneEvent, ErrorEvent, NoticeEvent, PassagesEvent
from assistant.ollama import OllamaLayer
from assistant.toolset import build_toolset
from assistant.ui import TurnRenderer
from knowledge.search import KnowledgeBase
from tests.ollama_standin import ChatScript, Fault, OllamaStandIn
from tests.reliability.common import final, make_agent

TIMEOUT_S = 8.0


@pytest.fixture
def knowledge(standin: OllamaStandIn, tmp_path: Path) -> KnowledgeBase:
    kb = KnowledgeBase(
        tmp_path / "data", OllamaLayer(standin.url).embedder("nomic-embed-text"), progress=False
    )
    assert kb.sync().mode == "hybrid"
    return kb


def _timed_turn(conversation: object, text: str) -> list[tuple[float, AgentEvent]]:
    """Events with the seconds since the turn started, collected as they arrive."""
    out: queue.Queue[tuple[float, AgentEvent] | None] = queue.Queue()
    started = time.monotonic()

    def run() -> None:
        for event in conversation.turn(text):  # type: ignore[attr-defined]
            out.put((time.monotonic() - started, event))
        out.put(None)

    threading.Thread(target=run, daemon=True).start()
    events = []
    while (item := out.get(timeout=120)) is not None:
        events.append(item)
    return events


def test_hung_ollama_says_waiting_falls_back_to_keywords_and_is_bounded(
    standin: OllamaStandIn, knowledge: KnowledgeBase
) -> None:
    agent = make_agent(standin, knowledge, request_timeout_s=TIMEOUT_S)
    conversation = agent.new_conversation()
    standin.inject("/api/embed", Fault.slow(120.0))
    standin.script_chat(ChatScript(text="never", fault=Fault.slow(120.0)))
    timed = _timed_turn(conversation, "Which Mac should I buy to run 70B models?")
    events = [e for _, e in timed]

    waiting = [t for t, e in timed if isinstance(e, NoticeEvent) and "Waiting for Ollama" in e.text]
    passages_at = [t for t, e in timed if isinstance(e, PassagesEvent)]
    # Order, not stopwatch readings (CI runs on a busy 2-core machine): the notice (after 1 s) comes before
    # the keyword fallback (after the 5 s query-embedding bound), which comes long before the 120 s hang.
    assert waiting and passages_at and waiting[0] < passages_at[0], timed
    assert passages_at[0] < 60, "keyword passages come after the embedding bound, not after the 120 s hang"
    assert any(isinstance(e, NoticeEvent) and "keyword" in e.text for e in events)
    end, last = timed[-1]
    assert isinstance(last, ErrorEvent) and last.kind == "timeout", last
    assert end < 60, f"the whole wait is bounded by request_timeout_s, not the 120 s hang: {end:.1f} s"

    renderer = TurnRenderer([], build_toolset(knowledge, None), None)  # what the browser shows
    for event in events:
        renderer.apply(event)
    assert any("Waiting for Ollama" in str(m.get("content")) for m in renderer.messages)

    standin.clear_faults()
    standin.script_chat("Back again.")
    after = final(list(conversation.turn("And now?")))
    assert isinstance(after, DoneEvent) and after.content == "Back again.", after
