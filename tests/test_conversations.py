"""Conversations that persist (SQLite in the data directory) and the Stop button's cancellation.

The store is exercised directly (owner scoping, rename, delete, a crash mid-answer in a real child process);
saving, reopening after a restart and stopping go through the real agent, the real `ollama` client and the
protocol-level stand-in, with the UI's own turn driver (`run_turn`, `TurnRenderer`, `TurnSaver`).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from assistant.agent import Agent
from assistant.charts import chart_for_tool_result
from assistant.conversations_store import ConversationStore, export_markdown
from assistant.ui import ChatSession, TurnRenderer, run_turn, stop_turn, user_markdown
from assistant.ui.conversations import (
    UNANSWERED_NOTE,
    TurnSaver,
    chart_of_turns,
    messages_of_turns,
    owner_for,
    restore_history,
)
from knowledge.search import KnowledgeBase
from tests.agent_support import make_agent
from tests.ollama_standin import ChatScript, Fault, OllamaStandIn, RecordedRequest, ToolCallScript
from tests.test_agent import SPEED_ARGS, knowledge  # noqa: F401 - fixture re-used
from tools import REGISTRY

ROOT = Path(__file__).resolve().parent.parent


def test_store_is_scoped_by_owner_and_supports_rename_and_delete(tmp_path: Path) -> None:
    store = ConversationStore.in_data_dir(tmp_path)
    ann_conv, ann_turn = store.begin_turn("browser:ann", None, "Will llama3.3:70b fit on a 48 GB M4 Pro?")
    store.finish_turn(
        "browser:ann", ann_turn, answer="Partly.", status="done", messages=[], history=[], tool_calls=()
    )
    bob_conv, _ = store.begin_turn("browser:bob", None, "What should I buy?")

    assert [c.title for c in store.list("browser:ann")] == ["Will llama3.3:70b fit on a 48 GB M4 Pro?"]
    assert [c.id for c in store.list("browser:bob")] == [bob_conv]
    # Another owner's id behaves like a missing one: no read, no rename, no delete, no write.
    assert store.turns("browser:bob", ann_conv) == [] and store.get("browser:bob", ann_conv) is None
    assert not store.rename("browser:bob", ann_conv, "mine now")
    assert not store.delete("browser:bob", ann_conv)
    hijack_conv, _ = store.begin_turn("browser:bob", ann_conv, "append to Ann's?")
    assert hijack_conv != ann_conv and len(store.turns("browser:ann", ann_conv)) == 1

    assert store.rename("browser:ann", ann_conv, "  Fit   check ")
    assert store.get("browser:ann", ann_conv).title == "Fit check"  # type: ignore[union-attr]
    assert store.delete("browser:ann", ann_conv)
    assert store.list("browser:ann") == [] and store.turns("browser:ann", ann_conv) == []
    assert len(store.list("browser:bob")) == 2


def test_owner_is_the_signed_in_user_with_auth_else_a_random_browser_id() -> None:
    owner, bid = owner_for(None, None)
    assert owner == f"browser:{bid}" and len(bid) == 32
    assert owner_for(bid, None) == (owner, bid)
    assert owner_for("../../etc", None)[1] != "../../etc"  # junk from the browser is replaced
    assert owner_for(bid, "ann")[0] == "user:ann"
    assert owner_for(None, None)[1] != bid


def test_a_crash_mid_answer_loses_at_most_that_answer(tmp_path: Path) -> None:
    """A real process saves one turn, starts a second and dies (os._exit) before finishing it."""
    child = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from assistant.conversations_store import ConversationStore
        store = ConversationStore.in_data_dir({str(tmp_path)!r})
        conv, turn = store.begin_turn("browser:x", None, "first question")
        store.finish_turn("browser:x", turn, answer="first answer", status="done",
                          messages=[{{"role": "user", "content": "first question"}},
                                    {{"role": "assistant", "content": "first answer"}}],
                          history=[{{"role": "user", "content": "first question"}}])
        store.begin_turn("browser:x", conv, "second question")
        os._exit(9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    store = ConversationStore.in_data_dir(tmp_path)
    [conversation] = store.list("browser:x")
    turns = store.turns("browser:x", conversation.id)
    assert [(t.question, t.status, t.answer) for t in turns] == [
        ("first question", "done", "first answer"),
        ("second question", "answering", ""),
    ]
    shown = messages_of_turns(turns, user_markdown)
    assert [m["content"] for m in shown] == [
        "first question",
        "first answer",
        "second question",
        UNANSWERED_NOTE,
    ]
    assert "_(No answer: the app stopped while answering.)_" in export_markdown(conversation, turns)


def _turn(session: ChatSession, agent: object, store: ConversationStore, text: str) -> TurnRenderer:
    """One turn the way the page runs it: saved when it starts and when it ends."""
    from assistant.agent import Agent

    assert isinstance(agent, Agent)
    if session.conversation is None:
        session.conversation = agent.new_conversation()
    saver = TurnSaver.begin(store, session, text)
    session.messages.append({"role": "user", "content": user_markdown(text)})
    renderer = TurnRenderer(session.messages)
    try:
        for _ in run_turn(session, agent, text, None, renderer, interval_s=0.0, stop=session.stop):
            pass
    finally:
        assert saver is not None
        saver.finish(session, renderer, stopped=renderer.stopped)
    return renderer


def test_saved_turn_exports_and_reopens_after_a_restart_with_its_history(
    standin: OllamaStandIn,
    knowledge: KnowledgeBase,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    data = tmp_path / "advisor-data"
    standin.script_chat(
        ChatScript(tool_calls=(ToolCallScript("estimate_speed", SPEED_ARGS),)),
        ChatScript(text="About 20 tokens/s, under the bandwidth ceiling [p:bandwidth-basics]."),
    )
    first_agent = make_agent(standin, knowledge)
    session = ChatSession(owner="browser:" + "a" * 32)
    question = "How fast is qwen2.5:32b on a 40-core M3 Max with <b>bandwidth</b>?"
    _turn(session, first_agent, ConversationStore.in_data_dir(data), question)
    assert session.conversation_id is not None

    # "Restart": a new store object on the same file and a new agent; the conversation is reopened.
    store = ConversationStore.in_data_dir(data)
    [record] = store.list(session.owner or "")
    turns = store.turns(session.owner or "", record.id)
    assert [t.status for t in turns] == ["done"]
    markdown = export_markdown(record, turns)
    assert question in markdown
    assert "About 20 tokens/s" in markdown
    assert "### Tool call: `estimate_speed`" in markdown and '"chip": "M3 Max"' in markdown
    assert '"expected_tokens_per_second"' in markdown  # the tool's result, not only its arguments
    assert "[p:bandwidth-basics] Why bandwidth decides decode speed" in markdown
    assert "(cited)" in markdown

    # The reopened answer gets its chart back, redrawn from the stored tool result.
    figure = chart_of_turns(turns, lambda n, a, r: chart_for_tool_result(n, a, r, REGISTRY))
    assert figure is not None and "Decode speed" in str(figure.layout.title.text)

    reopened = ChatSession(owner=session.owner, conversation_id=record.id)
    reopened.messages = messages_of_turns(turns, user_markdown)
    assert reopened.messages == session.messages  # what the chat showed comes back as it was
    reopened.conversation = restore_history(make_agent(standin, knowledge), turns)
    standin.clear_requests()
    standin.script_chat(ChatScript(text="With 32k context it still fits."))
    _turn(reopened, reopened.conversation.agent, store, "and with 32k context instead?")
    sent = [m["content"] for m in standin.last_chat_request().messages if m["role"] == "user"]
    assert sent == [question, "and with 32k context instead?"]  # the follow-up carries its context
    assert len(store.turns(session.owner or "", record.id)) == 2


def test_stop_closes_the_ollama_stream_and_keeps_the_partial_answer_marked(
    standin: OllamaStandIn, tmp_path: Path
) -> None:
    words = " ".join(f"word{i}" for i in range(400))
    standin.script_chat(ChatScript(text=words, token_delay_s=0.02))
    agent = make_agent(standin)
    store = ConversationStore.in_data_dir(tmp_path)
    session = ChatSession(owner="browser:" + "b" * 32)
    session.conversation = agent.new_conversation()
    renderer = TurnRenderer(session.messages)
    saver = TurnSaver.begin(store, session, "Tell me a long story")
    session.messages.append({"role": "user", "content": "Tell me a long story"})
    for _ in run_turn(
        session, agent, "Tell me a long story", None, renderer, interval_s=0.0, stop=session.stop
    ):
        if "word5 " in renderer.answer_text and not session.stop.is_set():
            session.stop.set()  # what the Stop button does
    assert saver is not None
    saver.finish(session, renderer, stopped=renderer.stopped)

    assert standin.wait_chat_aborted(30), "the HTTP stream to Ollama was not closed"
    assert len(standin.aborted_chats()) == 1
    assert renderer.stopped and renderer.done is None
    shown = session.messages[-1]["content"]
    assert shown.startswith("word0 word1") and shown.endswith("— stopped") and "word399" not in shown
    assert session.conversation.history[-1]["content"].endswith("[answer stopped]")
    [record] = store.list(session.owner or "")
    [turn] = store.turns(session.owner or "", record.id)
    assert turn.status == "stopped" and turn.answer.startswith("word0")
    # The conversation is free again: the next question is answered.
    standin.script_chat(ChatScript(text="Short answer."))
    renderer = TurnRenderer(session.messages)
    session.stop.clear()
    list(run_turn(session, agent, "Shorter, please", None, renderer, interval_s=0.0, stop=session.stop))
    assert renderer.done is not None and renderer.done.content == "Short answer."


def test_a_broken_store_never_breaks_the_chat(standin: OllamaStandIn, tmp_path: Path) -> None:
    """The database file turns into something SQLite cannot open: the turn is answered, and the page is told
    that the conversation is not being saved."""
    store = ConversationStore.in_data_dir(tmp_path)
    for suffix in ("", "-wal", "-shm"):
        Path(str(store.path) + suffix).unlink(missing_ok=True)
    store.path.mkdir()  # a directory where the database file was
    standin.script_chat(ChatScript(text="Still answering."))
    agent = make_agent(standin)
    session = ChatSession(owner="browser:" + "c" * 32, conversation=agent.new_conversation())
    saver = TurnSaver.begin(store, session, "Hello?")
    assert saver is not None and saver.problem is not None and "not being saved" in saver.problem
    renderer = TurnRenderer(session.messages)
    list(run_turn(session, agent, "Hello?", None, renderer, interval_s=0.0, stop=session.stop))
    saver.finish(session, renderer, stopped=False)  # a no-op, not an exception
    assert renderer.done is not None and renderer.done.content == "Still answering."

    # Broken between the question and the answer: the answer's save fails into `problem`, not an exception.
    other = ConversationStore.in_data_dir(tmp_path / "second")
    session = ChatSession(owner="browser:" + "d" * 32, conversation=agent.new_conversation())
    saver = TurnSaver.begin(other, session, "Hello again?")
    assert saver is not None and saver.problem is None
    for suffix in ("", "-wal", "-shm"):
        Path(str(other.path) + suffix).unlink(missing_ok=True)
    other.path.mkdir()
    saver.finish(session, TurnRenderer(session.messages), stopped=False)
    assert saver.problem is not None and "not being saved" in saver.problem


def test_the_page_says_when_the_answer_could_not_be_saved(standin: OllamaStandIn, tmp_path: Path) -> None:
    """The store breaks after the question was saved and before the answer is: the page's chat handler
    answers, then says in the chat that the conversation is not being saved."""
    from assistant.config import Settings
    from assistant.ui.chat import ChatTab
    from assistant.ui.conversations import LazyStore
    from assistant.ui.status import StatusProbe

    standin.script_chat(ChatScript(text="Answered anyway."))
    store = LazyStore(tmp_path)
    chat = ChatTab(
        Settings(ollama_host=standin.url, data_dir=tmp_path),
        make_agent(standin),
        REGISTRY,
        store,
        StatusProbe(None, standin.url),
    )
    session = ChatSession(owner="browser:" + "e" * 32)
    updates = chat.respond("Will it fit?", session, None)
    next(updates)  # the question is saved and shown; the answer has not started
    db = store.get()
    assert db is not None and db.list(session.owner or "")
    for suffix in ("", "-wal", "-shm"):
        Path(str(db.path) + suffix).unlink(missing_ok=True)
    db.path.mkdir()
    for _ in updates:
        pass
    texts = [str(m["content"]) for m in session.messages]
    assert any(t.startswith("Answered anyway.") for t in texts)
    assert "not being saved" in texts[-1]


# Stop takes effect at once, whatever the request to Ollama is doing -----------------------------------------
HANG_S = 60.0  # catches a hang only: a Stop that waits for Ollama would take request_timeout_s (120 s)


class _PageTurn:
    """One turn driven by the UI's `run_turn` on its own thread, as Gradio runs it; Stop comes from others."""

    def __init__(self, session: ChatSession, agent: Agent, text: str) -> None:
        session.messages.append({"role": "user", "content": user_markdown(text)})
        self.renderer = TurnRenderer(session.messages)
        self.answering = threading.Event()  # the first words of the answer are on the page
        self.finished = threading.Event()
        self.failure: BaseException | None = None

        def drive() -> None:
            try:
                stop = session.stop
                for _ in run_turn(session, agent, text, None, self.renderer, interval_s=0.0, stop=stop):
                    if self.renderer.answer_text:
                        self.answering.set()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.failure = exc
            finally:
                self.finished.set()

        threading.Thread(target=drive, name="page-turn", daemon=True).start()


