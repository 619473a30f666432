"""The browser chat: a Gradio app over the agent, the tools and the knowledge base.

Design choices and why:
- Offline first. Gradio phones home for analytics and version checks unless told not to, and its default
  theme may pull Google fonts; both are switched off here, *before* gradio is imported, with a system-font
  theme. `launch_options()` pins share=False and refuses a non-loopback bind without auth, so every caller
  (launch.py, tests, benchmarks) gets the same safe defaults.
- One `Conversation` per browser session (a `gr.State`), one shared read-only `Agent`. The displayed chat is
  kept server-side in the same session object rather than read back from the Chatbot, so the browser cannot
  inject history and the named API endpoint (`/chat`, for gradio_client load tests) needs no history argument.
- A turn is rendered from the agent's typed events: tool calls become collapsible messages (pending -> done),
  retrieved passages one collapsible "sources" message marking the cited ones, and a tokens/s line closes each
  answer. Yields are throttled so that streaming cost does not grow with the number of tokens squared.
- The Tools tab builds one form per tool from the tool's JSON schema: a new tool in the registry gets a form
  without UI code, and the forms work with no model (and no Ollama) at all.
- The Ollama status line is refreshed by a `gr.Timer` through a shared, rate-limited probe, so a hundred open
  tabs do not mean a hundred health checks, and the model picker fills in by itself when Ollama comes up.
"""

from __future__ import annotations

import os
import sqlite3

# Must precede `import gradio`: gradio reads these at import/Blocks() time (analytics, version check, HF hub).
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_SSR_MODE", "False")

import html  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Mapping, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import TYPE_CHECKING, Any, Literal  # noqa: E402

import gradio as gr  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from assistant.charts import chart_for_tool_result  # noqa: E402
from assistant.config import Settings  # noqa: E402
from assistant.events import (  # noqa: E402
    AgentEvent,
    ContextEvent,
    DoneEvent,
    ErrorEvent,
    NoticeEvent,
    PassagesEvent,
    ThinkingEvent,
    TokenEvent,
    ToolCallEvent,
    ToolErrorEvent,
    ToolResultEvent,
)
from assistant.http_guard import LoopbackGuard, bypass_proxy_for_loopback, is_loopback_name  # noqa: E402
from assistant.login_limit import LoginRateLimit  # noqa: E402
from assistant.ollama.health import Health  # noqa: E402
from assistant.safe_json import clean_text, json_safe  # noqa: E402
from assistant.ui_conversations import (  # noqa: E402
    BROWSER_STORAGE_KEY,
    LazyStore,
    TurnSaver,
    browser_secret,
    chart_of_turns,
    export_file,
    messages_of_turns,
    owner_for,
    restore_history,
)
from tools.registry import Registry, Tool, ToolError  # noqa: E402

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from assistant.agent import Agent, Conversation
    from assistant.ollama_layer import OllamaLayer
    from knowledge.search import KnowledgeBase, Passage

__all__ = [
    "EXAMPLE_QUESTIONS",
    "ChatSession",
    "FormField",
    "LaunchConfigError",
    "OllamaStatus",
    "StatusProbe",
    "TurnRenderer",
    "arguments_from_form",
    "build_app",
    "form_fields",
    "is_loopback",
    "launch_options",
    "offline_theme",
    "parse_auth",
]

EXAMPLE_QUESTIONS: list[str] = [
    "Will llama3.3:70b fit on a 48 GB M4 Pro with 16k context?",
    "How fast would qwen2.5:32b run on an M3 Max?",
    "What did the article measure for SDXL on a Mac Studio?",
    "I have $1500, what should I buy to run local LLMs?",
]

STATUS_REFRESH_S = 5.0
LOADING_PLACEHOLDER = "Loading your conversations…"
READY_PLACEHOLDER = "Ask a question and press Enter"
# Yield the growing answer to the browser at most this often (plus at every structural event).
STREAM_INTERVAL_S = 0.05
MAX_INPUT_CHARS = 8000
MIN_PASSWORD_CHARS = 12
UPLOAD_LIMIT_BYTES = (
    50 * 1024 * 1024
)  # knowledge.documents.MAX_FILE_BYTES; kept literal so the import stays lazy
SYSTEM_FONTS = [
    "-apple-system",
    "BlinkMacSystemFont",
    "Segoe UI",
    "Helvetica Neue",
    "Helvetica",
    "Arial",
    "sans-serif",
]
SYSTEM_MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"]
CSS = """
#ollama-status p { margin: 0; }
/* Charts follow dark mode: plotly writes fixed text colours inline; the page's own colours win here. */
.dark .js-plotly-plot .main-svg text { fill: var(--body-text-color) !important; }
.dark .js-plotly-plot .legend .bg { fill: var(--background-fill-secondary) !important; }
.turn-stats { color: var(--body-text-color-subdued); font-size: 0.85em; }
footer { display: none !important; }
"""

CLOSE_SIDEBAR_ON_PHONES = """() => {
  if (window.innerWidth >= 768) return;
  const toggle = document.querySelector('button.toggle-button[aria-label="Toggle Sidebar"]');
  if (toggle) toggle.click();
}"""


# ---------------------------------------------------------------------------------------------------------
# Launch options and security
# ---------------------------------------------------------------------------------------------------------
class LaunchConfigError(ValueError):
    """A setting combination that must not start the server (e.g. a public bind without auth)."""


def offline_theme() -> gr.themes.Base:
    """Default look with system fonts only: no stylesheet is fetched from fonts.googleapis.com or a CDN."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost" — the only binds allowed without a password."""
    return is_loopback_name(host)


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """`user:pass` -> (user, pass). The password may contain ':'; both parts must be non-empty."""
    if value is None or value == "":
        return None
    user, sep, password = value.partition(":")
    if not sep or not user.strip() or not password:
        raise LaunchConfigError("--auth / ADVISOR_AUTH must look like user:password (both parts non-empty).")
    if len(password) < MIN_PASSWORD_CHARS:
        raise LaunchConfigError(
            f"--auth / ADVISOR_AUTH: the password must be at least {MIN_PASSWORD_CHARS} characters "
            f"(it has {len(password)}); it is all that stands between the network and your documents."
        )
    return user.strip(), password


