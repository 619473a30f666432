"""What the MCP server serves: the toolset, with knowledge in the best mode available right now.

The server is launched by desktop clients that give it a few seconds and may run on a laptop with Ollama
stopped. So start-up never pulls a model and never waits long: a short health probe decides between hybrid
search (Ollama embeddings) and lexical search, and ``measure_speed`` is only offered when Ollama answers.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from assistant.config import Settings
from tools.registry import Registry

if TYPE_CHECKING:
    from assistant.ollama_layer import OllamaLayer
    from knowledge.search import KnowledgeBase

log = logging.getLogger("assistant.mcp")

# Loopback Ollama answers /api/version in milliseconds; a longer wait only delays clients when it is down.
PROBE_TIMEOUT_S = 2.0


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


def _model_installed(wanted: str, installed: list[str]) -> bool:
    """Ollama lists ``nomic-embed-text:latest`` for a model pulled as ``nomic-embed-text``."""

    def norm(name: str) -> str:
        return name if ":" in name else name + ":latest"

    return norm(wanted) in {norm(n) for n in installed}


def build_runtime(settings: Settings, *, background_sync: bool = True) -> Runtime:
    """Toolset for the server. The index sync (embedding new chunks) runs in a background thread by default.

    Why background: a first sync with Ollama embeds every chunk, which can take seconds, and desktop clients
    wait for the server's handshake. Until the sync finishes the knowledge base answers lexically (its
    ``mode`` says so); it is thread-safe, so a search during the sync is fine.
    """
    # Imported here so `--help` and argument errors answer without loading Chroma and BM25.
    from assistant.ollama_layer import OllamaLayer
    from assistant.toolset import build_toolset
    from knowledge.search import KnowledgeBase

    notes: list[str] = []
    ollama: OllamaLayer | None = None
    embedder = None
    with OllamaLayer(settings.ollama_host, timeout_s=PROBE_TIMEOUT_S) as probe:
        health = probe.health()
    if health.ok:
        ollama = OllamaLayer(settings.ollama_host, timeout_s=settings.request_timeout_s)
        try:
            installed = [m.name for m in ollama.installed_models()]
        except Exception as exc:  # noqa: BLE001 - any failure here just means "no embeddings"
            installed = []
            notes.append(f"could not list Ollama models ({exc})")
        if _model_installed(settings.embed_model, installed):
            embedder = ollama.embedder(settings.embed_model)
        else:
            notes.append(f"{settings.embed_model} is not pulled (run `ollama pull {settings.embed_model}`)")
    else:
        problem = health.problem or "no answer"
        notes.append(f"Ollama not reachable at {settings.ollama_host}: {problem}; restart after starting it")

    knowledge = KnowledgeBase(settings.data_dir, embedder)
    registry = build_toolset(knowledge, ollama, num_ctx=settings.num_ctx)
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
