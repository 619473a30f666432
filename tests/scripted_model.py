"""An in-process `ChatModel` that plays scripted replies: for agent-logic tests (no HTTP, no threads).

Like pydantic-ai's FunctionModel: each reply is a list of `Chunk`s (the last normally ``done=True``) or a
`ModelError` to raise, or a function of the request returning one of those. Requests are recorded. The wire,
faults, UI, MCP and launch tests keep using the HTTP stand-in (tests/ollama_standin).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from assistant.chat_model import (
    ChatCancel,
    ChatRequest,
    Chunk,
    ChunkStream,
    ModelError,
    ModelErrorKind,
    ToolCall,
)

Reply = list[Chunk] | ModelError
Script = Reply | Callable[["Request"], Reply]


@dataclass
class Request:
    model: str
    messages: list[dict[str, Any]]
    tools: list[str]
    options: dict[str, Any]


def text(answer: str, *, eval_count: int = 5) -> list[Chunk]:
    """An answer streamed word by word, then the done chunk."""
    words = answer.split(" ")
    parts = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
    return [*(Chunk(text=p) for p in parts), Chunk(done=True, eval_count=eval_count, eval_duration_ns=10**8)]


def calls(*pairs: tuple[str, Mapping[str, Any] | str]) -> list[Chunk]:
    """A reply that only calls tools."""
    tool_calls = tuple(ToolCall(name=name, arguments=args) for name, args in pairs)
    return [Chunk(tool_calls=tool_calls), Chunk(done=True)]


@dataclass
class ScriptedModel:
    """Replies in order; a request after the script ran out is a test failure (AssertionError)."""

    script: list[Script] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    context: int | None = None
    in_stream: threading.Event = field(default_factory=threading.Event)

    def stream(self, chat: ChatRequest, cancel: ChatCancel | None = None) -> ChunkStream:
        request = Request(
            chat.model,
            [dict(m) for m in chat.messages],
            [t["function"]["name"] for t in chat.tools],
            dict(chat.options),
        )
        self.requests.append(request)
        assert self.script, f"unscripted request: {request.messages[-1]}"
        step = self.script.pop(0)
        reply = step(request) if callable(step) else step
        if isinstance(reply, ModelError):
            raise reply
        for chunk in reply:
            self.in_stream.set()
            if cancel is not None and cancel.cancelled:
                raise ModelError("stopped", ModelErrorKind.CANCELLED)
            yield chunk

    def context_length(self, model: str) -> int | None:
        return self.context
