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
import re
import threading
import time
from collections.abc import Callable, Collection, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.chat_model import (
    STREAM_DROPPED_TEXT,
    ChatCancel,
    ChatModel,
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
    NoticeEvent,
    PassagesEvent,
    ThinkingEvent,
    TokenEvent,
    ToolCallEvent,
    ToolErrorEvent,
    ToolResultEvent,
)
from assistant.prompts import FORCE_ANSWER_NOTE, build_system_prompt, cited_ids, system_message
from assistant.safe_json import clean_text, is_sendable, json_safe
from knowledge.embedding import STALLED
from tools import Registry, ToolError

if TYPE_CHECKING:
    from assistant.config import Settings
    from knowledge.search import KnowledgeBase, Passage

log = logging.getLogger(__name__)

__all__ = ["Agent", "Conversation", "ParsedCall", "parse_text_tool_calls"]

# Tool-call arguments longer than this (as JSON) are refused and not kept in history: no tool needs more, and
# a 5 MB call would otherwise overflow every later request of the turn (and be blamed on the user's message).
MAX_TOOL_ARGUMENT_CHARS = 20_000
# A hung (or model-loading) Ollama: say so after WAIT_NOTICE_S, and let search fall back to keywords after
# Settings.search_embed_timeout_s; the whole wait for Ollama is bounded by Settings.request_timeout_s.
WAIT_NOTICE_S = 1.0
WAITING_TEXT = "Waiting for Ollama… (it may be loading the model)."
STOPPED_TEXT = "Stopped: the answer was cut where you pressed Stop; what arrived so far is kept."
RETRY_HINT = "Correct the arguments and call the tool again, or answer without it and say what is missing."


ParsedCall = ToolCall  # the name the text-call parser and its tests use


# ------------------------------------------------------------------------------------------------
# Tool calls written as text. Small models (and Ollama when its template parser misses) often put the call in
# the message content: a bare JSON object, a <tool_call> block or a ```json fence. We hold back such content
# while streaming and, if the whole message is nothing but tool calls to known tools, run them.
# ------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^```(?:json|tool_call|tool_code)?\s*(.*?)\s*```$", re.DOTALL)
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def _may_be_text_tool_call(stripped: str) -> bool:
    """Whether content seen so far could still turn out to be a tool call written as text."""
    if not stripped:
        return True
    if stripped[0] == "{":
        return True
    if stripped[0] == "[":
        return re.match(r"\[\s*(\{|$)", stripped) is not None
    if stripped.startswith("<"):
        return "<tool_call>".startswith(stripped[:11]) or stripped.startswith("<tool_call>")
    if stripped.startswith("`"):
        if "```json".startswith(stripped):
            return True
        return re.match(r"```(json|tool_call|tool_code)?\s*(\{|\[|<|$)", stripped) is not None
    return False


def _parse_int(digits: str) -> int | float:
    """json's int hook: a number too long for int() (over 4,300 digits raises ValueError) becomes a float
    (inf), which `json_safe` then treats like `1e400`, instead of failing the whole turn."""
    try:
        return int(digits)
    except ValueError:
        return float(digits)


def _loads(text: str) -> Any:
    return json.loads(text, parse_int=_parse_int)


def parse_text_tool_calls(content: str, known: Collection[str]) -> list[ParsedCall] | None:
    """Tool calls written as the whole message content, or None when the content is an ordinary answer."""
    text = content.strip()
    if not text:
        return None
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    blocks = [b for b in _TAGGED.findall(text)] if text.startswith("<tool_call>") else [text]
    calls: list[ParsedCall] = []
    for block in blocks:
        try:
            value = _loads(block)
        except (ValueError, RecursionError):
            return None
        items = value if isinstance(value, list) else [value]
        for item in items:
            call = _call_from_json(item, known)
            if call is None:
                return None
            calls.append(call)
    return calls or None


def _call_from_json(item: Any, known: Collection[str]) -> ParsedCall | None:
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("function"), dict):  # OpenAI shape {"type":"function","function":{...}}
        item = item["function"]
    name = item.get("name")
    if not isinstance(name, str) or name not in known:
        return None
    args = item.get("arguments", item.get("parameters", {}))
    if not isinstance(args, dict | str) and args is not None:
        return None
    return ParsedCall(name=name, arguments=args)


