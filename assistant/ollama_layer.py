"""Everything the assistant asks of Ollama, on the official ``ollama`` client, failures made into sentences.

Why a layer at all: the raw client surfaces a refused connection as a bare ``ConnectionError`` for plain
calls but as ``httpx.ConnectError`` for streams, a timeout as ``httpx.ReadTimeout``, a cut stream as
``httpx.RemoteProtocolError``, and a missing model as ``ResponseError(404)``. Callers (agent, UI, launcher,
MCP) should not each relearn that. Every error raised here is an :class:`OllamaUnavailable` (or a subclass)
whose ``str()`` is a complete, user-presentable sentence. Subclasses also inherit from the matching
client/httpx exception (``ollama.ResponseError``, ``httpx.TimeoutException``, ``httpx.RemoteProtocolError``)
so code written against the raw client keeps classifying them the same way.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpcore
import httpx
import ollama
from pydantic import BaseModel, Field, ValidationError

from assistant.chat_model import (
    STREAM_DROPPED_TEXT,
    ChatCancel,
    Chunk,
    ModelError,
    ModelErrorKind,
    ToolCall,
    timeout_message,
)
from assistant.context_window import FALLBACK_NUM_CTX

MIN_VERSION = (0, 8, 0)
"""Oldest Ollama we accept. 0.8.0 is the release that streams responses while tools are passed (earlier
ones buffered the whole reply whenever ``tools`` was set, so the chat would sit silent, then dump it), and by
then ``/api/show`` reports ``capabilities``, which is how we refuse chat models that cannot call tools."""

DEFAULT_SPEED_PROMPT = (
    "Explain in about one hundred words why memory bandwidth limits how fast a large language model "
    "generates tokens on a laptop."
)

HealthKind = Literal["ok", "not_installed", "not_running", "wrong_host", "timeout", "not_ollama", "too_old"]


# -- errors ----------------------------------------------------------------------------------------


class OllamaUnavailable(ModelError):
    """Ollama could not do what was asked. ``str(err)`` says what happened and what to do about it."""


class OllamaTimeout(OllamaUnavailable, httpx.TimeoutException):
    """No answer within the client timeout (a model still loading, or a wrong host that swallows packets)."""

    kind = ModelErrorKind.TIMEOUT

    def __init__(self, message: str) -> None:
        OllamaUnavailable.__init__(self, message)
        self._request = None


class StreamInterrupted(OllamaUnavailable, httpx.RemoteProtocolError):
    """The connection died mid-answer (runner crash, out of memory, Ollama quit); what arrived is valid."""

    kind = ModelErrorKind.STREAM_DROPPED

    def __init__(self, message: str) -> None:
        OllamaUnavailable.__init__(self, message)
        self._request = None


class OllamaServerError(OllamaUnavailable, ollama.ResponseError):
    """Ollama answered an error status with ``{"error": ...}``; ``.error``, ``.status_code`` as usual.

    ``kind`` is BUSY for a full queue (503), NO_TOOLS for a model that cannot call tools, else SERVER.
    """

    kind = ModelErrorKind.SERVER

    def __init__(
        self, message: str, error: str, status_code: int, kind: ModelErrorKind | None = None
    ) -> None:
        OllamaUnavailable.__init__(self, message, kind)
        self.error = error
        self.status_code = status_code


class ModelMissing(OllamaServerError):
    """The model is not installed (or not in the library, for a pull). The message names ``ollama pull X``."""

    kind = ModelErrorKind.MODEL_MISSING

    def __init__(self, model: str, message: str, error: str = "", status_code: int = 404) -> None:
        super().__init__(message, error or message, status_code)
        self.model = model


class ModelNotSuitable(OllamaUnavailable):
    """An installed model that cannot play the role asked of it (a chat model without tools...)."""

    kind = ModelErrorKind.NOT_SUITABLE


class MalformedResponse(OllamaUnavailable):
    """Ollama (or something pretending to be it) sent a message the client cannot parse."""

    kind = ModelErrorKind.MALFORMED


class ChatCancelled(OllamaUnavailable):
    """The answer was stopped on purpose through its :class:`ChatCancel` (the user pressed Stop)."""

    kind = ModelErrorKind.CANCELLED


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


_CANCEL: ContextVar[ChatCancel | None] = ContextVar("ollama_chat_cancel", default=None)
"""The ChatCancel of the request being sent on this thread (see _open_cancellable, _CancellableStream)."""


# -- public data -----------------------------------------------------------------------------------


class Health(BaseModel):
    """Result of :meth:`OllamaLayer.health`: ``problem`` says what is wrong, ``advice`` what to do."""

    ok: bool
    host: str
    kind: HealthKind
    version: str | None = None
    problem: str | None = None
    advice: str | None = None

    @property
    def message(self) -> str:
        if self.ok:
            return f"Ollama {self.version or ''} is running at {self.host}.".replace("  ", " ")
        return f"{self.problem}: {self.advice}" if self.advice else str(self.problem)


class InstalledModel(BaseModel):
    name: str = Field(description='Full tag as Ollama lists it, e.g. "nomic-embed-text:latest".')
    size_bytes: int | None = None
    digest: str | None = None
    family: str | None = None
    parameter_size: str | None = None
    quantization: str | None = None
    modified_at: datetime | None = None


class LoadedModel(BaseModel):
    name: str
    size_bytes: int | None = Field(default=None, description="Memory the loaded model takes in total.")
    size_vram_bytes: int | None = Field(
        default=None, description="Part of it in GPU memory: the ground truth for memory-fit on this Mac."
    )
    context_length: int | None = None
    expires_at: datetime | None = None

    @property
    def gpu_fraction(self) -> float | None:
        """1.0 = fully on the GPU; less means Ollama offloaded layers to the CPU (much slower)."""
        if not self.size_bytes or self.size_vram_bytes is None:
            return None
        return min(1.0, self.size_vram_bytes / self.size_bytes)


# Bits per weight of GGUF tensor types (ggml block sizes): what a tensor of n elements occupies.
GGML_BITS = {
    "F32": 32.0, "F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q8_1": 9.0, "Q4_0": 4.5, "Q4_1": 5.0,
    "Q5_0": 5.5, "Q5_1": 6.0, "Q2_K": 2.625, "Q3_K": 3.4375, "Q4_K": 4.5, "Q5_K": 5.5, "Q6_K": 6.5625,
    "Q8_K": 9.125, "IQ1_S": 1.5625, "IQ1_M": 1.75, "IQ2_XXS": 2.0625, "IQ2_XS": 2.3125, "IQ2_S": 2.5,
    "IQ3_XXS": 3.0625, "IQ3_S": 3.4375, "IQ4_NL": 4.5, "IQ4_XS": 4.25, "MXFP4": 4.25, "TQ1_0": 1.6875,
    "TQ2_0": 2.0625,
}  # fmt: skip


def tensor_layout(
    tensors: Sequence[Mapping[str, Any]], expert_count: int | None, expert_used: int | None
) -> dict[str, int]:
    """Weights in the file and weights read per token, from /api/show's tensor list.

    Routed-expert tensors (``*_exps``) are read in the proportion expert_used/expert_count; shared experts
    (``*_shexp``), attention, norms and the output head every token; the input embedding table
    (``token_embd``) only one row per token, unless the output head is tied to it (no ``output.weight``).
    Unknown tensor types make the layout unusable: nothing is returned rather than a guess.
    """
    if not tensors:
        return {}
    names = {str(t.get("name", "")) for t in tensors}
    tied = "output.weight" not in names
    share = (expert_used / expert_count) if expert_count and expert_used else 1.0
    total_b = active_b = 0.0
    total_n = active_n = 0
    for t in tensors:
        bits = GGML_BITS.get(str(t.get("type", "")).upper())
        shape = t.get("shape") or []
        if bits is None or not shape:
            return {}
        n = 1
        for d in shape:
            n *= int(d)
        size = n * bits / 8
        total_b += size
        total_n += n
        name = str(t.get("name", ""))
        if name.startswith("token_embd") and not tied:
            continue
        frac = share if "_exps" in name else 1.0
        active_b += size * frac
        active_n += int(n * frac)
    return {
        "weights_bytes": int(total_b),
        "active_weights_bytes": int(active_b),
        "active_parameter_count": active_n,
    }


class ModelFacts(BaseModel):
    """What /api/show tells about an installed model, normalised across architectures."""

    name: str
    family: str | None = Field(default=None, description="general.architecture, e.g. llama, qwen2, gemma2.")
    parameter_count: int | None = None
    parameter_size: str | None = None
    quantization: str | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    key_length: int | None = None
    value_length: int | None = None
    embedding_length: int | None = None
    context_length: int | None = None
    sliding_window: int | None = None
    expert_count: int | None = None
    expert_used_count: int | None = None
    weights_bytes: int | None = Field(default=None, description="Sum of all tensor sizes (verbose show).")
    active_weights_bytes: int | None = Field(
        default=None, description="Tensor bytes read per generated token (MoE: routed share of experts)."
    )
    active_parameter_count: int | None = None
    capabilities: list[str] | None = Field(
        default=None, description="None when this Ollama does not report capabilities."
    )

    @property
    def supports_tools(self) -> bool:
        return self.capabilities is not None and "tools" in self.capabilities

    @property
    def params_billion(self) -> float | None:
        if self.parameter_count:
            return self.parameter_count / 1e9
        return _parse_parameter_size(self.parameter_size)

    @property
    def head_dim(self) -> int | None:
        if self.key_length:
            return self.key_length
        if self.embedding_length and self.n_heads:
            return self.embedding_length // self.n_heads
        return None

    def architecture(self) -> dict[str, Any]:
        """Fields of the tools package's ``ModelArchitecture`` (KV-cache and speed maths need them all).

        Raises ValueError naming what /api/show did not provide, rather than guessing a layer count.
        """
        values: dict[str, Any] = {
            "params_billion": self.params_billion,
            "n_layers": self.n_layers,
            "n_kv_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
            "native_context": self.context_length,
        }
        missing = [key for key, value in values.items() if not value]
        if missing:
            raise ValueError(
                f"Ollama's /api/show for {self.name} does not give {', '.join(missing)} "
                f"(architecture {self.family or 'unknown'})."
            )
        values["params_billion"] = round(float(values["params_billion"]), 3)
        values["family"] = self.family
        if self.n_heads and self.n_kv_heads and self.n_heads >= self.n_kv_heads:
            values["n_heads"] = self.n_heads
        if self.expert_count and self.expert_used_count:
            values["n_experts"] = self.expert_count
            values["n_experts_active"] = self.expert_used_count
        if self.weights_bytes:
            values["weights_gb"] = round(self.weights_bytes / 1e9, 3)
        # MoE only: the dense decode model is calibrated on whole-file sizes.
        moe = bool(self.expert_count and self.expert_used_count)
        active_b, total_b = self.active_weights_bytes, self.weights_bytes
        if moe and active_b and total_b and active_b < total_b:
            values["active_weights_gb"] = round(active_b / 1e9, 3)
        active_n, total_n = self.active_parameter_count, self.parameter_count
        if moe and active_n and total_n and active_n < total_n:
            values["active_params_billion"] = round(active_n / 1e9, 3)
        return values


class PullProgress(BaseModel):
    """One progress line of a pull, for a UI callback."""

    model: str
    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, (self.completed or 0) / self.total)


class EnsureReport(BaseModel):
    chat_model: str
    embed_model: str
    pulled: list[str] = Field(default_factory=list)
    already_present: list[str] = Field(default_factory=list)


class SpeedMeasurement(BaseModel):
    """A real generation's timings as Ollama reports them (durations in seconds)."""

    model: str
    tokens_per_second: float = Field(description="Decode speed: eval_count / eval_duration.")
    prompt_tokens_per_second: float | None = Field(default=None, description="Prefill speed.")
    eval_count: int
    eval_duration_s: float
    prompt_eval_count: int | None = None
    prompt_eval_duration_s: float | None = None
    load_s: float | None = Field(default=None, description="Model load time (0 when it was already loaded).")
    total_s: float | None = None
    done_reason: str | None = None

    @property
    def load_seconds(self) -> float | None:
        return self.load_s


