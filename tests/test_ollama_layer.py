"""OllamaLayer against the protocol-level stand-in, through the real ``ollama`` client, faults included."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import ollama
import pytest

from assistant.ollama import (
    MIN_VERSION,
    ChatCancel,
    ChatCancelled,
    Health,
    MalformedResponse,
    ModelMissing,
    ModelNotSuitable,
    OllamaLayer,
    OllamaServerError,
    OllamaTimeout,
    OllamaUnavailable,
    PullProgress,
    StreamInterrupted,
)
from assistant.ollama.health import unreachable_health
from tests.harness import HANG_S
from tests.ollama_standin import (
    QWEN25_7B,
    ChatScript,
    Fault,
    ModelSpec,
    OllamaStandIn,
    RecordedRequest,
    ToolCallScript,
    embed_text,
)
from tests.test_toolset import TINY_MOE as TINY_MOE_WITH_TENSORS
from tools import ModelArchitecture

USER = [{"role": "user", "content": "How fast is qwen2.5:7b on an M3 Max?"}]
SPEED_TOOL = {
    "type": "function",
    "function": {
        "name": "estimate_speed",
        "description": "Decode speed of a model on a Mac.",
        "parameters": {
            "type": "object",
            "properties": {"chip": {"type": "string"}, "model": {"type": "string"}},
            "required": ["chip"],
        },
    },
}


@pytest.fixture
def layer(standin: OllamaStandIn) -> Iterator[OllamaLayer]:
    with OllamaLayer(standin.url, timeout_s=HANG_S) as lay:
        yield lay


@pytest.fixture
def ollama_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An `ollama` executable on PATH, so a refused connection means "installed but not running"."""
    exe = tmp_path / "ollama"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path))


def collect(layer: OllamaLayer, model: str = "qwen2.5:7b", **kwargs: object) -> list[ollama.ChatResponse]:
    return list(layer.chat_stream(model, USER, **kwargs))  # type: ignore[arg-type]


# health -------------------------------------------------------------------------------------------------