def launch_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `Blocks.launch`, with the security rules applied.

    Raises LaunchConfigError when binding a non-loopback address without auth: the chat can run tools and
    read the user's documents, so exposing it to a network without a password is refused, not warned about.
    """
    bypass_proxy_for_loopback()  # gradio's start-up check (httpx) would otherwise go to HTTP(S)_PROXY
    # Failed sign-ins are counted per client address. uvicorn takes that address from X-Forwarded-For on
    # loopback connections, so every guess could claim a new one; trust no forwarding header unless the user
    # set FORWARDED_ALLOW_IPS for a reverse proxy of their own.
    os.environ.setdefault("FORWARDED_ALLOW_IPS", "")
    auth = parse_auth(settings.auth)
    if not is_loopback(settings.host) and auth is None:
        raise LaunchConfigError(
            f"Refusing to listen on {settings.host}: binding an address other than loopback (127.0.0.1) "
            "makes the chat reachable from other machines, so it needs a password. "
            "Pass --auth user:password (or set ADVISOR_AUTH), or drop --host to stay on 127.0.0.1."
        )
    return {
        "server_name": settings.host,
        "server_port": settings.port or None,
        "share": False,
        "auth": auth,
        "auth_message": "Mac AI Advisor: sign in with the --auth credentials." if auth else None,
        "inbrowser": False,  # launch.py opens the browser itself, after printing the URL
        "prevent_thread_lock": True,
        "show_error": True,
        "quiet": True,
        "ssr_mode": False,
        "pwa": False,
        "mcp_server": False,
        "enable_monitoring": False,
        "footer_links": [],
        # Uploads (Documents & models tab) larger than the knowledge base accepts are refused before they
        # reach the disk, rather than after.
        "max_file_size": UPLOAD_LIMIT_BYTES,
        "theme": offline_theme(),
        "css": CSS,
        # Host/Origin guard (DNS rebinding, cross-site requests): the same check as the MCP server's.
        # Failed sign-ins are rate-limited per client address (brute force against --auth).
        "app_kwargs": {
            "middleware": [
                Middleware(LoopbackGuard, loopback_only=is_loopback(settings.host), same_port=True),
                *([Middleware(LoginRateLimit)] if auth else []),
            ]
        },
    }


# ---------------------------------------------------------------------------------------------------------
# Ollama status (shared, rate-limited probe)
# ---------------------------------------------------------------------------------------------------------
OllamaStatus = Health  # one status type (assistant.ollama.health.Health)


class StatusProbe:
    """Health + tool-capable model list, cached for `ttl_s` and shared by every session.

    Capabilities come from /api/show, one call per model; they are cached per (name, digest) because they do
    not change unless the model is re-pulled.
    """

    def __init__(self, ollama: OllamaLayer | None, host: str, ttl_s: float = STATUS_REFRESH_S - 0.5) -> None:
        self.ollama = ollama
        self.host = host
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._status: OllamaStatus | None = None
        self._capabilities: dict[tuple[str, str], bool] = {}
        self._ever_ok = False

    @property
    def ever_ok(self) -> bool:
        """Ollama answered a status probe earlier in this process (so it stopped, rather than never was)."""
        return self._ever_ok

    def _supports_tools(self, name: str, digest: str) -> bool:
        key = (name, digest)
        if key not in self._capabilities:
            assert self.ollama is not None
            try:
                caps = self.ollama.model_facts(name).capabilities
            except Exception:  # noqa: BLE001 - an unreadable model is simply not offered
                return False
            # An Ollama too old to report capabilities: offer the model rather than hide every model.
            self._capabilities[key] = caps is None or "tools" in caps
        return self._capabilities[key]

    def _probe(self) -> OllamaStatus:
        if self.ollama is None:
            return OllamaStatus(ok=False, host=self.host, problem="no Ollama client configured")
        try:
            health = self.ollama.health()
        except Exception as exc:  # noqa: BLE001 - a status line must never break the page
            return OllamaStatus(ok=False, host=self.host, problem=str(exc), checked_at=time.monotonic())
        if not health.ok:
            return OllamaStatus(
                ok=False,
                host=self.host,
                problem=health.problem,
                advice=health.advice,
                checked_at=time.monotonic(),
            )
        chat: list[str] = []
        other: list[str] = []
        try:
            for m in self.ollama.installed_models():
                name = str(m.name)
                digest = str(getattr(m, "digest", "") or "")
                (chat if self._supports_tools(name, digest) else other).append(name)
        except Exception as exc:  # noqa: BLE001
            return OllamaStatus(
                ok=True,
                host=self.host,
                version=health.version,
                problem=f"could not list models: {exc}",
                checked_at=time.monotonic(),
            )
        return OllamaStatus(
            ok=True,
            host=self.host,
            version=health.version,
            chat_models=sorted(chat),
            other_models=sorted(other),
            checked_at=time.monotonic(),
        )

    def status(self, *, force: bool = False) -> OllamaStatus:
        """The cached status, refreshed when stale. While one caller probes, others get the last answer
        instead of queueing behind a slow Ollama."""
        if not self._lock.acquire(blocking=self._status is None or force):
            assert self._status is not None
            return self._status
        try:
            now = time.monotonic()
            if force or self._status is None or now - self._status.checked_at >= self.ttl_s:
                status = self._probe()
                if status.ok:
                    self._ever_ok = True
                elif self._ever_ok:
                    # After a working chat, "not installed" (no ollama binary on this machine) is wrong.
                    status = status.model_copy(update={"was_ok": True})
                self._status = status
            return self._status
        finally:
            self._lock.release()


def _same_model(a: str, b: str) -> bool:
    def norm(name: str) -> str:
        return name if ":" in name else name + ":latest"

    return norm(a) == norm(b)


def too_long_advice(length: int) -> str:
    """What the chat says to a message over MAX_INPUT_CHARS: shorten it, or add it as a document."""
    return (
        f"⚠️ That message is {length:,} characters; the limit is {MAX_INPUT_CHARS:,}. It is still in the "
        "input box: shorten it, or save the text as a .txt or .md file and add it in the "
        "**Documents & models** tab; the assistant then searches it and cites it."
    )


def stopped_answering_message(host: str) -> str:
    """The chat's error when Ollama, which answered earlier, no longer does (not "not installed")."""
    return (
        f"Ollama stopped answering at `{host}`. It was working earlier: it may have quit, crashed or be "
        "restarting. Start it again (open the Ollama app or run `ollama serve`), then ask again."
    )


def status_markdown(status: OllamaStatus, settings: Settings, knowledge_mode: str | None) -> str:
    if not status.ok and knowledge_mode == "hybrid":
        # Without Ollama no question can be embedded: search runs on keywords (as the Search tab says).
        knowledge_mode = "keywords only until Ollama is back"
    kb = f" · knowledge search: {knowledge_mode}" if knowledge_mode else ""
    if not status.ok and status.was_ok:
        return (
            f"🔴 **Ollama stopped answering** at `{status.host}`. It was working earlier: it may have quit, "
            "crashed or be restarting. Start it again (open the Ollama app or run `ollama serve`); this line "
            f"turns green by itself once it answers. The Tools and Search tabs work meanwhile.{kb}"
        )
    if not status.ok:
        advice = status.advice or (
            "Install Ollama from https://ollama.com and start it (open the app, or run `ollama serve`)."
        )
        return (
            f"🔴 **Ollama not reachable** at `{status.host}`: {status.problem or 'no answer'}. {advice} "
            f"The Tools and Search tabs work without it; this line turns green by itself once Ollama "
            f"answers.{kb}"
        )
    version = f" {status.version}" if status.version else ""
    head = f"🟢 **Ollama{version}** at `{status.host}`"
    if status.problem:
        return f"{head} · ⚠️ {status.problem}{kb}"
    if not any(_same_model(settings.chat_model, m) for m in status.chat_models):
        if status.chat_models:
            note = (
                f"⚠️ `{settings.chat_model}` is not installed; pick one of the installed tool-capable models "
                f"or run `ollama pull {settings.chat_model}`"
            )
        else:
            note = f"⚠️ no tool-capable chat model installed: run `ollama pull {settings.chat_model}`"
        return f"{head} · {note}{kb}"
    return f"{head} · {len(status.chat_models)} tool-capable model(s){kb}"


