"""The agent loop: retrieval, streaming, typed tool calls, bounded rounds, context budget, clear errors.

One `Agent` per process holds only read-only things (settings, the Ollama layer, the tool registry, the
knowledge base, the rendered system prompt and tool specs), so it can be shared by every browser session and
thread. Everything that changes during a chat lives in a `Conversation`, one per session.

A turn is a generator of events (see `assistant.events`). It never raises: whatever goes wrong (Ollama down,
a model that is not pulled, a stream cut halfway, a model that calls tools forever or sends garbage arguments)
ends in an `ErrorEvent`/`ToolErrorEvent`/`NoticeEvent` the user can read, with the history kept so that the
next turn works once the cause is gone.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.chat_model import (
    STREAM_DROPPED_TEXT,
    ChatCancel,
    ChatModel,
    ChatRequest,
    Chunk,
    ModelError,
    ModelErrorKind,
    ToolCall,
    timeout_message,
)
from assistant.context_budget import (
    SUMMARY_PREFIX,
    ContextBudget,
    ContextOverflow,
    compact_json,
    summarise_tool_result,
    tools_tokens,
)
from assistant.context_window import (
    ContextWindow,
    ContextWindows,
    recently_used_tools,
    select_tools,
)
from assistant.events import (
    AgentEvent,
    ContextEvent,
    DoneEvent,
    ErrorEvent,
    ErrorKind,
    NoticeEvent,
    PassagesEvent,
    ThinkingEvent,
    TokenEvent,
    ToolCallEvent,
    ToolErrorEvent,
    ToolResultEvent,
)
from assistant.prompts import FORCE_ANSWER_NOTE, build_system_prompt, cited_ids, system_message
from assistant.reply_text import ThinkTags, may_be_text_tool_call, parse_text_tool_calls
from assistant.safe_json import clean_text, decode_object, is_sendable, json_safe, loads
from assistant.toolset import ToolOutcome, run_tool
from knowledge.embedding import STALLED
from knowledge.schemas import MAX_QUERY_CHARS, SearchKnowledgeOutput
from tools import Registry

if TYPE_CHECKING:
    from assistant.config import Settings
    from knowledge.schemas import Passage
    from knowledge.search import KnowledgeBase

log = logging.getLogger(__name__)

__all__ = ["Agent", "Conversation", "TurnState"]

# Tool-call arguments longer than this (as JSON) are refused and not kept in history: no tool needs more, and
# a 5 MB call would otherwise overflow every later request of the turn (and be blamed on the user's message).
MAX_TOOL_ARGUMENT_CHARS = 20_000
# A hung (or model-loading) Ollama: say so after WAIT_NOTICE_S, and let search fall back to keywords after
# Settings.search_embed_timeout_s; the whole wait for Ollama is bounded by Settings.request_timeout_s.
WAIT_NOTICE_S = 1.0
WAITING_TEXT = "Waiting for Ollama… (it may be loading the model)."
STOPPED_TEXT = "Stopped: the answer was cut where you pressed Stop; what arrived so far is kept."
RETRY_HINT = "Correct the arguments and call the tool again, or answer without it and say what is missing."


_EVENT_KINDS: dict[ModelErrorKind, ErrorKind] = {
    ModelErrorKind.CANCELLED: "stopped",
    ModelErrorKind.UNAVAILABLE: "unavailable",
    ModelErrorKind.TIMEOUT: "timeout",
    ModelErrorKind.STREAM_DROPPED: "stream_dropped",
    ModelErrorKind.MODEL_MISSING: "model_missing",
}


def event_kind(kind: ModelErrorKind) -> ErrorKind:
    """The ErrorEvent kind a turn ending with a model error of this kind reports (the UI's remedy)."""
    return _EVENT_KINDS.get(kind, "ollama_error")


def _arguments_dict(arguments: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """Arguments as a dict for events and history; an undecodable string is kept verbatim under `_raw`."""
    if arguments is None:
        return {}
    if isinstance(arguments, Mapping):
        return dict(json_safe(arguments))  # NaN, lone surrogates: never into history (issue 14)
    value = decode_object(arguments)
    return {"_raw": clean_text(arguments)} if value is None else dict(json_safe(value))


@dataclass
class _Round:
    """One model call: what it said, the tools it asked for, and Ollama's counts."""

    content: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    done: bool = False
    eval_count: int = 0
    eval_duration_ns: int = 0
    prompt_eval_count: int = 0


@dataclass
class TurnState:
    """What one turn carries from round to round (everything else is read-only on the Agent)."""

    model: str
    window: ContextWindow
    budget: ContextBudget
    options: dict[str, Any]
    tool_specs: tuple[dict[str, Any], ...]
    tools_cost: int
    start: int  # index in history of this turn's user message
    passages: Sequence[Passage]
    cancel: ChatCancel
    deadline: float  # the one bound on waiting for Ollama's first chunk of the next round
    started: float  # perf_counter at the turn's start
    totals: _Round = field(default_factory=_Round)
    searched: list[str] = field(default_factory=list)  # passage ids found by search_knowledge: citable
    rounds: int = 0
    tool_rounds: int = 0
    shown_passages: bool = False
    # what the user was told was left out (messages, shortened, questions)
    told: tuple[int, int, int] = (0, 0, 0)
    tools_allowed: bool = True  # False once the model said it cannot call tools
    forced: bool = False  # the tool budget is used up: the next round must answer
    compacted: bool = False  # this turn's tool results filled the window and were summarised

    @property
    def specs(self) -> tuple[dict[str, Any], ...]:
        """The tools offered this round: none when the model must answer."""
        return () if self.forced or not self.tools_allowed else self.tool_specs

    def add(self, result: _Round, timeout_s: float) -> None:
        self.totals.eval_count += result.eval_count
        self.totals.eval_duration_ns += result.eval_duration_ns
        self.totals.prompt_eval_count += result.prompt_eval_count
        self.deadline = time.monotonic() + timeout_s  # the next round gets a fresh wait


NO_TOOLS_TEXT = (
    "Model {model!r} does not support tool calling, so it answers from the passages alone without computed "
    "numbers. Pick a model with tools (e.g. qwen2.5:7b) for those."
)


class Agent:
    """Shared, read-only after construction; create one `Conversation` per chat session.

    `machine` (chip, memory_gb, ... as `check_memory_fit` takes them) is the Mac whose GPU budget sizes an
    automatic num_ctx; None means this Mac (absent off macOS, where the fallback window applies). The only
    state added after construction are caches (num_ctx per model, budgets, tool subsets), filled under a lock.
    """

    def __init__(
        self,
        settings: Settings,
        ollama: ChatModel,
        toolset: Registry,
        knowledge: KnowledgeBase | None = None,
        *,
        options: Mapping[str, Any] | None = None,
        machine: Mapping[str, Any] | None = None,
        windows: ContextWindows | None = None,
    ) -> None:
        self.settings = settings
        self.ollama = ollama
        self.toolset = toolset
        self.knowledge = knowledge
        self.tool_names: frozenset[str] = frozenset(toolset.names())
        self.tool_specs: tuple[dict[str, Any], ...] = tuple(t.ollama_spec() for t in toolset)
        self.system_prompt: str = build_system_prompt(toolset)
        self.options: dict[str, Any] = dict(options or {})  # num_ctx is added per turn (see context_window)
        # `windows` is shared with measure_speed when the app graph builds both (assistant/app_graph.py).
        self.windows = windows or ContextWindows(
            settings.num_ctx,
            settings.max_num_ctx,
            ollama.context_length,
            lambda: toolset.get("check_memory_fit") if "check_memory_fit" in self.tool_names else None,
            machine,
        )
        self._budgets: dict[int, ContextBudget] = {}
        self._tool_sets: dict[frozenset[str], tuple[tuple[dict[str, Any], ...], int]] = {}
        self._cache_lock = threading.Lock()

    def context_window(self, model: str) -> ContextWindow:
        """num_ctx for `model`: the explicit setting, else chosen once per model from this Mac's fit."""
        return self.windows(model)

    def budget_for(self, num_ctx: int) -> ContextBudget:
        budget = self._budgets.get(num_ctx)
        if budget is None:
            budget = ContextBudget.for_num_ctx(num_ctx)
            with self._cache_lock:
                self._budgets[num_ctx] = budget
        return budget

    def tools_for(self, names: frozenset[str]) -> tuple[tuple[dict[str, Any], ...], int]:
        """The specs of `names` (in registry order) and their token cost, computed once per set."""
        cached = self._tool_sets.get(names)
        if cached is None:
            specs = tuple(s for s in self.tool_specs if s["function"]["name"] in names)
            cached = (specs, tools_tokens(specs))
            with self._cache_lock:
                self._tool_sets[names] = cached
        return cached

    def new_conversation(self) -> Conversation:
        return Conversation(self)

    def resume_conversation(self, history: Sequence[dict[str, Any]], turns: int) -> Conversation:
        """A conversation that continues a stored one: its model-facing `history` and how many turns it had
        (tool call ids stay unique across the reopened conversation)."""
        conversation = Conversation(self)
        conversation.history.extend(history)
        conversation._turns = turns
        return conversation

    def retrieve(self, question: str) -> tuple[list[Passage], str | None]:
        """Top passages for the question, or ([], notice) when there is no knowledge base or search failed."""
        k = self.settings.top_k_passages
        if self.knowledge is None or k <= 0:
            return [], None
        try:
            result = self.knowledge.search(question[:MAX_QUERY_CHARS], k=k)
        except Exception as exc:  # noqa: BLE001 - retrieval is an aid; the turn goes on without it
            log.warning("knowledge search failed: %s", exc)
            return [], f"Knowledge search failed ({exc}); answering without passages."
        if result.mode == "lexical" and any(STALLED in note for note in result.assumptions):
            # The knowledge base fell back by itself (the query's embedding stalled): say so, as below.
            return list(result.passages), self._keyword_notice()
        return list(result.passages), None

    def _keyword_notice(self) -> str:
        return (
            f"Ollama did not embed the question within {self.settings.search_embed_timeout_s:g} s; using "
            "keyword (BM25) search for this question."
        )

    def retrieve_lexical(self, question: str) -> list[Passage]:
        """Keyword-only retrieval: the fallback when embedding the question stalls."""
        if self.knowledge is None or self.settings.top_k_passages <= 0:
            return []
        try:
            return list(
                self.knowledge.retrieve(question[:MAX_QUERY_CHARS], self.settings.top_k_passages, "lexical")
            )
        except Exception as exc:  # noqa: BLE001 - retrieval is an aid
            log.warning("lexical search failed: %s", exc)
            return []

    def render_system(self, passages: Sequence[Passage]) -> str:
        return system_message(self.system_prompt, passages)


class Conversation:
    """One chat session's state. Turns of one conversation run one at a time; different ones in parallel."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.history: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._turns = 0
        self._waiting_shown = False
        self._cancel: ChatCancel | None = None  # the turn in flight's, for cancel() from another thread

    def cancel(self) -> bool:
        """Stop the turn in flight now, from any thread (the Stop button): its request to Ollama is closed
        at once, even before the first token or while a tool call streams, and the turn ends with
        ``ErrorEvent(kind="stopped")`` keeping the partial answer, marked, in history. False when idle."""
        cancel = self._cancel
        if cancel is None:
            return False
        cancel.cancel()
        return True

    def turn(self, user_text: str, model: str | None = None) -> Generator[AgentEvent, None, None]:
        """Answer one user message, yielding events. Never raises; ends with a DoneEvent or an ErrorEvent."""
        if not self._lock.acquire(blocking=False):
            yield ErrorEvent(
                kind="busy", message="This conversation is still answering the previous message; wait for it."
            )
            return
        start = len(self.history)
        self._cancel = ChatCancel()
        try:
            self._turns += 1
            yield from self._turn(clean_text(user_text), model or self.agent.settings.chat_model)
        finally:
            self._cancel = None
            _repair_history(self.history, start)
            self._lock.release()

    # The loop ------------------------------------------------------------------------------------------

    def _turn(self, user_text: str, model: str) -> Iterator[AgentEvent]:
        """Prepare (retrieval, context window, tools), then rounds: fit the context, stream the model, and
        either run the tools it asked for and go round again, or finish with its answer."""
        if not user_text.strip():
            yield ErrorEvent(kind="empty", message="The message is empty: type a question first.")
            return
        state = yield from self._prepare(user_text, model)
        if state is None:
            return
        while True:
            if state.cancel.cancelled:  # stopped while a tool ran: no further request
                yield ErrorEvent(kind="stopped", message=STOPPED_TEXT)
                return
            messages = yield from self._fit(state)
            if messages is None:
                return
            state.rounds += 1
            result = _Round()
            try:
                yield from self._stream_round(state, messages, result)
            except GeneratorExit:  # the consumer closed the turn (the page went away, or an old Stop)
                self._keep_partial(result, "stopped")
                raise
            except ModelError as exc:
                if exc.kind is ModelErrorKind.NO_TOOLS and state.tools_allowed and not result.content:
                    state.tools_allowed = False  # ask again, without tools
                    yield NoticeEvent(text=NO_TOOLS_TEXT.format(model=model))
                    continue
                yield self._failed(result, exc)
                return
            except Exception as exc:  # noqa: BLE001 - a bug ends the turn with a message, never a traceback
                log.exception("agent turn failed")
                yield self._failed(result, exc)
                return
            state.add(result, self.agent.settings.request_timeout_s)
            if result.calls and state.specs:
                yield from self._tool_round(state, result)
                continue
            yield from self._finish(state, result)
            return

    def _prepare(self, user_text: str, model: str) -> Generator[AgentEvent, None, TurnState | None]:
        """Retrieval (bounded), the context window and tools for this turn; the user message joins history."""
        agent = self.agent
        started = time.perf_counter()
        self._summarise_earlier_results()
        self._waiting_shown = False
        deadline = time.monotonic() + agent.settings.request_timeout_s
        cancel = self._cancel or ChatCancel()
        passages, notice = yield from self._retrieve_bounded(user_text)
        if notice:
            yield NoticeEvent(text=notice)
        if cancel.cancelled:
            yield ErrorEvent(kind="stopped", message=STOPPED_TEXT)
            return None
        window = agent.context_window(model)
        tool_names = select_tools(user_text, agent.tool_names, recently_used_tools(self.history))
        specs, tools_cost = agent.tools_for(tool_names)
        state = TurnState(
            model=model,
            window=window,
            budget=agent.budget_for(window.num_ctx),
            options={**agent.options, "num_ctx": window.num_ctx},
            tool_specs=specs,
            tools_cost=tools_cost,
            start=len(self.history),
            passages=passages,
            cancel=cancel,
            deadline=deadline,
            started=started,
        )
        self.history.append({"role": "user", "content": user_text})
        return state

    def _fit(self, state: TurnState) -> Generator[AgentEvent, None, list[dict[str, Any]] | None]:
        """The messages of this round, fitted to the window (None: they cannot fit; the turn ended)."""
        current = self.history[state.start :]
        if state.forced:
            current = [*current, {"role": "system", "content": FORCE_ANSWER_NOTE}]
        try:
            fit = state.budget.fit(
                render_system=self.agent.render_system,
                passages=state.passages,
                tool_specs=state.specs,
                history=self.history[: state.start],
                current=current,
                tools_cost=state.tools_cost if state.specs else 0,
            )
        except ContextOverflow as exc:
            if state.rounds > 0 and not state.compacted:
                yield from self._compact_turn(state)
                return (yield from self._fit(state))
            yield ErrorEvent(kind="oversized", message=self._overflow_message(state, exc))
            return None
        if not state.shown_passages:
            state.shown_passages = True
            if fit.passages:
                yield PassagesEvent(passages=list(fit.passages))
        # Said plainly, once per turn, and again if a later round (with tool results) leaves out more.
        left_out = (fit.dropped_messages, fit.shortened_questions, fit.dropped_questions)
        if fit.dropped_passages or any(
            now > before for now, before in zip(left_out, state.told, strict=True)
        ):
            dropped = fit.dropped_summary(state.window.num_ctx)
            if dropped:
                yield NoticeEvent(text=dropped, kind="context_dropped")
        state.told = left_out
        state.passages = fit.passages  # later rounds keep what fitted
        yield ContextEvent(
            used_tokens=fit.estimated_tokens,
            window_tokens=state.window.num_ctx,
            reserved_tokens=state.budget.reserve_output,
            model=state.model,
            auto=state.window.auto,
            reason=state.window.reason,
            tools=[spec["function"]["name"] for spec in state.specs],
        )
        return list(fit.messages)

    def _compact_turn(self, state: TurnState) -> Iterator[AgentEvent]:
        """This turn's tool results no longer fit the window (a model that keeps calling tools): keep their
        summaries (verdict, key numbers) and have the model answer from them now, not fail the turn."""
        state.compacted = state.forced = True
        summarise_tool_results(self.history[state.start :])
        yield NoticeEvent(
            text=f"This turn's tool results filled the {state.window.num_ctx:,}-token context window: they "
            "are cut down to their key numbers and the model is asked to answer from them now."
        )

    def _overflow_message(self, state: TurnState, exc: ContextOverflow) -> str:
        if state.rounds == 0:  # nothing was asked yet: drop the message so it cannot poison later turns
            del self.history[state.start :]
            return str(exc).replace("nothing was sent", "the message was not kept and nothing was sent")
        return (
            f"The tool results of this turn do not fit the {state.window.num_ctx:,}-token context window "
            "even cut down to their key numbers; raise num_ctx (ADVISOR_NUM_CTX / --num-ctx) or ask a "
            "narrower question."
        )

    def _failed(self, result: _Round, exc: Exception) -> ErrorEvent:
        """The event that ends a turn whose model call failed; what the model said so far is kept, marked."""
        if isinstance(exc, ModelError) and exc.kind is ModelErrorKind.CANCELLED:
            self._keep_partial(result, "stopped")
            return ErrorEvent(kind="stopped", message=STOPPED_TEXT)
        self._keep_partial(result, "interrupted")
        if isinstance(exc, ModelError):
            return ErrorEvent(kind=event_kind(exc.kind), message=str(exc))
        return ErrorEvent(
            kind="internal",
            message=f"Unexpected error while talking to Ollama ({exc.__class__.__name__}: {exc}).",
        )

    def _tool_round(self, state: TurnState, result: _Round) -> Iterator[AgentEvent]:
        state.tool_rounds += 1
        yield from self._run_calls(result, state)
        if state.tool_rounds >= self.agent.settings.max_tool_rounds:
            state.forced = True
            yield NoticeEvent(
                text=f"Stopped calling tools after {state.tool_rounds} round(s); asking the model to answer "
                "with the results it has."
            )

    def _finish(self, state: TurnState, result: _Round) -> Iterator[AgentEvent]:
        """The answer goes into history and a DoneEvent; an empty one is explained instead."""
        max_rounds = self.agent.settings.max_tool_rounds
        content = result.content
        if result.calls:
            yield NoticeEvent(text="The model asked for more tools after the tool budget was used up.")
            if not content.strip():
                spent = (
                    "filled the context window with tool results"
                    if state.compacted
                    else f"used up its budget of {max_rounds} tool round(s) (ADVISOR_MAX_TOOL_ROUNDS)"
                )
                content = (
                    f"The model gave no answer: it {spent} and kept asking for more tools instead of "
                    "answering. The tool results above are what it gathered; ask a narrower question or try "
                    "another model."
                )
                yield NoticeEvent(text=content)
        if not content.strip():
            content = (
                "The model returned no answer. The tool results above are what it gathered; ask again or "
                "try another model."
            )
            yield NoticeEvent(text=content)
        self.history.append({"role": "assistant", "content": content})
        totals = state.totals
        seconds = totals.eval_duration_ns / 1e9
        yield DoneEvent(
            content=content,
            eval_count=totals.eval_count,
            eval_duration_s=seconds,
            tokens_per_second=(totals.eval_count / seconds) if seconds > 0 else None,
            prompt_eval_count=totals.prompt_eval_count,
            total_s=time.perf_counter() - state.started,
            rounds=state.rounds,
            model=state.model,
            num_ctx=state.window.num_ctx,
            citations=cited_ids(content, [*(p.id for p in state.passages), *state.searched]),
        )

    def _retrieve_bounded(
        self, question: str
    ) -> Generator[AgentEvent, None, tuple[list[Passage], str | None]]:
        """Retrieval that cannot hold the user in silence: "waiting" after WAIT_NOTICE_S, and keyword search
        when the question's embedding has not come back after Settings.search_embed_timeout_s (a hung or
        loading Ollama; the knowledge base's own query timeout is the same setting)."""
        agent = self.agent
        if agent.knowledge is None or agent.knowledge.embedder is None or agent.settings.top_k_passages <= 0:
            return agent.retrieve(question)  # nothing here waits on Ollama
        job = _Background(lambda: agent.retrieve(question))
        if job.wait(WAIT_NOTICE_S):
            return job.result()
        yield from self._waiting()
        budget = min(agent.settings.search_embed_timeout_s, agent.settings.request_timeout_s)
        if job.wait(budget - WAIT_NOTICE_S):
            return job.result()
        return agent.retrieve_lexical(question), agent._keyword_notice()

    def _waiting(self) -> Iterator[AgentEvent]:
        if not self._waiting_shown:
            self._waiting_shown = True
            yield NoticeEvent(text=WAITING_TEXT)

    def _stream_round(
        self, state: TurnState, messages: list[dict[str, Any]], out: _Round
    ) -> Iterator[AgentEvent]:
        """Stream one model call into `out`, yielding visible tokens and thinking; raises ModelError.

        The first chunk is awaited in a helper thread: after WAIT_NOTICE_S the user is told we are waiting
        for Ollama, and at the turn's deadline the round gives up (a TIMEOUT error) instead of sitting in
        silence, and closes the request. Conversation.cancel ends the request at once (CANCELLED).
        """
        specs = state.specs
        text = _RoundText(hold=bool(specs))
        request = ChatRequest(state.model, messages, specs, state.options)
        stream = self.agent.ollama.stream(request, cancel=state.cancel)
        first = _Background(lambda: next(stream, None))
        try:
            head = yield from self._first_chunk(first, state)
            for chunk in itertools.chain([head] if head is not None else [], stream):
                yield from text.feed(chunk)
                out.calls.extend(chunk.tool_calls)
                if chunk.done:
                    out.done = True
                    out.eval_count = chunk.eval_count
                    out.eval_duration_ns = chunk.eval_duration_ns
                    out.prompt_eval_count = chunk.prompt_eval_count
            yield from text.flush()
        finally:
            out.content = text.content
            if not first.done:  # abandoned (deadline, or the turn closed): close the request, Ollama stops
                state.cancel.cancel()
            else:
                stream.close()
        if not out.done:
            raise ModelError(STREAM_DROPPED_TEXT, ModelErrorKind.STREAM_DROPPED)
        if text.held:
            text_calls = None if out.calls else parse_text_tool_calls(out.content, self.agent.tool_names)
            if text_calls:
                out.calls, out.content = text_calls, ""
            else:
                yield TokenEvent(text=text.release())

    def _first_chunk(self, first: _Background, state: TurnState) -> Generator[AgentEvent, None, Chunk | None]:
        if not first.wait(WAIT_NOTICE_S):
            yield from self._waiting()
            if not first.wait(state.deadline - time.monotonic()):
                timeout_s = self.agent.settings.request_timeout_s
                raise ModelError(timeout_message(state.model, timeout_s), ModelErrorKind.TIMEOUT)
        head: Chunk | None = first.result()
        return head

    def _run_calls(self, result: _Round, state: TurnState) -> Iterator[AgentEvent]:
        """Record the assistant's calls, run each, append one `tool` message per call (errors included)."""
        # A single tool result may take a sixth of the input budget: enough for any of our tools' outputs,
        # small enough that one huge lookup cannot crowd out the passages.
        max_result_tokens = max(256, state.budget.input_budget // 6)
        bounded = [_bounded_arguments(_arguments_dict(call.arguments)) for call in result.calls]
        history_calls = [
            {"function": {"name": call.name, "arguments": arguments}}
            for call, (arguments, _) in zip(result.calls, bounded, strict=True)
        ]
        self.history.append({"role": "assistant", "content": result.content, "tool_calls": history_calls})
        for index, (call, (arguments, too_long)) in enumerate(zip(result.calls, bounded, strict=True)):
            call_id = f"t{self._turns}r{state.rounds}c{index}"
            yield ToolCallEvent(call_id=call_id, name=call.name, arguments=arguments, round=state.rounds)
            began = time.perf_counter()
            if too_long:
                outcome = ToolOutcome(call.name, error=too_long)
            else:
                outcome = run_tool(self.agent.toolset, call.name, call.arguments)
            if outcome.result is None:
                error = outcome.error or f"{call.name} returned nothing"
                payload = json.dumps({"error": error, "hint": RETRY_HINT}, ensure_ascii=False)
                self.history.append({"role": "tool", "content": payload, "tool_name": call.name})
                yield ToolErrorEvent(call_id=call_id, name=call.name, error=error)
                continue
            data = outcome.result.model_dump(mode="json")
            found = list(outcome.result.passages) if isinstance(outcome.result, SearchKnowledgeOutput) else []
            state.searched.extend(p.id for p in found)  # passages found mid-turn are citable too
            content = compact_json(data, max_result_tokens)
            self.history.append({"role": "tool", "content": content, "tool_name": call.name})
            duration_ms = (time.perf_counter() - began) * 1000
            yield ToolResultEvent(call_id=call_id, name=call.name, result=data, duration_ms=duration_ms)
            if found:
                yield PassagesEvent(passages=found, origin="search_knowledge")

    def _summarise_earlier_results(self) -> None:
        """Replace the full tool results of earlier turns by their summaries (verdict, key numbers).

        The turn that asked for a result sees it whole (unless they fill the window: `_compact_turn`); later
        turns see what was found, which keeps a long tool-using conversation's history small enough that the
        user's questions all stay in the window. Works from the history itself, so a history restored from
        elsewhere is summarised the same way.
        """
        summarise_tool_results(self.history)

    def _keep_partial(self, result: _Round, how: str) -> None:
        """Keep what the model already said, marked, so the user and the next turn can see it was cut."""
        if result.content.strip():
            self.history.append({"role": "assistant", "content": f"{result.content}\n\n[answer {how}]"})


def summarise_tool_results(messages: Iterable[dict[str, Any]]) -> None:
    """Replace full tool results in these messages by their summaries, in place; refusals (`{"error": ...}`)
    are short and stay as they are."""
    for message in messages:
        content = message.get("content")
        if message.get("role") != "tool" or not isinstance(content, str):
            continue
        if content.startswith(SUMMARY_PREFIX) or not content.startswith("{"):
            continue
        try:
            data = loads(content)
        except (ValueError, RecursionError):
            continue
        if isinstance(data, dict) and "error" not in data:
            message["content"] = summarise_tool_result(str(message.get("tool_name") or ""), data)


class _RoundText:
    """The visible text of one round as it streams: reasoning split off as thinking (Ollama >= 0.12 sends it
    in ``thinking``; older ones, and models without a thinking parser, in <think> tags), and content that may
    still be a tool call written as text held back until it clearly is an answer (see reply_text)."""

    def __init__(self, *, hold: bool) -> None:
        self.holding = hold
        self.held: list[str] = []
        self.parts: list[str] = []
        self.think = ThinkTags()

    @property
    def content(self) -> str:
        return "".join(self.parts)

    def feed(self, chunk: Chunk) -> Iterator[AgentEvent]:
        thought, text = self.think.feed(clean_text(chunk.text))
        yield from self._emit(clean_text(chunk.thinking) + thought, text)

    def flush(self) -> Iterator[AgentEvent]:
        yield from self._emit(*self.think.flush())

    def release(self) -> str:
        text = "".join(self.held)
        self.held.clear()
        return text

    def _emit(self, thought: str, text: str) -> Iterator[AgentEvent]:
        if thought:
            yield ThinkingEvent(text=thought)
        if not text:
            return
        self.parts.append(text)
        if not self.holding:
            yield TokenEvent(text=text)
            return
        self.held.append(text)
        if not may_be_text_tool_call(self.content.lstrip()):
            self.holding = False
            yield TokenEvent(text=self.release())


def _repair_history(history: list[dict[str, Any]], start: int) -> None:
    """Whatever a turn added must be sendable next time: a failed turn can never leave history unusable."""
    for i in range(start, len(history)):
        if not is_sendable(history[i]):
            log.warning("history message %d was not strict JSON/UTF-8; sanitised", i)
            history[i] = json_safe(history[i])


def _bounded_arguments(arguments: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """(arguments to show and keep, refusal) - huge arguments are replaced by a note and refused."""
    size = len(json.dumps(arguments, ensure_ascii=False))
    if size <= MAX_TOOL_ARGUMENT_CHARS:
        return arguments, None
    note = f"arguments of {size:,} characters, not kept (the limit is {MAX_TOOL_ARGUMENT_CHARS:,})"
    refusal = (
        f"the tool call's arguments were {size:,} characters; the limit is {MAX_TOOL_ARGUMENT_CHARS:,}. "
        "Call the tool again with short arguments."
    )
    return {"_omitted": note}, refusal


class _Workers:
    """Daemon threads reused across turns (starting a thread per wait doubled the agent's per-turn overhead).

    Daemon, not concurrent.futures: a request abandoned at its deadline must not hold the process at exit.
    """

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, task: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
        if start:
            threading.Thread(target=self._work, name="agent-wait", daemon=True).start()
        self._tasks.put(task)

    def _work(self) -> None:
        while True:
            self._tasks.get()()
            with self._lock:
                self._idle += 1


_WORKERS = _Workers()


class _Background:
    """Run `fn` on a worker thread and wait for it with timeouts (the caller may give up and move on)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn
        self._event = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        _WORKERS.submit(self._run)

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the waiting thread by result()
            self._error = exc
        finally:
            self._event.set()

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(max(0.0, timeout))

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value
