"""The model behind one method: what the agent needs from a chat model, and nothing else.

`ChatModel.stream(ChatRequest(model, messages, tools, options), cancel)` yields typed `Chunk`s: text,
thinking, tool calls, and a last chunk with ``done=True`` and the counts. A failure is raised as a
`ModelError` whose ``kind`` says what went wrong (so callers branch on the kind, never on message text) and
whose ``str()`` is a sentence for the user. `assistant.ollama.OllamaLayer` implements it over HTTP; tests
also use an in-process scripted model (tests/scripted_model.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

ChunkStream = Generator["Chunk", None, None]

__all__ = [
    "ChatCancel",
    "ChatModel",
    "ChatRequest",
    "Chunk",
    "ChunkStream",
    "ModelError",
    "ModelErrorKind",
    "ToolCall",
]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call as the model sent it; ``arguments`` may still be a JSON string (Tool.run decodes it)."""

    name: str
    arguments: Mapping[str, Any] | str | None


@dataclass(frozen=True)
class ChatRequest:
    """One call of the model: the conversation so far, the tools it may call (Ollama's JSON specs; none means
    it must answer), and the options (num_ctx, temperature ...)."""

    model: str
    messages: Sequence[Mapping[str, Any]]
    tools: Sequence[Mapping[str, Any]] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One streamed piece of a reply. The last chunk of a complete reply has ``done=True`` and the counts."""

    text: str = ""
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    done: bool = False
    prompt_eval_count: int = 0
    eval_count: int = 0
    eval_duration_ns: int = 0


class ModelErrorKind(StrEnum):
    """What went wrong with a model call; the agent's ErrorEvent kind follows from it."""

    UNAVAILABLE = "unavailable"  # nothing answers (not running, wrong host)
    TIMEOUT = "timeout"  # no answer in time
    STREAM_DROPPED = "stream_dropped"  # the connection died mid-answer
    MODEL_MISSING = "model_missing"  # the model is not installed
    NO_TOOLS = "no_tools"  # the model cannot call tools (the agent retries without them)
    BUSY = "busy"  # the server's queue is full
    SERVER = "server"  # any other error the server reported
    MALFORMED = "malformed"  # a reply the client could not read
    NOT_SUITABLE = "not_suitable"  # an installed model that cannot play the role asked of it
    CANCELLED = "cancelled"  # stopped on purpose (ChatCancel)


class ModelError(Exception):
    """A model call failed. ``str(err)`` says what happened and what to do; ``kind`` is for code."""

    kind: ModelErrorKind = ModelErrorKind.UNAVAILABLE

    def __init__(self, message: str, kind: ModelErrorKind | None = None) -> None:
        Exception.__init__(self, message)
        self.message = message
        if kind is not None:
            self.kind = kind

    def __str__(self) -> str:
        return self.message


STREAM_DROPPED_TEXT = (
    "The connection to Ollama dropped in the middle of the answer (the model runner may have crashed or run "
    "out of memory). What arrived so far is kept; ask again to retry."
)


def timeout_message(model: str, timeout_s: float) -> str:
    """A chat request that got no answer within ``timeout_s``."""
    return (
        f"Ollama did not answer within {timeout_s:g} s (model {model!r} may still be loading or is too "
        "large for this Mac). Try again, or pick a smaller model."
    )


class ChatCancel:
    """Stops one chat request from any thread, at once, whatever the request is doing. One per turn.

    A transport that can abort its request registers a closer with `attach` while the request is in flight
    (the Ollama layer shuts the request's socket down: closing an httpx response from another thread does not
    wake a blocked ``recv``) and forgets it with `release` before the connection can serve another request,
    so a late cancel never touches another conversation's request. A model without such a hook just checks
    `cancelled` between chunks. Thread-safe.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._closers: dict[int, Callable[[], None]] = {}

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        """Stop the request now (idempotent; harmless when no request is in flight)."""
        with self._lock:  # close under the lock: once release() returned, no closer runs
            self._event.set()
            for close in self._closers.values():
                close()
            self._closers = {}

    def wait(self, timeout_s: float) -> bool:
        """Sleep up to ``timeout_s``, waking as soon as the request is cancelled (True then)."""
        return self._event.wait(max(0.0, timeout_s))

    def attach(self, key: int, close: Callable[[], None]) -> None:
        """The request in flight can be aborted by ``close()`` (called at once if already cancelled)."""
        with self._lock:
            if self._event.is_set():
                close()
            else:
                self._closers.setdefault(key, close)

    def release(self) -> None:
        """The request is over: forget its closers before its connection may serve another request."""
        with self._lock:
            self._closers = {}


class ChatModel(Protocol):
    """Anything that can stream a chat reply: the Ollama layer, or a scripted model in tests."""

    def stream(self, request: ChatRequest, cancel: ChatCancel | None = None) -> ChunkStream:
        """Yield the reply's chunks, the last with ``done=True``; raise `ModelError` on any failure.

        ``cancel`` (from any thread) ends the request at once: the stream raises a CANCELLED ModelError.
        """
        ...

    def context_length(self, model: str) -> int | None:
        """The model's trained context length, or None when unknown (sizes num_ctx "auto")."""
        ...
