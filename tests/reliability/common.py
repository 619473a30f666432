"""Building blocks shared by the reliability tests (through real interfaces: stand-in, HTTP, MCP, UI API)."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from assistant.events import AgentEvent, DoneEvent, ErrorEvent
from tests.agent_support import make_agent as make_agent  # re-exported for the reliability tests
from tests.ollama_standin import ChatScript, RecordedRequest, ToolCallScript

if TYPE_CHECKING:
    from tests.test_launch import LaunchedProcess

SCALE = max(1, int(os.environ.get("RELIABILITY_SCALE", "1")))
TAG = re.compile(r"\b(tag-[0-9a-z-]+)\b")


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