ProgressCallback = Callable[[PullProgress], None]


# -- the layer -------------------------------------------------------------------------------------


BUSY_RETRY_DELAYS_S = (0.5, 1.0, 2.0)
"""Waits before retrying a chat that Ollama refused with 503 "server busy" (its request queue,
OLLAMA_MAX_QUEUE, was full). Safe because nothing was generated yet; after the last one the error reaches
the user."""

DEFAULT_NUM_CTX = FALLBACK_NUM_CTX
"""The context window of a request that names none: the window num_ctx "auto" falls back to where there is
no Mac to size it against. Every request names one, so that Ollama never reloads a model just because one
request left it out."""

EMBED_TIMEOUT_S = 30.0
"""Longest wait for one embedding batch (the first one also loads nomic-embed-text, a few seconds)."""

SEARCH_EMBED_TIMEOUT_S = 5.0
"""Longest wait for a search query's embedding unless the caller passes Settings.search_embed_timeout_s."""


class OllamaLayer:
    """The assistant's only door to Ollama. Thread-safe: one instance serves concurrent chats."""

    def __init__(self, host: str, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s
        # A transport that repairs tool-call arguments sent as a JSON string (see _ToolArgumentsTransport).
        # trust_env=False: Ollama is local; a system HTTP proxy must not sit between us and 127.0.0.1.
        transport = _ToolArgumentsTransport(_cancellable_transport())
        self.client = ollama.Client(host=host, timeout=timeout_s, transport=transport, trust_env=False)
        self.host = str(self.client._client.base_url).rstrip("/")
        self.busy_retry_delays_s: tuple[float, ...] = BUSY_RETRY_DELAYS_S

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> OllamaLayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # health ---------------------------------------------------------------------------------------

    def health(self) -> Health:
        """Is a usable Ollama answering at the host? Never raises; the diagnosis says what to do."""
        host = self.host
        try:
            # ollama-python 0.6.3 has no public version(); _request_raw is its own request path, so the
            # client's error mapping and headers still apply.
            response = self.client._request_raw("GET", "/api/version")
            version = str(response.json()["version"])
        except ConnectionError as exc:
            return self._unreachable_health(exc)
        except httpx.TimeoutException:
            return Health(
                ok=False,
                host=host,
                kind="timeout",
                problem=f"Ollama at {host} did not answer within {self.timeout_s:g} s",
                advice="It may be busy loading a large model: wait a moment and retry. If it persists, "
                "check OLLAMA_HOST (a firewalled or wrong address also looks like this).",
            )
        except ollama.ResponseError as exc:
            return Health(
                ok=False,
                host=host,
                kind="not_ollama",
                problem=f"Something answers at {host}, but it is not Ollama "
                f"(HTTP {exc.status_code} for /api/version)",
                advice="Check the address and port: Ollama listens on http://127.0.0.1:11434 by default.",
            )
        except (ValueError, KeyError, TypeError, httpx.HTTPError, OSError) as exc:
            return Health(
                ok=False,
                host=host,
                kind="not_ollama",
                problem=f"Something answers at {host}, but not like Ollama ({type(exc).__name__}: {exc})",
                advice="Check the address and port: Ollama listens on http://127.0.0.1:11434 by default.",
            )
        parsed = _parse_version(version)
        if parsed is not None and parsed != (0, 0, 0) and parsed < MIN_VERSION:
            minimum = ".".join(map(str, MIN_VERSION))
            return Health(
                ok=False,
                host=host,
                kind="too_old",
                version=version,
                problem=f"Ollama {version} at {host} is too old; {minimum} or newer is needed",
                advice="Update Ollama (the app updates itself from its menu, or download it again from "
                f"https://ollama.com/download, or `brew upgrade ollama`). Before {minimum} replies were not "
                "streamed when tools are used.",
            )
        return Health(ok=True, host=host, kind="ok", version=version)

    def _unreachable_health(self, exc: BaseException) -> Health:
        host = self.host
        chain = _exception_chain(exc)
        if any(isinstance(e, socket.gaierror) for e in chain):
            detail = next(str(e) for e in chain if isinstance(e, socket.gaierror))
            return Health(
                ok=False,
                host=host,
                kind="wrong_host",
                problem=f"The Ollama host in {host} cannot be resolved ({detail})",
                advice="Check OLLAMA_HOST / --ollama-host; Ollama on this Mac is http://127.0.0.1:11434.",
            )
        refused = any(isinstance(e, ConnectionRefusedError) for e in chain)
        if refused and _is_loopback(host):
            if not ollama_installed():
                return Health(
                    ok=False,
                    host=host,
                    kind="not_installed",
                    problem=f"Ollama does not seem to be installed (no `ollama` command, no Ollama.app) "
                    f"and nothing answers at {host}",
                    advice="Install it from https://ollama.com/download (or `brew install ollama`), "
                    "then start the Ollama app or run `ollama serve`.",
                )
            return Health(
                ok=False,
                host=host,
                kind="not_running",
                problem=f"Ollama is not running at {host}",
                advice="start the Ollama app or run `ollama serve` in a terminal"
                + (" (or check the port in OLLAMA_HOST)" if not host.endswith(":11434") else ""),
            )
        if refused:
            return Health(
                ok=False,
                host=host,
                kind="not_running",
                problem=f"Nothing accepts connections at {host}",
                advice="Check that Ollama runs on that machine and listens on that address "
                "(OLLAMA_HOST=0.0.0.0 there) and that the port is right.",
            )
        detail = next((str(e) for e in reversed(chain) if str(e)), type(exc).__name__)
        return Health(
            ok=False,
            host=host,
            kind="wrong_host",
            problem=f"Cannot connect to {host} ({detail})",
            advice="Check OLLAMA_HOST / --ollama-host; Ollama on this Mac is http://127.0.0.1:11434.",
        )

    # models ---------------------------------------------------------------------------------------

    def installed_models(self) -> list[InstalledModel]:
        with self._translated("list the installed models"):
            listed = self.client.list()
        models = []
        for m in listed.models:
            details = m.details
            models.append(
                InstalledModel(
                    name=str(m.model),
                    size_bytes=int(m.size) if m.size is not None else None,
                    digest=m.digest,
                    family=details.family if details else None,
                    parameter_size=details.parameter_size if details else None,
                    quantization=details.quantization_level if details else None,
                    modified_at=m.modified_at,
                )
            )
        return models

    def model_facts(self, name: str) -> ModelFacts:
        """/api/show with "verbose": true, which also lists every tensor's type and shape (per-tensor layout).

        The ollama client's show() has no verbose flag, so the request goes through its raw request method
        (same transport, same error types) and the reply is read with the client's own ShowResponse model.
        """
        with self._translated("describe the model", model=name):
            raw = self.client._request_raw("POST", "/api/show", json={"model": name, "verbose": True})
            body = raw.json()
            shown = ollama.ShowResponse.model_validate(body)
        info: Mapping[str, Any] = shown.modelinfo or {}
        arch = info.get("general.architecture")
        details = shown.details

        def key(suffix: str) -> int | None:
            return _as_int(info.get(f"{arch}.{suffix}")) if arch else None

        return ModelFacts(
            name=name,
            family=str(arch) if arch else (details.family if details else None),
            parameter_count=_as_int(info.get("general.parameter_count")),
            parameter_size=details.parameter_size if details else None,
            quantization=details.quantization_level if details else None,
            n_layers=key("block_count"),
            n_heads=key("attention.head_count"),
            n_kv_heads=key("attention.head_count_kv") or key("attention.head_count"),
            key_length=key("attention.key_length"),
            value_length=key("attention.value_length"),
            embedding_length=key("embedding_length"),
            context_length=key("context_length"),
            sliding_window=key("attention.sliding_window"),
            expert_count=key("expert_count"),
            expert_used_count=key("expert_used_count"),
            capabilities=list(shown.capabilities) if shown.capabilities is not None else None,
            **tensor_layout(body.get("tensors") or [], key("expert_count"), key("expert_used_count")),
        )

    def loaded_models(self) -> list[LoadedModel]:
        with self._translated("list the loaded models"):
            running = self.client.ps()
        return [
            LoadedModel(
                name=str(m.model or m.name),
                size_bytes=int(m.size) if m.size is not None else None,
                size_vram_bytes=int(m.size_vram) if m.size_vram is not None else None,
                context_length=m.context_length,
                expires_at=m.expires_at,
            )
            for m in running.models
        ]

    def pull(
        self, model: str, progress: ProgressCallback | None = None, *, show_progress: bool = False
    ) -> None:
        """Download a model, reporting each progress line; ``show_progress`` draws a rich bar on stderr."""
        bar = _RichPullBar(model) if show_progress else None
        try:
            with self._translated("pull the model", model=model, pulling=True):
                for line in self.client.pull(model, stream=True):
                    event = PullProgress(
                        model=model,
                        status=line.status or "",
                        digest=line.digest,
                        total=line.total,
                        completed=line.completed,
                    )
                    if progress is not None:
                        progress(event)
                    if bar is not None:
                        bar.update(event)
        finally:
            if bar is not None:
                bar.close()

    def ensure_models(
        self,
        chat_model: str,
        embed_model: str,
        progress: ProgressCallback | None = None,
        *,
        show_progress: bool | None = None,
    ) -> EnsureReport:
        """Pull what is missing, then refuse a chat model that cannot call tools (naming ones that can).

        ``show_progress`` defaults to a rich bar when no callback is given and stderr is a terminal.
        """
        if show_progress is None:
            show_progress = progress is None and sys.stderr.isatty()
        installed = {canonical_model_name(m.name) for m in self.installed_models()}
        report = EnsureReport(chat_model=chat_model, embed_model=embed_model)
        for model in dict.fromkeys((chat_model, embed_model)):
            if canonical_model_name(model) in installed:
                report.already_present.append(model)
            else:
                self.pull(model, progress, show_progress=show_progress)
                report.pulled.append(model)
        chat = self.model_facts(chat_model)
        if chat.capabilities is not None and not chat.supports_tools:
            able = self.tool_capable_models()
            named = ", ".join(able) if able else "none yet (e.g. `ollama pull qwen2.5:7b`)"
            raise ModelNotSuitable(
                f"{chat_model} cannot call tools, which the assistant needs for every number it gives. "
                f"Installed models that can: {named}. Choose one with --chat-model / ADVISOR_CHAT_MODEL."
            )
        embed = self.model_facts(embed_model)
        if embed.capabilities is not None and "embedding" not in embed.capabilities:
            raise ModelNotSuitable(
                f"{embed_model} is not an embedding model; use nomic-embed-text "
                "(`ollama pull nomic-embed-text`)."
            )
        return report

    def tool_capable_models(self) -> list[str]:
        """Installed models whose /api/show capabilities include "tools"."""
        names = []
        for model in self.installed_models():
            try:
                if self.model_facts(model.name).supports_tools:
                    names.append(model.name)
            except OllamaUnavailable:
                continue
        return names

    # embeddings -----------------------------------------------------------------------------------

    def embedder(
        self,
        model: str = "nomic-embed-text",
        batch_size: int = 32,
        timeout_s: float = EMBED_TIMEOUT_S,
        query_timeout_s: float = SEARCH_EMBED_TIMEOUT_S,
    ) -> Any:
        """The knowledge package's ``OllamaEmbedder`` (it owns prefixes and batching) on its own clients.

        Its own clients, with much shorter timeouts than chat: documents get ``timeout_s`` per batch, and a
        search query ``query_timeout_s`` (pass Settings.search_embed_timeout_s): an Ollama that accepts
        connections but stops answering sends every search (chat, Search tab, search_knowledge, MCP) to its
        keyword fallback within seconds, not after the two minutes a long generation is allowed.
        """
        from knowledge.embedding import OllamaEmbedder

        client = ollama.Client(host=self.host, timeout=min(timeout_s, self.timeout_s), trust_env=False)
        query_timeout_s = min(query_timeout_s, timeout_s, self.timeout_s)
        query_client = ollama.Client(host=self.host, timeout=query_timeout_s, trust_env=False)
        return OllamaEmbedder(
            client, model, batch_size, query_client=query_client, query_timeout_s=query_timeout_s
        )

    # chat -----------------------------------------------------------------------------------------

    def chat_stream(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any] | ollama.Message],
        tools: Sequence[Mapping[str, Any] | Callable[..., Any]] | None = None,
        options: Mapping[str, Any] | None = None,
        cancel: ChatCancel | None = None,
    ) -> Generator[ollama.ChatResponse, None, None]:
        """Stream chunks as the client parses them; the last one has ``done=True`` and the timings.

        Tool calls arrive intact, whatever their content (unknown tool, wrong types): validating them is the
        agent's job. Arguments sent as a JSON string are decoded; undecodable ones arrive as
        ``{"_raw": text}``.
        A stream that ends without its ``done`` chunk raises :class:`StreamInterrupted`. With ``cancel``,
        :meth:`ChatCancel.cancel` from any thread ends the request at once: this raises
        :class:`ChatCancelled` (in the thread reading the stream) and Ollama stops generating.
        """
        stream: Iterator[ollama.ChatResponse] | None = None
        done = False
        delays = list(self.busy_retry_delays_s)
        with self._translated("answer", model=model):
            while True:
                if cancel is not None and cancel.cancelled:
                    raise ChatCancelled(f"The answer from {model} was stopped.")
                stream = self.client.chat(
                    model=model,
                    messages=messages,
                    tools=tools,
                    stream=True,
                    options=options,
                )
                received = False
                try:
                    for chunk in stream if cancel is None else _open_cancellable(stream, cancel):
                        received = True
                        done = done or bool(chunk.done)
                        yield chunk
                except ollama.ResponseError as exc:
                    if received or exc.status_code != 503 or not delays:
                        raise
                    # "server busy": Ollama's queue is full and nothing was generated; wait and ask again.
                    if cancel is not None:
                        cancel.wait(delays.pop(0))
                    else:
                        time.sleep(delays.pop(0))
                    continue
                except Exception as exc:
                    if cancel is not None and cancel.cancelled:
                        raise ChatCancelled(f"The answer from {model} was stopped.") from exc
                    raise
                finally:
                    if cancel is not None:
                        cancel.release()  # before the connection can go back to the pool
                    close = getattr(stream, "close", None)
                    if close is not None:
                        close()  # release the connection now if the consumer stopped early
                break
        if not done and cancel is not None and cancel.cancelled:
            raise ChatCancelled(f"The answer from {model} was stopped.")
        if not done:
            raise StreamInterrupted(
                f"The answer from {model} stopped before it was complete (Ollama closed the stream)."
            )

    def stream(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        options: Mapping[str, Any] | None = None,
        cancel: ChatCancel | None = None,
    ) -> Generator[Chunk, None, None]:
        """`ChatModel.stream`: typed chunks; failures are OllamaUnavailable worded for a chat answer."""
        try:
            with contextlib.closing(
                self.chat_stream(model, messages, tools or None, options, cancel=cancel)
            ) as raw:
                for chunk in raw:
                    yield _chunk(chunk)
        except OllamaUnavailable as exc:
            raise chat_error(exc, model, self.timeout_s) from exc

    def context_length(self, model: str) -> int | None:
        """`ChatModel.context_length`: the model's trained context length from /api/show."""
        return self.model_facts(model).context_length

    def measure_speed(
        self,
        model: str,
        prompt: str | None = None,
        num_predict: int = 96,
        num_ctx: int = DEFAULT_NUM_CTX,
    ) -> SpeedMeasurement:
        """Generate a short answer and read this Mac's real decode speed from Ollama's own counters.

        ``num_ctx`` is sent like on every chat request: a request without it gets Ollama's default context, a
        different KV cache, so Ollama reloads the model (seconds to a minute) and measures another setup.
        """
        with self._translated("run the model", model=model):
            reply = self.client.chat(
                model=model,
                messages=[{"role": "user", "content": prompt or DEFAULT_SPEED_PROMPT}],
                stream=False,
                options={"num_predict": num_predict, "temperature": 0, "num_ctx": num_ctx},
            )
        if not reply.eval_count or not reply.eval_duration:
            raise MalformedResponse(
                f"Ollama reported no generation timings for {model} (eval_count/eval_duration missing)."
            )
        prompt_tps = None
        if reply.prompt_eval_count and reply.prompt_eval_duration:
            prompt_tps = reply.prompt_eval_count / (reply.prompt_eval_duration / 1e9)
        return SpeedMeasurement(
            model=model,
            tokens_per_second=reply.eval_count / (reply.eval_duration / 1e9),
            prompt_tokens_per_second=prompt_tps,
            eval_count=reply.eval_count,
            eval_duration_s=reply.eval_duration / 1e9,
            prompt_eval_count=reply.prompt_eval_count,
            prompt_eval_duration_s=_seconds(reply.prompt_eval_duration),
            load_s=_seconds(reply.load_duration),
            total_s=_seconds(reply.total_duration),
            done_reason=reply.done_reason,
        )

    # error translation ----------------------------------------------------------------------------

    def _translated(self, action: str, *, model: str | None = None, pulling: bool = False) -> _Translate:
        return _Translate(self, action, model, pulling)

    def translate(
        self, exc: BaseException, action: str, model: str | None = None, pulling: bool = False
    ) -> OllamaUnavailable:
        """The OllamaUnavailable a raw client/httpx exception means (public so callers can reuse it)."""
        host = self.host
        if isinstance(exc, OllamaUnavailable):
            return exc
        if isinstance(exc, ollama.ResponseError):
            error = str(exc.error)
            status = exc.status_code
            if model and (status == 404 or (pulling and "file does not exist" in error)):
                if pulling:
                    message = (
                        f"Ollama could not find '{model}' to download ({error}). Check the name at "
                        "https://ollama.com/library."
                    )
                else:
                    message = f"Model '{model}' is not installed in Ollama: run `ollama pull {model}`."
                return ModelMissing(model, message, error, status if status > 0 else 404)
            code = f"HTTP {status}" if status > 0 else "error"
            what = f" with {model}" if model else ""
            return OllamaServerError(
                f"Ollama could not {action}{what} ({code}): {error}", error, status, _server_error_kind(exc)
            )
        if isinstance(exc, httpx.TimeoutException):
            return OllamaTimeout(
                f"Ollama at {host} did not answer within {self.timeout_s:g} s (timed out) while trying to "
                f"{action}. A large model may still be loading; try again or pick a smaller model."
            )
        if isinstance(exc, ConnectionError | httpx.ConnectError):
            health = self._unreachable_health(exc)
            return OllamaUnavailable(f"{health.problem}: {(health.advice or '').rstrip('.')}.")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            return StreamInterrupted(
                f"The connection to Ollama at {host} dropped while trying to {action} ({exc}). The model "
                "runner may have crashed or run out of memory; try again."
            )
        if isinstance(exc, ValidationError):
            return MalformedResponse(
                f"Ollama sent a reply this client could not read while trying to {action} "
                f"({exc.error_count()} problem(s), first: {_first_validation_error(exc)})."
            )
        if isinstance(exc, ollama.RequestError):
            return OllamaUnavailable(f"Could not ask Ollama to {action}: {exc.error}.")
        return OllamaUnavailable(
            f"Could not talk to Ollama at {host} to {action} ({type(exc).__name__}: {exc})."
        )


