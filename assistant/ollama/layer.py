"""`OllamaLayer`: the assistant's only door to Ollama, on the official ``ollama`` client.

Each method is a few lines: ask the client (through the repairing, cancellable transport), and turn any
failure into an `OllamaUnavailable` with a ``kind`` and a sentence (errors.Translate). It implements the
agent's `ChatModel` protocol (`stream`, `context_length`). Thread-safe: one instance serves concurrent chats.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

import ollama

from assistant.chat_model import ChatCancel, ChatRequest, ChunkStream
from assistant.ollama import chat, facts, pulls
from assistant.ollama.errors import OllamaUnavailable, Translate, chat_error
from assistant.ollama.health import Health, probe_health
from assistant.ollama.transport import repairing_transport

__all__ = ["EMBED_TIMEOUT_S", "SEARCH_EMBED_TIMEOUT_S", "OllamaLayer"]

EMBED_TIMEOUT_S = 30.0
"""Longest wait for one embedding batch (the first one also loads nomic-embed-text, a few seconds)."""

SEARCH_EMBED_TIMEOUT_S = 5.0
"""Longest wait for a search query's embedding unless the caller passes Settings.search_embed_timeout_s."""


class OllamaLayer:
    """Health, model facts, pulls, embeddings and chat against one Ollama host."""

    def __init__(self, host: str, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s
        # trust_env=False: Ollama is local; a system HTTP proxy must not sit between us and 127.0.0.1.
        self.client = ollama.Client(
            host=host, timeout=timeout_s, transport=repairing_transport(), trust_env=False
        )
        # The client normalises the host (scheme, default port) but does not expose the result publicly.
        self.host = str(self.client._client.base_url).rstrip("/")
        self.busy_retry_delays_s: tuple[float, ...] = chat.BUSY_RETRY_DELAYS_S

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> OllamaLayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _translated(self, action: str, *, model: str | None = None, pulling: bool = False) -> Translate:
        return Translate(action, host=self.host, timeout_s=self.timeout_s, model=model, pulling=pulling)

    # health ---------------------------------------------------------------------------------------

    def health(self) -> Health:
        """Is a usable Ollama answering at the host? Never raises; the diagnosis says what to do."""
        return probe_health(self._version, self.host, self.timeout_s)

    def _version(self) -> str:
        # ollama-python 0.6.3 has no public version(); _request_raw is its own request path, so the
        # client's error mapping and headers still apply.
        return str(self.client._request_raw("GET", "/api/version").json()["version"])

    # models ---------------------------------------------------------------------------------------

    def installed_models(self) -> list[facts.InstalledModel]:
        with self._translated("list the installed models"):
            return facts.installed_models(self.client)

    def model_facts(self, name: str, *, verbose: bool = False) -> facts.ModelFacts:
        """/api/show; `verbose` also lists every tensor's type and shape (the per-tensor layout)."""
        with self._translated("describe the model", model=name):
            return facts.model_facts(self.client, name, verbose=verbose)

    def loaded_models(self) -> list[facts.LoadedModel]:
        with self._translated("list the loaded models"):
            return facts.loaded_models(self.client)

    def pull(self, model: str, progress: pulls.ProgressCallback | None = None) -> None:
        """Download a model, handing each progress line to ``progress`` (launch.py draws bars from them)."""
        with self._translated("pull the model", model=model, pulling=True):
            pulls.pull_events(self.client, model, progress)

    def ensure_models(
        self, chat_model: str, embed_model: str, progress: pulls.ProgressCallback | None = None
    ) -> pulls.EnsureReport:
        """Pull what is missing, then refuse a chat model that cannot call tools (naming ones that can)."""
        return pulls.ensure_models(self, chat_model, embed_model, progress)

    def tool_capable_models(self) -> list[str]:
        """Installed models that can call tools (see pulls.models_by_tools)."""
        return pulls.models_by_tools(self)[0]

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
        ``{"_raw": text}``. A stream that ends without its ``done`` chunk raises StreamInterrupted. With
        ``cancel``, ChatCancel.cancel from any thread ends the request at once: this raises ChatCancelled
        (in the thread reading the stream) and Ollama stops generating.
        """
        request = {"messages": messages, "tools": tools, "options": options}
        with self._translated("answer", model=model):
            yield from chat.raw_chat_stream(self.client, model, request, cancel, self.busy_retry_delays_s)

    def stream(self, request: ChatRequest, cancel: ChatCancel | None = None) -> ChunkStream:
        """`ChatModel.stream`: typed chunks; failures are OllamaUnavailable worded for a chat answer."""
        tools = list(request.tools) or None
        raw = self.chat_stream(request.model, request.messages, tools, request.options, cancel)
        try:
            with contextlib.closing(raw):
                for chunk in raw:
                    yield chat.to_chunk(chunk)
        except OllamaUnavailable as exc:
            raise chat_error(exc, request.model, self.timeout_s) from exc

    def context_length(self, model: str) -> int | None:
        """`ChatModel.context_length`: the model's trained context length from /api/show."""
        return self.model_facts(model).context_length

    def measure_speed(
        self,
        model: str,
        prompt: str | None = None,
        num_predict: int = 96,
        num_ctx: int = chat.DEFAULT_NUM_CTX,
    ) -> chat.SpeedMeasurement:
        """Generate a short answer and read this Mac's real decode speed from Ollama's own counters.

        ``num_ctx`` is sent like on every chat request: a request without it gets Ollama's default context, a
        different KV cache, so Ollama reloads the model (seconds to a minute) and measures another setup.
        """
        with self._translated("run the model", model=model):
            return chat.measure_speed(self.client, model, prompt, num_predict, num_ctx)
