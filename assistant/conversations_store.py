"""Conversations that outlive a page reload and a restart: SQLite (stdlib `sqlite3`) in the data directory.

Why this shape:
- One row per conversation (owner, title, times) and one row per turn. A turn row is inserted with the
  question when the turn starts and completed in one transaction when it ends, so a crash mid-answer loses
  at most that answer: the question stays, marked as unanswered.
- A turn keeps three things: what the chat showed (the Chatbot's message dicts, so a reopened conversation
  looks as it did), what the agent had in its history for it (so follow-ups after a reopen work), and a
  structured record (tool calls with arguments and results, passages with the cited ones) for the Markdown
  export and for redrawing the answer's chart.
- Every query is scoped by `owner`: a browser's random id, or the signed-in user's name when auth is on. A
  conversation id from another owner behaves exactly like one that does not exist.
- A short-lived connection per operation (WAL journal): safe from any Gradio worker thread without a shared
  connection or lock, and cheap next to a model call.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "ConversationRecord",
    "ConversationStore",
    "PassageRecord",
    "ToolCallRecord",
    "TurnRecord",
    "export_markdown",
]

DB_NAME = "conversations.sqlite3"
MAX_TITLE_CHARS = 120
TurnStatus = Literal["answering", "done", "stopped", "error"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_owner ON conversations(owner, updated);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    question TEXT NOT NULL,
    answer TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    messages_json TEXT NOT NULL DEFAULT '[]',
    history_json TEXT NOT NULL DEFAULT '[]',
    record_json TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_conversation ON turns(conversation_id, id);
"""


class ToolCallRecord(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None


class PassageRecord(BaseModel):
    id: str
    title: str = ""
    section: str = ""
    source: str = ""
    text: str = ""
    cited: bool = False


class TurnRecord(BaseModel):
    """One question and what answering it did."""

    id: int
    question: str
    answer: str = ""
    status: TurnStatus = "done"
    messages: list[dict[str, Any]] = Field(default_factory=list)
    history: list[dict[str, Any]] = Field(default_factory=list)
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    passages: list[PassageRecord] = Field(default_factory=list)
    created: float = 0.0


class ConversationRecord(BaseModel):
    id: str
    title: str
    created: float
    updated: float


def _title_from(question: str) -> str:
    line = " ".join(question.split())
    return line if len(line) <= 60 else line[:59].rstrip() + "…"


class ConversationStore:
    """Owner-scoped conversations in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> ConversationStore:
        return cls(Path(data_dir) / DB_NAME)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA synchronous=NORMAL")
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception: each write is all or nothing."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # conversations -----------------------------------------------------------------------------------

    def create(self, owner: str, title: str = "New conversation") -> ConversationRecord:
        now = time.time()
        record = ConversationRecord(
            id=uuid.uuid4().hex, title=title[:MAX_TITLE_CHARS] or "New conversation", created=now, updated=now
        )
        with self._transaction() as db:
            db.execute(
                "INSERT INTO conversations(id, owner, title, created, updated) VALUES (?, ?, ?, ?, ?)",
                (record.id, owner, record.title, now, now),
            )
        return record

    def list(self, owner: str) -> builtins.list[ConversationRecord]:
        """Newest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, title, created, updated FROM conversations WHERE owner = ? "
                "ORDER BY updated DESC, created DESC",
                (owner,),
            ).fetchall()
        return [ConversationRecord(id=r[0], title=r[1], created=r[2], updated=r[3]) for r in rows]

    def get(self, owner: str, conversation_id: str) -> ConversationRecord | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT id, title, created, updated FROM conversations WHERE owner = ? AND id = ?",
                (owner, conversation_id),
            ).fetchone()
        return (
            None
            if row is None
            else ConversationRecord(id=row[0], title=row[1], created=row[2], updated=row[3])
        )

    def rename(self, owner: str, conversation_id: str, title: str) -> bool:
        title = " ".join(title.split())[:MAX_TITLE_CHARS]
        if not title:
            return False
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE conversations SET title = ? WHERE owner = ? AND id = ?",
                (title, owner, conversation_id),
            )
        return cur.rowcount == 1

    def delete(self, owner: str, conversation_id: str) -> bool:
        with self._transaction() as db:
            owned = db.execute(
                "SELECT 1 FROM conversations WHERE owner = ? AND id = ?", (owner, conversation_id)
            ).fetchone()
            if owned is None:
                return False
            db.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation_id,))
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        return True

    # turns -------------------------------------------------------------------------------------------

    def begin_turn(self, owner: str, conversation_id: str | None, question: str) -> tuple[str, int]:
        """Record the question before the model is asked; creates the conversation on its first question.

        Returns (conversation id, turn id). The turn stays `answering` until `finish_turn`; if the process
        dies first, a reopened conversation shows the question as unanswered.
        """
        now = time.time()
        with self._transaction() as db:
            owned = None
            if conversation_id is not None:
                owned = db.execute(
                    "SELECT 1 FROM conversations WHERE owner = ? AND id = ?", (owner, conversation_id)
                ).fetchone()
            if owned is None:
                conversation_id = uuid.uuid4().hex
                db.execute(
                    "INSERT INTO conversations(id, owner, title, created, updated) VALUES (?, ?, ?, ?, ?)",
                    (conversation_id, owner, _title_from(question), now, now),
                )
            else:
                assert conversation_id is not None
                has_turns = db.execute(
                    "SELECT 1 FROM turns WHERE conversation_id = ? LIMIT 1", (conversation_id,)
                ).fetchone()
                if has_turns is None:  # an empty "New conversation" takes its first question as title
                    db.execute(
                        "UPDATE conversations SET title = ? WHERE id = ? AND title = 'New conversation'",
                        (_title_from(question), conversation_id),
                    )
                db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id))
            cur = db.execute(
                "INSERT INTO turns(conversation_id, question, status, created) VALUES (?, ?, 'answering', ?)",
                (conversation_id, question, now),
            )
            turn_id = int(cur.lastrowid or 0)
        return conversation_id, turn_id

    def finish_turn(
        self,
        owner: str,
        turn_id: int,
        *,
        answer: str,
        status: TurnStatus,
        messages: Sequence[dict[str, Any]],
        history: Sequence[dict[str, Any]],
        tool_calls: Sequence[ToolCallRecord] = (),
        passages: Sequence[PassageRecord] = (),
    ) -> None:
        """Complete a turn in one transaction (all of it is stored, or none of it)."""
        record = {
            "tool_calls": [c.model_dump(mode="json") for c in tool_calls],
            "passages": [p.model_dump(mode="json") for p in passages],
        }
        with self._transaction() as db:
            db.execute(
                "UPDATE turns SET answer = ?, status = ?, messages_json = ?, history_json = ?, "
                "record_json = ? "
                "WHERE id = ? AND conversation_id IN (SELECT id FROM conversations WHERE owner = ?)",
                (
                    answer,
                    status,
                    json.dumps(list(messages), ensure_ascii=False, default=str),
                    json.dumps(list(history), ensure_ascii=False, default=str),
                    json.dumps(record, ensure_ascii=False, default=str),
                    turn_id,
                    owner,
                ),
            )
            db.execute(
                "UPDATE conversations SET updated = ? "
                "WHERE id = (SELECT conversation_id FROM turns WHERE id = ?)",
                (time.time(), turn_id),
            )

    def turns(self, owner: str, conversation_id: str) -> builtins.list[TurnRecord]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT t.id, t.question, t.answer, t.status, t.messages_json, t.history_json, "
                "t.record_json, t.created FROM turns t JOIN conversations c ON c.id = t.conversation_id "
                "WHERE c.owner = ? AND c.id = ? ORDER BY t.id",
                (owner, conversation_id),
            ).fetchall()
        out: list[TurnRecord] = []
        for row in rows:
            record = json.loads(row[6] or "{}")
            out.append(
                TurnRecord(
                    id=row[0],
                    question=row[1],
                    answer=row[2],
                    status=row[3],
                    messages=json.loads(row[4] or "[]"),
                    history=json.loads(row[5] or "[]"),
                    tool_calls=record.get("tool_calls", []),
                    passages=record.get("passages", []),
                    created=row[7],
                )
            )
        return out


