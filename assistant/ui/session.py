"""One browser session's chat and the loop that drives one turn of it.

One `Conversation` per browser session (kept in a `gr.State`), one shared read-only `Agent`. The displayed
chat is kept server-side in the session rather than read back from the Chatbot, so the browser cannot inject
history and the named API endpoint (`/chat`) needs no history argument. Yields are throttled so that
streaming cost does not grow with the number of tokens squared.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.events import ContextEvent, ErrorEvent
from assistant.ui.render import TurnRenderer

if TYPE_CHECKING:
    from assistant.agent import Agent, Conversation

__all__ = ["STREAM_INTERVAL_S", "ChatSession", "run_turn", "stop_turn"]

# Yield the growing answer to the browser at most this often (plus at every structural event).
STREAM_INTERVAL_S = 0.05


@dataclass
class ChatSession:
    """Everything one browser session owns: its conversation and what its chat shows."""

    conversation: Conversation | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    chart: Any = (
        None  # the chart beside the chat (a plotly figure), redrawn when the conversation is reopened
    )
    turns: int = 0  # turns in this conversation; the sidebar's title box follows only a conversation's first
    owner: str | None = None  # who the stored conversations belong to (browser id or signed-in user)
    conversation_id: str | None = None  # the stored conversation this chat continues
    stop: threading.Event = field(default_factory=threading.Event)  # set by the Stop button
    context: ContextEvent | None = None  # the last request's context figures, for the meter


def stop_turn(session: ChatSession | None) -> None:
    """What the Stop button does (on its own thread): end the session's turn in flight now."""
    if session is None:
        return
    session.stop.set()
    if session.conversation is not None:
        session.conversation.cancel()


def run_turn(
    session: ChatSession,
    agent: Agent,
    message: str,
    model: str | None,
    renderer: TurnRenderer,
    interval_s: float = STREAM_INTERVAL_S,
    stop: threading.Event | None = None,
) -> Iterator[bool]:
    """Drive one turn, yielding whenever the browser should be updated (True = structural change).

    The Stop button calls `stop_turn`: the agent closes its request to Ollama at once (which then stops
    generating), whatever it was waiting for, and the turn ends with the partial answer kept and marked.
    `stop` set by other means closes the turn's generator at the next event, with the same outcome.
    """
    if session.conversation is None:
        session.conversation = agent.new_conversation()
    session.turns += 1
    last = 0.0
    pending = False
    stopped = False
    events = session.conversation.turn(message, model=model or None)
    try:
        for event in events:
            if isinstance(event, ErrorEvent) and event.kind == "stopped":
                stopped = True
                break
            if isinstance(event, ContextEvent):
                session.context = event
            structural = renderer.apply(event)
            if stop is not None and stop.is_set():
                break
            now = time.monotonic()
            if structural or now - last >= interval_s:
                last = now
                pending = False
                yield structural
            else:
                pending = True
    finally:
        events.close()
    stopped = stopped or (stop is not None and stop.is_set())
    if stopped and renderer.done is None and renderer.error is None:
        renderer.stop()
        yield True
    elif pending:
        yield False
