"""The conversations sidebar and its store: who owns what, saving a turn, reopening, renaming, exporting.

Identity:
- with auth on, the owner is the signed-in user (`request.username`), whatever browser they use;
- otherwise it is a random 128-bit id the page keeps in the browser's localStorage (`gr.BrowserState`),
  encrypted with a secret kept in the data directory, so the same browser finds its conversations after a
  reload and after a restart, and another browser (or a private window) sees none of them.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.conversations_store import (
    ConversationStore,
    PassageRecord,
    ToolCallRecord,
    TurnRecord,
    TurnStatus,
    export_markdown,
)
from assistant.ui.render import ChartFn, TurnRenderer, user_markdown
from assistant.ui.session import ChatSession

if TYPE_CHECKING:
    from assistant.agent import Agent, Conversation

__all__ = [
    "BROWSER_STORAGE_KEY",
    "LazyStore",
    "Sidebar",
    "TurnSaver",
    "browser_secret",
    "chart_of_turns",
    "export_file",
    "messages_of_turns",
    "owner_for",
    "restore_history",
]

log = logging.getLogger(__name__)

BROWSER_STORAGE_KEY = "mac-ai-advisor-browser-id"
_BROWSER_ID = re.compile(r"^[0-9a-f]{32}$")
UNANSWERED_NOTE = "⚠️ No answer was saved for this question: the app stopped while answering. Ask again."


def browser_secret(data_dir: Path) -> str:
    """The key that encrypts the browser id in localStorage; stable across restarts (else every restart
    would make each browser a stranger to its own conversations)."""
    if not Path(data_dir).is_dir():
        return secrets.token_hex(16)  # no data directory (yet): nothing could be stored across restarts
    path = Path(data_dir) / "browser_state.secret"
    try:
        return path.read_text().strip() or _new_secret(path)
    except FileNotFoundError:
        return _new_secret(path)
    except OSError:
        return secrets.token_hex(16)  # unreadable data dir: conversations last as long as this process


def _new_secret(path: Path) -> str:
    value = secrets.token_hex(16)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
    except OSError:
        pass
    return value


def owner_for(browser_id: Any, username: str | None) -> tuple[str, str]:
    """(owner key, browser id to keep). A missing or malformed browser id is replaced by a fresh one."""
    bid = (
        browser_id if isinstance(browser_id, str) and _BROWSER_ID.match(browser_id) else secrets.token_hex(16)
    )
    if username:
        return f"user:{username}", bid
    return f"browser:{bid}", bid


class LazyStore:
    """Opens the SQLite file on first use, so building the app (tests, --help) touches no disk."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._store: ConversationStore | None = None
        self._failed: str | None = None
        self._lock = threading.Lock()

    def get(self) -> ConversationStore | None:
        with self._lock:
            if self._store is None and self._failed is None:
                try:
                    self._store = ConversationStore.in_data_dir(self.data_dir)
                except Exception as exc:  # noqa: BLE001 - chat must work even when history cannot be saved
                    self._failed = str(exc)
            return self._store

    @property
    def problem(self) -> str | None:
        return self._failed


def records_of(renderer: TurnRenderer) -> tuple[list[ToolCallRecord], list[PassageRecord]]:
    """A turn's tool calls (with results) and passages (cited marked), from what the renderer saw."""
    calls = [
        ToolCallRecord(
            name=str(c.get("name", "")),
            arguments=dict(c.get("arguments") or {}),
            result=renderer.tool_results.get(str(c.get("call_id"))),
            error=c.get("error"),
        )
        for c in renderer.tool_calls
    ]
    cited = set(renderer.done.citations) if renderer.done is not None else set()
    passages = [
        PassageRecord(
            id=p.id, title=p.title, section=p.section or "", source=p.source, text=p.text, cited=p.id in cited
        )
        for p in renderer.passages
    ]
    return calls, passages


@dataclass
class TurnSaver:
    """Saves one turn: the question when it starts, the rest in one transaction when it ends.

    A storage failure (disk full, a damaged file) never breaks the chat: `problem` says what happened, the
    page shows it, and the answer goes on unsaved."""

    store: ConversationStore
    owner: str
    turn_id: int
    message_start: int
    history_start: int
    problem: str | None = None

    @classmethod
    def begin(cls, store: ConversationStore | None, session: ChatSession, question: str) -> TurnSaver | None:
        if store is None or not session.owner:
            return None
        history = session.conversation.history if session.conversation is not None else []
        try:
            conversation_id, turn_id = store.begin_turn(session.owner, session.conversation_id, question)
        except (sqlite3.Error, OSError) as exc:
            log.warning("could not save the question: %s", exc)
            return cls(store, session.owner, 0, 0, 0, problem=_problem(store, exc))
        session.conversation_id = conversation_id
        return cls(store, session.owner, turn_id, len(session.messages), len(history))

    def finish(self, session: ChatSession, renderer: TurnRenderer, *, stopped: bool) -> None:
        if self.problem is not None:
            return
        try:
            self._finish(session, renderer, stopped=stopped)
        except (sqlite3.Error, OSError) as exc:
            log.warning("could not save the answer: %s", exc)
            self.problem = _problem(self.store, exc)

    def _finish(self, session: ChatSession, renderer: TurnRenderer, *, stopped: bool) -> None:
        status: TurnStatus = "stopped" if stopped else ("error" if renderer.error is not None else "done")
        calls, passages = records_of(renderer)
        history = session.conversation.history[self.history_start :] if session.conversation else []
        answer = renderer.done.content if renderer.done is not None else renderer.answer_text
        self.store.finish_turn(
            self.owner,
            self.turn_id,
            answer=answer,
            status=status,
            messages=session.messages[self.message_start :],
            history=history,
            tool_calls=calls,
            passages=passages,
        )