def _server_error_kind(exc: ollama.ResponseError) -> ModelErrorKind:
    """What an error status means. Ollama says "does not support tools" (HTTP 400) for a model whose
    template has no tool calling; 503 "server busy" when its queue (OLLAMA_MAX_QUEUE) is full."""
    text = str(exc.error).lower()
    if "does not support tools" in text:
        return ModelErrorKind.NO_TOOLS
    if exc.status_code == 503 or "server busy" in text:
        return ModelErrorKind.BUSY
    return ModelErrorKind.SERVER


def chat_error(exc: OllamaUnavailable, model: str, timeout_s: float) -> OllamaUnavailable:
    """The same error, worded for a chat answer (what happened to the answer, and what to do)."""
    kind = exc.kind
    text = str(getattr(exc, "error", "") or exc)
    status = getattr(exc, "status_code", 0)
    if kind is ModelErrorKind.STREAM_DROPPED:
        message = STREAM_DROPPED_TEXT
    elif kind is ModelErrorKind.TIMEOUT:
        message = timeout_message(model, timeout_s)
    elif kind is ModelErrorKind.MODEL_MISSING or (
        kind is ModelErrorKind.SERVER and "not found" in text.lower()
    ):
        kind = ModelErrorKind.MODEL_MISSING
        message = (
            f"Model {model!r} is not installed in Ollama. Install it with `ollama pull {model}` "
            "or choose an installed model."
        )
    elif kind is ModelErrorKind.BUSY:
        message = (
            f"Ollama is busy: it has more requests queued than it accepts ({text}). Wait a moment and "
            "ask again; if it keeps happening, other apps are using Ollama heavily (OLLAMA_MAX_QUEUE, "
            "OLLAMA_NUM_PARALLEL)."
        )
    elif kind is ModelErrorKind.SERVER and status < 0:
        # An {"error": ...} line inside a 200 stream: the client has no HTTP status for it (-1).
        message = (
            f"Ollama stopped in the middle of the answer with this error: {text}. What arrived so far "
            "is kept; ask again, and if it repeats try a smaller model or a smaller context (num_ctx)."
        )
    elif kind is ModelErrorKind.SERVER:
        message = f"Ollama returned an error ({status}): {text}. Ask again or check the Ollama log."
    else:
        return exc
    return OllamaUnavailable(message, kind)


