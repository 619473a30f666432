"""The app's object graph, built in one place for every entry point (launch.py, the MCP server, the eval).

Each entry point decides its own policy - whether Ollama is used, which embedder, how the index is synced -
and hands the result here; `build_services` wires the rest the same way everywhere: one `ContextWindows`
shared by the chat and `measure_speed` (so a measurement runs the model with the chat's window and Ollama
does not reload it), the toolset, and the agent when there is a model to chat with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assistant.ollama.facts import canonical_model_name

if TYPE_CHECKING:
    from assistant.agent import Agent
    from assistant.config import Settings
    from assistant.context_window import ContextWindows
    from assistant.ollama import OllamaLayer
    from knowledge.search import KnowledgeBase
    from tools.registry import Registry

__all__ = ["Services", "build_services", "installed_embedder"]


@dataclass
class Services:
    """What the UI, the MCP server and the eval are built from."""

    settings: Settings
    ollama: OllamaLayer | None
    knowledge: KnowledgeBase
    toolset: Registry
    windows: ContextWindows
    agent: Agent | None  # None without Ollama (the MCP server has no chat)

    def close(self) -> None:
        if self.ollama is not None:
            self.ollama.close()
        self.knowledge.close()


def build_services(
    settings: Settings, ollama: OllamaLayer | None, knowledge: KnowledgeBase, *, chat: bool = True
) -> Services:
    """Toolset, context windows and (with ``chat`` and Ollama) the agent, over a knowledge base."""
    from assistant.context_window import ContextWindows
    from assistant.toolset import build_toolset

    def fit_tool() -> Any:
        return toolset.get("check_memory_fit") if "check_memory_fit" in toolset.names() else None

    windows = ContextWindows(
        settings.num_ctx,
        settings.max_num_ctx,
        # A lambda, not the bound method: the MCP server passes a stand-in that builds Ollama on first use.
        (lambda model: ollama.context_length(model)) if ollama is not None else _unknown_length,
        fit_tool,
    )
    # measure_speed runs a model with the window the chat gives it (auto: chosen per model), no reload.
    toolset = build_toolset(knowledge, ollama, num_ctx=windows.num_ctx)
    agent: Agent | None = None
    if chat and ollama is not None:
        from assistant.agent import Agent  # only where there is a chat: the MCP server lists tools sooner

        agent = Agent(settings, ollama, toolset, knowledge, windows=windows)
    return Services(settings, ollama, knowledge, toolset, windows, agent)


def installed_embedder(ollama: OllamaLayer, settings: Settings) -> tuple[Any, str | None]:
    """(the embedder for settings.embed_model, None) when Ollama has it, else (None, why not)."""
    from assistant.ollama import OllamaUnavailable

    try:
        installed = {canonical_model_name(m.name) for m in ollama.installed_models()}
    except OllamaUnavailable as exc:  # Ollama went away since the health check: no embeddings for now
        return None, f"could not list Ollama models ({exc})"
    if canonical_model_name(settings.embed_model) not in installed:
        return None, f"{settings.embed_model} is not pulled (run `ollama pull {settings.embed_model}`)"
    return ollama.embedder(settings.embed_model, query_timeout_s=settings.search_embed_timeout_s), None


def _unknown_length(_model: str) -> int | None:
    return None
