"""The Chat tab's handlers: a question in, the answer streamed into the chat, the turn saved as it ends.

`respond` serves the page; `chat_api` the hidden `/chat` endpoint (for gradio_client). Both drive the same
`run_turn` over the same renderer; the page also shows the chart and the context meter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.charts import chart_for_tool_result
from assistant.config import Settings
from assistant.events import ContextEvent, ErrorEvent
from assistant.safe_json import clean_text, json_safe
from assistant.ui.conversations import LazyStore, TurnSaver
from assistant.ui.render import TurnRenderer, context_meter_markdown, user_markdown
from assistant.ui.session import ChatSession
from assistant.ui.status import (
    StatusProbe,
    knowledge_mode,
    model_choices,
    status_markdown,
    stopped_answering_message,
)

if TYPE_CHECKING:
    from assistant.agent import Agent
    from knowledge.search import KnowledgeBase
    from tools.registry import Registry

__all__ = ["MAX_INPUT_CHARS", "STREAM_INTERVAL_S", "ChatTab", "run_turn", "stop_turn", "too_long_advice"]

MAX_INPUT_CHARS = 8000
# Yield the growing answer to the browser at most this often (plus at every structural event), so streaming
# cost does not grow with the number of tokens squared.
STREAM_INTERVAL_S = 0.05


def too_long_advice(length: int) -> str:
    """What the chat says to a message over MAX_INPUT_CHARS: shorten it, or add it as a document."""
    return (
        f"⚠️ That message is {length:,} characters; the limit is {MAX_INPUT_CHARS:,}. It is still in the "
        "input box: shorten it, or save the text as a .txt or .md file and add it in the "
        "**Documents & models** tab; the assistant then searches it and cites it."
    )


@dataclass
class ChatTab:
    """What the page's chat needs, shared by every session: settings, the agent, tools, store and probe."""

    settings: Settings
    agent: Agent | None
    toolset: Registry
    store: LazyStore
    probe: StatusProbe
    knowledge: KnowledgeBase | None = None

    def chart_fn(self, name: str, arguments: Mapping[str, Any], result: Mapping[str, Any]) -> Any:
        return chart_for_tool_result(name, arguments, result, self.toolset)

    def _refused(self, session: ChatSession, text: str) -> bool:
        """Show why `text` gets no answer (too long; no agent), or say False when it will be answered."""
        if len(text) > MAX_INPUT_CHARS:
            session.messages.append({"role": "user", "content": user_markdown(text[:200]) + " …"})
            session.messages.append({"role": "assistant", "content": too_long_advice(len(text))})
            return True  # the text stays in the input box, so nothing typed or pasted is lost
        if self.agent is None:
            session.messages.append({"role": "user", "content": user_markdown(text)})
            note = "⚠️ The chat is not available: the agent did not start."
            session.messages.append({"role": "assistant", "content": note})
            return True
        return False

    def respond(
        self, message: str, session: ChatSession | None, model: str | None
    ) -> Iterator[tuple[Any, ...]]:
        """(input box, chatbot, session, chart) updates while one question is answered."""
        session = session or ChatSession()
        text = clean_text((message or "").strip())
        if not text or self._refused(session, text):
            yield gr.skip(), session.messages, session, gr.skip()
            return
        assert self.agent is not None
        if session.conversation is None:
            session.conversation = self.agent.new_conversation()
        session.stop.clear()
        saver = TurnSaver.begin(self.store.get(), session, text)
        session.messages.append({"role": "user", "content": user_markdown(text)})
        if saver is not None and saver.problem:
            session.messages.append({"role": "assistant", "content": saver.problem})
        # The side chart belongs to the answer being written: clear the previous answer's chart.
        session.chart = None
        yield "", session.messages, session, None
        unsaved = saver is not None and saver.problem is not None
        yield from self._stream(session, text, model, saver)
        if saver is not None and saver.problem and not unsaved:  # the answer could not be saved
            session.messages.append({"role": "assistant", "content": saver.problem})
            yield gr.skip(), session.messages, session, gr.skip()

    def _stream(
        self, session: ChatSession, text: str, model: str | None, saver: TurnSaver | None
    ) -> Iterator[tuple[Any, ...]]:
        assert self.agent is not None
        renderer = TurnRenderer(session.messages, self.toolset, self.chart_fn)
        if self.probe.ever_ok:
            renderer.unavailable_message = stopped_answering_message(self.settings.ollama_host)
        saved = False
        try:
            for _ in run_turn(session, self.agent, text, model, renderer, stop=session.stop):
                ended = renderer.done is not None or renderer.error is not None or renderer.stopped
                if saver is not None and ended and not saved:
                    # Saved before the browser shows the finished answer, so a reload right after it
                    # appears reopens the answer rather than an unanswered question.
                    saver.finish(session, renderer, stopped=renderer.stopped)
                    saved = True
                plot = gr.skip()
                if renderer.chart is not None and renderer.chart is not session.chart:
                    session.chart = plot = renderer.chart
                yield gr.skip(), session.messages, session, plot
        finally:
            if saver is not None and not saved:
                saver.finish(session, renderer, stopped=renderer.stopped)

    def ready(self) -> tuple[Any, Any]:
        """The question box and Send, enabled once the page knows whose it is."""
        return gr.Textbox(interactive=True), gr.Button(interactive=True)

    def stop(self, session: ChatSession | None) -> None:
        stop_turn(session)

    def chat_api(self, message: str, model: str, session: ChatSession | None) -> Iterator[tuple[Any, ...]]:
        """Streamed answer for gradio_client: (answer so far, turn summary, session)."""
        session = session or ChatSession()
        text = clean_text((message or "").strip())
        if self.agent is None or not text or len(text) > MAX_INPUT_CHARS:
            reason = (
                "agent not available"
                if self.agent is None
                else "The message is empty."
                if not text
                else too_long_advice(len(text)).removeprefix("⚠️ ")
            )
            yield "", {"error": reason}, session
            return
        renderer = TurnRenderer([], self.toolset, None)
        for _ in run_turn(session, self.agent, text, model or None, renderer):
            yield renderer.answer_text, gr.skip(), session
        # An answer that never streamed (e.g. the tool budget ran out) is still the answer.
        answer = renderer.answer_text or (renderer.done.content if renderer.done is not None else "")
        # Whatever the model put in its tool calls, the summary must encode (10**30, 800-deep JSON...).
        yield answer, json_safe(turn_summary(renderer, session), max_depth=12, max_chars=2000), session

    def show_meter(self, session: ChatSession | None) -> str:
        if session is None:
            return context_meter_markdown(None, self.settings)
        return context_meter_markdown(session.context, self.settings, reopened=bool(session.messages))

    def status_line(self) -> str:
        return status_markdown(self.probe.status(), self.settings, knowledge_mode(self.knowledge))

    def refresh_status(self, current_model: str | None, seen: list[str]) -> tuple[Any, ...]:
        """(status line, model picker update, remembered choices), every few seconds."""
        status = self.probe.status()
        md = status_markdown(status, self.settings, knowledge_mode(self.knowledge))
        choices, default = model_choices(status, self.settings)
        if choices == seen:
            return md, gr.skip(), seen
        if current_model in choices:
            # Leave the value alone: `current_model` may be stale by the time this lands (a pull in the
            # Documents & models tab may just have selected the model it installed).
            return md, gr.Dropdown(choices=choices), choices
        return md, gr.Dropdown(choices=choices, value=default), choices


def turn_summary(renderer: TurnRenderer, session: ChatSession) -> dict[str, Any]:
    """The `/chat` endpoint's closing summary: tool calls, counts, context figures, error."""
    summary: dict[str, Any] = {"tool_calls": renderer.tool_calls}
    if renderer.done is not None:
        summary.update(renderer.done.model_dump(exclude={"content"}))
    if session.context is not None:
        summary["context"] = session.context.model_dump()
    if renderer.error is not None:
        summary["error"] = renderer.error.message
        summary["error_kind"] = renderer.error.kind
    return summary


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
