"""Many chats at once through the UI's API, and memory over hundreds of turns."""

from __future__ import annotations

import gc
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from assistant.events import DoneEvent
from tests.harness import chat_client, serve_app
from tests.ollama_standin import OllamaStandIn
from tests.reliability.common import SCALE, echo_tag_responder, final, make_agent

# Enough concurrent sessions to interleave every step of the queue; the 50-session figure (throughput and
# latency) is measured by bench/chat_load.py, not timed here.
CHATS = 24 * SCALE


def test_concurrent_chats_through_the_ui_api_each_reach_their_own_session(
    standin: OllamaStandIn, tmp_path: Path
) -> None:
    standin.chat_responder = echo_tag_responder
    with serve_app(standin.url, tmp_path) as app:

        def chat(i: int) -> tuple[int, str, dict, str]:
            client = chat_client(app.url)
            answer, summary = client.predict(f"How fast? tag-{i}-x", "", api_name="/chat")
            second, _ = client.predict(f"And now? tag-{i}-y", "", api_name="/chat")
            return i, answer, summary, second

        with ThreadPoolExecutor(max_workers=CHATS) as pool:
            results = list(pool.map(chat, range(CHATS), timeout=900))

    assert len(results) == CHATS
    for i, answer, summary, second in results:
        assert answer == f"Answer for tag-{i}-x: about 40 tokens/s.", (i, answer, summary)
        assert second == f"Answer for tag-{i}-y: about 40 tokens/s.", (i, second)
        assert [c["name"] for c in summary["tool_calls"]] == ["estimate_speed"]
        assert "error" not in summary
    # Each session's second request carried its own first turn and nobody else's.
    for request in standin.chat_requests():
        tags = {m["content"].split("tag-")[1].split("-")[0] for m in request.messages if m["role"] == "user"}
        assert len(tags) == 1, f"a request mixed conversations: {tags}"


def test_memory_does_not_grow_without_bound_over_500_turns(standin: OllamaStandIn) -> None:
    """Sessions come and go like browser tabs; what a finished session held must be released."""
    standin.chat_responder = echo_tag_responder
    agent = make_agent(standin)
    turns = 500 * SCALE

    def session(n: int) -> None:
        conversation = agent.new_conversation()
        for k in range(5):
            assert isinstance(final(list(conversation.turn(f"q tag-{n}-{k}"))), DoneEvent)

    tracemalloc.start()
    try:
        samples: dict[int, int] = {}
        for n in range(turns // 5):
            session(n)
            standin.clear_requests()  # the stand-in's own log is test scaffolding, not the app's memory
            done_turns = (n + 1) * 5
            if done_turns in (100, turns):
                gc.collect()
                samples[done_turns] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    growth = samples[turns] - samples[100]
    assert growth < 4_000_000 * SCALE, f"memory grew {growth / 1e6:.1f} MB between turn 100 and {turns}"


@pytest.mark.parametrize("workers", [20])
def test_one_shared_agent_many_threads_no_cross_talk(standin: OllamaStandIn, workers: int) -> None:
    standin.chat_responder = echo_tag_responder
    agent = make_agent(standin)

    def chat(i: int) -> list[str]:
        conversation = agent.new_conversation()
        answers = []
        for k in range(3):
            event = final(list(conversation.turn(f"q tag-{i}-{k}")))
            assert isinstance(event, DoneEvent), event
            answers.append(event.content)
        return answers

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(chat, range(workers * SCALE), timeout=600))
    for i, answers in enumerate(results):
        assert answers == [f"Answer for tag-{i}-{k}: about 40 tokens/s." for k in range(3)]
