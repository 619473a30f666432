"""Scripting vocabulary of the stand-in: models it knows, chat replies, faults and recorded requests.

Plain dataclasses (not pydantic) because these are test inputs written by hand in many tests: positional
shortcuts and cheap construction matter more here than validation at a trust boundary.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

FaultKind = Literal["http", "slow", "drop", "close", "stream_error"]


@dataclass(frozen=True)
class Fault:
    """Something going wrong on the wire, applied to one request.

    - ``http``: answer ``status`` with ``{"error": error}`` (what Ollama does for 4xx/5xx).
    - ``slow``: wait ``delay_s`` before answering normally (drive a client timeout past it).
    - ``drop``: start a chunked NDJSON stream, send ``after_lines`` lines, then cut the connection without the
      terminating chunk (a crashed runner / sleeping laptop). Non-streamed answers are cut before the body.
    - ``close``: close the connection without any response at all.
    - ``stream_error``: answer 200 and start the NDJSON stream, send ``after_lines`` lines, then an
      ``{"error": error}`` line and end the stream cleanly -- what Ollama does when the runner fails after the
      headers went out (out of memory while generating, a runner crash it noticed).
    """

    kind: FaultKind
    status: int = 500
    error: str = "llama runner process has terminated: signal: killed"
    delay_s: float = 0.0
    after_lines: int = 2

    @classmethod
    def http(cls, status: int = 500, error: str | None = None) -> Fault:
        default = "llama runner process has terminated: signal: killed" if status >= 500 else "bad request"
        return cls(kind="http", status=status, error=error or default)

    @classmethod
    def slow(cls, delay_s: float) -> Fault:
        return cls(kind="slow", delay_s=delay_s)

    @classmethod
    def drop(cls, after_lines: int = 2) -> Fault:
        return cls(kind="drop", after_lines=after_lines)

    @classmethod
    def close(cls) -> Fault:
        return cls(kind="close")

    @classmethod
    def stream_error(
        cls, error: str = "model runner has unexpectedly stopped", after_lines: int = 2
    ) -> Fault:
        return cls(kind="stream_error", error=error, after_lines=after_lines)

    @classmethod
    def busy(cls) -> Fault:
        """Ollama's answer when OLLAMA_MAX_QUEUE is full: 503 and this exact text."""
        return cls(kind="http", status=503, error=SERVER_BUSY)


SERVER_BUSY = "server busy, please try again.  maximum pending requests exceeded"


@dataclass(frozen=True)
class ToolCallScript:
    """One tool call the scripted model emits.

    ``arguments`` as a dict is sent as a JSON object (what Ollama does). As a ``str`` it is sent verbatim as
    a JSON *string* value — what an OpenAI-style proxy or a confused server sends; the official client rejects
    it, which is exactly the fault a test wants. ``raw`` replaces the whole ``tool_calls`` element with any
    JSON value (e.g. a call without a name) for protocol-level malformation.
    """

    name: str = ""
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    raw: Any = None

    def wire(self, index: int) -> Any:
        if self.raw is not None:
            return self.raw
        return {"function": {"index": index, "name": self.name, "arguments": self.arguments}}


_TOKEN = re.compile(r"\s*\S+|\s+")


def split_tokens(text: str) -> list[str]:
    """Word-ish tokens that join back to exactly ``text`` (leading whitespace kept on each token)."""
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class ChatScript:
    """One scripted reply to one ``/api/chat`` request.

    ``text`` is split into word tokens (or pass ``tokens`` for exact chunks); ``thinking`` streams first in
    ``message.thinking`` (when the request asks for it, or leaves ``think`` unset on a model whose
    capabilities list "thinking": Ollama >= 0.12 thinks by default); ``tool_calls`` arrive in one chunk after
    the text, as Ollama >= 0.8 sends them, or one chunk per call with ``split_tool_calls`` (what Ollama does
    when its parser recognises each call as the model finishes it).
    ``eval_count``/``eval_duration_ns`` default to the token count at ``tokens_per_second`` so tok/s maths is
    predictable. ``token_delay_s`` is real wall-clock time between streamed lines.
    """

    text: str = ""
    tokens: tuple[str, ...] | None = None
    tool_calls: tuple[ToolCallScript | Mapping[str, Any], ...] = ()
    thinking: str | None = None
    token_delay_s: float = 0.0
    tokens_per_second: float = 42.0
    eval_count: int | None = None
    eval_duration_ns: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration_ns: int | None = None
    load_duration_ns: int | None = None
    done_reason: str = "stop"
    fault: Fault | None = None
    split_tool_calls: bool = False

    def content_tokens(self) -> list[str]:
        return list(self.tokens) if self.tokens is not None else split_tokens(self.text)

    def tool_call_scripts(self) -> list[ToolCallScript]:
        calls: list[ToolCallScript] = []
        for call in self.tool_calls:
            if isinstance(call, ToolCallScript):
                calls.append(call)
            else:
                calls.append(
                    ToolCallScript(name=str(call.get("name", "")), arguments=call.get("arguments", {}))
                )
        return calls