def _session(agent: Agent, letter: str) -> ChatSession:
    return ChatSession(owner="browser:" + letter * 32, conversation=agent.new_conversation())


def test_stop_during_a_long_prompt_evaluation_closes_the_request_at_once(standin: OllamaStandIn) -> None:
    """No token yet (Ollama evaluating a long prompt): Stop does not wait for one."""
    standin.script_chat(ChatScript(text="never shown", fault=Fault.slow(600.0)))
    agent = make_agent(standin)
    session = _session(agent, "e")
    turn = _PageTurn(session, agent, "A question behind a very long prompt")
    standin.wait_for_request("/api/chat")
    stop_turn(session)  # what the Stop button does, on its own thread

    assert turn.finished.wait(HANG_S), "Stop waited for Ollama's first token"
    assert turn.failure is None, turn.failure
    assert standin.wait_chat_aborted(HANG_S), "the request to Ollama was not closed"
    assert [r.messages[-1]["content"] for r in standin.aborted_chats()] == [
        "A question behind a very long prompt"
    ]
    assert turn.renderer.stopped and turn.renderer.done is None and turn.renderer.error is None
    assert session.messages[-1]["content"] == "— stopped before the answer began."
    assert session.conversation is not None
    assert [m["role"] for m in session.conversation.history] == ["user"]  # nothing arrived, nothing invented

    standin.script_chat(ChatScript(text="Short answer."))
    session.stop.clear()
    after = TurnRenderer(session.messages)
    list(run_turn(session, agent, "Shorter, please", None, after, interval_s=0.0, stop=session.stop))
    assert after.done is not None and after.done.content == "Short answer."


