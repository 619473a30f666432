"""Structured events a conversation turn yields.

A turn is a stream of these rather than a string so that the UI can render tool calls and citations as they
happen, tests can assert on exactly what the agent did, and the MCP/CLI front ends can serialise them as JSON
without re-parsing text. Every event is a pydantic model discriminated by `type`, so
`AgentEventAdapter.validate_python(event.model_dump())` round-trips.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from knowledge.schemas import Passage


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)


class TokenEvent(_Event):
    """A fragment of the assistant's visible answer, in streaming order."""

    type: Literal["token"] = "token"
    text: str


class ThinkingEvent(_Event):
    """A fragment of the model's reasoning (Ollama's `message.thinking`), in streaming order.

    Thinking-capable models (qwen3, deepseek-r1, gpt-oss) think by default on Ollama >= 0.12. It is not the
    answer: a UI shows it folded away, and it never enters the conversation history.
    """

    type: Literal["thinking"] = "thinking"
    text: str


class PassagesEvent(_Event):
    """Passages the model can cite as [p:id]: those placed in context for this turn (`origin="retrieval"`),
    and those a `search_knowledge` call found mid-turn (`origin="search_knowledge"`), so the UI can show
    every passage an answer may cite, not only the ones retrieved up front."""

    type: Literal["passages"] = "passages"
    passages: list[Passage]
    origin: Literal["retrieval", "search_knowledge"] = "retrieval"


class _ToolEvent(_Event):
    """An event about one tool call: `call_id` pairs a call with its result or error."""

    call_id: str
    name: str


class ToolCallEvent(_ToolEvent):
    """The model asked for a tool. `arguments` is what it sent (a JSON string is decoded when possible)."""

    type: Literal["tool_call"] = "tool_call"
    arguments: dict[str, Any]
    round: int = 0


class ToolResultEvent(_ToolEvent):
    """A tool ran; `result` is the tool's output model as JSON-compatible data."""

    type: Literal["tool_result"] = "tool_result"
    result: dict[str, Any]
    duration_ms: float = 0.0


class ToolErrorEvent(_ToolEvent):
    """A tool call was refused (unknown tool, bad arguments, domain error); the model sees `error`."""

    type: Literal["tool_error"] = "tool_error"
    error: str


class NoticeEvent(_Event):
    """Something the user should know that is not an error: trimmed history, tool budget used up, ...

    `kind="context_dropped"` says that part of the conversation was left out of the request to fit the context
    window; a UI shows it in plain sight, since the answer may then miss what the user said earlier.
    """

    type: Literal["notice"] = "notice"
    text: str
    kind: Literal["note", "context_dropped"] = "note"


class ContextEvent(_Event):
    """How full the context window is for the request about to be sent (one per model call of a turn).

    `used_tokens` is our conservative estimate of the request (system prompt, passages, tool schemas,
    history, this turn); `window_tokens` is the num_ctx sent to Ollama, of which `reserved_tokens` are kept
    free for the answer. `reason` says how num_ctx was chosen; `tools` lists the tool schemas sent.
    """

    type: Literal["context"] = "context"
    used_tokens: int
    window_tokens: int
    reserved_tokens: int = 0
    model: str = ""
    auto: bool = False
    reason: str = ""
    tools: list[str] = Field(default_factory=list)

    @property
    def fraction(self) -> float:
        return self.used_tokens / self.window_tokens if self.window_tokens else 0.0


class DoneEvent(_Event):
    """The turn finished. Counts and durations are summed over every model call of the turn."""

    type: Literal["done"] = "done"
    content: str
    eval_count: int = 0
    eval_duration_s: float = 0.0
    tokens_per_second: float | None = None
    prompt_eval_count: int = 0
    total_s: float = 0.0
    rounds: int = 0
    model: str = ""
    num_ctx: int = 0
    citations: list[str] = Field(default_factory=list)


ErrorKind = Literal[
    "unavailable",
    "model_missing",
    "timeout",
    "stream_dropped",
    "ollama_error",
    "oversized",
    "empty",
    "busy",
    "stopped",
    "internal",
]


class ErrorEvent(_Event):
    """The turn could not finish. `message` is user-presentable; `kind` lets a UI offer the right remedy."""

    type: Literal["error"] = "error"
    message: str
    kind: ErrorKind = "internal"


AgentEvent = Annotated[
    TokenEvent
    | ThinkingEvent
    | PassagesEvent
    | ToolCallEvent
    | ToolResultEvent
    | ToolErrorEvent
    | NoticeEvent
    | ContextEvent
    | DoneEvent
    | ErrorEvent,
    Field(discriminator="type"),
]
AgentEventAdapter: TypeAdapter[AgentEvent] = TypeAdapter(AgentEvent)

__all__ = [
    "AgentEvent",
    "AgentEventAdapter",
    "ContextEvent",
    "DoneEvent",
    "ErrorEvent",
    "ErrorKind",
    "NoticeEvent",
    "PassagesEvent",
    "ThinkingEvent",
    "TokenEvent",
    "ToolCallEvent",
    "ToolErrorEvent",
    "ToolResultEvent",
]