def _chunk(raw: ollama.ChatResponse) -> Chunk:
    """A client chat chunk as a typed Chunk (arguments the transport could not decode stay a string)."""
    message = raw.message
    calls = tuple(
        ToolCall(name=call.function.name, arguments=_undecoded(call.function.arguments))
        for call in message.tool_calls or ()
    )
    if not raw.done:
        return Chunk(text=message.content or "", thinking=message.thinking or "", tool_calls=calls)
    return Chunk(
        text=message.content or "",
        thinking=message.thinking or "",
        tool_calls=calls,
        done=True,
        prompt_eval_count=raw.prompt_eval_count or 0,
        eval_count=raw.eval_count or 0,
        eval_duration_ns=raw.eval_duration or 0,
    )


def _undecoded(arguments: Mapping[str, Any]) -> Mapping[str, Any] | str:
    """The transport's marker ``{"_raw": text}`` for undecodable arguments becomes the text again, so that
    Tool.run's error ("could not parse it") tells the model what to fix."""
    if set(arguments) == {"_raw"} and isinstance(arguments["_raw"], str):
        return arguments["_raw"]
    return dict(arguments)


class _Translate:
    """Context manager: raise the OllamaUnavailable that a client/httpx exception means."""

    def __init__(self, layer: OllamaLayer, action: str, model: str | None, pulling: bool) -> None:
        self.layer, self.action, self.model, self.pulling = layer, action, model, pulling

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is None or isinstance(exc, OllamaUnavailable):
            return False
        if isinstance(
            exc,
            ollama.ResponseError | ollama.RequestError | ConnectionError | httpx.HTTPError | ValidationError,
        ):
            raise self.layer.translate(exc, self.action, self.model, self.pulling) from exc
        return False


