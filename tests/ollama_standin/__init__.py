"""A protocol-level Ollama stand-in: a real HTTP server on 127.0.0.1 that the ``ollama`` client talks to.

Our code is never mocked: tests point ``ollama.Client`` (or ``OllamaLayer``) at ``standin.url`` and script
what the "model" answers, which faults happen on the wire, and then assert on what was sent.

Usage (the ``standin`` fixture in tests/conftest.py yields a started instance with the default models)::

    import ollama
    from tests.ollama_standin import ChatScript, Fault, OllamaStandIn, ToolCallScript

    def test_something(standin: OllamaStandIn) -> None:
        standin.script_chat(
            ChatScript(tool_calls=[ToolCallScript("estimate_speed", {"chip": "M3 Max", "model": "qwen3"})]),
            ChatScript(text="About 60 tokens/s.", eval_count=120, eval_duration_ns=2_000_000_000),
        )
        # replies can depend on the request: answer only once a tool result came back
        standin.chat_responder = lambda req: "done" if req.messages[-1]["role"] == "tool" else None
        standin.inject("/api/embed", Fault.http(500))          # next embed answers 500 {"error": ...}
        standin.script_chat(ChatScript(text="a b c d", fault=Fault.drop(after_lines=2)))  # cut mid-stream
        standin.script_chat(ChatScript(text="a b", fault=Fault.stream_error("out of memory")))  # 200, error
        standin.inject("/api/chat", Fault.busy(), times=2)      # 503 "server busy" (or max_concurrent_chats)
        with standin.down():                                    # connection refused inside the block
            ...
        client = ollama.Client(host=standin.url)
        ...
        assert standin.last_chat_request().options["num_ctx"] == 8192
        assert standin.embedded_texts()[0].startswith("search_document: ")

Without pytest: ``with OllamaStandIn() as s: ...`` (``s.url`` is ``http://127.0.0.1:PORT``).
Models: ``DEFAULT_INSTALLED`` (qwen2.5:7b and llama3.3:70b with tools, gemma2:9b without,
nomic-embed-text:latest); ``set_models``/``add_model``/``remove_model``; ``DEFAULT_REGISTRY`` is what
``/api/pull`` can fetch.
"""

from .embedder import DIMENSION, embed_text
from .models import (
    DEFAULT_INSTALLED,
    DEFAULT_REGISTRY,
    GEMMA2_9B,
    LLAMA31_8B,
    LLAMA33_70B,
    MYSTERY_CODER_13B,
    NOMIC_EMBED_TEXT,
    QWEN3_8B,
    QWEN25_7B,
    QWEN25_32B,
    SERVER_BUSY,
    TINY_MOE,
    ChatScript,
    Fault,
    ModelSpec,
    RecordedRequest,
    ToolCallScript,
    canonical_name,
    split_tokens,
)
from .server import DEFAULT_REPLY, DEFAULT_VERSION, OllamaStandIn

__all__ = [
    "DEFAULT_INSTALLED",
    "DEFAULT_REGISTRY",
    "DEFAULT_REPLY",
    "DEFAULT_VERSION",
    "DIMENSION",
    "GEMMA2_9B",
    "LLAMA31_8B",
    "LLAMA33_70B",
    "NOMIC_EMBED_TEXT",
    "QWEN25_32B",
    "QWEN25_7B",
    "MYSTERY_CODER_13B",
    "QWEN3_8B",
    "TINY_MOE",
    "SERVER_BUSY",
    "ChatScript",
    "Fault",
    "ModelSpec",
    "OllamaStandIn",
    "RecordedRequest",
    "ToolCallScript",
    "canonical_name",
    "embed_text",
    "split_tokens",
]