# ---------------------------------------------------------------------------------------------------------
# Chat rendering
# ---------------------------------------------------------------------------------------------------------
def _json_block(data: Any, limit: int = 6000) -> str:
    text = json.dumps(
        json_safe(data, max_depth=12, max_chars=2000), indent=2, ensure_ascii=False, default=str
    )
    if len(text) > limit:
        text = text[:limit] + "\n... (truncated)"
    return f"```json\n{text}\n```"


def _bounded(text: str, limit: int = 2000) -> str:
    text = clean_text(text)
    return text if len(text) <= limit else text[:limit] + f" … ({len(text) - limit:,} more characters)"


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]#~|])")


def user_markdown(text: str) -> str:
    """A user's message shown as typed: `<script>` or `<img>` in it are text, never markup (HTML is escaped,
    and so are the Markdown characters that would restyle it)."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(text, quote=False))


_BLOCK_LINE = re.compile(r"^\s*([-*+>|#]|\d+[.)])\s")


def unwrap_lines(text: str) -> list[str]:
    """Paragraphs of a passage with its hard line wraps joined: the chat renders every newline as a line
    break, which cut sentences mid-way; list items, table rows and headings keep their own lines."""
    paragraphs: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines: list[str] = []
        for line in block.splitlines():
            if lines and line.strip() and not _BLOCK_LINE.match(line):
                lines[-1] = lines[-1].rstrip() + " " + line.strip()
            elif line.strip():
                lines.append(line.rstrip())
        if lines:
            paragraphs.append("\n".join(lines))
    return paragraphs


def _passage_markdown(p: Passage, cited: bool, rank: int) -> str:
    """One passage as the chat and the Search tab show it: its rank in the results (a fusion score such as
    0.033 means nothing to a reader), the citation mark, and the text as flowing paragraphs."""
    mark = "✅ cited · " if cited else ""
    section = f" — {p.section}" if p.section else ""
    body = "\n>\n> ".join(par.replace("\n", "\n> ") for par in unwrap_lines(p.text))
    if len(body) > 900:
        body = body[:900].rstrip() + " …"
    return (
        f"**[p:{p.id}] {p.title}{section}**  \n<sub>{mark}#{rank} · {p.origin} · {p.source}</sub>\n> {body}"
    )


@dataclass
class ChatSession:
    """Everything one browser session owns: its conversation and what its chat shows."""

    conversation: Conversation | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    chart: go.Figure | None = None
    turns: int = 0
    owner: str | None = None  # who the stored conversations belong to (browser id or signed-in user)
    conversation_id: str | None = None  # the stored conversation this chat continues
    stop: threading.Event = field(default_factory=threading.Event)  # set by the Stop button
    context: ContextEvent | None = None  # the last request's context figures, for the meter


class TurnRenderer:
    """Turns one turn's agent events into chat messages (messages-format dicts, edited in place).

    `apply` returns True when the change is structural (a new message, a status flip) so the caller yields at
    once; plain tokens are batched by the caller's throttle.
    """

    def __init__(
        self,
        messages: list[dict[str, Any]],
        toolset: Registry | None = None,
        chart_fn: Callable[[str, Mapping[str, Any], Mapping[str, Any]], Any] | None = None,
    ) -> None:
        self.messages = messages
        self.toolset = toolset
        self.chart_fn = chart_fn
        self._answer: dict[str, Any] | None = None
        self._tools: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # call_id -> (message, arguments)
        self._passages: list[Passage] = []
        self._passages_msg: dict[str, Any] | None = None
        self.chart: Any = None
        self.done: DoneEvent | None = None
        self.error: ErrorEvent | None = None
        # Shown instead of an "unavailable" error's own text (which may say Ollama is not installed) when
        # Ollama answered earlier: after a working chat it stopped, it did not vanish.
        self.unavailable_message: str | None = None
        self.context: ContextEvent | None = None
        self.answer_text = ""
        self.tool_calls: list[dict[str, Any]] = []  # name, arguments, ok, error: the turn's tool log
        self._thinking: dict[str, Any] | None = None
        self.tool_results: dict[str, dict[str, Any]] = {}  # call_id -> result (for saving the turn)
        self.stopped = False

    @property
    def passages(self) -> list[Passage]:
        return list(self._passages)

    def stop(self) -> None:
        """Mark the turn as stopped by the user: the partial answer stays, visibly cut."""
        self.stopped = True
        last = self.messages[-1] if self.messages else None
        if self._answer is not None and last is self._answer and str(self._answer["content"]).strip():
            self._answer["content"] = str(self._answer["content"]).rstrip() + " — stopped"
        else:
            self._append({"role": "assistant", "content": "— stopped before the answer began."})

    def _append(self, message: dict[str, Any]) -> dict[str, Any]:
        self.messages.append(message)
        return message

    def apply(self, event: AgentEvent) -> bool:
        if isinstance(event, ContextEvent):  # figures for the meter, not a message: keeps the text run going
            self.context = event
            return False
        if isinstance(event, ThinkingEvent):
            # The model's reasoning goes in its own folded message, never into the answer bubble.
            if self._thinking is None:
                self._answer = None
                self._thinking = self._append(
                    {
                        "role": "assistant",
                        "content": "",
                        "metadata": {"title": "💭 Thinking", "status": "pending"},
                    }
                )
                self._thinking["content"] += event.text
                return True
            self._thinking["content"] += event.text
            return False
        if self._thinking is not None:
            self._thinking["metadata"] = {**self._thinking["metadata"], "status": "done"}
            self._thinking = None
        if isinstance(event, TokenEvent):
            if self._answer is None:
                self._answer = self._append({"role": "assistant", "content": ""})
                self._answer["content"] += event.text
                self.answer_text += event.text
                return True
            self._answer["content"] += event.text
            self.answer_text += event.text
            return False
        # Any non-token message ends the current text run: text after a tool call is a new bubble.
        self._answer = None
        if isinstance(event, PassagesEvent):
            # Retrieved passages and those a search_knowledge call finds later share one message.
            known = {p.id for p in self._passages}
            self._passages += [p for p in event.passages if p.id not in known]
            if not self._passages:
                return True
            if self._passages_msg is None:
                self._passages_msg = self._append({"role": "assistant", "content": ""})
            self._passages_msg["content"] = self._passages_content(set())
            self._passages_msg["metadata"] = {
                "title": f"📚 {len(self._passages)} passages from the knowledge base",
                "status": "done",
            }
            return True
        if isinstance(event, ToolCallEvent):
            msg = self._append(
                {
                    "role": "assistant",
                    "content": "**Arguments**\n" + _json_block(event.arguments),
                    "metadata": {"title": f"🔧 {event.name}", "status": "pending", "id": event.call_id},
                }
            )
            self._tools[event.call_id] = (msg, dict(event.arguments))
            self.tool_calls.append(
                {"call_id": event.call_id, "name": event.name, "arguments": event.arguments}
            )
            return True
        if isinstance(event, ToolResultEvent):
            msg, arguments = self._tool_message(event.call_id, event.name)
            self._log(event.call_id, ok=True)
            self.tool_results[event.call_id] = event.result
            msg["content"] += "\n**Result**\n" + _json_block(event.result)
            msg["metadata"] = {
                **msg["metadata"],
                "title": f"🔧 {event.name}",
                "status": "done",
                "duration": round(event.duration_ms / 1000.0, 3),
            }
            if self.chart_fn is not None:
                try:
                    figure = self.chart_fn(event.name, arguments, event.result)
                except Exception:  # noqa: BLE001 - a chart is decoration; never fail the turn for it
                    figure = None
                if figure is not None:
                    self.chart = figure
            return True
        if isinstance(event, ToolErrorEvent):
            msg, _ = self._tool_message(event.call_id, event.name)
            self._log(event.call_id, ok=False, error=event.error)
            msg["content"] += f"\n**Refused**: {_bounded(event.error)}"
            msg["metadata"] = {**msg["metadata"], "title": f"⚠️ {event.name} (error)", "status": "done"}
            return True
        if isinstance(event, NoticeEvent) and event.kind == "context_dropped":
            # In plain sight, not folded: the answer may miss what the user said earlier.
            self._append({"role": "assistant", "content": f"✂️ {event.text}"})
            return True
        if isinstance(event, NoticeEvent):
            self._append(
                {
                    "role": "assistant",
                    "content": event.text,
                    "metadata": {"title": "ℹ️ Note", "status": "done"},
                }
            )
            return True
        if isinstance(event, DoneEvent):
            self.done = event
            self._finish(event)
            return True
        if isinstance(event, ErrorEvent):
            if event.kind == "unavailable" and self.unavailable_message:
                event = event.model_copy(update={"message": self.unavailable_message})
            self.error = event
            self._append({"role": "assistant", "content": f"⚠️ {event.message}"})
            return True
        return False

    def _log(self, call_id: str, **fields: Any) -> None:
        for call in self.tool_calls:
            if call["call_id"] == call_id:
                call.update(fields)

    def _tool_message(self, call_id: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        if call_id not in self._tools:  # result without a call event: still show it
            msg = self._append(
                {"role": "assistant", "content": "", "metadata": {"title": f"🔧 {name}", "id": call_id}}
            )
            self._tools[call_id] = (msg, {})
        return self._tools[call_id]

    def _passages_content(self, cited: set[str]) -> str:
        return "\n\n".join(
            _passage_markdown(p, p.id in cited, rank) for rank, p in enumerate(self._passages, 1)
        )

    def _finish(self, done: DoneEvent) -> None:
        cited = set(done.citations)
        if self._passages_msg is not None:
            self._passages_msg["content"] = self._passages_content(cited)
            n = len(self._passages)
            used = f"{len(cited)} cited" if cited else "none cited"
            self._passages_msg["metadata"] = {
                **self._passages_msg["metadata"],
                "title": f"📚 {n} passages from the knowledge base ({used})",
            }
        # The stats line closes the last answer bubble; an answer that was all tool calls gets its own bubble.
        last = self.messages[-1] if self.messages else None
        if last is None or last.get("role") != "assistant" or last.get("metadata"):
            last = self._append({"role": "assistant", "content": done.content or ""})
        last["content"] = str(last["content"]).rstrip() + "\n\n" + stats_line(done)


def stats_line(done: DoneEvent) -> str:
    tps = f"{done.tokens_per_second:.1f} tokens/s" if done.tokens_per_second else "tokens/s n/a"
    parts = [f"⚡ {tps}", f"{done.eval_count} tokens", f"{done.total_s:.1f} s"]
    if done.rounds > 1:
        parts.append(f"{done.rounds} model calls")
    if done.model:
        parts.append(done.model)
    return "<sub>" + " · ".join(parts) + "</sub>"


def context_meter_markdown(
    context: ContextEvent | None, settings: Settings | None = None, *, reopened: bool = False
) -> str:
    """The context meter: how much of the window the last request used, and how the window was chosen.

    `reopened`: a stored conversation shown after a reload or restart; its figures come with the next message.
    """
    if context is None:
        setting = settings.num_ctx if settings is not None else "auto"
        if reopened:
            window = "" if setting == "auto" else f"window: {setting:,} tokens · "
            return f"**Context** — {window}measured again at the next message"
        window = "chosen for the model at the first message" if setting == "auto" else f"{setting:,} tokens"
        return f"**Context** — window: {window}"
    fraction = min(1.0, context.fraction)
    cells = 20
    filled = round(fraction * cells)
    bar = "█" * filled + "░" * (cells - filled)
    tools = f" · {len(context.tools)} tool(s) sent" if context.tools else ""
    return (
        f"**Context** ≈ {context.used_tokens:,} / {context.window_tokens:,} tokens ({fraction:.0%})  \n"
        f"`{bar}`  \n<sub>{context.reason}{tools}; {context.reserved_tokens:,} kept for the answer</sub>"
    )


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


# ---------------------------------------------------------------------------------------------------------
# Tool forms generated from the input schemas
# ---------------------------------------------------------------------------------------------------------
FieldKind = Literal["text", "int", "float", "bool", "choice", "json", "list"]


class FormField(BaseModel):
    """One input of a tool form, derived from a property of the tool's JSON schema."""

    name: str
    kind: FieldKind
    label: str
    info: str = ""
    required: bool = False
    default: Any = None
    choices: list[Any] = Field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None