def test_stop_while_the_model_writes_a_tool_call_keeps_the_partial_answer_marked(
    standin: OllamaStandIn,
) -> None:
    """Ollama sends nothing while the model writes a tool call: Stop does not wait for the call to finish."""
    standin.script_chat(
        ChatScript(
            tokens=("Let me work that out. ",),
            tool_calls=(ToolCallScript("estimate_speed", SPEED_ARGS),),
            token_delay_s=600.0,  # the tool call comes 10 minutes after the first words
        )
    )
    agent = make_agent(standin)
    session = _session(agent, "f")
    turn = _PageTurn(session, agent, "How fast is qwen2.5:32b on an M3 Max?")
    assert turn.answering.wait(HANG_S)
    stop_turn(session)

    assert turn.finished.wait(HANG_S), "Stop waited for the tool call to be streamed"
    assert turn.failure is None, turn.failure
    assert standin.wait_chat_aborted(HANG_S) and len(standin.aborted_chats()) == 1
    assert turn.renderer.stopped and turn.renderer.tool_calls == []  # no tool ran, no second request
    assert len(standin.chat_requests()) == 1
    assert session.messages[-1]["content"] == "Let me work that out. — stopped"
    assert session.conversation is not None
    assert session.conversation.history[-1] == {
        "role": "assistant",
        "content": "Let me work that out. \n\n[answer stopped]",
    }


