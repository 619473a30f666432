"""What the agent tests share: an Agent on the protocol-level stand-in, through the real `ollama` client."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from assistant.agent import Agent
from assistant.config import Settings
from assistant.ollama import OllamaLayer
from assistant.toolset import build_toolset
from knowledge.search import KnowledgeBase
from tests.ollama_standin import OllamaStandIn


def make_layer_and_agent(
    standin: OllamaStandIn,
    knowledge: KnowledgeBase | None = None,
    *,
    machine: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> tuple[OllamaLayer, Agent]:
    """The Ollama layer and an Agent on `standin`, with Settings ``overrides`` (no data dir is touched).

    ``machine`` stands in for the detected Mac (it drives num_ctx "auto"). measure_speed runs with the chat's
    num_ctx when that is a number, as in the app; with "auto" it uses the layer's default.
    """
    settings = Settings(ollama_host=standin.url, data_dir=Path("/nonexistent"), **overrides)
    layer = OllamaLayer(standin.url, timeout_s=settings.request_timeout_s)
    num_ctx = settings.num_ctx if isinstance(settings.num_ctx, int) else None
    toolset = build_toolset(knowledge, layer, num_ctx=num_ctx)
    return layer, Agent(settings, layer, toolset, knowledge, machine=machine)


def make_agent(
    standin: OllamaStandIn,
    knowledge: KnowledgeBase | None = None,
    *,
    machine: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> Agent:
    """`make_layer_and_agent` for tests that need only the agent."""
    return make_layer_and_agent(standin, knowledge, machine=machine, **overrides)[1]
