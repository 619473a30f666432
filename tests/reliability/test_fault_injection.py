"""Ollama failing in the middle of turns while other conversations carry on.

Every affected turn ends with an ErrorEvent (never a hang, never a traceback), the others finish, the history
of the affected conversation is kept, and its next turn works once Ollama behaves again.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from assistant.events import DoneEvent, ErrorEvent
from tests.ollama_standin import ChatScript, Fault, OllamaStandIn, RecordedRequest
from tests.reliability.common import SCALE, echo_tag_responder, final, last_user_text, make_agent

FAULTS = {
    "drop": (Fault.drop(after_lines=2), "stream_dropped"),
    "http500": (Fault.http(500), "ollama_error"),
    "slow": (Fault.slow(120.0), "timeout"),  # far past the client timeout: only the timeout ends it
    "close": (Fault.close(), None),  # no response at all: dropped or unavailable, depending on timing
}


def faulty_responder(request: RecordedRequest) -> ChatScript:
    """Faults for messages that ask for one ("fault:drop tag-..."), the usual reply otherwise."""
    text = last_user_text(request)
    for name, (fault, _) in FAULTS.items():
        if f"fault:{name} " in text:
            return ChatScript(text="partial answer that never completes", fault=fault)
    return echo_tag_responder(request)


def test_faults_mid_turn_under_load_end_in_errors_and_others_finish(standin: OllamaStandIn) -> None:
    standin.chat_responder = faulty_responder
    # A generous client timeout: on a busy 2-core machine a healthy reply must never trip it, while the
    # slow fault (120 s) is only ever ended by it.
    agent = make_agent(standin, request_timeout_s=15.0)
    names = list(FAULTS)
    workers = 16 * SCALE

    def chat(i: int) -> tuple[int, str | None, DoneEvent | ErrorEvent, DoneEvent | ErrorEvent, int]:
        conversation = agent.new_conversation()
        fault = names[i % len(names)] if i % 2 == 0 else None
        prefix = f"fault:{fault} " if fault else ""
        first = final(list(conversation.turn(f"{prefix}tag-{i}-a")))
        kept = len(conversation.history)
        second = final(list(conversation.turn(f"then tag-{i}-b")))
        return i, fault, first, second, kept

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(chat, range(workers), timeout=600))
    elapsed = time.perf_counter() - started

    injected = 0
    for i, fault, first, second, kept in results:
        if fault is None:
            assert isinstance(first, DoneEvent) and f"tag-{i}-a" in first.content, (i, first)
        else:
            injected += 1
            assert isinstance(first, ErrorEvent), (i, fault, first)
            expected_kind = FAULTS[fault][1]
            if expected_kind:
                assert first.kind == expected_kind, (fault, first)
            assert first.message and "Traceback" not in first.message
            assert kept >= 1, "the user's message is kept after a failed turn"
        assert isinstance(second, DoneEvent) and f"tag-{i}-b" in second.content, (i, second)
    assert injected == workers // 2
    assert elapsed < 110, f"the slow fault was waited out ({elapsed:.0f} s) instead of ended by the timeout"


def test_ollama_refusing_connections_mid_load_then_coming_back(standin: OllamaStandIn) -> None:
    standin.chat_responder = echo_tag_responder
    agent = make_agent(standin, request_timeout_s=30.0)
    conversations = [agent.new_conversation() for _ in range(8 * SCALE)]

    def turn(args: tuple[int, str]) -> DoneEvent | ErrorEvent:
        i, text = args
        return final(list(conversations[i].turn(text)))

    with ThreadPoolExecutor(max_workers=len(conversations)) as pool:
        with standin.down():
            down = list(
                pool.map(turn, [(i, f"down tag-{i}-a") for i in range(len(conversations))], timeout=300)
            )
        back = list(pool.map(turn, [(i, f"back tag-{i}-b") for i in range(len(conversations))], timeout=300))

    errors = [e for e in down if isinstance(e, ErrorEvent)]
    assert len(errors) == len(down) and all(e.kind == "unavailable" for e in errors), down
    assert all("nothing answers" in e.message or "not running" in e.message for e in errors), down
    assert not any(".." in e.message for e in errors), "one full stop is enough"
    for i, event in enumerate(back):
        assert isinstance(event, DoneEvent) and f"tag-{i}-b" in event.content, event
        assert [m["content"] for m in conversations[i].history if m["role"] == "user"] == [
            f"down tag-{i}-a",
            f"back tag-{i}-b",
        ], "nothing the user typed is lost"