@dataclass(frozen=True)
class RecordedRequest:
    """What a client sent, as the server saw it (header names lower-cased)."""

    method: str
    path: str
    json: Any
    headers: Mapping[str, str]
    at: float

    @property
    def model(self) -> str | None:
        return self.json.get("model") if isinstance(self.json, dict) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.json.get("messages") or []) if isinstance(self.json, dict) else []

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.json.get("tools") or []) if isinstance(self.json, dict) else []

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.json.get("options") or {}) if isinstance(self.json, dict) else {}

    @property
    def inputs(self) -> list[str]:
        """Embed inputs as a list whether the client sent a string or a list."""
        if not isinstance(self.json, dict):
            return []
        value = self.json.get("input")
        return [value] if isinstance(value, str) else list(value or [])


ChatResponder = Callable[[RecordedRequest], "ChatScript | str | None"]


@dataclass(frozen=True)
class ModelSpec:
    """A model as Ollama describes it in /api/tags, /api/show and /api/ps."""

    name: str
    architecture: str
    parameter_count: int
    block_count: int
    context_length: int
    embedding_length: int
    head_count: int
    head_count_kv: int | None
    key_length: int | None = None
    value_length: int | None = None
    capabilities: tuple[str, ...] = ("completion", "tools")
    size_bytes: int = 0
    quantization: str = "Q4_K_M"
    parameter_size: str = ""
    extra_model_info: Mapping[str, Any] = field(default_factory=dict)
    # (name, ggml type, shape) as /api/show lists them with "verbose": true; empty = not reported
    tensors: tuple[tuple[str, str, tuple[int, ...]], ...] = ()

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    def model_info(self) -> dict[str, Any]:
        arch = self.architecture
        info: dict[str, Any] = {
            "general.architecture": arch,
            "general.basename": self.name.split(":")[0],
            "general.file_type": 15 if self.quantization == "Q4_K_M" else 1,
            "general.parameter_count": self.parameter_count,
            "general.quantization_version": 2,
            f"{arch}.block_count": self.block_count,
            f"{arch}.context_length": self.context_length,
            f"{arch}.embedding_length": self.embedding_length,
            f"{arch}.attention.head_count": self.head_count,
        }
        if self.head_count_kv is not None:
            info[f"{arch}.attention.head_count_kv"] = self.head_count_kv
        if self.key_length is not None:
            info[f"{arch}.attention.key_length"] = self.key_length
        if self.value_length is not None:
            info[f"{arch}.attention.value_length"] = self.value_length
        info.update(self.extra_model_info)
        return info

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.architecture,
            "families": [self.architecture],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization,
        }

    def kv_cache_bytes(self, context: int) -> int:
        head_dim = self.key_length or self.embedding_length // max(self.head_count, 1)
        kv_heads = self.head_count_kv or self.head_count
        return 2 * self.block_count * kv_heads * head_dim * context * 2  # K and V, f16


def _load_specs() -> dict[str, ModelSpec]:
    """The models the stand-in knows, from models.json: their facts as Ollama reports them (fields not
    given there keep ModelSpec's defaults)."""
    rows = json.loads(Path(__file__).with_name("models.json").read_text(encoding="utf-8"))
    specs: dict[str, ModelSpec] = {}
    for row in rows:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in row.items()}
        specs[row["name"]] = ModelSpec(**fields)
    return specs


_SPECS = _load_specs()
QWEN25_7B = _SPECS["qwen2.5:7b"]
LLAMA33_70B = _SPECS["llama3.3:70b"]
GEMMA2_9B = _SPECS["gemma2:9b"]
NOMIC_EMBED_TEXT = _SPECS["nomic-embed-text:latest"]
QWEN25_32B = _SPECS["qwen2.5:32b"]
LLAMA31_8B = _SPECS["llama3.1:8b"]
QWEN3_8B = _SPECS["qwen3:8b"]
MYSTERY_CODER_13B = _SPECS["mystery-coder:13b"]
"""A model no catalog knows (only /api/show describes it): never installed by default."""
TINY_MOE = _SPECS["tinymoe:latest"]
"""A two-layer mixture-of-experts model (8 experts, 2 active); tests give it the tensors they need."""

DEFAULT_INSTALLED: tuple[ModelSpec, ...] = (QWEN25_7B, LLAMA33_70B, GEMMA2_9B, NOMIC_EMBED_TEXT)
"""Installed in the ``standin`` fixture: two tool-capable chat models, one without tools, the embedder."""
DEFAULT_REGISTRY: tuple[ModelSpec, ...] = DEFAULT_INSTALLED + (QWEN25_32B, LLAMA31_8B, QWEN3_8B)
"""What ``/api/pull`` can fetch; anything else fails like a name missing from ollama.com/library."""


def canonical_name(name: str) -> str:
    """Ollama treats ``nomic-embed-text`` and ``nomic-embed-text:latest`` as the same model."""
    name = name.strip()
    for prefix in ("registry.ollama.ai/library/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def approx_tokens(value: Any) -> int:
    """Rough prompt token count (~4 characters per token) for realistic prompt_eval_count values."""
    return max(1, len(json.dumps(value, ensure_ascii=False)) // 4)