def _schema_types(prop: Mapping[str, Any]) -> list[str]:
    t = prop.get("type")
    if isinstance(t, list):
        return [str(x) for x in t if x != "null"]
    if isinstance(t, str):
        return [t]
    for key in ("anyOf", "oneOf"):
        if isinstance(prop.get(key), list):
            return [x for sub in prop[key] if isinstance(sub, Mapping) for x in _schema_types(sub)]
    return []


def form_fields(tool: Tool) -> list[FormField]:
    """Form inputs for a tool, straight from its input schema (so no tool has a hand-written form)."""
    schema = tool.input_schema()
    required = set(schema.get("required", []))
    out: list[FormField] = []
    for name, prop in schema.get("properties", {}).items():
        types = _schema_types(prop)
        enum = prop.get("enum")
        if enum is None and prop.get("const") is not None:
            enum = [prop["const"]]
        kind: FieldKind
        if enum:
            kind = "choice"
        elif "object" in types:
            kind = "json"
        elif "array" in types:
            item_types = (
                _schema_types(prop.get("items", {})) if isinstance(prop.get("items"), Mapping) else []
            )
            kind = "list" if item_types in (["string"], []) else "json"
        elif "boolean" in types:
            kind = "bool"
        elif "integer" in types:
            kind = "int"
        elif "number" in types:
            kind = "float"
        else:
            kind = "text"
        info = str(prop.get("description", "")).strip()
        if kind == "json" and "properties" in prop:
            keys = ", ".join(prop["properties"])
            info = (info + " " if info else "") + f"JSON object with: {keys}."
        lo = prop.get("minimum", prop.get("exclusiveMinimum"))
        hi = prop.get("maximum", prop.get("exclusiveMaximum"))
        out.append(
            FormField(
                name=name,
                kind=kind,
                label=name.replace("_", " "),
                info=info,
                required=name in required,
                default=prop.get("default"),
                choices=list(enum or []),
                minimum=float(lo) if isinstance(lo, int | float) else None,
                maximum=float(hi) if isinstance(hi, int | float) else None,
            )
        )
    return out