# ---------------------------------------------------------------------------------------------------------
# Markdown export
# ---------------------------------------------------------------------------------------------------------
def _fenced(data: Any) -> str:
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}json\n{text}\n{fence}"


def _quoted(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.strip().splitlines())


def export_markdown(conversation: ConversationRecord, turns: Sequence[TurnRecord]) -> str:
    """The conversation as a Markdown document: questions, answers, tool calls (arguments and results) and the
    passages each answer could cite (cited ones marked)."""
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(conversation.created))
    out = [f"# {conversation.title}", "", f"_Mac AI Advisor conversation, started {created}._", ""]
    for n, turn in enumerate(turns, 1):
        out += [f"## {n}. Question", "", turn.question.strip(), ""]
        for call in turn.tool_calls:
            out += [f"### Tool call: `{call.name}`", "", "Arguments:", "", _fenced(call.arguments), ""]
            if call.error is not None:
                out += [f"Refused: {call.error}", ""]
            elif call.result is not None:
                out += ["Result:", "", _fenced(call.result), ""]
        out += ["### Answer", ""]
        if turn.status == "answering":
            out += ["_(No answer: the app stopped while answering.)_", ""]
        else:
            out += [turn.answer.strip() or "_(empty answer)_", ""]
            if turn.status == "stopped":
                out += ["_(Stopped by the user before the answer was complete.)_", ""]
            elif turn.status == "error":
                out += ["_(The answer ended with an error.)_", ""]
        if turn.passages:
            out += ["### Passages", ""]
            for p in turn.passages:
                mark = " (cited)" if p.cited else ""
                section = f" — {p.section}" if p.section else ""
                out += [f"**[p:{p.id}] {p.title}{section}**{mark} · {p.source}", "", _quoted(p.text), ""]
    return "\n".join(out).rstrip() + "\n"
