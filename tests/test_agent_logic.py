"""The agent loop's logic against an in-process scripted ChatModel (tests/scripted_model.py).

What the loop decides - rounds, tool results in history, forced answers, retries without tools, text-written
tool calls, thinking, stop - does not depend on HTTP; the wire and its faults are tested through the stand-in
(test_agent.py, test_agent_rude.py, test_ollama_layer.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assistant.agent import Agent
from assistant.chat_model import Chunk, ModelError, ModelErrorKind
from assistant.config import Settings
from assistant.events import (
    AgentEvent,
    DoneEvent,
    ErrorEvent,
    NoticeEvent,
    ThinkingEvent,
    TokenEvent,
    ToolErrorEvent,
    ToolResultEvent,
)
from assistant.toolset import build_toolset
from tests.scripted_model import Request, Script, ScriptedModel, calls, text

SPEED_ARGS = {"chip": "M3 Max", "gpu_cores": 40, "model": "qwen2.5:32b"}


def make(model: ScriptedModel, **overrides: Any) -> Agent:
    settings = Settings(data_dir=Path("/nonexistent"), num_ctx=8192, **overrides)
    return Agent(settings, model, build_toolset(None, None), None)


def of(events: list[AgentEvent], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def test_a_plain_answer_streams_and_ends_with_done() -> None:
    model = ScriptedModel([text("Bandwidth bounds decode speed.", eval_count=7)])
    events = list(make(model).new_conversation().turn("Why is decode slow?"))
    assert "".join(e.text for e in of(events, TokenEvent)) == "Bandwidth bounds decode speed."
    (done,) = of(events, DoneEvent)
    assert done.content == "Bandwidth bounds decode speed." and done.eval_count == 7 and done.rounds == 1
    assert model.requests[0].options["num_ctx"] == 8192
    assert model.requests[0].messages[-1] == {"role": "user", "content": "Why is decode slow?"}


def test_a_tool_round_puts_the_result_in_history_then_answers() -> None:
    model = ScriptedModel([calls(("estimate_speed", SPEED_ARGS)), text("About 20 tokens/s.")])
    conversation = make(model).new_conversation()
    events = list(conversation.turn("How fast is qwen2.5:32b on an M3 Max?"))
    (result,) = of(events, ToolResultEvent)
    assert result.name == "estimate_speed" and result.result["expected_tokens_per_second"] > 0
    second = model.requests[1].messages
    assert (
        second[-2]["role"] == "assistant"
        and second[-2]["tool_calls"][0]["function"]["name"] == "estimate_speed"
    )
    assert second[-1]["role"] == "tool" and json.loads(second[-1]["content"])["model"] == "qwen2.5:32b"
    assert of(events, DoneEvent)[0].rounds == 2


def test_bad_arguments_go_back_to_the_model_as_an_error_it_can_fix() -> None:
    model = ScriptedModel([calls(("estimate_speed", '{"chip": ')), text("Sorry.")])
    events = list(make(model).new_conversation().turn("How fast?"))
    (error,) = of(events, ToolErrorEvent)
    assert "could not parse" in error.error
    sent = json.loads(model.requests[1].messages[-1]["content"])
    assert sent["error"] == error.error and "call the tool again" in sent["hint"]


def test_an_unknown_tool_is_refused_not_raised() -> None:
    model = ScriptedModel([calls(("launch_rocket", {})), text("Done.")])
    events = list(make(model).new_conversation().turn("How fast?"))
    (error,) = of(events, ToolErrorEvent)
    assert "launch_rocket" in error.error
    assert of(events, DoneEvent)[0].content == "Done."


def test_a_tool_call_written_as_text_is_run_and_not_shown() -> None:
    written = json.dumps({"name": "estimate_speed", "arguments": SPEED_ARGS})
    model = ScriptedModel([text(written), text("About 20 tokens/s.")])
    events = list(make(model).new_conversation().turn("How fast?"))
    assert "".join(e.text for e in of(events, TokenEvent)) == "About 20 tokens/s."
    assert [e.name for e in of(events, ToolResultEvent)] == ["estimate_speed"]


def test_the_tool_budget_forces_an_answer_without_tools() -> None:
    script: list[Script] = [calls(("estimate_speed", SPEED_ARGS)), calls(("estimate_speed", SPEED_ARGS))]
    model = ScriptedModel([*script, text("Final.")])
    events = list(make(model, max_tool_rounds=2).new_conversation().turn("How fast?"))
    assert of(events, DoneEvent)[0].content == "Final."
    assert model.requests[1].tools and model.requests[2].tools == []
    assert any("Stopped calling tools after 2" in n.text for n in of(events, NoticeEvent))


def test_a_model_without_tools_is_asked_again_without_them() -> None:
    refusal = ModelError("qwen:0.5b does not support tools", ModelErrorKind.NO_TOOLS)
    model = ScriptedModel([refusal, text("From the passages.")])
    events = list(make(model).new_conversation().turn("How fast?"))
    assert model.requests[0].tools and model.requests[1].tools == []
    assert any("does not support tool calling" in n.text for n in of(events, NoticeEvent))
    assert of(events, DoneEvent)[0].content == "From the passages."


def test_a_model_error_ends_the_turn_with_its_kind_and_keeps_the_partial_answer() -> None:
    def dies(request: Request) -> list[Chunk]:
        return [Chunk(text="The answer is")]  # no done chunk: the stream was cut

    model = ScriptedModel([dies, ModelError("no such model", ModelErrorKind.MODEL_MISSING), text("Back.")])
    conversation = make(model).new_conversation()
    (error,) = of(list(conversation.turn("Q1")), ErrorEvent)
    assert error.kind == "stream_dropped"
    assert conversation.history[-1]["content"] == "The answer is\n\n[answer interrupted]"
    (error,) = of(list(conversation.turn("Q2")), ErrorEvent)
    assert error.kind == "model_missing" and error.message == "no such model"
    assert of(list(conversation.turn("Q3")), DoneEvent)[0].content == "Back."


def test_think_tags_become_thinking_not_answer() -> None:
    reply = [Chunk(text="<thi"), Chunk(text="nk>weigh it</think>"), Chunk(text=" Forty."), Chunk(done=True)]
    conversation = make(ScriptedModel([reply])).new_conversation()
    events = list(conversation.turn("Q"))
    assert "".join(e.text for e in of(events, ThinkingEvent)) == "weigh it"
    assert of(events, DoneEvent)[0].content == "Forty."
    assert conversation.history[-1] == {"role": "assistant", "content": "Forty."}


def test_cancel_stops_the_turn_and_marks_the_partial_answer() -> None:
    model = ScriptedModel([text("one two three four")])
    conversation = make(model).new_conversation()
    turn = conversation.turn("Q")
    assert next(e for e in turn if isinstance(e, TokenEvent)).text == "one "
    assert conversation.cancel()
    rest = list(turn)
    assert isinstance(rest[-1], ErrorEvent) and rest[-1].kind == "stopped"
    assert conversation.history[-1] == {"role": "assistant", "content": "one \n\n[answer stopped]"}
    assert not conversation.cancel(), "nothing in flight after the turn"
