"""The stand-in speaks Ollama's protocol as the official client expects it; its faults happen on the wire.

Everything goes through ``ollama.Client``: if a shape were wrong the client's pydantic models would reject it.
The last section checks that the stand-in is as rude as the real Ollama: each fault the product must survive,
checked on the wire. The product's handling of each fault is tested elsewhere (test_agent.py,
test_ollama_layer.py, test_knowledge_standin.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import ollama
import pytest

from tests.harness import HANG_S
from tests.ollama_standin import (
    DEFAULT_REPLY,
    DIMENSION,
    NOMIC_EMBED_TEXT,
    QWEN3_8B,
    QWEN25_32B,
    SERVER_BUSY,
    ChatScript,
    Fault,
    OllamaStandIn,
    RecordedRequest,
    ToolCallScript,
    embed_text,
)

USER = [{"role": "user", "content": "Will llama3.3:70b fit on a 48 GB M4 Pro?"}]


@pytest.fixture
def client(standin: OllamaStandIn) -> ollama.Client:
    return ollama.Client(host=standin.url, timeout=HANG_S)


def test_root_and_version_answer_like_ollama(standin: OllamaStandIn) -> None:
    with httpx.Client(base_url=standin.url) as http:
        assert http.get("/").text == "Ollama is running"
        head = http.head("/")
        assert head.status_code == 200 and head.text == ""
        assert http.get("/api/version").json() == {"version": standin.version}
        assert http.get("/api/nothing").status_code == 404


def test_tags_lists_installed_models_with_details(client: ollama.Client) -> None:
    models = {m.model: m for m in client.list().models}
    assert set(models) == {"qwen2.5:7b", "llama3.3:70b", "gemma2:9b", "nomic-embed-text:latest"}
    qwen = models["qwen2.5:7b"]
    assert qwen.details is not None and qwen.details.parameter_size == "7.6B"
    assert qwen.details.quantization_level == "Q4_K_M" and qwen.size == 4_683_087_332


def test_show_gives_model_info_and_capabilities(client: ollama.Client) -> None:
    llama = client.show("llama3.3:70b")
    info = llama.modelinfo or {}
    assert info["general.architecture"] == "llama"
    assert info["general.parameter_count"] == 70_553_706_496
    assert info["llama.block_count"] == 80
    assert info["llama.attention.head_count_kv"] == 8
    assert info["llama.attention.key_length"] == 128
    assert info["llama.context_length"] == 131072
    assert llama.capabilities == ["completion", "tools"]
    assert "tools" not in (client.show("gemma2:9b").capabilities or [])
    assert client.show("nomic-embed-text").capabilities == ["embedding"]


def test_show_unknown_model_is_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.show("mystery:1b")
    assert err.value.status_code == 404
    assert err.value.error == "model 'mystery:1b' not found"


def test_chat_stream_tokens_then_tool_calls_then_final_stats(
    standin: OllamaStandIn, client: ollama.Client
) -> None:
    standin.script_chat(
        ChatScript(
            text="Let me check.",
            tool_calls=(
                ToolCallScript(
                    "check_memory_fit", {"chip": "M4 Pro", "memory_gb": 48, "model": "llama3.3:70b"}
                ),
                {"name": "estimate_speed", "arguments": {"chip": "M4 Pro"}},
            ),
            eval_count=50,
            eval_duration_ns=1_000_000_000,
        )
    )
    chunks = list(client.chat("qwen2.5:7b", USER, stream=True, options={"num_ctx": 8192}))
    text = "".join(c.message.content or "" for c in chunks)
    assert text == "Let me check."
    assert [c.done for c in chunks].count(True) == 1 and chunks[-1].done
    calls = [call for c in chunks for call in (c.message.tool_calls or [])]
    assert [c.function.name for c in calls] == ["check_memory_fit", "estimate_speed"]
    assert calls[0].function.arguments == {"chip": "M4 Pro", "memory_gb": 48, "model": "llama3.3:70b"}
    final = chunks[-1]
    assert final.done_reason == "stop"
    assert final.eval_count == 50 and final.eval_duration == 1_000_000_000
    for field in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration"):
        assert isinstance(getattr(final, field), int) and getattr(final, field) > 0
    sent = standin.last_chat_request()
    assert sent.options == {"num_ctx": 8192} and sent.messages == USER and sent.json["stream"] is True


def test_chat_non_streaming_carries_everything_in_one_message(
    standin: OllamaStandIn, client: ollama.Client
) -> None:
    standin.script_chat(
        ChatScript(text="Yes, it fits.", tool_calls=(ToolCallScript("recommend_machine", {}),))
    )
    reply = client.chat("qwen2.5:7b", USER)
    assert reply.done and reply.message.content == "Yes, it fits."
    assert reply.message.tool_calls and reply.message.tool_calls[0].function.name == "recommend_machine"


def test_default_reply_when_nothing_is_scripted(client: ollama.Client) -> None:
    assert client.chat("qwen2.5:7b", USER).message.content == DEFAULT_REPLY


def test_scripts_are_consumed_in_order(standin: OllamaStandIn, client: ollama.Client) -> None:
    standin.script_chat("first", ChatScript(text="second"))
    assert standin.pending_scripts() == 2
    assert client.chat("qwen2.5:7b", USER).message.content == "first"
    assert client.chat("qwen2.5:7b", USER).message.content == "second"
    assert client.chat("qwen2.5:7b", USER).message.content == DEFAULT_REPLY


def test_callable_script_sees_the_request(standin: OllamaStandIn, client: ollama.Client) -> None:
    def responder(req: RecordedRequest) -> ChatScript:
        if req.messages[-1]["role"] == "tool":
            return ChatScript(text=f"The tool said {req.messages[-1]['content']}.")
        return ChatScript(tool_calls=(ToolCallScript("estimate_speed", {"chip": "M3 Max"}),))

    standin.chat_responder = responder
    first = client.chat("qwen2.5:7b", USER)
    assert first.message.tool_calls and first.message.tool_calls[0].function.name == "estimate_speed"
    history: list[Any] = [
        *USER,
        first.message,
        {"role": "tool", "content": "42 tok/s", "tool_name": "estimate_speed"},
    ]
    assert client.chat("qwen2.5:7b", history).message.content == "The tool said 42 tok/s."
    sent_tool = standin.last_chat_request().messages[-1]
    assert sent_tool == {"role": "tool", "content": "42 tok/s", "tool_name": "estimate_speed"}


def test_thinking_streams_before_content_unless_turned_off(
    standin: OllamaStandIn, client: ollama.Client
) -> None:
    standin.add_model(QWEN3_8B)
    standin.script_chat(ChatScript(text="Answer.", thinking="Let me think."))
    chunks = list(client.chat("qwen3:8b", USER, stream=True, think=False))
    assert all(not c.message.thinking for c in chunks)  # think=False turns it off
    assert "".join(c.message.content or "" for c in chunks) == "Answer."
    # Ollama >= 0.12: a model whose capabilities list "thinking" thinks when the request does not say
    standin.script_chat(ChatScript(text="Answer.", thinking="Let me think."))
    chunks = list(client.chat("qwen3:8b", USER, stream=True))
    assert "".join(c.message.thinking or "" for c in chunks) == "Let me think."
    standin.script_chat(ChatScript(text="Answer.", thinking="Let me think."))
    chunks = list(client.chat("qwen3:8b", USER, stream=True, think=True))
    assert "".join(c.message.thinking or "" for c in chunks) == "Let me think."
    assert "".join(c.message.content or "" for c in chunks) == "Answer."


def test_tools_refused_for_model_without_tools_capability(client: ollama.Client) -> None:
    tool = {
        "type": "function",
        "function": {"name": "f", "description": "d", "parameters": {"type": "object"}},
    }
    with pytest.raises(ollama.ResponseError) as err:
        client.chat("gemma2:9b", USER, tools=[tool])
    assert err.value.status_code == 400 and "does not support tools" in err.value.error


def test_chat_with_missing_model_is_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        list(client.chat("qwen2.5:72b", USER, stream=True))
    assert err.value.status_code == 404 and "not found" in err.value.error


def test_num_predict_truncates_with_done_reason_length(standin: OllamaStandIn, client: ollama.Client) -> None:
    standin.script_chat(ChatScript(text="one two three four five"))
    reply = client.chat("qwen2.5:7b", USER, options={"num_predict": 2})
    assert reply.message.content == "one two" and reply.done_reason == "length"


def test_token_delay_is_real_time(standin: OllamaStandIn, client: ollama.Client) -> None:
    standin.script_chat(ChatScript(text="a b c d e f", token_delay_s=0.03))
    start = time.perf_counter()
    list(client.chat("qwen2.5:7b", USER, stream=True))
    assert time.perf_counter() - start >= 0.15


def test_embed_is_deterministic_768_per_input(standin: OllamaStandIn, client: ollama.Client) -> None:
    texts = ["search_document: M3 Max memory bandwidth", "search_query: memory bandwidth of the M3 Max"]
    result = client.embed("nomic-embed-text", texts)
    assert len(result.embeddings) == 2 and all(len(v) == DIMENSION for v in result.embeddings)
    assert list(result.embeddings[0]) == embed_text(texts[0])
    cosine = sum(a * b for a, b in zip(result.embeddings[0], result.embeddings[1], strict=True))
    assert cosine > 0.5
    assert math.isclose(sum(v * v for v in result.embeddings[0]), 1.0, rel_tol=1e-6)
    assert standin.embedded_texts() == texts
    single = client.embed("nomic-embed-text", "one string")
    assert len(single.embeddings) == 1


def test_pull_streams_progress_and_installs(client: ollama.Client) -> None:
    progress = list(client.pull("qwen2.5:32b", stream=True))
    assert progress[0].status == "pulling manifest" and progress[-1].status == "success"
    layer = [p for p in progress if p.digest and p.total == QWEN25_32B.size_bytes]
    assert layer[0].completed == 0 and layer[-1].completed == layer[-1].total
    assert all(p.digest and p.digest.startswith("sha256:") for p in layer)
    assert "qwen2.5:32b" in {m.model for m in client.list().models}


def test_pull_unknown_model_errors_in_stream(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        list(client.pull("no-such-model:3b", stream=True))
    assert "file does not exist" in err.value.error


def test_ps_lists_models_loaded_by_use_with_size_vram(standin: OllamaStandIn, client: ollama.Client) -> None:
    assert client.ps().models == []
    client.chat("qwen2.5:7b", USER, options={"num_ctx": 8192}, keep_alive="10m")
    loaded = client.ps().models
    assert [m.model for m in loaded] == ["qwen2.5:7b"]
    assert loaded[0].context_length == 8192 and loaded[0].size_vram == loaded[0].size
    standin.gpu_memory_bytes = 2_000_000_000
    assert client.ps().models[0].size_vram == 2_000_000_000
    client.chat("qwen2.5:7b", USER, keep_alive=0)
    assert client.ps().models == []


def test_refused_connections_and_recovery(standin: OllamaStandIn, client: ollama.Client) -> None:
    client.list()  # leaves a keep-alive connection in the client's pool; it must be cut too
    with standin.down():
        with pytest.raises(ConnectionError):
            client.list()
        with pytest.raises(httpx.ConnectError):
            list(client.chat("qwen2.5:7b", USER, stream=True))
    assert client.list().models


def test_slow_answer_trips_client_timeout(standin: OllamaStandIn) -> None:
    standin.inject("/api/tags", Fault.slow(1.0))
    impatient = ollama.Client(host=standin.url, timeout=0.2)
    with pytest.raises(httpx.ReadTimeout):
        impatient.list()
    standin.script_chat(ChatScript(text="late", fault=Fault.slow(0.3)))
    start = time.perf_counter()
    assert ollama.Client(host=standin.url, timeout=120).chat("qwen2.5:7b", USER).message.content == "late"
    assert time.perf_counter() - start >= 0.3


def test_drop_midway_cuts_the_chunked_stream(standin: OllamaStandIn, client: ollama.Client) -> None:
    standin.script_chat(ChatScript(text="one two three four five", fault=Fault.drop(after_lines=2)))
    received: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        for chunk in client.chat("qwen2.5:7b", USER, stream=True):
            received.append(chunk.message.content or "")
    assert received == ["one", " two"]
    assert client.chat("qwen2.5:7b", USER).message.content == DEFAULT_REPLY  # the server lives on


def test_http_errors_carry_ollama_error_json(standin: OllamaStandIn, client: ollama.Client) -> None:
    standin.script_chat(ChatScript(fault=Fault.http(500, "llama runner process has terminated")))
    with pytest.raises(ollama.ResponseError) as err:
        list(client.chat("qwen2.5:7b", USER, stream=True))
    assert err.value.status_code == 500 and err.value.error == "llama runner process has terminated"
    standin.inject("/api/embed", Fault.http(404, "model not found"), times=2)
    for _ in range(2):
        with pytest.raises(ollama.ResponseError):
            client.embed("nomic-embed-text", ["x"])
    assert len(client.embed("nomic-embed-text", ["x"]).embeddings) == 1


def test_close_without_response(standin: OllamaStandIn, client: ollama.Client) -> None:
    standin.inject("/api/show", Fault.close())
    with pytest.raises(httpx.RemoteProtocolError):
        client.show("qwen2.5:7b")


def test_malformed_tool_calls_reach_the_wire_verbatim(standin: OllamaStandIn) -> None:
    standin.script_chat(
        ChatScript(tool_calls=(ToolCallScript("estimate_speed", '{"chip": "M3 Max"'),)),
        ChatScript(tool_calls=(ToolCallScript(raw={"function": {"arguments": {}}}),)),
        ChatScript(tool_calls=(ToolCallScript("no_such_tool", {"chip": 42}),)),
    )
    with httpx.Client(base_url=standin.url) as http:
        body = {"model": "qwen2.5:7b", "messages": USER, "stream": False}
        first = http.post("/api/chat", json=body).json()
        assert first["message"]["tool_calls"][0]["function"]["arguments"] == '{"chip": "M3 Max"'
        second = http.post("/api/chat", json=body).json()
        assert second["message"]["tool_calls"] == [{"function": {"arguments": {}}}]
    # the client parses well-formed JSON with wrong content; validation is the agent's job
    reply = ollama.Client(host=standin.url).chat("qwen2.5:7b", USER)
    assert reply.message.tool_calls and reply.message.tool_calls[0].function.arguments == {"chip": 42}


def test_records_requests_with_headers(standin: OllamaStandIn, client: ollama.Client) -> None:
    client.list()
    client.embed("nomic-embed-text", ["a"])
    paths = [(r.method, r.path) for r in standin.requests]
    assert paths == [("GET", "/api/tags"), ("POST", "/api/embed")]
    assert standin.requests[0].headers["user-agent"].startswith("ollama-python/")
    assert standin.embed_requests()[0].json["model"] == "nomic-embed-text"
    standin.clear_requests()
    assert standin.requests == []


def test_many_concurrent_streaming_chats(standin: OllamaStandIn) -> None:
    """40 parallel streams, each answered by a callable that echoes which conversation it is."""
    standin.chat_responder = lambda req: ChatScript(
        text=f"conversation {req.messages[0]['content']} ok", token_delay_s=0.005
    )
    client = ollama.Client(host=standin.url, timeout=60.0)

    def converse(i: int) -> str:
        chunks = client.chat("qwen2.5:7b", [{"role": "user", "content": str(i)}], stream=True)
        return "".join(c.message.content or "" for c in chunks)

    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(converse, range(40)))
    assert answers == [f"conversation {i} ok" for i in range(40)]
    assert len(standin.chat_requests()) == 40


def test_usable_without_pytest_and_ports_are_random() -> None:
    with OllamaStandIn() as a, OllamaStandIn() as b:
        assert a.port != b.port
        assert ollama.Client(host=a.url).list().models
    with pytest.raises(ConnectionError):
        ollama.Client(host=a.url, timeout=1).list()


def test_bad_json_body_is_400(standin: OllamaStandIn) -> None:
    with httpx.Client(base_url=standin.url) as http:
        response = http.post("/api/chat", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "error" in json.loads(response.text)


def test_stop_is_prompt_even_with_a_sleeping_handler() -> None:
    server = OllamaStandIn().start()
    server.inject("/api/tags", Fault.slow(3 * HANG_S))
    worker = threading.Thread(
        # The client would wait longer than the bound below: only stop() can end this request in time.
        target=lambda: _swallow(lambda: ollama.Client(host=server.url, timeout=3 * HANG_S).list())
    )
    worker.start()
    server.wait_for_request("/api/tags")  # the request is in flight, its handler asleep for 15 min
    start = time.perf_counter()
    server.stop()
    worker.join(timeout=HANG_S)
    # Far under the handler's sleep (a hang-only bound on a loaded machine): stop() cut the sleeping
    # handler short instead of waiting it out.
    assert not worker.is_alive() and time.perf_counter() - start < HANG_S


def _swallow(fn: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        fn()


# ------------------------------------------------------------------- as rude as the real Ollama


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