# -- tool-call argument repair ---------------------------------------------------------------------


class _ToolArgumentsTransport(httpx.BaseTransport):
    """Decodes ``tool_calls[].function.arguments`` sent as a JSON *string* before the client parses the line.

    Ollama itself sends an object, but OpenAI-style proxies and some servers send the string form, and the
    client's pydantic model rejects it — killing the whole answer over a detail the agent can handle. An
    undecodable string is kept verbatim as ``{"_raw": text}`` (the agent's convention), so its validation
    error can go back to the model for a retry. Lines without tool calls pass through untouched.
    """

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if not request.url.path.endswith("/api/chat") or response.status_code != 200:
            return response
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-length"]
        return httpx.Response(
            status_code=response.status_code,
            headers=headers,
            stream=_RepairingStream(response.stream),
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        self._inner.close()


# -- cancellation: which socket a request is using -------------------------------------------------


def _cancellable_transport() -> httpx.HTTPTransport:
    """httpx's transport with httpx's defaults, whose connections report their socket to a ChatCancel.

    httpx has no public way to give its connection pool a network backend (httpcore's documented extension
    point), so the pool is rebuilt with one; the Stop tests fail if a future httpx ignores it.
    """
    transport = httpx.HTTPTransport()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_CancellableBackend(),
    )
    return transport