def _arguments_dict(arguments: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """Arguments as a dict for events and history; an undecodable string is kept verbatim under `_raw`."""
    if arguments is None:
        return {}
    if isinstance(arguments, Mapping):
        return dict(json_safe(arguments))  # NaN, lone surrogates: never into history (issue 14)
    try:
        value = _loads(arguments) if arguments.strip() else {}
    except (ValueError, RecursionError):
        return {"_raw": clean_text(arguments)}
    return dict(json_safe(value)) if isinstance(value, dict) else {"_raw": clean_text(arguments)}


# ------------------------------------------------------------------------------------------------
# Errors from the Ollama layer / client, turned into one user-presentable message each.
# ------------------------------------------------------------------------------------------------


_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


class _ThinkTags:
    """Splits a leading ``<think>...</think>`` block off streamed content, whatever the chunk boundaries.

    Ollama before 0.12 (and any model whose template has no thinking parser) streams a thinking model's
    reasoning inside the content. It must not reach the answer or the history; only a block at the very start
    of the message counts, so an answer that merely mentions the tag is left alone.
    """

    def __init__(self) -> None:
        self.state = "start"  # start -> think -> after -> answer, or start -> answer
        self.buffer = ""

    def feed(self, text: str) -> tuple[str, str]:
        """(thinking, answer) text that can be released now."""
        if self.state == "answer":
            return "", text
        self.buffer += text
        if self.state == "start":
            stripped = self.buffer.lstrip()
            if not stripped or (len(stripped) < len(_THINK_OPEN) and _THINK_OPEN.startswith(stripped)):
                return "", ""  # still undecided
            if not stripped.startswith(_THINK_OPEN):
                self.state, answer, self.buffer = "answer", self.buffer, ""
                return "", answer
            self.state, self.buffer = "think", stripped[len(_THINK_OPEN) :]
        if self.state == "think":
            end = self.buffer.find(_THINK_CLOSE)
            if end < 0:
                keep = next(
                    (
                        n
                        for n in range(len(_THINK_CLOSE) - 1, 0, -1)
                        if self.buffer.endswith(_THINK_CLOSE[:n])
                    ),
                    0,
                )
                thought = self.buffer[: len(self.buffer) - keep]
                self.buffer = self.buffer[len(self.buffer) - keep :]
                return thought, ""
            thought = self.buffer[:end]
            self.state, self.buffer = "after", self.buffer[end + len(_THINK_CLOSE) :]
            rest = self._after()
            return thought, rest
        return "", self._after()

    def _after(self) -> str:
        rest = self.buffer.lstrip()
        self.buffer = ""
        if rest:
            self.state = "answer"
        return rest

    def flush(self) -> tuple[str, str]:
        """What is left when the stream ends (an unterminated thought stays thinking)."""
        left, self.buffer = self.buffer, ""
        if self.state == "think":
            return left, ""
        return "", left if self.state == "start" else left.lstrip()


# ------------------------------------------------------------------------------------------------


@dataclass
class _Round:
    content: str = ""
    calls: list[ParsedCall] = field(default_factory=list)
    done: bool = False
    eval_count: int = 0
    eval_duration_ns: int = 0
    prompt_eval_count: int = 0


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
    ) -> None:
        self.settings = settings
        self.ollama = ollama
        self.toolset = toolset
        self.knowledge = knowledge
        self.tool_names: frozenset[str] = frozenset(toolset.names())
        self.tool_specs: tuple[dict[str, Any], ...] = tuple(t.ollama_spec() for t in toolset)
        self.tool_tokens = tools_tokens(self.tool_specs)  # constant: computed once, not per request
        self.system_prompt: str = build_system_prompt(toolset)
        self.options: dict[str, Any] = dict(options or {})  # num_ctx is added per turn (see context_window)
        self.machine = machine
        self.windows = ContextWindows(
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

    def retrieve(self, question: str) -> tuple[list[Passage], str | None]:
        """Top passages for the question, or ([], notice) when there is no knowledge base or search failed."""
        k = self.settings.top_k_passages
        if self.knowledge is None or k <= 0:
            return [], None
        try:
            result = self.knowledge.search(question[:2000], k=k)
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
            return list(self.knowledge.retrieve(question[:2000], self.settings.top_k_passages, "lexical"))
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
        agent = self.agent
        settings = agent.settings
        started = time.perf_counter()
        if not user_text or not user_text.strip():
            yield ErrorEvent(kind="empty", message="The message is empty: type a question first.")
            return

        self._summarise_earlier_results()
        self._waiting_shown = False
        deadline = time.monotonic() + settings.request_timeout_s  # the one bound on waiting for Ollama
        cancel = self._cancel or ChatCancel()
        passages, notice = yield from self._retrieve_bounded(user_text)
        if notice:
            yield NoticeEvent(text=notice)
        if cancel.cancelled:
            yield ErrorEvent(kind="stopped", message=STOPPED_TEXT)
            return
        start = len(self.history)
        window = agent.context_window(model)
        budget = agent.budget_for(window.num_ctx)
        options = {**agent.options, "num_ctx": window.num_ctx}
        tool_names = select_tools(user_text, agent.tool_names, recently_used_tools(self.history))
        turn_specs, turn_tools_cost = agent.tools_for(tool_names)
        self.history.append({"role": "user", "content": user_text})

        totals = _Round()
        searched: list[str] = []
        rounds = 0
        tool_rounds = 0
        shown_passages = False
        told = (0, 0, 0)  # what the user was already told was left out (messages, shortened, questions)
        tools_allowed = True
        forced = False
        while True:
            if cancel.cancelled:  # stopped while a tool ran: no further request
                yield ErrorEvent(kind="stopped", message=STOPPED_TEXT)
                return
            final_round = forced or not tools_allowed
            specs = () if final_round else turn_specs
            current = self.history[start:]
            if forced:
                current = [*current, {"role": "system", "content": FORCE_ANSWER_NOTE}]
            try:
                fit = budget.fit(
                    render_system=agent.render_system,
                    passages=passages,
                    tool_specs=specs,
                    history=self.history[:start],
                    current=current,
                    tools_cost=turn_tools_cost if specs else 0,
                )
            except ContextOverflow as exc:
                if rounds == 0:
                    # Nothing was asked yet: drop the message so it cannot poison every later turn.
                    del self.history[start:]
                    message = str(exc).replace(
                        "nothing was sent", "the message was not kept and nothing was sent"
                    )
                else:
                    message = str(exc)
                yield ErrorEvent(kind="oversized", message=message)
                return
            if not shown_passages:
                shown_passages = True
                if fit.passages:
                    yield PassagesEvent(passages=list(fit.passages))
            # Said plainly, once per turn, and again if a later round (with tool results) leaves out more.
            left_out = (fit.dropped_messages, fit.shortened_questions, fit.dropped_questions)
            if fit.dropped_passages or any(now > before for now, before in zip(left_out, told, strict=True)):
                dropped = fit.dropped_summary(window.num_ctx)
                if dropped:
                    yield NoticeEvent(text=dropped, kind="context_dropped")
            told = left_out
            passages = fit.passages  # later rounds keep what fitted
            yield ContextEvent(
                used_tokens=fit.estimated_tokens,
                window_tokens=window.num_ctx,
                reserved_tokens=budget.reserve_output,
                model=model,
                auto=window.auto,
                reason=window.reason,
                tools=[spec["function"]["name"] for spec in specs],
            )

            rounds += 1
            result = _Round()
            try:
                yield from self._stream_round(model, fit.messages, specs, result, options, deadline, cancel)
                deadline = time.monotonic() + settings.request_timeout_s  # next round: a fresh wait
            except GeneratorExit:
                self._keep_partial(result, "stopped")
                raise
            except ModelError as exc:
                if exc.kind is ModelErrorKind.CANCELLED:
                    self._keep_partial(result, "stopped")
                    yield ErrorEvent(kind="stopped", message=STOPPED_TEXT)
                    return
                if exc.kind is ModelErrorKind.NO_TOOLS and tools_allowed and not result.content:
                    tools_allowed = False
                    yield NoticeEvent(
                        text=f"Model {model!r} does not support tool calling, so it answers from the "
                        "passages alone without computed numbers. Pick a model with tools (e.g. qwen2.5:7b) "
                        "for those."
                    )
                    continue
                self._keep_partial(result, "interrupted")
                yield ErrorEvent(kind=exc.kind.event_kind, message=str(exc))  # type: ignore[arg-type]
                return
            except Exception as exc:  # noqa: BLE001 - a bug must end the turn with a message, not a traceback
                self._keep_partial(result, "interrupted")
                log.exception("agent turn failed")
                message = f"Unexpected error while talking to Ollama ({exc.__class__.__name__}: {exc})."
                yield ErrorEvent(kind="internal", message=message)
                return
            totals.eval_count += result.eval_count
            totals.eval_duration_ns += result.eval_duration_ns
            totals.prompt_eval_count += result.prompt_eval_count

            if result.calls and not final_round:
                tool_rounds += 1
                yield from self._run_calls(result, rounds, searched, budget)
                if tool_rounds >= settings.max_tool_rounds:
                    forced = True
                    yield NoticeEvent(
                        text=f"Stopped calling tools after {tool_rounds} round(s); asking the model to "
                        "answer with the results it has."
                    )
                continue

            content = result.content
            if result.calls:
                yield NoticeEvent(text="The model asked for more tools after the tool budget was used up.")
                if not content.strip():
                    content = (
                        f"The model gave no answer: it used up its budget of {settings.max_tool_rounds} "
                        "tool round(s) (ADVISOR_MAX_TOOL_ROUNDS) and kept asking for more tools instead of "
                        "answering. The tool results above are what it gathered; ask a narrower question or "
                        "try another model."
                    )
                    yield NoticeEvent(text=content)
            if not content.strip():
                content = (
                    "The model returned no answer. The tool results above are what it gathered; ask again or "
                    "try another model."
                )
                yield NoticeEvent(text=content)
            self.history.append({"role": "assistant", "content": content})
            seconds = totals.eval_duration_ns / 1e9
            yield DoneEvent(
                content=content,
                eval_count=totals.eval_count,
                eval_duration_s=seconds,
                tokens_per_second=(totals.eval_count / seconds) if seconds > 0 else None,
                prompt_eval_count=totals.prompt_eval_count,
                total_s=time.perf_counter() - started,
                rounds=rounds,
                model=model,
                num_ctx=window.num_ctx,
                citations=cited_ids(content, [*(p.id for p in passages), *searched]),
            )
            return

    def _retrieve_bounded(
        self, question: str
    ) -> Generator[AgentEvent, None, tuple[list[Passage], str | None]]:
        """Retrieval that cannot hold the user in silence: "waiting" after WAIT_NOTICE_S, and keyword search
        when the question's embedding has not come back after Settings.search_embed_timeout_s (a hung or
        loading Ollama; the knowledge base's own query timeout is the same setting)."""
        agent = self.agent
        if getattr(agent.knowledge, "embedder", None) is None or agent.settings.top_k_passages <= 0:
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
        self,
        model: str,
        messages: list[dict[str, Any]],
        specs: Sequence[dict[str, Any]],
        out: _Round,
        options: Mapping[str, Any],
        deadline: float | None = None,
        cancel: ChatCancel | None = None,
    ) -> Iterator[AgentEvent]:
        """Stream one model call into `out`, yielding visible tokens; raises on any transport failure.

        The first chunk is awaited in a helper thread: after WAIT_NOTICE_S the user is told we are waiting
        for Ollama, and at `deadline` the round gives up (TimeoutError) instead of sitting in silence, and
        closes the request. `cancel` (Conversation.cancel) ends the request at once: ChatCancelled.
        """
        agent = self.agent
        watch_text_calls = bool(specs)
        holding = watch_text_calls
        held: list[str] = []
        parts: list[str] = []
        think_tags = _ThinkTags()
        cancel = cancel or ChatCancel()
        stream = agent.ollama.stream(model, messages, list(specs) or None, dict(options), cancel=cancel)
        chunks = iter(stream)
        first = _Background(lambda: next(chunks, None))

        def visible(text: str) -> Iterator[AgentEvent]:
            nonlocal holding
            if not text:
                return
            parts.append(text)
            if holding:
                held.append(text)
                if not _may_be_text_tool_call("".join(parts).lstrip()):
                    holding = False
                    yield TokenEvent(text="".join(held))
                    held.clear()
            else:
                yield TokenEvent(text=text)

        try:
            if not first.wait(WAIT_NOTICE_S):
                yield from self._waiting()
                left = (deadline if deadline is not None else time.monotonic() + 1e9) - time.monotonic()
                if not first.wait(left):
                    raise ModelError(
                        timeout_message(model, agent.settings.request_timeout_s), ModelErrorKind.TIMEOUT
                    )
            head = first.result()
            for chunk in itertools.chain([head] if head is not None else [], chunks):
                # Reasoning, not answer: its own event, never in the content or the history. Ollama >= 0.12
                # sends it in `thinking`; older ones (and models without a thinking parser) in <think> tags.
                thought, text = think_tags.feed(clean_text(chunk.text))
                thought = clean_text(chunk.thinking) + thought
                if thought:
                    yield ThinkingEvent(text=thought)
                yield from visible(text)
                out.calls.extend(chunk.tool_calls)
                if chunk.done:
                    out.done = True
                    out.eval_count = chunk.eval_count
                    out.eval_duration_ns = chunk.eval_duration_ns
                    out.prompt_eval_count = chunk.prompt_eval_count
            thought, text = think_tags.flush()
            if thought:
                yield ThinkingEvent(text=thought)
            yield from visible(text)
        finally:
            out.content = "".join(parts)
            close = getattr(stream, "close", None)
            if not first.done:  # abandoned (deadline, or the turn closed): close the request, Ollama stops
                cancel.cancel()
            elif close is not None:
                close()
        if not out.done:
            raise ModelError(STREAM_DROPPED_TEXT, ModelErrorKind.STREAM_DROPPED)
        if held:
            text_calls = None if out.calls else parse_text_tool_calls(out.content, agent.tool_names)
            if text_calls:
                out.calls = text_calls
                out.content = ""
            else:
                yield TokenEvent(text="".join(held))

    def _run_calls(
        self, result: _Round, round_no: int, searched: list[str], budget: ContextBudget
    ) -> Iterator[AgentEvent]:
        """Record the assistant's calls, run each, append one `tool` message per call (errors included)."""
        agent = self.agent
        # A single tool result may take a sixth of the input budget: enough for any of our tools' outputs,
        # small enough that one huge lookup cannot crowd out the passages.
        max_result_tokens = max(256, budget.input_budget // 6)
        all_arguments = [_bounded_arguments(_arguments_dict(call.arguments)) for call in result.calls]
        history_calls = [
            {"function": {"name": call.name, "arguments": arguments}}
            for call, (arguments, _) in zip(result.calls, all_arguments, strict=True)
        ]
        self.history.append({"role": "assistant", "content": result.content, "tool_calls": history_calls})
        for index, call in enumerate(result.calls):
            call_id = f"t{self._turns}r{round_no}c{index}"
            arguments, too_long = all_arguments[index]
            yield ToolCallEvent(call_id=call_id, name=call.name, arguments=arguments, round=round_no)
            began = time.perf_counter()
            try:
                if too_long:
                    raise ToolError(too_long)
                tool = agent.toolset.get(call.name)
                output = tool.run(call.arguments)
            except ToolError as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - a tool bug must not end the conversation
                log.exception("tool %s failed", call.name)
                error = f"{call.name} failed internally ({exc.__class__.__name__}: {exc})"
            else:
                data = output.model_dump(mode="json")
                found = list(getattr(output, "passages", [])) if call.name == "search_knowledge" else []
                searched.extend(p.id for p in found)  # passages found mid-turn are citable too
                content = compact_json(data, max_result_tokens)
                self.history.append({"role": "tool", "content": content, "tool_name": call.name})
                yield ToolResultEvent(
                    call_id=call_id,
                    name=call.name,
                    result=data,
                    duration_ms=(time.perf_counter() - began) * 1000,
                )
                if found:
                    yield PassagesEvent(passages=found, origin="search_knowledge")
                continue
            payload = {"error": error, "hint": RETRY_HINT}
            self.history.append(
                {"role": "tool", "content": json.dumps(payload, ensure_ascii=False), "tool_name": call.name}
            )
            yield ToolErrorEvent(call_id=call_id, name=call.name, error=error)

    def _summarise_earlier_results(self) -> None:
        """Replace the full tool results of earlier turns by their summaries (verdict, key numbers).

        The turn that asked for a result sees it whole; later turns see what was found, which keeps a long
        tool-using conversation's history small enough that the user's questions all stay in the window.
        Works from the history itself, so a history restored from elsewhere is summarised the same way;
        refusals (`{"error": ...}`) are short and stay as they are.
        """
        for message in self.history:
            content = message.get("content")
            if message.get("role") != "tool" or not isinstance(content, str):
                continue
            if content.startswith(SUMMARY_PREFIX) or not content.startswith("{"):
                continue
            try:
                data = _loads(content)
            except (ValueError, RecursionError):
                continue
            if isinstance(data, dict) and "error" not in data:
                message["content"] = summarise_tool_result(str(message.get("tool_name") or ""), data)

    def _keep_partial(self, result: _Round, how: str) -> None:
        """Keep what the model already said, marked, so the user and the next turn can see it was cut."""
        if result.content.strip():
            self.history.append({"role": "assistant", "content": f"{result.content}\n\n[answer {how}]"})


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
