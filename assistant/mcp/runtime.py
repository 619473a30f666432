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


@dataclass(frozen=True)
class OllamaProbe:
    """What the server's one start-up request to ``/api/version`` found: the version, or what went wrong."""

    version: str | None = None
    error: Exception | None = None
    status_code: int | None = None  # a reply other than 200 to /api/version

    def replay(self) -> str:
        """Answer as ``OllamaLayer._version`` would have, without asking again, so ``probe_health`` gives the
        same diagnosis as everywhere else (not installed, not running, too old, not Ollama...)."""
        import httpx

        if self.version is not None:
            return self.version
        if self.status_code is not None:
            import ollama

            raise ollama.ResponseError(f"HTTP {self.status_code}", self.status_code)
        if isinstance(self.error, httpx.ConnectError):
            raise ConnectionError(str(self.error)) from self.error  # what the ollama client raises
        raise self.error or ValueError("no answer")


def build_runtime(
    settings: Settings, *, background_sync: bool = True, probe: OllamaProbe | None = None
) -> Runtime:
    """Toolset for the server. The index sync (embedding new chunks) runs in a background thread by default.

    Why background: a first sync with Ollama embeds every chunk, which can take seconds, and desktop clients
    wait for the server's handshake. Until the sync finishes the knowledge base answers lexically (its
    ``mode`` says so); it is thread-safe, so a search during the sync is fine.

    ``probe`` is what the server's own start-up probe found; it is diagnosed here rather than asked again, so
    start-up asks Ollama once and the runtime agrees with the listed tools. Without it, this probes itself.
    """
    # Imported here so `--help` and argument errors answer without loading Chroma and BM25.
    from assistant.app_graph import build_services, installed_embedder
    from assistant.ollama import OllamaLayer
    from assistant.ollama.health import probe_health
    from knowledge.search import KnowledgeBase

    notes: list[str] = []
    ollama: OllamaLayer | None = None
    embedder = None
    if probe is None:
        with OllamaLayer(settings.ollama_host, timeout_s=settings.probe_timeout_s) as layer:
            health = layer.health()
    else:
        health = probe_health(probe.replay, settings.ollama_host, settings.probe_timeout_s)
    if health.ok:
        ollama = OllamaLayer(settings.ollama_host, timeout_s=settings.request_timeout_s)
        embedder, note = installed_embedder(ollama, settings)
        if note:
            notes.append(note)
    else:
        problem = health.problem or "no answer"
        notes.append(f"Ollama not reachable at {settings.ollama_host}: {problem}; restart after starting it")

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


def probe_ollama(host: str, timeout_s: float) -> OllamaProbe:
    """Ask ``/api/version`` at ``host`` once: the server's one probe at start-up. Its answer decides whether
    ``measure_speed`` is listed, and ``build_runtime`` diagnoses it for the runtime.

    Plain httpx (already loaded with the MCP SDK) rather than the ollama client, whose import alone costs
    most of a second before the first ``tools/list`` could be answered. Never uses a proxy (loopback).
    """
    import httpx

    try:
        with httpx.Client(timeout=timeout_s, trust_env=False) as client:
            response = client.get(host.rstrip("/") + "/api/version")
        if response.status_code != 200:
            return OllamaProbe(status_code=response.status_code)
        return OllamaProbe(version=str(response.json()["version"]))
    except (httpx.HTTPError, OSError, ValueError, KeyError, TypeError) as exc:
        return OllamaProbe(error=exc)


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
        self._probe: OllamaProbe | None = None  # what registry()'s start-up probe found

    def runtime(self) -> Runtime:
        if self._runtime is None:
            with self._lock:
                if self._runtime is None:
                    import contextlib
                    import sys
                    import time

                    started = time.perf_counter()
                    with contextlib.redirect_stdout(sys.stderr):  # on stdio, stdout is the protocol
                        runtime = build_runtime(self.settings, probe=self._probe)
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
        self._probe = probe_ollama(self.settings.ollama_host, self.settings.probe_timeout_s)
        ollama = _Deferred(self._ollama) if self._probe.version is not None else None
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