class _CancellableBackend(httpcore.NetworkBackend):
    """httpcore's sync backend; its streams tell the ChatCancel of the request being written their socket."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        return _CancellableStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return _CancellableStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _CancellableStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        cancel = _CANCEL.get()  # set only while a cancellable request is being sent, on its thread
        if cancel is not None:
            sock = self._inner.get_extra_info("socket")
            if isinstance(sock, socket.socket):
                cancel.attach(id(sock), lambda: _shutdown(sock))
        self._inner.write(buffer, timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _CancellableStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def _open_cancellable(
    stream: Iterator[ollama.ChatResponse], cancel: ChatCancel
) -> Iterator[ollama.ChatResponse]:
    """Iterate a client chat stream whose request (sent by the first ``next``) is tied to ``cancel``.

    The official client gives no access to its httpx request, so the ChatCancel reaches the connection
    (_CancellableStream) through a context variable set only while the request is sent, on that thread.
    """
    chunks = iter(stream)
    token = _CANCEL.set(cancel)
    try:
        first = next(chunks, None)
    finally:
        _CANCEL.reset(token)
    if first is None:
        return
    yield first
    yield from chunks


class _RepairingStream(httpx.SyncByteStream):
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        pending = b""
        for chunk in self._inner:
            if not pending and b"tool_calls" not in chunk:
                yield chunk
                continue
            pending += chunk
            if b"\n" not in pending:
                continue
            complete, _, pending = pending.rpartition(b"\n")
            yield b"\n".join(_repair_line(line) for line in complete.split(b"\n")) + b"\n"
        if pending:
            yield _repair_line(pending)

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


def _repair_line(line: bytes) -> bytes:
    if b"tool_calls" not in line:
        return line
    try:
        data = json.loads(line)
    except ValueError:
        return line
    message = data.get("message") if isinstance(data, dict) else None
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    if not isinstance(calls, list):
        return line
    changed = False
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            function["arguments"] = _decode_arguments(function["arguments"])
            changed = True
    return json.dumps(data).encode() if changed else line


def _decode_arguments(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_raw": text}


# -- progress bar ----------------------------------------------------------------------------------


class _RichPullBar:
    """One rich progress bar per pull (bytes of the layer being downloaded), on stderr."""

    def __init__(self, model: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._model = model
        self._tasks: dict[str, Any] = {}
        self._progress.start()

    def update(self, event: PullProgress) -> None:
        if event.digest and event.total:
            task = self._tasks.get(event.digest)
            if task is None:
                label = f"{self._model} {event.digest.removeprefix('sha256:')[:12]}"
                task = self._progress.add_task(label, total=event.total)
                self._tasks[event.digest] = task
            self._progress.update(task, completed=event.completed or 0)
        elif event.status:
            self._progress.console.print(f"{self._model}: {event.status}")

    def close(self) -> None:
        self._progress.stop()


# -- helpers ---------------------------------------------------------------------------------------


def canonical_model_name(name: str) -> str:
    """Ollama treats ``nomic-embed-text`` and ``nomic-embed-text:latest`` as the same model."""
    name = name.strip()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def ollama_installed() -> bool:
    """Is Ollama installed on this machine (for advice only: it may run elsewhere)?"""
    if shutil.which("ollama"):
        return True
    if sys.platform == "darwin":
        return any(
            p.exists() for p in (Path("/Applications/Ollama.app"), Path.home() / "Applications/Ollama.app")
        )
    return False


def _is_loopback(host: str) -> bool:
    hostname = urlsplit(host).hostname or ""
    return hostname in ("localhost", "0.0.0.0", "::1", "::") or hostname.startswith("127.")


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def _parse_version(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.match(text.strip().lstrip("v"))
    if match is None:
        return None
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def _parse_parameter_size(text: str | None) -> float | None:
    """ "7.6B" -> 7.6, "137M" -> 0.137 (the /api/tags form, when model_info lacks the exact count)."""
    if not text:
        return None
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMBT])\s*", text.upper())
    if match is None:
        return None
    scale = {"K": 1e-6, "M": 1e-3, "B": 1.0, "T": 1e3}[match.group(2)]
    return float(match.group(1)) * scale


def _as_int(value: Any) -> int | None:
    """model_info numbers; per-layer lists (e.g. head_count_kv of some models) collapse to their maximum."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
        return int(max(value))
    return None


def _seconds(ns: int | None) -> float | None:
    return ns / 1e9 if ns is not None else None


def _first_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', '')}"