def arguments_from_form(fields: Sequence[FormField], values: Sequence[Any]) -> dict[str, Any]:
    """Form values -> tool arguments. Empty inputs are left out so the tool's own defaults apply.

    Raises ToolError for a JSON field that does not parse, naming the field, like the tool would.
    """
    args: dict[str, Any] = {}
    for spec, value in zip(fields, values, strict=True):
        if value is None:
            continue
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                continue
        if spec.kind == "bool":
            if spec.default is None and value is False and not spec.required:
                # A tri-state bool (None = no preference) left unticked means "no preference".
                continue
            args[spec.name] = bool(value)
        elif spec.kind in ("int", "float"):
            args[spec.name] = _number(spec, value)
        elif spec.kind == "json":
            try:
                args[spec.name] = json.loads(value) if isinstance(value, str) else value
            except json.JSONDecodeError as exc:
                raise ToolError(f"{spec.name}: not valid JSON ({exc.msg})", fields=[spec.name]) from None
        elif spec.kind == "list":
            items = [x.strip() for x in str(value).replace("\n", ",").split(",")]
            args[spec.name] = [x for x in items if x]
        else:
            args[spec.name] = value
    return args


def _number(spec: FormField, value: Any) -> int | float:
    """Optional numbers come from a text box (an empty gr.Number would send 0, not "unset")."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ToolError(f"{spec.name}: {str(value)!r} is not a number", fields=[spec.name]) from None
    if spec.kind == "int" and number.is_integer():
        return int(number)
    return number


def _component_for(spec: FormField, elem_id: str) -> gr.components.Component:
    label = spec.label + (" *" if spec.required else "")
    info = spec.info or None
    if spec.kind == "choice":
        choices = list(spec.choices)
        value = spec.default if spec.default in choices else (None if not spec.required else choices[0])
        return gr.Dropdown(
            choices=choices, value=value, label=label, info=info, allow_custom_value=False, elem_id=elem_id
        )
    if spec.kind == "bool":
        return gr.Checkbox(value=bool(spec.default), label=label, info=info, elem_id=elem_id)
    if spec.kind in ("int", "float") and spec.default is None:
        kind = "whole number" if spec.kind == "int" else "number"
        return gr.Textbox(
            value=None, label=label, info=info, placeholder=f"{kind}, optional", elem_id=elem_id
        )
    if spec.kind in ("int", "float"):
        return gr.Number(
            value=spec.default,
            label=label,
            info=info,
            precision=0 if spec.kind == "int" else None,
            elem_id=elem_id,
        )
    if spec.kind == "json":
        return gr.Code(
            value=None, language="json", label=label + " (JSON, optional)", lines=3, elem_id=elem_id
        )
    placeholder = str(spec.default) if spec.default is not None else None
    return gr.Textbox(value=None, label=label, info=info, placeholder=placeholder, lines=1, elem_id=elem_id)


def _machine_line(option: Mapping[str, Any], *, note: bool = False) -> str:
    """Machine — price · speed · fit, on one line (the price note only when asked: it can be long)."""
    price = option.get("approx_price_usd")
    parts = [f"about ${price:,.0f}" if isinstance(price, int | float) else "price unknown"]
    speed = option.get("expected_tokens_per_second")
    if isinstance(speed, int | float):
        band = option.get("expected_range")
        span = f" ({band[0]:.0f}–{band[1]:.0f})" if isinstance(band, list | tuple) and len(band) == 2 else ""
        parts.append(f"~{speed:.0f} tokens/s{span}")
    if option.get("fit_verdict"):
        parts.append("fit: " + str(option["fit_verdict"]).replace("_", " "))
    line = f"**{option.get('machine', '?')}** — " + " · ".join(parts)
    if note and option.get("price_note"):
        line += f"  \n  <sub>Price: {option['price_note']}</sub>"
    return line


def _recommendation_lines(result: Mapping[str, Any]) -> list[str]:
    """recommend_machine's answer first: which machine, what it costs, how fast it runs the target model."""
    rec = result.get("recommendation")
    lines = ["", "**Recommended machine**"]
    lines.append(
        f"- {_machine_line(rec, note=True)}" if isinstance(rec, Mapping) else "- none: the advice is to wait"
    )
    if result.get("summary"):
        lines.append(f"\n{result['summary']}")
    alternatives = [a for a in result.get("alternatives") or [] if isinstance(a, Mapping)]
    if alternatives:
        lines.append("\n**Alternatives**")
        lines.extend(f"- {_machine_line(a)}" for a in alternatives[:5])
    return lines


def _result_markdown(tool_name: str, result: Mapping[str, Any]) -> str:
    lines = [f"**{tool_name}** ran."]
    if "recommendation" in result:
        lines.extend(_recommendation_lines(result))
    for key in ("verdict", "expected_tokens_per_second", "ceiling_tokens_per_second", "max_context_tokens"):
        if key in result:
            lines.append(f"- {key.replace('_', ' ')}: **{result[key]}**")
    for key in ("suggestions", "reasons", "assumptions"):
        items = result.get(key) or []
        if items:
            lines.append(f"\n**{key.capitalize()}**")
            lines.extend(f"- {x}" for x in items[:12])
    if result.get("sources"):
        lines.append("\n<sub>Sources: " + "; ".join(str(s) for s in result["sources"][:8]) + "</sub>")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Search tab