def _problem(store: ConversationStore, exc: BaseException) -> str:
    return (
        f"⚠️ This conversation is not being saved ({exc}; file {store.path}). The chat goes on, but it will "
        "not come back after a reload. Check free disk space and that the data directory is writable."
    )


def messages_of_turns(turns: list[TurnRecord], render_question: Callable[[str], str]) -> list[dict[str, Any]]:
    """What the chat showed, turn after turn; a question whose answer was lost in a crash is marked."""
    out: list[dict[str, Any]] = []
    for turn in turns:
        if turn.messages:
            out.extend(turn.messages)
        else:
            out.append({"role": "user", "content": render_question(turn.question)})
            out.append({"role": "assistant", "content": UNANSWERED_NOTE})
    return out


def restore_history(agent: Agent, turns: list[TurnRecord]) -> Conversation:
    """A fresh agent conversation whose history is the stored one, so follow-ups have their context."""
    return agent.resume_conversation([m for turn in turns for m in turn.history], len(turns))


def chart_of_turns(turns: list[TurnRecord], chart_fn: ChartFn) -> Any:
    """The chart of the last answer, redrawn from its stored tool result (None when it had none)."""
    if not turns:
        return None
    figure = None
    for call in turns[-1].tool_calls:
        if call.result is not None:
            try:
                figure = chart_fn(call.name, call.arguments, call.result) or figure
            except Exception:  # noqa: BLE001 - decoration only
                continue
    return figure


def export_file(store: ConversationStore, owner: str, conversation_id: str) -> Path | None:
    """Write the conversation as Markdown to a fresh temporary file (Gradio serves it as a download)."""
    record = store.get(owner, conversation_id)
    if record is None:
        return None
    text = export_markdown(record, store.turns(owner, conversation_id))
    slug = re.sub(r"[^A-Za-z0-9]+", "-", record.title).strip("-")[:50] or "conversation"
    folder = Path(tempfile.mkdtemp(prefix="advisor-export-"))
    path = folder / f"{slug}.md"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Sidebar:
    """The sidebar's handlers: which conversations this page's owner has, opening, renaming, deleting and
    exporting one, a new chat, and reopening the most recent conversation when the page loads."""

    store: LazyStore
    agent: Agent | None
    chart_fn: ChartFn

    def listing(self, session: ChatSession | None) -> tuple[Any, Any]:
        """(sidebar list update, title box update) for this session's owner."""
        db = self.store.get()
        if db is None or session is None or not session.owner:
            return gr.Radio(choices=[], value=None), gr.Textbox(value="")
        records = db.list(session.owner)
        current = next((r for r in records if r.id == session.conversation_id), None)
        return (
            gr.Radio(choices=[(r.title, r.id) for r in records], value=current.id if current else None),
            gr.Textbox(value=current.title if current else ""),
        )

    def after_turn(self, session: ChatSession | None) -> tuple[Any, Any]:
        """The sidebar after an answer; the title box only changes when the turn started a conversation
        (so a title being typed meanwhile is not overwritten)."""
        listing, title = self.listing(session)
        return listing, (title if session is not None and session.turns <= 1 else gr.skip())

    def open(self, session: ChatSession | None, conversation_id: str | None) -> tuple[Any, ...]:
        """(session, chatbot, chart, list, title) showing the stored conversation `conversation_id`."""
        owner = session.owner if session else None
        db = self.store.get()
        fresh = ChatSession(owner=owner)
        turns = db.turns(owner, conversation_id) if db and owner and conversation_id else []
        if turns:
            fresh.conversation_id = conversation_id
            fresh.messages = messages_of_turns(turns, user_markdown)
            fresh.turns = len(turns)
            fresh.chart = chart_of_turns(turns, self.chart_fn)
            if self.agent is not None:
                fresh.conversation = restore_history(self.agent, turns)
        return (fresh, fresh.messages, fresh.chart, *self.listing(fresh))

    def on_load(self, browser_id: Any, request: gr.Request) -> tuple[Any, ...]:
        """Who this page belongs to, and the most recent conversation reopened."""
        owner, browser_id = owner_for(browser_id, request.username)
        db = self.store.get()
        recent = db.list(owner) if db is not None else []
        return (browser_id, *self.open(ChatSession(owner=owner), recent[0].id if recent else None))

    def select(self, conversation_id: str | None, session: ChatSession | None) -> tuple[Any, ...]:
        if session is not None and conversation_id == session.conversation_id:
            return (session, session.messages, session.chart, *self.listing(session))
        return self.open(session, conversation_id)

    def rename(self, title: str, session: ChatSession | None) -> tuple[Any, Any]:
        db = self.store.get()
        if db is not None and session is not None and session.owner and session.conversation_id:
            db.rename(session.owner, session.conversation_id, title or "")
        return self.listing(session)

    def delete(self, session: ChatSession | None) -> tuple[Any, ...]:
        db = self.store.get()
        if db is not None and session is not None and session.owner and session.conversation_id:
            db.delete(session.owner, session.conversation_id)
        return self.open(ChatSession(owner=session.owner if session else None), None)

    def export(self, session: ChatSession | None) -> Any:
        db = self.store.get()
        if db is None or session is None or not session.owner or not session.conversation_id:
            gr.Info("Nothing to export yet: ask a question first.")
            return gr.File(value=None, visible=False)
        path = export_file(db, session.owner, session.conversation_id)
        return gr.File(value=str(path) if path else None, visible=path is not None)

    def new_chat(self, session: ChatSession | None) -> tuple[Any, ...]:
        """A new conversation (chatbot, session, chart, input box); the previous one stays in the sidebar."""
        return [], ChatSession(owner=session.owner if session else None), None, ""
