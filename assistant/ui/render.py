"""Chat rendering: one turn's typed agent events become chat messages (messages-format dicts).

Tool calls become collapsible messages (pending -> done), retrieved passages one collapsible "sources"
message marking the cited ones, the model's reasoning its own folded message, and a tokens/s line closes each
answer. A tool result that has a chart sets `TurnRenderer.chart` for the chart beside the chat.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from assistant import events as ev
from assistant.config import Settings
from assistant.safe_json import clean_text, json_safe
from knowledge.schemas import MAX_QUERY_CHARS

if TYPE_CHECKING:
    from knowledge.schemas import Passage
    from knowledge.search import KnowledgeBase
    from tools.registry import Registry

__all__ = [
    "ChartFn",
    "TurnRenderer",
    "context_meter_markdown",
    "passage_markdown",
    "search_markdown",
    "stats_line",
    "unwrap_lines",
    "user_markdown",
]

ChartFn = Callable[[str, Mapping[str, Any], Mapping[str, Any]], Any]
Message = dict[str, Any]


def json_block(data: Any, limit: int = 6000) -> str:
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


def passage_markdown(p: Passage, cited: bool, rank: int) -> str:
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


class TurnRenderer:
    """Turns one turn's agent events into chat messages (messages-format dicts, edited in place).

    `apply` returns True when the change is structural (a new message, a status flip) so the caller yields at
    once; plain tokens are batched by the caller's throttle.
    """

    def __init__(
        self,
        messages: list[Message],
        toolset: Registry | None = None,
        chart_fn: ChartFn | None = None,
    ) -> None:
        self.messages = messages
        self.toolset = toolset
        self.chart_fn = chart_fn
        self._answer: Message | None = None
        self._tools: dict[str, tuple[Message, dict[str, Any]]] = {}  # call_id -> (message, arguments)
        self._passages: list[Passage] = []
        self._passages_msg: Message | None = None
        self.chart: Any = None
        self.done: ev.DoneEvent | None = None
        self.error: ev.ErrorEvent | None = None
        # Shown instead of an "unavailable" error's own text (which may say Ollama is not installed) when
        # Ollama answered earlier: after a working chat it stopped, it did not vanish.
        self.unavailable_message: str | None = None
        self.context: ev.ContextEvent | None = None
        self.answer_text = ""
        self.tool_calls: list[dict[str, Any]] = []  # name, arguments, ok, error: the turn's tool log
        self._thinking: Message | None = None
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

    def _append(self, message: Message) -> Message:
        self.messages.append(message)
        return message

    def apply(self, event: ev.AgentEvent) -> bool:
        # Context figures are for the meter, not a message: they keep the text run going.
        if isinstance(event, ev.ContextEvent):
            self.context = event
            return False
        if isinstance(event, ev.ThinkingEvent):
            return self._on_thinking(event)
        if self._thinking is not None:
            self._thinking["metadata"] = {**self._thinking["metadata"], "status": "done"}
            self._thinking = None
        if isinstance(event, ev.TokenEvent):
            return self._on_token(event)
        # Any non-token message ends the current text run: text after a tool call is a new bubble.
        self._answer = None
        if isinstance(event, ev.PassagesEvent):
            self._on_passages(event)
        elif isinstance(event, ev.ToolCallEvent):
            self._on_tool_call(event)
        elif isinstance(event, ev.ToolResultEvent):
            self._on_tool_result(event)
        elif isinstance(event, ev.ToolErrorEvent):
            self._on_tool_error(event)
        elif isinstance(event, ev.NoticeEvent):
            self._on_notice(event)
        elif isinstance(event, ev.DoneEvent):
            self.done = event
            self._finish(event)
        elif isinstance(event, ev.ErrorEvent):
            self._on_error(event)
        else:
            return False
        return True

    def _on_thinking(self, event: ev.ThinkingEvent) -> bool:
        # The model's reasoning goes in its own folded message, never into the answer bubble.
        started = self._thinking is None
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
        return started

    def _on_token(self, event: ev.TokenEvent) -> bool:
        started = self._answer is None
        if self._answer is None:
            self._answer = self._append({"role": "assistant", "content": ""})
        self._answer["content"] += event.text
        self.answer_text += event.text
        return started

    def _on_passages(self, event: ev.PassagesEvent) -> None:
        # Retrieved passages and those a search_knowledge call finds later share one message.
        known = {p.id for p in self._passages}
        self._passages += [p for p in event.passages if p.id not in known]
        if not self._passages:
            return
        if self._passages_msg is None:
            self._passages_msg = self._append({"role": "assistant", "content": ""})
        self._passages_msg["content"] = self._passages_content(set())
        self._passages_msg["metadata"] = {
            "title": f"📚 {len(self._passages)} passages from the knowledge base",
            "status": "done",
        }

    def _on_tool_call(self, event: ev.ToolCallEvent) -> None:
        msg = self._append(
            {
                "role": "assistant",
                "content": "**Arguments**\n" + json_block(event.arguments),
                "metadata": {"title": f"🔧 {event.name}", "status": "pending", "id": event.call_id},
            }
        )
        self._tools[event.call_id] = (msg, dict(event.arguments))
        self.tool_calls.append({"call_id": event.call_id, "name": event.name, "arguments": event.arguments})

    def _on_tool_result(self, event: ev.ToolResultEvent) -> None:
        msg, arguments = self._tool_message(event.call_id, event.name)
        self._log(event.call_id, ok=True)
        self.tool_results[event.call_id] = event.result
        msg["content"] += "\n**Result**\n" + json_block(event.result)
        msg["metadata"] = {
            **msg["metadata"],
            "title": f"🔧 {event.name}",
            "status": "done",
            "duration": round(event.duration_ms / 1000.0, 3),
        }
        if self.chart_fn is None:
            return
        try:
            figure = self.chart_fn(event.name, arguments, event.result)
        except Exception:  # noqa: BLE001 - a chart is decoration; never fail the turn for it
            figure = None
        if figure is not None:
            self.chart = figure

    def _on_tool_error(self, event: ev.ToolErrorEvent) -> None:
        msg, _ = self._tool_message(event.call_id, event.name)
        self._log(event.call_id, ok=False, error=event.error)
        msg["content"] += f"\n**Refused**: {_bounded(event.error)}"
        msg["metadata"] = {**msg["metadata"], "title": f"⚠️ {event.name} (error)", "status": "done"}

    def _on_notice(self, event: ev.NoticeEvent) -> None:
        if event.kind == "context_dropped":
            # In plain sight, not folded: the answer may miss what the user said earlier.
            self._append({"role": "assistant", "content": f"✂️ {event.text}"})
            return
        note = {"title": "ℹ️ Note", "status": "done"}
        self._append({"role": "assistant", "content": event.text, "metadata": note})

    def _on_error(self, event: ev.ErrorEvent) -> None:
        if event.kind == "unavailable" and self.unavailable_message:
            event = event.model_copy(update={"message": self.unavailable_message})
        self.error = event
        self._append({"role": "assistant", "content": f"⚠️ {event.message}"})

    def _log(self, call_id: str, **fields: Any) -> None:
        for call in self.tool_calls:
            if call["call_id"] == call_id:
                call.update(fields)

    def _tool_message(self, call_id: str, name: str) -> tuple[Message, dict[str, Any]]:
        if call_id not in self._tools:  # result without a call event: still show it
            msg = self._append(
                {"role": "assistant", "content": "", "metadata": {"title": f"🔧 {name}", "id": call_id}}
            )
            self._tools[call_id] = (msg, {})
        return self._tools[call_id]

    def _passages_content(self, cited: set[str]) -> str:
        return "\n\n".join(
            passage_markdown(p, p.id in cited, rank) for rank, p in enumerate(self._passages, 1)
        )

    def _finish(self, done: ev.DoneEvent) -> None:
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


def stats_line(done: ev.DoneEvent) -> str:
    tps = f"{done.tokens_per_second:.1f} tokens/s" if done.tokens_per_second else "tokens/s n/a"
    parts = [f"⚡ {tps}", f"{done.eval_count} tokens", f"{done.total_s:.1f} s"]
    if done.rounds > 1:
        parts.append(f"{done.rounds} model calls")
    if done.model:
        parts.append(done.model)
    return "<sub>" + " · ".join(parts) + "</sub>"


def context_meter_markdown(
    context: ev.ContextEvent | None, settings: Settings | None = None, *, reopened: bool = False
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


def search_markdown(knowledge: KnowledgeBase | None, query: str, k: int) -> str:
    """The Search tab's answer: the passages found for `query`, ranked, with how the search ran."""
    query = (query or "").strip()
    if not query:
        return "Type a question or some keywords."
    if knowledge is None:
        return "⚠️ The knowledge base is not loaded (see the terminal where launch.py runs)."
    try:
        out = knowledge.search(query[:MAX_QUERY_CHARS], k=int(k))
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
        passage_markdown(p, cited=False, rank=rank) for rank, p in enumerate(out.passages, 1)
    )
    return f"{head}{notes}\n\n{body}"