# ---------------------------------------------------------------------------------------------------------
def search_markdown(knowledge: KnowledgeBase | None, query: str, k: int) -> str:
    query = (query or "").strip()
    if not query:
        return "Type a question or some keywords."
    if knowledge is None:
        return "⚠️ The knowledge base is not loaded (see the terminal where launch.py runs)."
    try:
        out = knowledge.search(query[:2000], k=int(k))
    except Exception as exc:  # noqa: BLE001 - show, do not crash the tab
        return f"⚠️ Search failed: {exc}"
    # The status line's words: "knowledge search: hybrid" or "keywords only" (lexical), never two names.
    mode = "hybrid" if out.mode == "hybrid" else "keywords only"
    count = len(out.passages)
    head = f"**{count} passage{'' if count == 1 else 's'}** · knowledge search: {mode}"
    notes = "".join(f"\n\n<sub>{a}</sub>" for a in out.assumptions)
    if not out.passages:
        return head + notes + "\n\nNothing matched."
    body = "\n\n---\n\n".join(
        _passage_markdown(p, cited=False, rank=rank) for rank, p in enumerate(out.passages, 1)
    )
    return f"{head}{notes}\n\n{body}"


# ---------------------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------------------
def _knowledge_mode(knowledge: KnowledgeBase | None) -> str | None:
    """What the last index sync achieved; the knowledge base retries embeddings itself when Ollama is back."""
    if knowledge is None:
        return "unavailable"
    report = getattr(knowledge, "last_report", None)
    if report is None:
        return None
    return "hybrid" if report.mode == "hybrid" else "keywords only (no embeddings yet)"


