"""The product against a stand-in as rude as the real Ollama (tests/ollama_standin), through the real client.

Each test names the fault, then checks what the user sees: the agent's events, the chat's rendering, what
went over the wire. No mocks: the agent talks HTTP to the stand-in via OllamaLayer.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.context_window import FALLBACK_NUM_CTX
from assistant.events import DoneEvent, ErrorEvent, ThinkingEvent, TokenEvent, ToolCallEvent, ToolResultEvent
from assistant.ollama import OllamaLayer
from assistant.ui import TurnRenderer
from knowledge import KnowledgeBase
from knowledge.embedding import MAX_EMBED_CHARS
from tests.agent_support import make_agent, make_layer_and_agent
from tests.harness import standin_embedder
from tests.ollama_standin import (
    NOMIC_EMBED_TEXT,
    QWEN3_8B,
    SERVER_BUSY,
    ChatScript,
    Fault,
    OllamaStandIn,
    ToolCallScript,
)
from tests.test_agent import _check_recovers, done, of, run

FIT_ARGS = {"chip": "M3 Max", "memory_gb": 64, "model": "qwen2.5:32b"}
SPEED_ARGS = {"chip": "M3 Max", "gpu_cores": 40, "model": "qwen2.5:32b"}


def test_tool_calls_spread_over_several_chunks_all_run(standin: OllamaStandIn) -> None:
    calls = (ToolCallScript("estimate_speed", SPEED_ARGS), ToolCallScript("check_memory_fit", FIT_ARGS))
    standin.script_chat(ChatScript(tool_calls=calls, split_tool_calls=True), ChatScript(text="Both done."))
    events = run(make_agent(standin).new_conversation(), "Speed and fit of qwen2.5:32b on an M3 Max?")
    assert [e.name for e in of(events, ToolCallEvent)] == ["estimate_speed", "check_memory_fit"]
    assert [e.name for e in of(events, ToolResultEvent)] == ["estimate_speed", "check_memory_fit"]
    second = standin.chat_requests()[1].messages
    (asked,) = [m for m in second if m["role"] == "assistant"]
    assert [c["function"]["name"] for c in asked["tool_calls"]] == ["estimate_speed", "check_memory_fit"]
    assert [m["tool_name"] for m in second if m["role"] == "tool"] == ["estimate_speed", "check_memory_fit"]
    assert done(events).content == "Both done."


def test_error_line_inside_a_200_stream_is_explained(standin: OllamaStandIn) -> None:
    conversation = make_agent(standin).new_conversation()
    error = "model requires more system memory (9.8 GiB) than is available (6.1 GiB)"
    standin.script_chat(ChatScript(text="The answer is forty two", fault=Fault.stream_error(error, 3)))
    events = run(conversation, "Q stream error")
    assert "".join(e.text for e in of(events, TokenEvent)) == "The answer is"
    (failure,) = of(events, ErrorEvent)
    assert failure.kind == "ollama_error"
    assert error in failure.message and "middle of the answer" in failure.message
    assert "(-1)" not in failure.message and "error)" not in failure.message
    assert conversation.history[-1]["content"] == "The answer is\n\n[answer interrupted]"
    _check_recovers(standin, conversation, "Q stream error")


def test_server_busy_is_retried_then_explained(standin: OllamaStandIn) -> None:
    layer, agent = make_layer_and_agent(standin)
    layer.busy_retry_delays_s = (0.01, 0.01, 0.01)
    conversation = agent.new_conversation()
    standin.inject("/api/chat", Fault.busy(), times=2)
    standin.script_chat(ChatScript(text="Answered after the queue drained."))
    events = run(conversation, "Q busy")
    assert done(events).content == "Answered after the queue drained."
    assert len(standin.chat_requests()) == 3  # two refusals, one answer

    standin.inject("/api/chat", Fault.busy(), times=4)  # more than the retries
    events = run(conversation, "Q still busy")
    (failure,) = of(events, ErrorEvent)
    assert failure.kind == "ollama_error" and failure.message.startswith("Ollama is busy")
    assert SERVER_BUSY in failure.message and "(503)" not in failure.message
    standin.clear_faults()
    _check_recovers(standin, conversation, "Q still busy")


def test_thinking_is_its_own_event_folded_in_the_chat_and_never_in_the_answer(standin: OllamaStandIn) -> None:
    standin.add_model(QWEN3_8B)
    thought = "The user asks about bandwidth. I should answer briefly."
    standin.script_chat(ChatScript(text="Bandwidth decides decode speed.", thinking=thought))
    conversation = make_agent(standin, chat_model="qwen3:8b").new_conversation()
    events = run(conversation, "Why does bandwidth matter?")
    assert "think" not in (standin.last_chat_request().json or {})  # Ollama's default: it thinks
    assert "".join(e.text for e in of(events, ThinkingEvent)) == thought
    assert "".join(e.text for e in of(events, TokenEvent)) == "Bandwidth decides decode speed."
    assert done(events).content == "Bandwidth decides decode speed."
    assert all(thought not in str(m.get("content")) for m in conversation.history)

    messages: list[dict[str, object]] = []
    renderer = TurnRenderer(messages)
    for event in events:
        renderer.apply(event)
    (folded,) = [m for m in messages if thought in str(m["content"])]
    assert folded["metadata"] == {"title": "💭 Thinking", "status": "done"}
    answers = [m for m in messages if "Bandwidth decides" in str(m["content"])]
    assert len(answers) == 1 and "metadata" not in answers[0] and thought not in str(answers[0]["content"])
    assert renderer.answer_text == "Bandwidth decides decode speed."


def test_measure_speed_uses_the_chat_context_so_ollama_does_not_reload(standin: OllamaStandIn) -> None:
    agent = make_agent(standin, num_ctx=16384)
    standin.script_chat("Warm.")
    assert isinstance(run(agent.new_conversation(), "Hello")[-1], DoneEvent)
    measured = agent.toolset.get("measure_speed").run({"model": "qwen2.5:7b"})
    assert standin.last_chat_request().options["num_ctx"] == 16384
    assert standin.loads == [("qwen2.5:7b", 16384)], "the measurement reloaded the model"
    assert measured.load_seconds is not None and measured.load_seconds < 0.5  # type: ignore[attr-defined]
    assert any("num_ctx = 16384" in a for a in measured.assumptions)  # type: ignore[attr-defined]


def test_measure_speed_default_context_matches_the_default_chat(standin: OllamaStandIn) -> None:
    layer = OllamaLayer(standin.url)
    layer.measure_speed("qwen2.5:7b")
    # the chat's default is "auto", which is this fallback where there is no Mac to size it against
    assert Settings.model_fields["num_ctx"].default == "auto"
    assert standin.last_chat_request().options["num_ctx"] == FALLBACK_NUM_CTX


def test_embed_input_longer_than_the_model_context(standin: OllamaStandIn, tmp_path: Path) -> None:
    """A user document with a big table: tables are never split, so one chunk is ~20k characters."""
    standin.embed_overflow = "error"  # an Ollama that refuses instead of truncating
    rows = "\n".join(f"| M{i % 5 + 1} Max | {i} GB | {100 + i} GB/s | zebrafinch{i} |" for i in range(400))
    doc = tmp_path / "bandwidth-table.md"
    doc.write_text(
        f"# Measured bandwidth\n\n| chip | memory | bandwidth | note |\n|---|---|---|---|\n{rows}\n"
    )
    with KnowledgeBase(tmp_path / "data", standin_embedder(standin)) as kb:
        assert kb.sync().mode == "hybrid"
        standin.clear_requests()
        kb.add_documents([doc])
        report = kb.sync()
        assert report.mode == "hybrid" and report.problem is None
        texts = standin.embedded_texts()
        assert texts and all(len(t) <= MAX_EMBED_CHARS for t in texts)
        assert all(r.json.get("truncate") is True for r in standin.embed_requests())
        # The whole table stays searchable lexically, including its last row (beyond the embedded start).
        out = kb.search("zebrafinch399", 3)
        assert out.mode == "hybrid" and "zebrafinch399" in out.passages[0].text


def test_embed_with_a_short_context_model_clips_further_then_explains(standin: OllamaStandIn) -> None:
    standin.set_models(dataclasses.replace(NOMIC_EMBED_TEXT, context_length=300))
    standin.embed_overflow = "error"
    embedder = standin_embedder(standin)
    vectors = embedder.embed_documents(["x" * 20_000, "short"])
    assert len(vectors) == 2
    sizes = [max(len(t) for t in r.inputs) for r in standin.embed_requests()]
    assert sizes[0] > sizes[-1] and sizes[-1] <= 300 * 4  # halved until it fit the 300-token context

    standin.set_models(dataclasses.replace(NOMIC_EMBED_TEXT, context_length=20))
    from knowledge import EmbeddingUnavailable

    with pytest.raises(EmbeddingUnavailable, match="exceed the model's context"):
        embedder.embed_query("y" * 5000)


def test_thinking_in_think_tags_from_an_older_ollama_stays_out_of_the_answer(standin: OllamaStandIn) -> None:
    standin.add_model(QWEN3_8B)
    standin.think_in_content = True
    thought = "Maybe I should call a tool."
    standin.script_chat(
        ChatScript(
            thinking=thought, text='{"name": "estimate_speed", "arguments": ' + json.dumps(SPEED_ARGS) + "}"
        ),
        ChatScript(thinking="Now answer.", text="About 20 tokens/s."),
    )
    conversation = make_agent(standin, chat_model="qwen3:8b").new_conversation()
    events = run(conversation, "How fast is qwen2.5:32b on an M3 Max?")
    # The tool call written after the think block is still recognised and run.
    assert [e.name for e in of(events, ToolResultEvent)] == ["estimate_speed"]
    assert "".join(e.text for e in of(events, ThinkingEvent)) == thought + "Now answer."
    assert "".join(e.text for e in of(events, TokenEvent)) == "About 20 tokens/s."
    assert done(events).content == "About 20 tokens/s."
    assert all("<think>" not in str(m.get("content")) for m in conversation.history)


def test_server_busy_under_load_is_retried_until_a_slot_frees(standin: OllamaStandIn) -> None:
    """Ollama with one slot: a chat arriving while another generates gets 503, then gets its answer."""
    standin.max_concurrent_chats = 1
    layer, agent = make_layer_and_agent(standin)
    # Generous waits so a loaded machine cannot run out of retries; each wait is only spent if still busy.
    layer.busy_retry_delays_s = (0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    release = threading.Event()

    def first_reply(_req: object) -> ChatScript:
        release.wait(60)
        return ChatScript(text="First answer.")

    standin.script_chat(first_reply, ChatScript(text="Second answer."))
    results: dict[str, list[object]] = {}

    def turn(key: str) -> None:
        results[key] = list(agent.new_conversation().turn(f"Question {key}"))

    first = threading.Thread(target=turn, args=("a",))
    first.start()
    assert standin.wait_for_request("/api/chat", 1)
    second = threading.Thread(target=turn, args=("b",))
    second.start()
    assert standin.wait_for_request("/api/chat", 2)  # the second chat arrived while the first holds the slot
    release.set()
    first.join(60)
    second.join(60)
    assert [done(results[k]).content for k in ("a", "b")] == ["First answer.", "Second answer."]  # type: ignore[arg-type]
    asked_b = [r for r in standin.chat_requests() if "Question b" in json.dumps(r.json)]
    assert len(asked_b) >= 2, "the second chat was refused at least once and retried"
