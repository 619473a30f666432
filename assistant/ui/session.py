"""What one browser session owns: its agent conversation and what its chat shows.

One `Conversation` per browser session (kept in a `gr.State`), one shared read-only `Agent`. The displayed
chat is kept server-side in the session rather than read back from the Chatbot, so the browser cannot inject
history and the named API endpoint (`/chat`) needs no history argument. The turn itself is driven by
`assistant.ui.chat.run_turn`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.events import ContextEvent

if TYPE_CHECKING:
    from assistant.agent import Conversation

__all__ = ["ChatSession"]


@dataclass
class ChatSession:
    """Everything one browser session owns: its conversation and what its chat shows."""

    conversation: Conversation | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    # the chart beside the chat (a plotly figure), redrawn when the conversation is reopened
    chart: Any = None
    turns: int = 0  # turns in this conversation; the sidebar's title box follows only a conversation's first
    owner: str | None = None  # who the stored conversations belong to (browser id or signed-in user)
    conversation_id: str | None = None  # the stored conversation this chat continues
    stop: threading.Event = field(default_factory=threading.Event)  # set by the Stop button
    context: ContextEvent | None = None  # the last request's context figures, for the meter