def build_app(
    settings: Settings,
    *,
    agent: Agent | None,
    toolset: Registry,
    knowledge: KnowledgeBase | None = None,
    ollama: OllamaLayer | None = None,
    status_probe: StatusProbe | None = None,
) -> gr.Blocks:
    """The whole UI. `agent` may be None (chat then explains why); Tools and Search work regardless."""
    if status_probe is None:
        # Its own client with a short timeout: a hung Ollama must not hold the status line for minutes.
        from assistant.ollama_layer import OllamaLayer

        probe_layer = (
            OllamaLayer(settings.ollama_host, timeout_s=settings.probe_timeout_s) if ollama else None
        )
        status_probe = StatusProbe(probe_layer, settings.ollama_host)
    probe = status_probe

    def chart_fn(name: str, arguments: Mapping[str, Any], result: Mapping[str, Any]) -> Any:
        return chart_for_tool_result(name, arguments, result, toolset)

    def model_choices(status: OllamaStatus) -> tuple[list[str], str]:
        choices = list(status.chat_models)
        value = settings.chat_model
        match = next((m for m in choices if _same_model(m, value)), None)
        if match is not None:
            value = match
        elif choices:
            value = choices[0]
        else:
            choices = [value]
        return choices, value

    initial = probe.status()
    initial_choices, initial_model = model_choices(initial)
    store = LazyStore(settings.data_dir)

    with gr.Blocks(title="Mac AI Advisor", analytics_enabled=False, fill_width=False) as app:
        session_state = gr.State(None)
        browser_id = gr.BrowserState(
            None, storage_key=BROWSER_STORAGE_KEY, secret=browser_secret(settings.data_dir)
        )
        with gr.Sidebar(label="Conversations", open=True, elem_id="conversations-sidebar"):
            new_conv = gr.Button("+ New conversation", elem_id="new-conversation")
            conv_list = gr.Radio(
                choices=[], value=None, label="Conversations", elem_id="conversation-list", interactive=True
            )
            conv_title = gr.Textbox(label="Title", elem_id="conversation-title", max_lines=1)
            with gr.Row():
                rename_btn = gr.Button("Rename", size="sm", elem_id="rename-conversation")
                delete_btn = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-conversation")
            export_btn = gr.Button("Export as Markdown", size="sm", elem_id="export-conversation")
            export_out = gr.File(label="Markdown export", visible=False, elem_id="conversation-export")
        seen_models = gr.State(initial_choices)
        gr.Markdown(
            "## Mac AI Advisor\nWhich Mac, which model, how fast, will it fit — answered by a local model "
            "with tools and cited passages. Nothing leaves this machine."
        )
        status_md = gr.Markdown(
            status_markdown(initial, settings, _knowledge_mode(knowledge)), elem_id="ollama-status"
        )
        timer = gr.Timer(STATUS_REFRESH_S)

        with gr.Tabs():
            with gr.Tab("Chat", id="chat"), gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Chat",
                        elem_id="chatbot",
                        height=560,
                        buttons=["copy"],
                        feedback_options=None,
                        placeholder="Ask about Macs and local models — try an example below.",
                        group_consecutive_messages=False,
                    )
                    with gr.Row():
                        # Closed until the page knows whose it is (on_load): a question sent before that would
                        # belong to no one, so it could neither be saved nor listed in the sidebar.
                        msg = gr.Textbox(
                            placeholder=LOADING_PLACEHOLDER,
                            interactive=False,
                            show_label=False,
                            scale=8,
                            min_width=120,
                            elem_id="chat-input",
                            max_lines=6,
                            autofocus=True,
                        )
                        # Narrow minimum widths (default 160 px each) leave the question box most of the row
                        # and keep box, Send and Stop on one line at 390 px.
                        send = gr.Button(
                            "Send",
                            variant="primary",
                            scale=1,
                            min_width=70,
                            elem_id="send",
                            interactive=False,
                        )
                        stop_btn = gr.Button("Stop", variant="stop", scale=1, min_width=70, elem_id="stop")
                    gr.Examples(examples=[[q] for q in EXAMPLE_QUESTIONS], inputs=[msg], label="Examples")
                with gr.Column(scale=2):
                    model_dd = gr.Dropdown(
                        choices=initial_choices,
                        value=initial_model,
                        label="Chat model",
                        info="Installed Ollama models that support tool calling.",
                        allow_custom_value=True,
                        elem_id="model-picker",
                    )
                    meter = gr.Markdown(context_meter_markdown(None, settings), elem_id="context-meter")
                    clear = gr.Button("Clear chat", elem_id="clear")
                    chart = gr.Plot(label="Chart", elem_id="chat-chart")

            with gr.Tab("Tools", id="tools"):
                gr.Markdown(
                    "Run any tool directly — no model needed. Empty fields use the tool's defaults; "
                    "on a Mac the machine fields default to this Mac where the tool supports it."
                )
                with gr.Tabs():
                    for tool in toolset:
                        _tool_form(tool, toolset)

            with gr.Tab("Search", id="search"):
                with gr.Row():
                    query = gr.Textbox(label="Search the knowledge base", scale=6, elem_id="search-input")
                    k = gr.Slider(1, 20, value=5, step=1, label="passages", scale=1)
                search_btn = gr.Button("Search", variant="primary", elem_id="search-button")
                results = gr.Markdown(elem_id="search-results")

            from assistant.ui_documents import mount_documents_tab

            mount_documents_tab(
                settings,
                knowledge=knowledge,
                ollama=ollama,
                probe=probe,
                model_picker=model_dd,
                seen_models=seen_models,
            )

        # Hidden API surface: message + model in, streamed answer text + turn summary out (session-scoped).
        with gr.Row(visible=False):
            api_message = gr.Textbox()
            api_model = gr.Textbox()
            api_answer = gr.Textbox()
            api_summary = gr.JSON()
            api_button = gr.Button()

        # ---- handlers ------------------------------------------------------------------------------------
        def respond(
            message: str, session: ChatSession | None, model: str | None
        ) -> Iterator[tuple[Any, ...]]:
            session = session or ChatSession()
            text = clean_text((message or "").strip())
            if not text:
                yield gr.skip(), session.messages, session, gr.skip()
                return
            if len(text) > MAX_INPUT_CHARS:
                session.messages.append({"role": "user", "content": user_markdown(text[:200]) + " …"})
                session.messages.append({"role": "assistant", "content": too_long_advice(len(text))})
                # The text stays in the input box, so nothing typed or pasted is lost.
                yield gr.skip(), session.messages, session, gr.skip()
                return
            if agent is None:
                session.messages.append({"role": "user", "content": user_markdown(text)})
                session.messages.append(
                    {"role": "assistant", "content": "⚠️ The chat is not available: the agent did not start."}
                )
                yield "", session.messages, session, gr.skip()
                return
            if session.conversation is None:
                session.conversation = agent.new_conversation()
            session.stop.clear()
            saver = TurnSaver.begin(store.get(), session, text)
            session.messages.append({"role": "user", "content": user_markdown(text)})
            if saver is not None and saver.problem:
                session.messages.append({"role": "assistant", "content": saver.problem})
            # The side chart belongs to the answer being written: clear the previous answer's chart.
            session.chart = None
            yield "", session.messages, session, None
            renderer = TurnRenderer(session.messages, toolset, chart_fn)
            if probe.ever_ok:
                renderer.unavailable_message = stopped_answering_message(settings.ollama_host)
            shown_chart = None
            saved = False
            try:
                for _ in run_turn(session, agent, text, model, renderer, stop=session.stop):
                    ended = renderer.done is not None or renderer.error is not None or renderer.stopped
                    if saver is not None and ended and not saved:
                        # Saved before the browser shows the finished answer, so a reload right after it
                        # appears reopens the answer rather than an unanswered question.
                        saver.finish(session, renderer, stopped=renderer.stopped)
                        saved = True
                    plot = gr.skip()
                    if renderer.chart is not None and renderer.chart is not shown_chart:
                        shown_chart = renderer.chart
                        session.chart = renderer.chart
                        plot = renderer.chart
                    yield gr.skip(), session.messages, session, plot
            finally:
                unsaved = saver is not None and saver.problem is not None
                if saver is not None and not saved:
                    saver.finish(session, renderer, stopped=renderer.stopped)
            if saver is not None and saver.problem and not unsaved:  # the answer could not be saved
                session.messages.append({"role": "assistant", "content": saver.problem})
                yield gr.skip(), session.messages, session, gr.skip()

        def clear_chat(session: ChatSession | None) -> tuple[Any, ...]:
            # A new conversation; the previous one stays in the sidebar.
            return [], ChatSession(owner=session.owner if session else None), None, ""

        def request_stop(session: ChatSession | None) -> None:
            stop_turn(session)

        def conversation_list(session: ChatSession | None) -> tuple[Any, Any]:
            """(sidebar list update, title box update) for this session's owner."""
            db = store.get()
            if db is None or session is None or not session.owner:
                return gr.Radio(choices=[], value=None), gr.Textbox(value="")
            records = db.list(session.owner)
            current = next((r for r in records if r.id == session.conversation_id), None)
            return (
                gr.Radio(choices=[(r.title, r.id) for r in records], value=current.id if current else None),
                gr.Textbox(value=current.title if current else ""),
            )

        def after_turn(session: ChatSession | None) -> tuple[Any, Any]:
            """The sidebar after an answer; the title box only changes when the turn started a conversation
            (so a title being typed meanwhile is not overwritten)."""
            listing, title = conversation_list(session)
            return listing, (title if session is not None and session.turns <= 1 else gr.skip())

        def open_conversation(session: ChatSession | None, conversation_id: str | None) -> tuple[Any, ...]:
            """(session, chatbot, chart, list, title) showing the stored conversation `conversation_id`."""
            owner = session.owner if session else None
            db = store.get()
            fresh = ChatSession(owner=owner)
            turns = db.turns(owner, conversation_id) if db and owner and conversation_id else []
            if turns:
                fresh.conversation_id = conversation_id
                fresh.messages = messages_of_turns(turns, user_markdown)
                fresh.turns = len(turns)
                fresh.chart = chart_of_turns(turns, chart_fn)
                if agent is not None:
                    fresh.conversation = restore_history(agent, turns)
            return (fresh, fresh.messages, fresh.chart, *conversation_list(fresh))

        def on_load(browser_id: Any, request: gr.Request) -> tuple[Any, ...]:
            """Who this page belongs to, and the most recent conversation reopened."""
            owner, browser_id = owner_for(browser_id, getattr(request, "username", None))
            db = store.get()
            try:
                recent = db.list(owner) if db is not None else []
                opened = open_conversation(ChatSession(owner=owner), recent[0].id if recent else None)
            except sqlite3.Error as exc:  # the chat must open even when the history cannot be read
                gr.Warning(f"Your saved conversations could not be read: {exc}")
                opened = (ChatSession(owner=owner), [], None, gr.Radio(choices=[], value=None), "")
            ready = (gr.Textbox(interactive=True, placeholder=READY_PLACEHOLDER), gr.Button(interactive=True))
            return (browser_id, *opened, *ready)

        def select_conversation(conversation_id: str | None, session: ChatSession | None) -> tuple[Any, ...]:
            if session is not None and conversation_id == session.conversation_id:
                return (session, session.messages, session.chart, *conversation_list(session))
            return open_conversation(session, conversation_id)

        def rename_conversation(title: str, session: ChatSession | None) -> tuple[Any, Any]:
            db = store.get()
            if db is not None and session is not None and session.owner and session.conversation_id:
                db.rename(session.owner, session.conversation_id, title or "")
            return conversation_list(session)

        def delete_conversation(session: ChatSession | None) -> tuple[Any, ...]:
            db = store.get()
            if db is not None and session is not None and session.owner and session.conversation_id:
                db.delete(session.owner, session.conversation_id)
            return open_conversation(ChatSession(owner=session.owner if session else None), None)

        def export_conversation(session: ChatSession | None) -> Any:
            db = store.get()
            if db is None or session is None or not session.owner or not session.conversation_id:
                gr.Info("Nothing to export yet: ask a question first.")
                return gr.File(value=None, visible=False)
            path = export_file(db, session.owner, session.conversation_id)
            return gr.File(value=str(path) if path else None, visible=path is not None)

        def refresh_status(current_model: str | None, seen: list[str]) -> tuple[Any, ...]:
            status = probe.status()
            md = status_markdown(status, settings, _knowledge_mode(knowledge))
            choices, default = model_choices(status)
            if choices == seen:
                return md, gr.skip(), seen
            if current_model in choices:
                # Leave the value alone: `current_model` may be stale by the time this lands (a pull in the
                # Documents & models tab may just have selected the model it installed).
                return md, gr.Dropdown(choices=choices), choices
            return md, gr.Dropdown(choices=choices, value=default), choices

        def chat_api(message: str, model: str, session: ChatSession | None) -> Iterator[tuple[Any, ...]]:
            """Streamed answer for gradio_client: (answer so far, turn summary, session)."""
            session = session or ChatSession()
            text = clean_text((message or "").strip())
            if agent is None or not text or len(text) > MAX_INPUT_CHARS:
                reason = (
                    "agent not available"
                    if agent is None
                    else "The message is empty."
                    if not text
                    else too_long_advice(len(text)).removeprefix("⚠️ ")
                )
                yield "", {"error": reason}, session
                return
            renderer = TurnRenderer([], toolset, None)
            for _ in run_turn(session, agent, text, model or None, renderer):
                yield renderer.answer_text, gr.skip(), session
            summary: dict[str, Any] = {"tool_calls": renderer.tool_calls}
            if renderer.done is not None:
                summary.update(renderer.done.model_dump(exclude={"content"}))
            if session.context is not None:
                summary["context"] = session.context.model_dump()
            if renderer.error is not None:
                summary["error"] = renderer.error.message
                summary["error_kind"] = renderer.error.kind
            # An answer that never streamed (e.g. the tool budget ran out) is still the answer.
            answer = renderer.answer_text or (renderer.done.content if renderer.done is not None else "")
            # Whatever the model put in its tool calls, the summary must encode (10**30, 800-deep JSON...).
            yield answer, json_safe(summary, max_depth=12, max_chars=2000), session

        chat_inputs = [msg, session_state, model_dd]
        chat_outputs = [msg, chatbot, session_state, chart]
        common = {"api_visibility": "private", "trigger_mode": "once", "show_progress": "minimal"}

        def show_meter(session: ChatSession | None) -> str:
            if session is None:
                return context_meter_markdown(None, settings)
            return context_meter_markdown(session.context, settings, reopened=bool(session.messages))

        meter_args: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
        private: dict[str, Any] = {"api_visibility": "private"}
        listing = [conv_list, conv_title]
        for trigger in (msg.submit, send.click):
            trigger(respond, chat_inputs, chat_outputs, **common).then(  # type: ignore[arg-type]
                after_turn, [session_state], listing, **private
            ).then(show_meter, [session_state], [meter], **meter_args)
        # Not queued: it must get through while this session's answer holds the queue.
        stop_btn.click(request_stop, [session_state], None, queue=False, **private)
        # The Chatbot's own trash icon and "New conversation" start a new conversation too.
        for trigger in (clear.click, chatbot.clear, new_conv.click):
            trigger(clear_chat, [session_state], [chatbot, session_state, chart, msg], **private).then(
                conversation_list, [session_state], listing, **private
            ).then(show_meter, [session_state], [meter], **meter_args)
        opened = [session_state, chatbot, chart, conv_list, conv_title]
        app.load(on_load, [browser_id], [browser_id, *opened, msg, send], **private).then(
            show_meter, [session_state], [meter], **meter_args
        )
        # On a phone the open sidebar would cover the chat: start it closed there (its toggle reopens it).
        app.load(None, None, None, js=CLOSE_SIDEBAR_ON_PHONES, **private)
        conv_list.input(select_conversation, [conv_list, session_state], opened, **private).then(
            show_meter, [session_state], [meter], **meter_args
        )
        rename_btn.click(rename_conversation, [conv_title, session_state], listing, **private)
        conv_title.submit(rename_conversation, [conv_title, session_state], listing, **private)
        delete_btn.click(delete_conversation, [session_state], opened, **private).then(
            show_meter, [session_state], [meter], **meter_args
        )
        export_btn.click(export_conversation, [session_state], [export_out], **private)
        timer.tick(
            refresh_status,
            [model_dd, seen_models],
            [status_md, model_dd, seen_models],
            api_visibility="private",
            show_progress="hidden",
            queue=False,
        )
        search_inputs = [query, k]
        query.submit(
            lambda q, n: search_markdown(knowledge, q, n), search_inputs, results, api_name="search_knowledge"
        )
        search_btn.click(
            lambda q, n: search_markdown(knowledge, q, n), search_inputs, results, api_visibility="private"
        )
        api_button.click(
            chat_api,
            [api_message, api_model, session_state],
            [api_answer, api_summary, session_state],
            api_name="chat",
            api_description="One chat turn in this client's session; streams the answer, then a summary.",
        )

    # Chats wait on Ollama, not on the CPU: let many sessions stream at once (Ollama queues them itself).
    app.queue(default_concurrency_limit=32, max_size=256)
    return app