def test_stop_ends_only_its_own_conversation(standin: OllamaStandIn) -> None:
    """Two conversations share the agent and its Ollama layer; stopping one leaves the other streaming."""
    long_answer = " ".join(f"word{i}" for i in range(150))

    def reply(request: RecordedRequest) -> ChatScript:
        if "slow" in str(request.messages[-1]["content"]):
            return ChatScript(text="never shown", fault=Fault.slow(600.0))
        return ChatScript(text=long_answer, token_delay_s=0.01)

    standin.chat_responder = reply
    agent = make_agent(standin)
    slow_session, busy_session = _session(agent, "g"), _session(agent, "h")
    slow = _PageTurn(slow_session, agent, "A slow question")
    standin.wait_for_request("/api/chat")
    busy = _PageTurn(busy_session, agent, "A question answered at length")
    assert busy.answering.wait(HANG_S)
    stop_turn(slow_session)

    assert slow.finished.wait(HANG_S) and busy.finished.wait(HANG_S)
    assert slow.failure is None and busy.failure is None
    assert slow.renderer.stopped and slow.renderer.done is None
    assert not busy.renderer.stopped and not busy_session.stop.is_set()
    assert busy.renderer.done is not None and busy.renderer.done.content == long_answer
    assert standin.wait_chat_aborted(HANG_S)
    assert [r.messages[-1]["content"] for r in standin.aborted_chats()] == ["A slow question"]
