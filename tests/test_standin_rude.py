"""The stand-in is as rude as the real Ollama: each fault the product must survive, checked on the wire.

Through the official ``ollama`` client only, so every shape is one the client really parses. The product's
handling of each fault is tested elsewhere (test_agent.py, test_ollama_layer.py, test_knowledge_standin.py).
"""

from __future__ import annotations

import threading

import ollama
import pytest

from tests.harness import HANG_S
from tests.ollama_standin import (
    NOMIC_EMBED_TEXT,
    QWEN3_8B,
    SERVER_BUSY,
    ChatScript,
    Fault,
    OllamaStandIn,
    ToolCallScript,
    embed_text,
)

USER = [{"role": "user", "content": "Will llama3.3:70b fit on a 48 GB M4 Pro?"}]


@pytest.fixture
def client(standin: OllamaStandIn) -> ollama.Client:
    return ollama.Client(host=standin.url, timeout=HANG_S)


def test_tool_calls_can_arrive_one_chunk_each(standin: OllamaStandIn, client: ollama.Client) -> None:
    calls = (
        ToolCallScript("estimate_speed", {"model": "a"}),
        ToolCallScript("check_memory_fit", {"model": "b"}),
    )
    standin.script_chat(ChatScript(tool_calls=calls, split_tool_calls=True))
    chunks = list(client.chat("qwen2.5:7b", USER, stream=True))
    per_chunk = [[c.function.name for c in chunk.message.tool_calls or []] for chunk in chunks]
    assert [names for names in per_chunk if names] == [["estimate_speed"], ["check_memory_fit"]]
    assert chunks[-1].done


def test_error_line_inside_a_200_stream(standin: OllamaStandIn, client: ollama.Client) -> None:
    standin.script_chat(ChatScript(text="one two three four", fault=Fault.stream_error("out of memory", 2)))
    seen: list[str] = []
    with pytest.raises(ollama.ResponseError) as err:
        for chunk in client.chat("qwen2.5:7b", USER, stream=True):
            seen.append(chunk.message.content or "")
    assert "".join(seen) == "one two"
    # The client cannot know an HTTP status for an error that came after the 200 headers: -1.
    assert err.value.status_code == -1 and err.value.error == "out of memory"


def test_changing_num_ctx_reloads_the_model(standin: OllamaStandIn, client: ollama.Client) -> None:
    first = client.chat("qwen2.5:7b", USER, options={"num_ctx": 8192})
    same = client.chat("qwen2.5:7b", USER, options={"num_ctx": 8192})
    other = client.chat("qwen2.5:7b", USER)  # no num_ctx: Ollama's default, another KV cache size
    assert standin.loads == [("qwen2.5:7b", 8192), ("qwen2.5:7b", 4096)]
    assert (first.load_duration or 0) > 1e9 > (same.load_duration or 0)
    assert (other.load_duration or 0) > 1e9
    assert client.ps().models[0].context_length == 4096


def test_thinking_capable_models_think_unless_told_not_to(
    standin: OllamaStandIn, client: ollama.Client
) -> None:
    standin.add_model(QWEN3_8B)
    assert "thinking" in (client.show("qwen3:8b").capabilities or [])
    standin.script_chat(ChatScript(text="Yes.", thinking="The user asks about memory."))
    reply = client.chat("qwen3:8b", USER)
    assert (reply.message.thinking, reply.message.content) == ("The user asks about memory.", "Yes.")
    standin.script_chat(ChatScript(text="Yes.", thinking="The user asks about memory."))
    assert client.chat("qwen3:8b", USER).message.content == "Yes."  # never mixed into the content
    # A model without the capability never thinks.
    standin.script_chat(ChatScript(text="Yes.", thinking="hidden"))
    assert client.chat("qwen2.5:7b", USER).message.thinking is None


def test_server_busy_when_the_queue_is_full(standin: OllamaStandIn, client: ollama.Client) -> None:
    standin.inject("/api/chat", Fault.busy())
    with pytest.raises(ollama.ResponseError) as err:
        client.chat("qwen2.5:7b", USER)
    assert (err.value.status_code, err.value.error) == (503, SERVER_BUSY)

    # Under load: one chat holds the only slot (it waits for `release`), the next one is turned away.
    standin.max_concurrent_chats = 1
    release = threading.Event()
    started = threading.Event()

    def holding(_req: object) -> ChatScript:
        started.set()
        release.wait(120)
        return ChatScript(text="done")

    standin.script_chat(holding)
    worker = threading.Thread(target=lambda: client.chat("qwen2.5:7b", USER))
    worker.start()
    assert started.wait(120)
    try:
        with pytest.raises(ollama.ResponseError) as err:
            client.chat("qwen2.5:7b", USER)
        assert err.value.status_code == 503
    finally:
        release.set()
        worker.join(120)
    assert standin.wait_chats_idle()  # the slot is freed once the first handler returns
    assert client.chat("qwen2.5:7b", USER).message.content  # a free slot answers again


def test_embed_input_longer_than_the_context(standin: OllamaStandIn, client: ollama.Client) -> None:
    limit = NOMIC_EMBED_TEXT.context_length  # tokens; the stand-in counts ~4 characters per token
    long_text = "memory bandwidth " * (limit // 2 + 200)
    # Default (truncate=true): silently embeds only the start, as Ollama does.
    vector = client.embed("nomic-embed-text", long_text).embeddings[0]
    assert vector == pytest.approx(embed_text(long_text[: limit * 4]))
    assert vector != pytest.approx(embed_text(long_text))
    with pytest.raises(ollama.ResponseError) as err:
        client.embed("nomic-embed-text", long_text, truncate=False)
    assert err.value.status_code == 400 and "context length" in err.value.error
    standin.embed_overflow = "error"
    with pytest.raises(ollama.ResponseError):
        client.embed("nomic-embed-text", long_text)
    assert client.embed("nomic-embed-text", "short").embeddings  # short inputs still fine


def test_older_ollama_puts_thinking_in_the_content(standin: OllamaStandIn, client: ollama.Client) -> None:
    standin.add_model(QWEN3_8B)
    standin.think_in_content = True
    standin.script_chat(ChatScript(text="Yes.", thinking="Let me see."))
    chunks = list(client.chat("qwen3:8b", USER, stream=True))
    assert "".join(c.message.content or "" for c in chunks) == "<think>Let me see.</think>\n\nYes."
    assert [c.message.content for c in chunks[:2]] == ["<th", "ink>"]  # the tag is cut across chunks
    assert all(not c.message.thinking for c in chunks)