def _tool_form(tool: Tool, toolset: Registry) -> None:
    """One sub-tab with a form for `tool`, rendered inside the current Blocks context."""
    specs = form_fields(tool)
    with gr.Tab(tool.name, id=f"tool-{tool.name}"):
        gr.Markdown(tool.description)
        inputs: list[gr.components.Component] = []
        with gr.Row():
            cols = [gr.Column(), gr.Column()]
        for i, spec in enumerate(specs):
            with cols[i % 2]:
                inputs.append(_component_for(spec, f"{tool.name}-{spec.name}"))
        run = gr.Button(f"Run {tool.name}", variant="primary", elem_id=f"run-{tool.name}")
        summary = gr.Markdown(elem_id=f"summary-{tool.name}")
        plot = gr.Plot(visible=False, label="Chart", elem_id=f"tools-chart-{tool.name}")
        with gr.Accordion("Full result (JSON)", open=False):
            raw = gr.JSON(label=None)

        def run_tool(*values: Any) -> tuple[Any, ...]:
            try:
                arguments = arguments_from_form(specs, values)
                result = tool.run(arguments).model_dump(mode="json")
            except ToolError as err:
                return f"⚠️ {err}", gr.Plot(visible=False), None
            except Exception as exc:  # noqa: BLE001 - wrapped tools (Ollama-backed) may fail otherwise
                return f"⚠️ {tool.name} failed: {exc}", gr.Plot(visible=False), None
            figure = chart_for_tool_result(tool.name, arguments, result, toolset)
            plot_update = (
                gr.Plot(value=figure, visible=True) if figure is not None else gr.Plot(visible=False)
            )
            return _result_markdown(tool.name, result), plot_update, result

        run.click(run_tool, inputs, [summary, plot, raw], api_visibility="private", concurrency_limit=None)