def test_health_ok_reports_version(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    health = layer.health()
    assert health == Health(ok=True, host=standin.url, kind="ok", version=standin.version)
    assert "running" in health.message


def test_health_too_old(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    standin.version = "0.5.7"
    health = layer.health()
    assert not health.ok and health.kind == "too_old" and health.version == "0.5.7"
    minimum = ".".join(map(str, MIN_VERSION))
    assert f"{minimum} or newer" in (health.problem or "") and "Update Ollama" in (health.advice or "")


def test_health_accepts_dev_build_and_newer(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    for version in ("0.0.0", "0.8.0", "1.2.3-rc1"):
        standin.version = version
        assert layer.health().ok, version


def test_health_not_running(layer: OllamaLayer, standin: OllamaStandIn, ollama_on_path: None) -> None:
    with standin.down():
        health = layer.health()
    assert not health.ok and health.kind == "not_running"
    assert health.problem == f"Ollama is not running at {standin.url}"
    assert "Ollama app" in (health.advice or "") and "ollama serve" in (health.advice or "")


@pytest.mark.parametrize("address", ["0.0.0.0", "[::]"])
def test_health_not_running_at_the_any_address_is_this_machine(
    standin: OllamaStandIn, ollama_on_path: None, address: str
) -> None:
    """OLLAMA_HOST=0.0.0.0 is what Ollama's FAQ sets to listen everywhere, and we read the same variable: as
    a destination it means this machine, so the advice is to start Ollama here, not "on that machine"."""
    port = standin.url.rsplit(":", 1)[1]
    host = f"http://{address}:{port}"
    with standin.down():
        health = OllamaLayer(host, timeout_s=HANG_S).health()
    assert health.kind == "not_running" and health.problem == f"Ollama is not running at {host}"
    assert "ollama serve" in (health.advice or "") and "that machine" not in (health.advice or "")


@pytest.mark.skipif(sys.platform == "darwin", reason="Ollama.app may be installed on this Mac")
def test_health_not_installed(
    layer: OllamaLayer, standin: OllamaStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with standin.down():
        health = layer.health()
    assert health.kind == "not_installed" and "not seem to be installed" in (health.problem or "")
    assert "https://ollama.com/download" in (health.advice or "")


def test_health_something_else_answers(standin: OllamaStandIn) -> None:
    class NotOllama(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>a web app</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotOllama)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        health = OllamaLayer(f"http://127.0.0.1:{server.server_address[1]}", timeout_s=HANG_S).health()
    finally:
        server.shutdown()
        server.server_close()
    assert health.kind == "not_ollama" and "not like Ollama" in (health.problem or "")
    standin.inject("/api/version", Fault.http(404, "404 page not found"))
    health = OllamaLayer(standin.url, timeout_s=HANG_S).health()
    assert health.kind == "not_ollama" and "HTTP 404" in (health.problem or "")
    assert "11434" in (health.advice or "")


def test_health_timeout(standin: OllamaStandIn) -> None:
    standin.inject("/api/version", Fault.slow(1.0))
    health = OllamaLayer(standin.url, timeout_s=0.2).health()
    assert health.kind == "timeout" and "0.2 s" in (health.problem or "")


def test_health_unresolvable_host_diagnosis(layer: OllamaLayer) -> None:
    """DNS is not used offline, so the diagnosis is fed the exception chain the client produces for it."""
    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as dns:
            raise httpx.ConnectError("[Errno -2] Name or service not known") from dns
    except httpx.ConnectError as exc:
        health = unreachable_health(exc, layer.host)
    assert health.kind == "wrong_host" and "cannot be resolved" in (health.problem or "")
    assert "OLLAMA_HOST" in (health.advice or "")


def test_host_forms_are_normalised(standin: OllamaStandIn) -> None:
    layer = OllamaLayer(standin.host)  # "127.0.0.1:PORT", as OLLAMA_HOST is often written
    assert layer.host == standin.url and layer.health().ok


# models -------------------------------------------------------------------------------------------------


def test_installed_models(layer: OllamaLayer) -> None:
    models = {m.name: m for m in layer.installed_models()}
    assert set(models) == {"qwen2.5:7b", "llama3.3:70b", "gemma2:9b", "nomic-embed-text:latest"}
    qwen = models["qwen2.5:7b"]
    assert qwen.size_bytes == QWEN25_7B.size_bytes and qwen.quantization == "Q4_K_M"
    assert qwen.family == "qwen2" and qwen.parameter_size == "7.6B" and qwen.digest


def test_model_facts_and_architecture(layer: OllamaLayer) -> None:
    llama = layer.model_facts("llama3.3:70b")
    assert (llama.family, llama.n_layers, llama.n_kv_heads, llama.key_length) == ("llama", 80, 8, 128)
    assert llama.context_length == 131072 and llama.supports_tools
    arch = llama.architecture()
    assert arch == {
        "params_billion": 70.554,
        "n_layers": 80,
        "n_kv_heads": 8,
        "head_dim": 128,
        "native_context": 131072,
        "family": "llama",
        "n_heads": 64,
    }
    ModelArchitecture.model_validate(arch)  # the tools package accepts it as is

    qwen = layer.model_facts("qwen2.5:7b")  # no key_length in qwen2's model_info: head_dim = 3584 / 28
    assert qwen.architecture()["head_dim"] == 128 and qwen.quantization == "Q4_K_M"
    gemma = layer.model_facts("gemma2:9b")
    assert gemma.head_dim == 256 and gemma.sliding_window == 4096 and not gemma.supports_tools
    nomic = layer.model_facts("nomic-embed-text")
    assert nomic.capabilities == ["embedding"] and nomic.n_kv_heads == 12


def test_only_a_layout_question_asks_for_the_verbose_show(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    """The verbose /api/show lists every tensor (a much larger reply): the status line, the pulls and the
    context window ask the plain one; only the per-tensor layout (speed and memory maths) asks verbose."""
    standin.add_model(TINY_MOE_WITH_TENSORS)
    standin.clear_requests()
    plain = layer.model_facts("tinymoe")
    assert plain.weights_bytes is None and plain.expert_count == 8
    layout = layer.model_facts("tinymoe", verbose=True)
    assert layout.weights_bytes is not None and layout.weights_bytes > 0
    assert [bool((r.json or {}).get("verbose")) for r in standin.requests_to("/api/show")] == [False, True]


def test_model_facts_missing_model(layer: OllamaLayer) -> None:
    with pytest.raises(ModelMissing) as err:
        layer.model_facts("phi4:14b")
    assert "ollama pull phi4:14b" in str(err.value) and err.value.status_code == 404
    assert isinstance(err.value, ollama.ResponseError) and isinstance(err.value, OllamaUnavailable)


def test_architecture_refuses_to_guess(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    odd = ModelSpec(
        "odd:1b", "mystery", 0, 0, 0, 512, 8, None, capabilities=("completion",), parameter_size=""
    )
    standin.add_model(odd)
    with pytest.raises(ValueError, match="does not give params_billion, n_layers"):
        layer.model_facts("odd:1b").architecture()


def test_loaded_models_report_size_vram(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    assert layer.loaded_models() == []
    collect(layer, options={"num_ctx": 16384})
    (loaded,) = layer.loaded_models()
    assert loaded.name == "qwen2.5:7b" and loaded.context_length == 16384
    assert loaded.size_vram_bytes == loaded.size_bytes and loaded.gpu_fraction == 1.0
    standin.gpu_memory_bytes = 3_000_000_000
    (partial,) = layer.loaded_models()
    assert partial.gpu_fraction is not None and partial.gpu_fraction < 0.7


# ensure_models ----------------------------------------------------------------------------------------------


def test_ensure_models_all_present_pulls_nothing(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    report = layer.ensure_models("qwen2.5:7b", "nomic-embed-text")
    assert report.pulled == [] and report.already_present == ["qwen2.5:7b", "nomic-embed-text"]
    assert standin.requests_to("/api/pull") == []


def test_ensure_models_pulls_missing_with_progress(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    standin.remove_model("nomic-embed-text")
    events: list[PullProgress] = []
    report = layer.ensure_models("qwen2.5:32b", "nomic-embed-text", progress=events.append)
    assert report.pulled == ["qwen2.5:32b", "nomic-embed-text"]
    assert [r.json["model"] for r in standin.requests_to("/api/pull")] == ["qwen2.5:32b", "nomic-embed-text"]
    first = [e for e in events if e.model == "qwen2.5:32b"]
    assert first[0].status == "pulling manifest" and first[-1].status == "success"
    fractions = [e.fraction for e in first if e.fraction is not None and e.total and e.total > 10**6]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {"qwen2.5:32b", "nomic-embed-text:latest"} <= {m.name for m in layer.installed_models()}


def test_ensure_models_draws_a_terminal_bar(
    layer: OllamaLayer, standin: OllamaStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    from launch import _RichPullBars  # the CLI draws the bars from the layer's progress events

    bars = _RichPullBars()
    try:
        layer.ensure_models("llama3.1:8b", "nomic-embed-text", progress=bars)
    finally:
        bars.close()
    err = capsys.readouterr().err
    assert "llama3.1:8b" in err and "success" in err


def test_ensure_models_refuses_chat_model_without_tools(layer: OllamaLayer) -> None:
    with pytest.raises(ModelNotSuitable) as err:
        layer.ensure_models("gemma2:9b", "nomic-embed-text")
    message = str(err.value)
    assert "gemma2:9b cannot call tools" in message
    assert "qwen2.5:7b" in message and "llama3.3:70b" in message and "nomic" not in message


def test_ensure_models_refuses_non_embedding_model(layer: OllamaLayer) -> None:
    with pytest.raises(ModelNotSuitable, match="not an embedding model"):
        layer.ensure_models("qwen2.5:7b", "llama3.3:70b")


def test_ensure_models_unknown_name(layer: OllamaLayer) -> None:
    with pytest.raises(ModelMissing) as err:
        layer.ensure_models("qwen9:7b", "nomic-embed-text")
    assert "could not find 'qwen9:7b'" in str(err.value) and "ollama.com/library" in str(err.value)


def test_pull_http_errors(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    standin.inject("/api/pull", Fault.http(500, "registry unreachable: dial tcp: no such host"))
    with pytest.raises(OllamaServerError) as err:
        layer.pull("qwen2.5:32b")
    assert err.value.status_code == 500 and "no such host" in str(err.value)
    standin.inject("/api/pull", Fault.http(404, "model not found"))
    with pytest.raises(ModelMissing):
        layer.pull("qwen2.5:32b")
    standin.inject("/api/pull", Fault.drop(after_lines=2))
    with pytest.raises(StreamInterrupted):
        layer.pull("qwen2.5:32b")


# embeddings ----------------------------------------------------------------------------------


def test_embedder_batches_with_nomic_prefixes(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    embedder = layer.embedder("nomic-embed-text", batch_size=2)
    assert embedder.model_name == "nomic-embed-text"
    vectors = embedder.embed_documents(["one", "two", "three"])
    query = embedder.embed_query("which one")
    assert len(vectors) == 3 and all(len(v) == 768 for v in vectors) and len(query) == 768
    assert vectors[0] == embed_text("one")
    assert [r.inputs for r in standin.embed_requests()] == [
        ["search_document: one", "search_document: two"],
        ["search_document: three"],
        ["search_query: which one"],
    ]


# chat_stream ----------------------------------------------------------------------------------


def test_chat_stream_text_tools_and_request(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    standin.script_chat(
        ChatScript(
            text="Checking.",
            tool_calls=(ToolCallScript("estimate_speed", {"chip": "M3 Max", "model": "qwen2.5:7b"}),),
            eval_count=30,
            eval_duration_ns=500_000_000,
        )
    )
    chunks = collect(layer, tools=[SPEED_TOOL], options={"num_ctx": 8192})
    assert "".join(c.message.content or "" for c in chunks) == "Checking."
    calls = [call for c in chunks for call in (c.message.tool_calls or [])]
    assert calls[0].function.name == "estimate_speed"
    assert calls[0].function.arguments == {"chip": "M3 Max", "model": "qwen2.5:7b"}
    assert chunks[-1].done and chunks[-1].eval_count == 30 and chunks[-1].eval_duration == 500_000_000
    sent = standin.last_chat_request()
    assert sent.options == {"num_ctx": 8192}
    assert sent.tools == [SPEED_TOOL] and sent.json["stream"] is True and sent.messages == USER


def test_chat_stream_json_string_arguments_are_decoded(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    standin.script_chat(
        ChatScript(
            tool_calls=(
                ToolCallScript("estimate_speed", json.dumps({"chip": "M3 Max"})),
                ToolCallScript("estimate_speed", '{"chip": "M3 Max"'),  # truncated JSON
                ToolCallScript("estimate_speed", "[1, 2]"),  # JSON, but not an object
                ToolCallScript("estimate_speed", ""),
            )
        )
    )
    calls = [call for c in collect(layer) for call in (c.message.tool_calls or [])]
    assert [dict(c.function.arguments) for c in calls] == [
        {"chip": "M3 Max"},
        {"_raw": '{"chip": "M3 Max"'},
        {"_raw": "[1, 2]"},
        {},
    ]


def test_chat_stream_non_streamed_path_also_repaired(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    standin.script_chat(ChatScript(tool_calls=(ToolCallScript("recommend_machine", '{"budget_usd": 1500}'),)))
    reply = layer.client.chat("qwen2.5:7b", USER)
    assert reply.message.tool_calls and reply.message.tool_calls[0].function.arguments == {"budget_usd": 1500}


def test_chat_stream_wrong_tool_calls_arrive_intact(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    standin.script_chat(
        ChatScript(
            tool_calls=(
                ToolCallScript("format_disk", {"path": "/"}),
                ToolCallScript("estimate_speed", {"chip": 3}),
            )
        )
    )
    calls = [call for c in collect(layer) for call in (c.message.tool_calls or [])]
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("format_disk", {"path": "/"}),
        ("estimate_speed", {"chip": 3}),
    ]


def test_chat_stream_unparseable_tool_call(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    standin.script_chat(
        ChatScript(text="Let me", tool_calls=(ToolCallScript(raw={"function": {"arguments": {}}}),))
    )
    received: list[str] = []
    with pytest.raises(MalformedResponse) as err:
        for chunk in layer.chat_stream("qwen2.5:7b", USER):
            received.append(chunk.message.content or "")
    assert received == ["Let", " me"]
    assert "could not read" in str(err.value) and "name" in str(err.value)


def test_chat_stream_refused(layer: OllamaLayer, standin: OllamaStandIn, ollama_on_path: None) -> None:
    with standin.down(), pytest.raises(OllamaUnavailable) as err:
        collect(layer)
    assert str(err.value).startswith(f"Ollama is not running at {standin.url}: start the Ollama app")
    assert collect(layer)[-1].done  # back up: the same layer works again


def test_chat_stream_slow_beyond_timeout(standin: OllamaStandIn) -> None:
    standin.script_chat(ChatScript(text="late", fault=Fault.slow(1.5)))
    layer = OllamaLayer(standin.url, timeout_s=0.3)
    with pytest.raises(OllamaTimeout) as err:
        collect(layer)
    assert "0.3 s" in str(err.value) and "timed out" in str(err.value)
    assert isinstance(err.value, httpx.TimeoutException)


def test_chat_stream_slow_tokens_within_timeout_are_fine(standin: OllamaStandIn) -> None:
    # The timeout bounds each wait for the next chunk, not the whole answer: 4 gaps of 1 s take longer than
    # the 3 s timeout in total, and each gap leaves 2 s of slack for a loaded machine.
    standin.script_chat(ChatScript(text="a b c d e", token_delay_s=1.0))
    started = time.monotonic()
    chunks = collect(OllamaLayer(standin.url, timeout_s=3.0))
    assert "".join(c.message.content or "" for c in chunks) == "a b c d e"
    assert time.monotonic() - started > 3.0  # the stream as a whole outlasted the timeout


def test_chat_stream_dropped_midway(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    standin.script_chat(ChatScript(text="The answer is forty two", fault=Fault.drop(after_lines=3)))
    received: list[str] = []
    with pytest.raises(StreamInterrupted) as err:
        for chunk in layer.chat_stream("qwen2.5:7b", USER):
            received.append(chunk.message.content or "")
    assert "".join(received) == "The answer is"
    assert "dropped" in str(err.value) and isinstance(err.value, httpx.RemoteProtocolError)


def test_chat_stream_closed_without_response(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    standin.script_chat(ChatScript(fault=Fault.close()))
    with pytest.raises(StreamInterrupted):
        collect(layer)


def test_chat_stream_model_missing(layer: OllamaLayer) -> None:
    with pytest.raises(ModelMissing) as err:
        collect(layer, model="mistral:7b")
    assert str(err.value) == "Model 'mistral:7b' is not installed in Ollama: run `ollama pull mistral:7b`."
    assert err.value.model == "mistral:7b" and err.value.status_code == 404


def test_chat_stream_http_500(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    standin.script_chat(
        ChatScript(fault=Fault.http(500, "llama runner process has terminated: signal: killed"))
    )
    with pytest.raises(OllamaServerError) as err:
        collect(layer)
    assert err.value.status_code == 500 and "HTTP 500" in str(err.value) and "terminated" in str(err.value)
    assert isinstance(err.value, ollama.ResponseError) and "terminated" in err.value.error


def test_chat_stream_tools_on_model_without_tools(layer: OllamaLayer) -> None:
    with pytest.raises(OllamaServerError) as err:
        collect(layer, model="gemma2:9b", tools=[SPEED_TOOL])
    assert err.value.status_code == 400 and "does not support tools" in str(err.value)


def test_chat_stream_stopped_early_releases_the_connection(
    layer: OllamaLayer, standin: OllamaStandIn
) -> None:
    standin.script_chat(ChatScript(text=" ".join(["word"] * 200), token_delay_s=0.001))
    stream = layer.chat_stream("qwen2.5:7b", USER)
    assert next(stream).message.content == "word"
    stream.close()  # type: ignore[attr-defined]
    assert collect(layer)[-1].done


def test_chat_cancel_from_another_thread_ends_the_request_before_its_first_byte(
    layer: OllamaLayer, standin: OllamaStandIn
) -> None:
    """A long prompt evaluation (no headers yet): cancel() wakes the blocked read; Ollama sees us leave."""
    standin.script_chat(ChatScript(text="never", fault=Fault.slow(600.0)))
    cancel = ChatCancel()

    def press_stop() -> None:
        standin.wait_for_request("/api/chat")
        cancel.cancel()

    stopper = threading.Thread(target=press_stop)
    stopper.start()
    with pytest.raises(ChatCancelled):
        list(layer.chat_stream("qwen2.5:7b", USER, cancel=cancel))
    stopper.join()
    assert standin.wait_chat_aborted(60) and len(standin.aborted_chats()) == 1
    with pytest.raises(ChatCancelled):  # a cancelled handle sends nothing more
        list(layer.chat_stream("qwen2.5:7b", USER, cancel=cancel))
    assert len(standin.chat_requests()) == 1


def test_a_late_cancel_never_touches_the_pooled_connection_of_a_later_request(
    layer: OllamaLayer, standin: OllamaStandIn
) -> None:
    standin.script_chat("first answer", ChatScript(text="second answer", token_delay_s=0.01))
    finished = ChatCancel()
    assert "".join(c.message.content or "" for c in layer.chat_stream("qwen2.5:7b", USER, cancel=finished))
    second = layer.chat_stream("qwen2.5:7b", USER)  # the pooled connection the first one used
    head = next(second)
    finished.cancel()  # Stop pressed after that answer was complete
    text = (head.message.content or "") + "".join(c.message.content or "" for c in second)
    assert text == "second answer" and standin.aborted_chats() == []


def test_many_concurrent_streams_through_one_layer(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    def responder(req: RecordedRequest) -> ChatScript:
        return ChatScript(text=f"answer for {req.messages[-1]['content']}", token_delay_s=0.002)

    standin.chat_responder = responder

    def converse(i: int) -> str:
        chunks = layer.chat_stream("qwen2.5:7b", [{"role": "user", "content": f"q{i}"}])
        return "".join(c.message.content or "" for c in chunks)

    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(pool.map(converse, range(30)))
    assert answers == [f"answer for q{i}" for i in range(30)]


# measure_speed ----------------------------------------------------------------------------------


def test_measure_speed(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    standin.script_chat(
        ChatScript(
            text="Bandwidth bounds decoding.",
            eval_count=120,
            eval_duration_ns=2_000_000_000,
            prompt_eval_count=40,
            prompt_eval_duration_ns=100_000_000,
            load_duration_ns=1_500_000_000,
        )
    )
    measured = layer.measure_speed("qwen2.5:7b")
    assert measured.tokens_per_second == pytest.approx(60.0)
    assert measured.prompt_tokens_per_second == pytest.approx(400.0)
    assert measured.eval_count == 120 and measured.load_s == pytest.approx(1.5)
    assert measured.load_seconds == measured.load_s and measured.total_s and measured.total_s > 3.6
    sent = standin.last_chat_request()
    assert sent.options["num_predict"] == 96 and sent.json["stream"] is False


def test_measure_speed_failures(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    with pytest.raises(ModelMissing, match="ollama pull qwen2.5:72b"):
        layer.measure_speed("qwen2.5:72b")
    standin.script_chat(ChatScript(text="x", eval_count=0, eval_duration_ns=0))
    with pytest.raises(MalformedResponse, match="no generation timings"):
        layer.measure_speed("qwen2.5:7b")
    with pytest.raises(OllamaServerError, match="does not support chat"):
        layer.measure_speed("nomic-embed-text")


def test_every_error_is_presentable_without_traceback(layer: OllamaLayer, standin: OllamaStandIn) -> None:
    """Each error class's str() is a sentence naming the host or the model, never a repr."""
    standin.inject("/api/tags", Fault.http(500, "boom"))
    with pytest.raises(OllamaServerError) as err:
        layer.installed_models()
    assert str(err.value) == "Ollama could not list the installed models (HTTP 500): boom"
    with standin.down(), pytest.raises(OllamaUnavailable) as down:
        layer.loaded_models()
    assert standin.url in str(down.value) and "Traceback" not in str(down.value)


@pytest.mark.skipif(os.name != "posix", reason="uses a POSIX PATH")
def test_env_proxy_is_not_used_for_local_ollama(
    standin: OllamaStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    assert OllamaLayer(standin.url).health().ok
