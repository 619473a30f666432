"""Building blocks shared by the reliability tests (through real interfaces: stand-in, HTTP, MCP, UI API)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.agent import Agent
from assistant.config import Settings
from assistant.events import AgentEvent, DoneEvent, ErrorEvent
from assistant.ollama import OllamaLayer
from assistant.toolset import build_toolset
from knowledge.search import KnowledgeBase
from tests.ollama_standin import ChatScript, OllamaStandIn, RecordedRequest, ToolCallScript

if TYPE_CHECKING:
    from tests.test_launch import LaunchedProcess

SCALE = max(1, int(os.environ.get("RELIABILITY_SCALE", "1")))
TAG = re.compile(r"\b(tag-[0-9a-z-]+)\b")


def make_agent(standin: OllamaStandIn, knowledge: KnowledgeBase | None = None, **overrides: Any) -> Agent:
    settings = Settings(ollama_host=standin.url, data_dir=Path("/nonexistent"), **overrides)
    layer = OllamaLayer(standin.url, timeout_s=settings.request_timeout_s)
    return Agent(settings, layer, build_toolset(knowledge, layer), knowledge)


def last_user_text(request: RecordedRequest) -> str:
    users = [m for m in request.messages if m.get("role") == "user"]
    return str(users[-1].get("content", "")) if users else ""


def echo_tag_responder(request: RecordedRequest) -> ChatScript:
    """A model that calls estimate_speed once, then answers naming the tag in the user's last message.

    The tag lets a test check that every answer reached the conversation that asked for it.
    """
    text = last_user_text(request)
    match = TAG.search(text)
    tag = match.group(1) if match else "no-tag"
    if not any(m.get("role") == "tool" for m in request.messages[-3:]):
        return ChatScript(
            tool_calls=(ToolCallScript("estimate_speed", {"chip": "M4 Pro", "model": "llama3.1:8b"}),)
        )
    return ChatScript(text=f"Answer for {tag}: about 40 tokens/s.", tokens_per_second=2000.0)


def final(events: list[AgentEvent]) -> DoneEvent | ErrorEvent:
    last = events[-1]
    assert isinstance(last, DoneEvent | ErrorEvent), last
    return last


def launch_then_stop(
    ollama_host: str, *flags: str, port: int = 0, env: dict[str, str] | None = None
) -> LaunchedProcess:
    """`launch.py --no-browser --no-pull` until ready, then Ctrl-C: it must stop with 0 and no traceback.

    Returns the finished process, for checks on its output.
    """
    from tests.test_launch import LaunchedProcess

    launched = LaunchedProcess(
        "--no-browser", "--no-pull", "--port", str(port), "--ollama-host", ollama_host, *flags, env=env
    )
    try:
        launched.wait_for_url()
        assert launched.interrupt() == 0
    finally:
        if launched.proc.poll() is None:
            launched.proc.kill()
    assert "Traceback" not in launched.output, launched.output
    return launched
