"""What the MCP server serves: the toolset, with knowledge in the best mode available right now.

The server is launched by desktop clients that give it a few seconds and may run on a laptop with Ollama
stopped. So start-up never pulls a model and never waits long: a short health probe decides between hybrid
search (Ollama embeddings) and lexical search, and ``measure_speed`` is only offered when Ollama answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from assistant.config import Settings

if TYPE_CHECKING:
    from assistant.ollama import OllamaLayer
    from knowledge.search import KnowledgeBase
    from tools.registry import Registry

log = logging.getLogger("assistant.mcp")


@dataclass
class Runtime:
    """The served registry plus what it holds on to, so shutdown can release it."""

    registry: Registry
    mode: Literal["hybrid", "lexical"]
    knowledge: KnowledgeBase
    ollama: OllamaLayer | None = None
    notes: list[str] = field(default_factory=list)
    sync_thread: threading.Thread | None = None

    @property
    def summary(self) -> str:
        return f"knowledge search: {self.mode}" + (f" ({'; '.join(self.notes)})" if self.notes else "")

    def close(self) -> None:
        if self.ollama is not None:
            self.ollama.close()
        # A sync still embedding holds the index lock; the process is exiting anyway, so do not wait for it.
        if self.sync_thread is None or not self.sync_thread.is_alive():
            self.knowledge.close()


class Unprobed:
    """The type of UNPROBED: build_runtime was not told what a probe found, so it probes itself."""


UNPROBED = Unprobed()


def build_runtime(
    settings: Settings, *, background_sync: bool = True, ollama_problem: str | None | Unprobed = UNPROBED
) -> Runtime:
    """Toolset for the server. The index sync (embedding new chunks) runs in a background thread by default.

    Why background: a first sync with Ollama embeds every chunk, which can take seconds, and desktop clients
    wait for the server's handshake. Until the sync finishes the knowledge base answers lexically (its
    ``mode`` says so); it is thread-safe, so a search during the sync is fine.

    ``ollama_problem`` is what the caller's own probe found (None: Ollama answers); the server passes the one
    it made for the tool list, so start-up asks Ollama once and the runtime agrees with the listed tools.
    Without it, this probes Ollama's health itself.
    """
    # Imported here so `--help` and argument errors answer without loading Chroma and BM25.
    from assistant.app_graph import build_services, installed_embedder
    from assistant.ollama import OllamaLayer
    from knowledge.search import KnowledgeBase

    notes: list[str] = []
    ollama: OllamaLayer | None = None
    embedder = None
    if isinstance(ollama_problem, Unprobed):
        with OllamaLayer(settings.ollama_host, timeout_s=settings.probe_timeout_s) as probe:
            health = probe.health()
        ollama_problem = None if health.ok else health.problem or "no answer"
    if ollama_problem is None:
        ollama = OllamaLayer(settings.ollama_host, timeout_s=settings.request_timeout_s)
        embedder, note = installed_embedder(ollama, settings)
        if note:
            notes.append(note)
    else:
        notes.append(
            f"Ollama not reachable at {settings.ollama_host}: {ollama_problem}; restart after starting it"
        )

    knowledge = KnowledgeBase(settings.data_dir, embedder, chroma_url=settings.chroma_url)
    registry = build_services(settings, ollama, knowledge, chat=False).toolset
    runtime = Runtime(
        registry=registry,
        mode="hybrid" if embedder else "lexical",
        knowledge=knowledge,
        ollama=ollama,
        notes=notes,
    )
    if background_sync:
        thread = threading.Thread(target=_sync, args=(knowledge,), name="knowledge-sync", daemon=True)
        thread.start()
        runtime.sync_thread = thread
    else:
        _sync(knowledge)
    return runtime


def _sync(knowledge: KnowledgeBase) -> None:
    try:
        report = knowledge.sync()
    except Exception:  # noqa: BLE001 - search still answers (it retries the sync itself); never kill the server
        log.exception("knowledge index sync failed")
        return
    log.info("knowledge index: %s", report.summary())


def probe_ollama(host: str, timeout_s: float) -> str | None:
    """Why Ollama does not answer ``/api/version`` at ``host`` (None: it does). The server's one probe at
    start-up: it decides whether ``measure_speed`` is listed, and whether the runtime gets an Ollama client.

    Plain httpx (already loaded with the MCP SDK) rather than the ollama client, whose import alone costs
    most of a second before the first ``tools/list`` could be answered. Never uses a proxy (loopback).
    """
    import httpx

    try:
        with httpx.Client(timeout=timeout_s, trust_env=False) as client:
            response = client.get(host.rstrip("/") + "/api/version")
        if response.status_code == 200 and "version" in response.json():
            return None
        return f"something answers, but not like Ollama (HTTP {response.status_code} for /api/version)"
    except httpx.TimeoutException:
        return f"no answer within {timeout_s:g} s"
    except (httpx.HTTPError, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


class _Deferred:
    """Stands in for an object (the knowledge base, the Ollama layer) that is built on first use."""

    def __init__(self, get: Callable[[], Any]) -> None:
        self._get = get

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


class LazyRuntime:
    """The server's toolset, listed at once, with the knowledge base and Ollama client loaded on first use.

    ``registry()`` returns exactly what ``build_toolset`` returns for the real runtime (same names,
    descriptions and schemas; ``measure_speed`` only when Ollama answers), but its knowledge base and Ollama
    layer are stand-ins that call ``build_runtime`` the first time a tool touches them. Right after the tool
    list is built, a background thread starts that build, so the first ``search_knowledge`` rarely waits.
    """

    def __init__(self, settings: Settings, *, warm_up: bool = True) -> None:
        self.settings = settings
        self.warm_up = warm_up
        self._runtime: Runtime | None = None
        self._lock = threading.Lock()
        self._problem: str | None = None
        self._ollama_problem: str | None | Unprobed = UNPROBED  # what registry()'s probe found

    def runtime(self) -> Runtime:
        if self._runtime is None:
            with self._lock:
                if self._runtime is None:
                    import contextlib
                    import sys
                    import time

                    started = time.perf_counter()
                    with contextlib.redirect_stdout(sys.stderr):  # on stdio, stdout is the protocol
                        runtime = build_runtime(self.settings, ollama_problem=self._ollama_problem)
                    took = time.perf_counter() - started
                    log.warning("mac-ai-advisor MCP: %s [%.2fs]", runtime.summary, took)
                    self._runtime = runtime
        return self._runtime

    def _ollama(self) -> OllamaLayer:
        from tools.registry import ToolError

        ollama = self.runtime().ollama
        if ollama is None:
            raise ToolError(
                f"Ollama stopped answering at {self.settings.ollama_host} after this server started; "
                "start it and restart the MCP server."
            )
        return ollama

    def registry(self) -> Registry:
        from assistant.app_graph import build_services

        knowledge = _Deferred(lambda: self.runtime().knowledge)
        self._ollama_problem = probe_ollama(self.settings.ollama_host, self.settings.probe_timeout_s)
        ollama = _Deferred(self._ollama) if self._ollama_problem is None else None
        # The same wiring as build_runtime (measure_speed runs with the chat's window), over stand-ins.
        registry = build_services(self.settings, ollama, knowledge, chat=False).toolset  # type: ignore[arg-type]
        if self.warm_up:
            threading.Thread(target=self._warm_up, name="runtime-warm-up", daemon=True).start()
        return registry

    def _warm_up(self) -> None:
        try:
            self.runtime()
        except Exception:  # noqa: BLE001 - the first tool call retries and reports it; never kill the server
            log.exception("loading the knowledge base failed")

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
