"""The agent loop through the real `ollama` client against the protocol-level stand-in.

Nothing of ours is mocked: the agent talks HTTP to the stand-in via OllamaLayer, the stand-in plays a
(scripted) model, and the tests assert both on the events the agent yields and on what the stand-in received.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from assistant.agent import Conversation
from assistant.context_budget import CHARS_PER_TOKEN, MESSAGE_OVERHEAD_TOKENS, SUMMARY_PREFIX, message_tokens
from assistant.context_window import select_tools
from assistant.events import (
    AgentEvent,
    DoneEvent,
    ErrorEvent,
    NoticeEvent,
    PassagesEvent,
    TokenEvent,
    ToolCallEvent,
    ToolErrorEvent,
    ToolResultEvent,
)
from assistant.prompts import FORCE_ANSWER_NOTE
from knowledge.search import KnowledgeBase
from tests.agent_support import make_agent
from tests.ollama_standin import ChatScript, Fault, OllamaStandIn, RecordedRequest, ToolCallScript

PASSAGES = {
    "bandwidth-basics": (
        "Why bandwidth decides decode speed",
        "Every generated token reads all active weights from unified memory, so decode speed is bounded by "
        "memory bandwidth divided by the model size in bytes. The M3 Max reaches 400 GB/s.",
    ),
    "wired-limit": (
        "Raising the GPU memory limit",
        "macOS lets the GPU wire about 75% of unified memory. sudo sysctl iogpu.wired_limit_mb raises it; "
        "leave 8 GB for the system or the Mac will swap.",
    ),
    "quantisation": (
        "Quantisation trade-offs",
        "Q4_K_M keeps quality close to Q8_0 at about half the memory; Q8_0 needs about one byte per weight.",
    ),
}


@pytest.fixture
def knowledge(tmp_path: Path) -> KnowledgeBase:
    """A small, lexical-only knowledge base with known passage ids (no embedder: deterministic retrieval)."""
    folder = tmp_path / "passages"
    folder.mkdir()
    for pid, (title, text) in PASSAGES.items():
        (folder / f"{pid}.md").write_text(
            f"---\nid: {pid}\ntitle: {title}\nsection: Test\nsource: test corpus\n---\n\n{text}\n",
            encoding="utf-8",
        )
    kb = KnowledgeBase(tmp_path / "data", None, passages_dir=folder)
    kb.sync()
    return kb


def run(conversation: Conversation, text: str, model: str | None = None) -> list[AgentEvent]:
    return list(conversation.turn(text, model=model))


def of(events: list[AgentEvent], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def done(events: list[AgentEvent]) -> DoneEvent:
    assert isinstance(events[-1], DoneEvent), events[-1]
    return events[-1]


def tool_messages(request: RecordedRequest) -> list[dict[str, Any]]:
    return [m for m in request.messages if m["role"] == "tool"]


SPEED_ARGS = {"chip": "M3 Max", "gpu_cores": 40, "model": "qwen2.5:32b"}


# Tool calls -------------------------------------------------------------------------------------------------


def test_single_tool_call_result_goes_back_as_compact_json(standin: OllamaStandIn) -> None:
    standin.script_chat(
        ChatScript(tool_calls=(ToolCallScript("estimate_speed", SPEED_ARGS),)),
        ChatScript(text="About 14 tokens/s on that Mac.", eval_count=100, eval_duration_ns=2_000_000_000),
    )
    conversation = make_agent(standin).new_conversation()
    events = run(conversation, "How fast is qwen2.5:32b on a 40-core M3 Max?")

    call = of(events, ToolCallEvent)[0]
    result = of(events, ToolResultEvent)[0]
    assert (call.name, call.arguments) == ("estimate_speed", SPEED_ARGS)
    assert result.call_id == call.call_id and result.result["expected_tokens_per_second"] > 0
    final = done(events)
    assert final.content == "About 14 tokens/s on that Mac."
    assert "".join(e.text for e in of(events, TokenEvent)) == final.content
    assert final.rounds == 2 and final.model == "qwen2.5:7b"
    assert final.eval_count == 100 + 12  # the tool-call round counts too (12 tokens per call in the stand-in)
    assert final.tokens_per_second == pytest.approx(final.eval_count / final.eval_duration_s)

    first, second = standin.chat_requests()
    # a speed question gets the calculators and the measured tables, not the buying or measuring tools
    assert {t["function"]["name"] for t in first.tools} == {
        "estimate_speed",
        "check_memory_fit",
        "lookup_benchmarks",
    }
    # num_ctx "auto" off a Mac (no machine to fit against): the 8192 fallback
    assert first.options["num_ctx"] == 8192 and second.options["num_ctx"] == 8192
    assistant_msg = second.messages[-2]
    assert assistant_msg["role"] == "assistant"
    assert assistant_msg["tool_calls"][0]["function"] == {"name": "estimate_speed", "arguments": SPEED_ARGS}
    (tool_msg,) = tool_messages(second)
    assert tool_msg["tool_name"] == "estimate_speed"
    assert json.loads(tool_msg["content"]) == result.result
    assert tool_msg["content"] == json.dumps(result.result, separators=(",", ":"), ensure_ascii=False)
    # the conversation keeps the whole exchange for the next turn
    assert [m["role"] for m in conversation.history] == ["user", "assistant", "tool", "assistant"]


def test_several_rounds_of_tool_calls(standin: OllamaStandIn) -> None:
    standin.script_chat(
        ChatScript(
            tool_calls=(
                ToolCallScript(
                    "check_memory_fit", {"chip": "M4 Pro", "memory_gb": 48, "model": "llama3.3:70b"}
                ),
            )
        ),
        ChatScript(tool_calls=(ToolCallScript("lookup_benchmarks", {"machine": "m4 pro", "model": "70b"}),)),
        ChatScript(text="It does not fit; the article measured OOM."),
    )
    events = run(make_agent(standin).new_conversation(), "Will llama3.3:70b fit on a 48 GB M4 Pro?")
    assert [e.name for e in of(events, ToolResultEvent)] == ["check_memory_fit", "lookup_benchmarks"]
    assert done(events).rounds == 3
    third = standin.chat_requests()[2]
    assert [m["tool_name"] for m in tool_messages(third)] == ["check_memory_fit", "lookup_benchmarks"]


def test_parallel_calls_in_one_message(standin: OllamaStandIn) -> None:
    calls = (
        ToolCallScript("estimate_speed", SPEED_ARGS),
        ToolCallScript("check_memory_fit", {"chip": "M3 Max", "memory_gb": 64, "model": "qwen2.5:32b"}),
        ToolCallScript("lookup_benchmarks", {"query": "m3 max 14b"}),
    )
    standin.script_chat(ChatScript(tool_calls=calls), ChatScript(text="Here is all of it."))
    events = run(
        make_agent(standin).new_conversation(), "Speed, fit and measurements for qwen2.5:32b on an M3 Max?"
    )

    call_events = of(events, ToolCallEvent)
    assert [e.name for e in call_events] == ["estimate_speed", "check_memory_fit", "lookup_benchmarks"]
    assert len({e.call_id for e in call_events}) == 3
    assert [e.call_id for e in of(events, ToolResultEvent)] == [e.call_id for e in call_events]
    second = standin.chat_requests()[1]
    assistant_msgs = [m for m in second.messages if m["role"] == "assistant"]
    assert len(assistant_msgs) == 1 and len(assistant_msgs[0]["tool_calls"]) == 3
    assert [m["tool_name"] for m in tool_messages(second)] == [
        "estimate_speed",
        "check_memory_fit",
        "lookup_benchmarks",
    ]
    assert done(events).rounds == 2


def test_bad_arguments_go_back_to_the_model_which_retries(standin: OllamaStandIn) -> None:
    standin.script_chat(
        ChatScript(
            tool_calls=(
                ToolCallScript(
                    "estimate_speed", {"chip": "M3 Max", "model": "qwen2.5:32b", "gpu_cores": "many"}
                ),
            )
        ),
        ChatScript(tool_calls=(ToolCallScript("estimate_speed", SPEED_ARGS),)),
        ChatScript(text="Fixed it: about 14 tokens/s."),
    )
    events = run(make_agent(standin).new_conversation(), "How fast is qwen2.5:32b on an M3 Max?")

    (error,) = of(events, ToolErrorEvent)
    assert error.name == "estimate_speed" and "gpu_cores" in error.error
    assert len(of(events, ToolResultEvent)) == 1
    assert done(events).content == "Fixed it: about 14 tokens/s."
    second = standin.chat_requests()[1]
    (refusal,) = tool_messages(second)
    payload = json.loads(refusal["content"])
    assert "gpu_cores" in payload["error"] and "call the tool again" in payload["hint"]
    third = standin.chat_requests()[2]
    assert [json.loads(m["content"]).get("error") is None for m in tool_messages(third)] == [False, True]


def test_unknown_tool_is_refused_with_the_available_names(standin: OllamaStandIn) -> None:
    standin.script_chat(
        ChatScript(tool_calls=(ToolCallScript("get_weather", {"city": "Cupertino"}),)),
        ChatScript(text="I cannot check the weather."),
    )
    events = run(make_agent(standin).new_conversation(), "Weather?")
    (error,) = of(events, ToolErrorEvent)
    assert error.name == "get_weather" and "Unknown tool" in error.error and "estimate_speed" in error.error
    (refusal,) = tool_messages(standin.chat_requests()[1])
    assert refusal["tool_name"] == "get_weather" and "Unknown tool" in refusal["content"]
    assert done(events).content == "I cannot check the weather."


def test_tool_call_written_as_text_with_json_string_arguments(standin: OllamaStandIn) -> None:
    """Small models often put the call in the content, arguments as a JSON *string*; it still runs."""
    text_call = json.dumps({"name": "estimate_speed", "arguments": json.dumps(SPEED_ARGS)})
    standin.script_chat(ChatScript(text=text_call), ChatScript(text="About 14 tokens/s."))
    events = run(make_agent(standin).new_conversation(), "How fast is qwen2.5:32b on an M3 Max?")

    assert of(events, ToolCallEvent)[0].arguments == SPEED_ARGS
    assert of(events, ToolResultEvent)[0].name == "estimate_speed"
    assert "".join(e.text for e in of(events, TokenEvent)) == "About 14 tokens/s."  # the JSON never showed
    second = standin.chat_requests()[1]
    assert second.messages[-2]["tool_calls"][0]["function"]["arguments"] == SPEED_ARGS


def test_tool_call_in_a_tool_call_block_and_ordinary_json_looking_answers(standin: OllamaStandIn) -> None:
    block = (
        "<tool_call>\n"
        + json.dumps({"name": "lookup_benchmarks", "arguments": {"query": "sdxl m4 pro"}})
        + "\n</tool_call>"
    )
    standin.script_chat(ChatScript(text=block), ChatScript(text='{"answer": 18}'))
    events = run(make_agent(standin).new_conversation(), "SDXL on the mini?")
    assert of(events, ToolResultEvent)[0].name == "lookup_benchmarks"
    # JSON that is not a call to one of our tools is an answer and is shown as such
    assert "".join(e.text for e in of(events, TokenEvent)) == '{"answer": 18}'


def test_json_string_arguments_on_the_wire(standin: OllamaStandIn) -> None:
    """An OpenAI-style proxy sends `arguments` as a JSON string; the layer decodes it and the call runs."""
    standin.script_chat(
        ChatScript(tool_calls=(ToolCallScript("estimate_speed", json.dumps(SPEED_ARGS)),)),
        ChatScript(text="ok"),
    )
    events = run(make_agent(standin).new_conversation(), "How fast?")
    assert of(events, ToolCallEvent)[0].arguments == SPEED_ARGS
    assert of(events, ToolResultEvent)[0].name == "estimate_speed"
    assert done(events).content == "ok"


def test_undecodable_string_arguments_go_back_as_an_error(standin: OllamaStandIn) -> None:
    standin.script_chat(
        ChatScript(tool_calls=(ToolCallScript("estimate_speed", '{"chip": "M3 Max", model: qwen'),)),
        ChatScript(tool_calls=(ToolCallScript("estimate_speed", SPEED_ARGS),)),
        ChatScript(text="ok"),
    )
    events = run(make_agent(standin).new_conversation(), "How fast?")
    (error,) = of(events, ToolErrorEvent)
    assert "could not parse" in error.error and "JSON" in error.error
    assert of(events, ToolCallEvent)[0].arguments == {"_raw": '{"chip": "M3 Max", model: qwen'}
    assert len(of(events, ToolResultEvent)) == 1 and done(events).content == "ok"


def test_endless_tool_loop_is_bounded_then_answered_without_tools(standin: OllamaStandIn) -> None:
    def responder(request: RecordedRequest) -> ChatScript:
        if request.tools:
            return ChatScript(tool_calls=(ToolCallScript("lookup_benchmarks", {"query": "m3 max"}),))
        return ChatScript(text="Final answer from what I have.")

    standin.chat_responder = responder
    events = run(make_agent(standin, max_tool_rounds=3).new_conversation(), "Loop forever please")

    assert len(of(events, ToolResultEvent)) == 3
    notices = [e.text for e in of(events, NoticeEvent)]
    assert any("after 3 round" in n for n in notices)
    final = done(events)
    assert final.content == "Final answer from what I have." and final.rounds == 4
    requests = standin.chat_requests()
    assert len(requests) == 4
    assert all(r.tools for r in requests[:3]) and not requests[3].tools
    assert requests[3].messages[-1] == {"role": "system", "content": FORCE_ANSWER_NOTE}


@pytest.mark.parametrize("answers", [True, False])
def test_tool_results_that_fill_the_window_are_cut_down_and_answered_from(
    standin: OllamaStandIn, answers: bool
) -> None:
    """A model that keeps calling tools fills the window with their results long before the round budget:
    the turn is not failed with 'shorten the message'; the results are cut down to their summaries and the
    model is asked to answer from them (and if it still asks for tools, the reply says why it stopped)."""

    def responder(request: RecordedRequest) -> ChatScript:
        if request.tools or not answers:
            return ChatScript(tool_calls=(ToolCallScript("estimate_speed", SPEED_ARGS),))
        return ChatScript(text="Answer from the summaries.")

    standin.chat_responder = responder
    agent = make_agent(standin, num_ctx=6144, max_tool_rounds=50)
    events = run(agent.new_conversation(), "Loop forever please")
    assert not of(events, ErrorEvent), of(events, ErrorEvent)
    assert any("filled the 6,144-token context window" in e.text for e in of(events, NoticeEvent))
    assert 1 < len(of(events, ToolResultEvent)) < 50
    last = standin.chat_requests()[-1]
    assert not last.tools
    results = [m for m in last.messages if m["role"] == "tool"]
    assert results and all(m["content"].startswith(SUMMARY_PREFIX) for m in results)
    if answers:
        assert done(events).content == "Answer from the summaries."
    else:
        assert "filled the context window with tool results" in done(events).content


def test_model_that_keeps_calling_tools_without_tools_still_ends(standin: OllamaStandIn) -> None:
    standin.chat_responder = lambda request: ChatScript(
        tool_calls=(ToolCallScript("lookup_benchmarks", {"query": "m3 max"}),)
    )
    events = run(make_agent(standin, max_tool_rounds=2).new_conversation(), "Loop")
    final = done(events)
    assert final.rounds == 3 and len(standin.chat_requests()) == 3
    assert "no answer" in final.content
    assert any("tool budget" in e.text for e in of(events, NoticeEvent))


def test_model_without_tool_support_answers_without_tools(standin: OllamaStandIn) -> None:
    events = run(make_agent(standin).new_conversation(), "How fast is an M3 Max?", model="gemma2:9b")
    assert any("does not support tool calling" in e.text for e in of(events, NoticeEvent))
    assert isinstance(events[-1], DoneEvent)
    first, second = standin.chat_requests()
    assert first.tools and not second.tools


# Retrieval, citations, context budget -----------------------------------------------------------------------


def test_passages_are_in_the_system_message_with_ids_and_citations_are_checked(
    standin: OllamaStandIn, knowledge: KnowledgeBase
) -> None:
    standin.script_chat(ChatScript(text="Use sysctl [p:wired-limit] (see also [p:made-up])."))
    events = run(
        make_agent(standin, knowledge).new_conversation(),
        "How do I raise the GPU memory limit with sysctl wired_limit?",
    )
    (passages,) = of(events, PassagesEvent)
    ids = [p.id for p in passages.passages]
    assert ids[0] == "wired-limit"
    assert events.index(passages) < events.index(of(events, TokenEvent)[0])
    system = standin.last_chat_request().messages[0]
    assert system["role"] == "system"
    assert "Prefer tool results" in system["content"] and "[p:ID]" in system["content"]
    for pid in ids:
        assert f"[p:{pid}]" in system["content"]
    assert "sudo sysctl iogpu.wired_limit_mb" in system["content"]
    assert done(events).citations == ["wired-limit"]  # the invented id is not a citation
    assert "search_knowledge" in {t["function"]["name"] for t in standin.last_chat_request().tools}


def test_history_is_trimmed_oldest_first_keeping_every_question_and_system_and_passages(
    standin: OllamaStandIn, knowledge: KnowledgeBase
) -> None:
    standin.chat_responder = lambda request: ChatScript(text="answer " + "z" * 600)
    agent = make_agent(standin, knowledge, num_ctx=6144)
    conversation = agent.new_conversation()
    for i in range(8):
        events = run(conversation, f"question number {i} about bandwidth " + "q" * 600)
        assert isinstance(events[-1], DoneEvent)
    (notice,) = [e for e in of(events, NoticeEvent) if e.kind == "context_dropped"]
    assert "earlier answer(s)" in notice.text and "All 7 of your earlier questions" in notice.text

    request = standin.last_chat_request()
    assert request.options["num_ctx"] == 6144
    contents = [m["content"] for m in request.messages]
    assert request.messages[0]["role"] == "system" and "[p:bandwidth-basics]" in contents[0]
    assert "Mac AI Advisor" in contents[0]
    assert contents[-1].startswith("question number 7")
    users = [m["content"] for m in request.messages if m["role"] == "user"]
    assert [u.split(" about")[0] for u in users] == [f"question number {i}" for i in range(8)]
    answers = [m for m in request.messages if m["role"] == "assistant"]
    assert 1 <= len(answers) < 7  # the oldest answers went first, the newest is kept
    assert request.messages[-2]["role"] == "assistant" and request.messages[1]["content"] == users[0]
    # the whole request stays inside num_ctx minus the answer reserve, by a conservative estimate
    chars = sum(len(c) for c in contents) + len(json.dumps(request.tools))
    assert chars / 3.0 < 6144 - 1024
    assert len(conversation.history) == 16  # trimming is per request; the conversation keeps everything


def test_oversized_message_is_refused_and_not_kept(standin: OllamaStandIn, knowledge: KnowledgeBase) -> None:
    conversation = make_agent(standin, knowledge, num_ctx=6144).new_conversation()
    events = run(conversation, "x" * 20_000)
    (error,) = of(events, ErrorEvent)
    assert error.kind == "oversized" and "context window is 6144" in error.message
    assert standin.chat_requests() == [] and conversation.history == []
    assert isinstance(run(conversation, "short question")[-1], DoneEvent)


def test_num_ctx_too_small_for_the_prompt_says_how_much_is_needed(standin: OllamaStandIn) -> None:
    conversation = make_agent(standin, num_ctx=2048).new_conversation()
    (error,) = run(conversation, "hi")
    assert isinstance(error, ErrorEvent) and error.kind == "oversized"
    assert "too small for the system prompt and the tool descriptions" in error.message
    needed = int(re.search(r"at least (\d+)", error.message).group(1))  # type: ignore[union-attr]
    assert standin.chat_requests() == []
    assert isinstance(run(make_agent(standin, num_ctx=needed).new_conversation(), "hi")[-1], DoneEvent)


def test_passages_are_dropped_before_refusing(standin: OllamaStandIn, knowledge: KnowledgeBase) -> None:
    agent = make_agent(standin, knowledge, num_ctx=6144, top_k_passages=3)
    prefix = "bandwidth sysctl quantisation "
    passages = knowledge.search(prefix, k=3).passages
    assert len(passages) == 3
    with_all = message_tokens({"content": agent.render_system(passages)})
    without = message_tokens({"content": agent.render_system([])})
    _, tools_cost = agent.tools_for(select_tools(prefix, agent.tool_names))  # what this turn is sent
    room = agent.budget_for(6144).input_budget - tools_cost - without - MESSAGE_OVERHEAD_TOKENS
    # a message that fits next to the prompt and tools, but not together with all three passages
    target_tokens = room - (with_all - without) // 3
    text = prefix + "w" * (int(target_tokens * CHARS_PER_TOKEN) - len(prefix))
    events = run(agent.new_conversation(), text)
    assert isinstance(events[-1], DoneEvent), events[-1]
    assert any("Left out" in e.text for e in of(events, NoticeEvent))
    shown = of(events, PassagesEvent)
    kept = shown[0].passages if shown else []
    assert len(kept) < 3 and [p.id for p in kept] == [p.id for p in passages[: len(kept)]]
    system = standin.last_chat_request().messages[0]["content"]
    assert all(f"[p:{p.id}]" not in system for p in passages[len(kept) :])


# Faults -----------------------------------------------------------------------------------------------------


def _check_recovers(standin: OllamaStandIn, conversation: Conversation, first_question: str) -> None:
    standin.clear_scripts()
    standin.script_chat(ChatScript(text="Back again."))
    events = run(conversation, "And now?")
    assert done(events).content == "Back again."
    sent = [m.get("content") for m in standin.last_chat_request().messages]
    assert first_question in sent  # the failed turn's question is still in the history


def test_ollama_refused(standin: OllamaStandIn) -> None:
    conversation = make_agent(standin).new_conversation()
    with standin.down():
        events = run(conversation, "Q while down")
    (error,) = of(events, ErrorEvent)
    assert error.kind == "unavailable" and "Ollama" in error.message
    _check_recovers(standin, conversation, "Q while down")


def test_ollama_slow_times_out(standin: OllamaStandIn) -> None:
    # The stalled reply never comes within the test (the stand-in's stop() cuts it short); the timeout is
    # long enough that the recovery turn below, on the same agent, gets its first byte in time under load.
    conversation = make_agent(standin, request_timeout_s=3.0).new_conversation()
    standin.script_chat(ChatScript(text="late", fault=Fault.slow(600)))
    events = run(conversation, "Q slow")
    (error,) = of(events, ErrorEvent)
    assert error.kind == "timeout" and "3 s" in error.message, error.message
    _check_recovers(standin, conversation, "Q slow")


def test_stream_dropped_midway_keeps_partial_text(standin: OllamaStandIn) -> None:
    conversation = make_agent(standin).new_conversation()
    standin.script_chat(ChatScript(text="The answer is forty two tokens", fault=Fault.drop(after_lines=3)))
    events = run(conversation, "Q drop")
    assert "".join(e.text for e in of(events, TokenEvent)) == "The answer is"
    (error,) = of(events, ErrorEvent)
    assert error.kind == "stream_dropped" and "dropped" in error.message
    assert conversation.history[-1] == {
        "role": "assistant",
        "content": "The answer is\n\n[answer interrupted]",
    }
    _check_recovers(standin, conversation, "Q drop")


def test_http_500(standin: OllamaStandIn) -> None:
    conversation = make_agent(standin).new_conversation()
    standin.script_chat(ChatScript(fault=Fault.http(500)))
    events = run(conversation, "Q 500")
    (error,) = of(events, ErrorEvent)
    assert error.kind == "ollama_error" and "500" in error.message and "terminated" in error.message
    _check_recovers(standin, conversation, "Q 500")


def test_model_missing(standin: OllamaStandIn) -> None:
    conversation = make_agent(standin).new_conversation()
    events = run(conversation, "Q missing", model="mistral:7b")
    (error,) = of(events, ErrorEvent)
    assert error.kind == "model_missing" and "ollama pull mistral:7b" in error.message
    _check_recovers(standin, conversation, "Q missing")


def test_fault_after_a_tool_round_keeps_the_tool_exchange(standin: OllamaStandIn) -> None:
    conversation = make_agent(standin).new_conversation()
    standin.script_chat(
        ChatScript(tool_calls=(ToolCallScript("estimate_speed", SPEED_ARGS),)),
        ChatScript(fault=Fault.http(500)),
    )
    events = run(conversation, "Q tools then 500")
    assert of(events, ToolResultEvent) and isinstance(events[-1], ErrorEvent)
    assert [m["role"] for m in conversation.history] == ["user", "assistant", "tool"]
    _check_recovers(standin, conversation, "Q tools then 500")


def test_turn_of_a_busy_conversation_is_refused(standin: OllamaStandIn) -> None:
    standin.script_chat(ChatScript(text="one two three", token_delay_s=0.01))
    conversation = make_agent(standin).new_conversation()
    first = conversation.turn("first")
    # the first turn is mid-stream, holding the conversation
    assert next(e for e in first if isinstance(e, TokenEvent | DoneEvent)).type == "token"
    (busy,) = run(conversation, "second")
    assert isinstance(busy, ErrorEvent) and busy.kind == "busy"
    assert isinstance(list(first)[-1], DoneEvent)


def test_every_turn_ends_with_done_or_error_and_events_serialise(standin: OllamaStandIn) -> None:
    standin.script_chat(ChatScript(tool_calls=(ToolCallScript("estimate_speed", SPEED_ARGS),)), "ok")
    events = run(make_agent(standin).new_conversation(), "q")
    for event in events:
        json.loads(event.model_dump_json())
    assert sum(isinstance(e, DoneEvent | ErrorEvent) for e in events) == 1


# Concurrency ------------------------------------------------------------------------------------------------

_MARK = re.compile(r"conv-(\d+)-turn-(\d+)")


def test_twenty_concurrent_conversations_do_not_cross_talk(
    standin: OllamaStandIn, knowledge: KnowledgeBase
) -> None:
    def responder(request: RecordedRequest) -> ChatScript:
        last_user = next(m["content"] for m in reversed(request.messages) if m["role"] == "user")
        mark = _MARK.search(last_user)
        assert mark is not None
        if request.messages[-1]["role"] == "user":  # first round: a tool call derived from the conversation
            return ChatScript(
                tool_calls=(
                    ToolCallScript(
                        "estimate_speed", {"bandwidth_gbps": 100 + int(mark.group(1)), "params_billion": 8}
                    ),
                ),
                token_delay_s=0.001,
            )
        return ChatScript(text=f"echo {mark.group(0)} done", token_delay_s=0.001)

    standin.chat_responder = responder
    agent = make_agent(standin, knowledge)
    failures: list[str] = []
    conversations: dict[int, Conversation] = {}

    def worker(n: int) -> None:
        conversation = agent.new_conversation()
        conversations[n] = conversation
        for t in range(3):
            events = run(conversation, f"bandwidth question conv-{n}-turn-{t}")
            final = events[-1]
            if not isinstance(final, DoneEvent) or final.content != f"echo conv-{n}-turn-{t} done":
                failures.append(f"{n}/{t}: {final}")
                return
            bw = of(events, ToolResultEvent)[0].result["bandwidth_gbps"]
            if bw != 100 + n:
                failures.append(f"{n}/{t}: tool result of another conversation ({bw})")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    for n, conversation in conversations.items():
        marks = {int(m.group(1)) for msg in conversation.history for m in _MARK.finditer(str(msg["content"]))}
        assert marks == {n}
        assert len(conversation.history) == 3 * 4
    for request in standin.chat_requests():
        seen = {m.group(1) for msg in request.messages for m in _MARK.finditer(str(msg.get("content", "")))}
        assert len(seen) == 1, seen  # every request carries exactly one conversation
    assert len(standin.chat_requests()) == 20 * 3 * 2


def test_stopping_a_turn_midway_keeps_the_partial_answer_and_frees_the_conversation(
    standin: OllamaStandIn,
) -> None:
    standin.script_chat(ChatScript(text="one two three four", token_delay_s=0.01), ChatScript(text="next"))
    conversation = make_agent(standin).new_conversation()
    turn = conversation.turn("first")
    assert next(e for e in turn if isinstance(e, TokenEvent | DoneEvent)).type == "token"
    turn.close()  # the user pressed stop
    assert conversation.history == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "one\n\n[answer stopped]"},
    ]
    assert done(run(conversation, "second")).content == "next"


def test_cancel_from_another_thread_ends_a_silent_turn_at_once(standin: OllamaStandIn) -> None:
    """Conversation.cancel (what Stop calls) does not wait for the next chunk: the model here said a few
    words and then goes silent for ten minutes (a tool call being written); the request is closed."""
    standin.script_chat(ChatScript(tokens=("Checking ", "the numbers"), token_delay_s=600.0))
    conversation = make_agent(standin).new_conversation()
    assert not conversation.cancel(), "nothing to cancel between turns"
    turn = conversation.turn("How fast?")
    assert next(e for e in turn if isinstance(e, TokenEvent)).text == "Checking "
    stopper = threading.Thread(target=conversation.cancel)
    stopper.start()
    rest = list(turn)  # returns once the request is closed, not after the silence
    stopper.join()
    assert isinstance(rest[-1], ErrorEvent) and rest[-1].kind == "stopped", rest
    assert "Stop" in rest[-1].message and not of(rest, DoneEvent)
    assert standin.wait_chat_aborted(60) and len(standin.aborted_chats()) == 1
    assert conversation.history[-1] == {"role": "assistant", "content": "Checking \n\n[answer stopped]"}
    standin.script_chat(ChatScript(text="next"))
    assert done(run(conversation, "again")).content == "next"


def test_passages_found_by_search_knowledge_are_citable(
    standin: OllamaStandIn, knowledge: KnowledgeBase
) -> None:
    standin.script_chat(
        ChatScript(tool_calls=(ToolCallScript("search_knowledge", {"query": "Q4_K_M quantisation memory"}),)),
        ChatScript(text="Q4_K_M halves memory [p:quantisation]."),
    )
    agent = make_agent(standin, knowledge, top_k_passages=1)
    events = run(agent.new_conversation(), "How do I raise the sysctl wired limit?")
    assert [p.id for p in of(events, PassagesEvent)[0].passages] == ["wired-limit"]
    assert of(events, ToolResultEvent)[0].result["passages"][0]["id"] == "quantisation"
    retrieved, searched = of(events, PassagesEvent)
    assert retrieved.origin == "retrieval" and searched.origin == "search_knowledge"
    assert searched.passages[0].id == "quantisation", "the UI gets the passages the tool found"
    assert done(events).citations == ["quantisation"]


def test_empty_message_is_refused_without_a_request(standin: OllamaStandIn) -> None:
    conversation = make_agent(standin).new_conversation()
    (error,) = run(conversation, "   ")
    assert isinstance(error, ErrorEvent) and error.kind == "empty"
    assert conversation.history == [] and standin.chat_requests() == []
