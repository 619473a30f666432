"""One bad value must not poison a conversation: poison a turn, then the next turn works (stand-in).

NaN/Infinity in a tool call the model wrote as text, and a lone surrogate in the user's message, used to be
stored in the history as they came; every later request of that session then failed to serialise.
"""

from __future__ import annotations

import json

import pytest

from assistant.events import DoneEvent, ToolCallEvent
from tests.ollama_standin import ChatScript, OllamaStandIn
from tests.reliability.common import final, make_agent

TEXT_CALLS = [
    '{"name": "estimate_speed", "arguments": {"chip": "M4 Pro", "context_tokens": NaN}}',
    '{"name": "estimate_speed", "arguments": {"chip": "M4 Pro", "params_billion": Infinity}}',
    '<tool_call>{"name": "check_memory_fit", "arguments": {"memory_gb": -Infinity}}</tool_call>',
]


@pytest.mark.parametrize("content", TEXT_CALLS)
def test_nan_in_a_text_tool_call_does_not_poison_the_conversation(
    standin: OllamaStandIn, content: str
) -> None:
    conversation = make_agent(standin).new_conversation()
    standin.script_chat(ChatScript(tokens=(content,)), "First answer.")
    events = list(conversation.turn("How fast is llama3.1:8b on an M4 Pro?"))
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert calls, events
    json.dumps([c.arguments for c in calls], allow_nan=False)  # what the UI shows is JSON-safe too
    standin.script_chat("Second answer works.")
    second = final(list(conversation.turn("And on an M3 Max?")))
    assert isinstance(second, DoneEvent), second
    assert second.content == "Second answer works."
    sent = standin.chat_requests()[-1].messages
    assert any(m.get("role") == "user" and m.get("content") == "And on an M3 Max?" for m in sent)


def test_lone_surrogate_in_the_user_message_does_not_poison_the_conversation(standin: OllamaStandIn) -> None:
    conversation = make_agent(standin).new_conversation()
    standin.script_chat("First answer.")
    first = final(list(conversation.turn("How fast is an M4 Pro? \ud800 broken \udfff")))
    assert isinstance(first, DoneEvent), first
    standin.script_chat("Second answer works.")
    second = final(list(conversation.turn("And an M3 Max?")))
    assert isinstance(second, DoneEvent), second
    users = [m["content"] for m in standin.chat_requests()[-1].messages if m.get("role") == "user"]
    assert users[0] == "How fast is an M4 Pro? \ufffd broken \ufffd"
    for message in conversation.history:
        json.dumps(message, allow_nan=False).encode("utf-8")


def test_a_lone_surrogate_from_the_model_does_not_poison_the_conversation(standin: OllamaStandIn) -> None:
    conversation = make_agent(standin).new_conversation()
    standin.script_chat(ChatScript(tokens=("Half an emoji: ", "\ud83d", " end.")))
    list(conversation.turn("Say something odd."))
    standin.script_chat("Fine again.")
    second = final(list(conversation.turn("Next question?")))
    assert isinstance(second, DoneEvent) and second.content == "Fine again.", second


def test_a_number_too_long_for_int_in_a_text_tool_call_does_not_fail_the_turn(standin: OllamaStandIn) -> None:
    """5,000 digits: Python's int() refuses over 4,300 (ValueError, not a JSONDecodeError), which failed the
    turn with an internal error. It is read like 1e400: a tool call whose argument the tool refuses."""
    conversation = make_agent(standin).new_conversation()
    call = '{"name": "estimate_speed", "arguments": {"chip": "M4 Pro", "context_tokens": ' + "9" * 5000 + "}}"
    standin.script_chat(ChatScript(tokens=(call,)), "First answer.")
    events = list(conversation.turn("How fast is llama3.1:8b on an M4 Pro?"))
    first = final(events)
    assert isinstance(first, DoneEvent), first
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert calls and calls[0].name == "estimate_speed", events
    json.dumps([c.arguments for c in calls], allow_nan=False)
    standin.script_chat("Second answer works.")
    second = final(list(conversation.turn("And on an M3 Max?")))
    assert isinstance(second, DoneEvent) and second.content == "Second answer works.", second
