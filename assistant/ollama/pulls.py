"""Models the assistant needs: pull what is missing (with progress events), refuse ones that cannot serve.

Drawing progress is the caller's job (launch.py draws rich bars on a terminal; the UI its own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import ollama
from pydantic import BaseModel, Field

from assistant.ollama.errors import ModelNotSuitable
from assistant.ollama.facts import canonical_model_name

if TYPE_CHECKING:
    from assistant.ollama.layer import OllamaLayer

__all__ = [
    "EnsureReport",
    "ProgressCallback",
    "PullProgress",
    "ensure_models",
    "may_call_tools",
    "models_by_tools",
    "pull_events",
]


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


ProgressCallback = Callable[[PullProgress], None]


def pull_events(client: ollama.Client, model: str, progress: ProgressCallback | None) -> None:
    """Download ``model``, handing each progress line to ``progress``; raw client errors pass through."""
    for line in client.pull(model, stream=True):
        if progress is not None:
            progress(
                PullProgress(
                    model=model,
                    status=line.status or "",
                    digest=line.digest,
                    total=line.total,
                    completed=line.completed,
                )
            )


def ensure_models(
    layer: OllamaLayer, chat_model: str, embed_model: str, progress: ProgressCallback | None = None
) -> EnsureReport:
    """Pull what is missing, then refuse a chat model that cannot call tools (naming ones that can)."""
    installed = {canonical_model_name(m.name) for m in layer.installed_models()}
    report = EnsureReport(chat_model=chat_model, embed_model=embed_model)
    for model in dict.fromkeys((chat_model, embed_model)):
        if canonical_model_name(model) in installed:
            report.already_present.append(model)
        else:
            layer.pull(model, progress)
            report.pulled.append(model)
    chat = layer.model_facts(chat_model)
    if not may_call_tools(chat.capabilities):
        able, _ = models_by_tools(layer)
        named = ", ".join(able) if able else "none yet (e.g. `ollama pull qwen2.5:7b`)"
        raise ModelNotSuitable(
            f"{chat_model} cannot call tools, which the assistant needs for every number it gives. "
            f"Installed models that can: {named}. Choose one with --chat-model / ADVISOR_CHAT_MODEL."
        )
    embed = layer.model_facts(embed_model)
    if embed.capabilities is not None and "embedding" not in embed.capabilities:
        raise ModelNotSuitable(
            f"{embed_model} is not an embedding model; use nomic-embed-text (`ollama pull nomic-embed-text`)."
        )
    return report


def may_call_tools(capabilities: list[str] | None) -> bool:
    """Can a model with these /api/show capabilities call tools? An Ollama too old to report capabilities
    (None): yes, rather than refuse or hide every model."""
    return capabilities is None or "tools" in capabilities


def models_by_tools(
    layer: OllamaLayer, known: dict[tuple[str, str], bool] | None = None
) -> tuple[list[str], list[str]]:
    """(installed models that can call tools, the others): the one capability lookup, for the status line
    and for the pull check's advice. /api/show is asked once per model; pass `known` to remember the answers
    per (name, digest) across calls (they change only when a model is re-pulled)."""
    known = {} if known is None else known
    able: list[str] = []
    other: list[str] = []
    for model in layer.installed_models():
        key = (model.name, model.digest or "")
        if key not in known:
            try:
                capabilities = layer.model_facts(model.name).capabilities
            except Exception:  # noqa: BLE001 - an unreadable model is simply not offered (asked again next time)
                other.append(model.name)
                continue
            known[key] = may_call_tools(capabilities)
        (able if known[key] else other).append(model.name)
    return able, other
