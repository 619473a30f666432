"""The status line over the chat: is Ollama answering, which models can chat, how knowledge search runs.

The line is refreshed by a `gr.Timer` through one shared, rate-limited probe, so a hundred open tabs do not
mean a hundred health checks, and the model picker fills in by itself when Ollama comes up.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from assistant.config import Settings
from assistant.ollama import Health, canonical_model_name
from assistant.ollama.pulls import models_by_tools

if TYPE_CHECKING:
    from assistant.ollama import OllamaLayer
    from knowledge.search import KnowledgeBase

__all__ = [
    "STATUS_REFRESH_S",
    "StatusProbe",
    "knowledge_mode",
    "model_choices",
    "status_markdown",
]

STATUS_REFRESH_S = 5.0


class StatusProbe:
    """Health + tool-capable model list, cached for `ttl_s` and shared by every session.

    Capabilities come from /api/show, one call per model; they are cached per (name, digest) because they do
    not change unless the model is re-pulled.
    """

    def __init__(self, ollama: OllamaLayer | None, host: str, ttl_s: float = STATUS_REFRESH_S - 0.5) -> None:
        self.ollama = ollama
        self.host = host
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._status: Health | None = None
        self._capabilities: dict[tuple[str, str], bool] = {}
        self._ever_ok = False

    @property
    def ever_ok(self) -> bool:
        """Ollama answered a status probe earlier in this process (so it stopped, rather than never was)."""
        return self._ever_ok

    def _probe(self) -> Health:
        if self.ollama is None:
            return Health(ok=False, host=self.host, problem="no Ollama client configured")
        now = time.monotonic()
        try:
            health = self.ollama.health()
        except Exception as exc:  # noqa: BLE001 - a status line must never break the page
            return Health(ok=False, host=self.host, problem=str(exc), checked_at=now)
        if not health.ok:
            return Health(
                ok=False, host=self.host, problem=health.problem, advice=health.advice, checked_at=now
            )
        status = Health(ok=True, host=self.host, version=health.version, checked_at=now)
        try:
            chat, other = models_by_tools(self.ollama, self._capabilities)
        except Exception as exc:  # noqa: BLE001 - shown on the status line
            return status.model_copy(update={"problem": f"could not list models: {exc}"})
        return status.model_copy(update={"chat_models": sorted(chat), "other_models": sorted(other)})

    def status(self, *, force: bool = False) -> Health:
        """The cached status, refreshed when stale. While one caller probes, others get the last answer
        instead of queueing behind a slow Ollama."""
        if not self._lock.acquire(blocking=self._status is None or force):
            assert self._status is not None
            return self._status
        try:
            now = time.monotonic()
            if force or self._status is None or now - self._status.checked_at >= self.ttl_s:
                status = self._probe()
                if status.ok:
                    self._ever_ok = True
                elif self._ever_ok:
                    # After a working chat, "not installed" (no ollama binary on this machine) is wrong.
                    status = status.model_copy(update={"was_ok": True})
                self._status = status
            return self._status
        finally:
            self._lock.release()


def same_model(a: str, b: str) -> bool:
    return canonical_model_name(a) == canonical_model_name(b)


def model_choices(status: Health, settings: Settings) -> tuple[list[str], str]:
    """(model picker choices, selected value): the configured model when installed, else the first one."""
    choices = list(status.chat_models)
    match = next((m for m in choices if same_model(m, settings.chat_model)), None)
    if match is not None:
        return choices, match
    if choices:
        return choices, choices[0]
    return [settings.chat_model], settings.chat_model


def knowledge_mode(knowledge: KnowledgeBase | None) -> str | None:
    """What the last index sync achieved; the knowledge base retries embeddings itself when Ollama is back."""
    if knowledge is None:
        return "unavailable"
    report = knowledge.last_report
    if report is None:
        return None
    return "hybrid" if report.mode == "hybrid" else "keywords only (no embeddings yet)"


def stopped_answering_message(host: str) -> str:
    """The chat's error when Ollama, which answered earlier, no longer does (not "not installed")."""
    return (
        f"Ollama stopped answering at `{host}`. It was working earlier: it may have quit, crashed or be "
        "restarting. Start it again (open the Ollama app or run `ollama serve`), then ask again."
    )


def _down_markdown(status: Health, kb: str) -> str:
    if status.was_ok:
        return (
            f"🔴 **Ollama stopped answering** at `{status.host}`. It was working earlier: it may have quit, "
            "crashed or be restarting. Start it again (open the Ollama app or run `ollama serve`); this line "
            f"turns green by itself once it answers. The Tools and Search tabs work meanwhile.{kb}"
        )
    advice = status.advice or (
        "Install Ollama from https://ollama.com and start it (open the app, or run `ollama serve`)."
    )
    return (
        f"🔴 **Ollama not reachable** at `{status.host}`: {status.problem or 'no answer'}. {advice} "
        f"The Tools and Search tabs work without it; this line turns green by itself once Ollama "
        f"answers.{kb}"
    )


def status_markdown(status: Health, settings: Settings, knowledge_mode: str | None) -> str:
    if not status.ok and knowledge_mode == "hybrid":
        # Without Ollama no question can be embedded: search runs on keywords (as the Search tab says).
        knowledge_mode = "keywords only until Ollama is back"
    kb = f" · knowledge search: {knowledge_mode}" if knowledge_mode else ""
    if not status.ok:
        return _down_markdown(status, kb)
    version = f" {status.version}" if status.version else ""
    head = f"🟢 **Ollama{version}** at `{status.host}`"
    if status.problem:
        return f"{head} · ⚠️ {status.problem}{kb}"
    if any(same_model(settings.chat_model, m) for m in status.chat_models):
        return f"{head} · {len(status.chat_models)} tool-capable model(s){kb}"
    if status.chat_models:
        note = (
            f"⚠️ `{settings.chat_model}` is not installed; pick one of the installed tool-capable models "
            f"or run `ollama pull {settings.chat_model}`"
        )
    else:
        note = f"⚠️ no tool-capable chat model installed: run `ollama pull {settings.chat_model}`"
    return f"{head} · {note}{kb}"
