"""The browser chat: a Gradio app over the agent, the tools and the knowledge base.

Modules, by responsibility:
- `app`: `build_app`, the page's layout and the wiring of its events;
- `chat`: the Chat tab's handlers (a question in, the answer streamed, the status line and meter);
- `session`: what one browser session owns (its agent conversation, the chat it shows);
- `render`: agent events -> chat messages (tool calls, passages, thinking, stats line), the Search tab's text;
- `forms`: the Tools tab, one form per tool generated from its JSON schema;
- `status`: the Ollama / knowledge-search status line and its shared, rate-limited probe;
- `access`: where the app may listen and who may sign in (`launch_options`), the offline theme;
- `conversations`: the sidebar and the conversation store glue;
- `documents`: the Documents & models tab.

Offline: the app is built with `analytics_enabled=False` (no version check, no telemetry; gradio then sets
HF_HUB_DISABLE_TELEMETRY itself) and launched with `ssr_mode=False` and system fonts, so nothing here needs
to set environment variables at import time.
"""

from __future__ import annotations

from assistant.ui.access import (
    CSS,
    MIN_PASSWORD_CHARS,
    UPLOAD_LIMIT_BYTES,
    LaunchConfigError,
    launch_options,
    offline_theme,
    parse_auth,
)
from assistant.ui.app import build_app
from assistant.ui.chat import MAX_INPUT_CHARS, run_turn, stop_turn
from assistant.ui.forms import FormField, arguments_from_form, form_fields, result_markdown
from assistant.ui.render import (
    TurnRenderer,
    context_meter_markdown,
    search_markdown,
    unwrap_lines,
    user_markdown,
)
from assistant.ui.session import ChatSession
from assistant.ui.status import StatusProbe, status_markdown

__all__ = [
    "CSS",
    "MAX_INPUT_CHARS",
    "MIN_PASSWORD_CHARS",
    "UPLOAD_LIMIT_BYTES",
    "ChatSession",
    "FormField",
    "LaunchConfigError",
    "StatusProbe",
    "TurnRenderer",
    "arguments_from_form",
    "build_app",
    "context_meter_markdown",
    "form_fields",
    "launch_options",
    "offline_theme",
    "parse_auth",
    "result_markdown",
    "run_turn",
    "search_markdown",
    "status_markdown",
    "stop_turn",
    "unwrap_lines",
    "user_markdown",
]
