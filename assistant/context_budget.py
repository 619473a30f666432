"""Context budgeting: decide what goes into one /api/chat request so that Ollama never truncates it.

Ollama silently drops the *start* of a prompt that exceeds `num_ctx` — which is where the system prompt and
the passages live. So we estimate tokens ourselves (conservatively: we have no tokenizer for every model, and
over-estimating only costs a little history), reserve room for the answer, and remove things in a fixed order
of importance: oldest history exchanges first, then the lowest-ranked passages; if the system prompt, the tool
schemas and the current turn still do not fit, the turn is refused with a message that says what to do.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

# English prose is ~4 chars/token for Llama/Qwen tokenizers, JSON and numbers closer to 3; 3.0 over-counts
# prose by ~30%, which is the safety margin we want for a budget that must never be exceeded.
CHARS_PER_TOKEN = 3.0
# Chat templates wrap every message in role markers (<|im_start|>role\n ... <|im_end|>\n).
MESSAGE_OVERHEAD_TOKENS = 8
TEMPLATE_OVERHEAD_TOKENS = 32

P = TypeVar("P")


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def message_tokens(message: dict[str, Any]) -> int:
    tokens = MESSAGE_OVERHEAD_TOKENS + estimate_tokens(str(message.get("content") or ""))
    calls = message.get("tool_calls")
    if calls:
        tokens += estimate_tokens(json.dumps(calls, separators=(",", ":"), default=str))
    return tokens


def tools_tokens(specs: Sequence[dict[str, Any]]) -> int:
    """Templates render tool specs as JSON into the prompt, so their JSON length is what costs tokens."""
    if not specs:
        return 0
    return estimate_tokens(json.dumps(list(specs), separators=(",", ":"))) + MESSAGE_OVERHEAD_TOKENS


def split_exchanges(history: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group history into exchanges that start at a user message.

    Trimming whole exchanges keeps every `tool` message next to the assistant message that asked for it; a
    tool result without its call confuses small models more than losing the exchange.
    """
    exchanges: list[list[dict[str, Any]]] = []
    for message in history:
        if message.get("role") == "user" or not exchanges:
            exchanges.append([message])
        else:
            exchanges[-1].append(message)
    return exchanges


class ContextOverflow(Exception):
    """The fixed part of the request does not fit `num_ctx`; `str()` is user-presentable."""


@dataclass(frozen=True)
class Fit(Generic[P]):
    messages: list[dict[str, Any]]
    passages: list[P]
    dropped_messages: int
    dropped_passages: int
    estimated_tokens: int
    budget_tokens: int
    # What was left out of earlier exchanges, by kind (see ContextBudget.fit for the order).
    dropped_tool_messages: int = 0
    dropped_answers: int = 0
    shortened_questions: int = 0
    dropped_questions: int = 0
    kept_questions: int = 0

    def dropped_summary(self, num_ctx: int) -> str | None:
        """One plain sentence on what this request leaves out, or None when nothing was left out."""
        parts: list[str] = []
        if self.dropped_tool_messages:
            parts.append(f"{self.dropped_tool_messages} earlier tool call/result message(s)")
        if self.dropped_answers:
            parts.append(f"{self.dropped_answers} earlier answer(s)")
        if self.dropped_passages:
            parts.append(f"{self.dropped_passages} retrieved passage(s)")
        if self.shortened_questions:
            parts.append(f"the end of {self.shortened_questions} long earlier question(s)")
        if self.dropped_questions:
            parts.append(f"your {self.dropped_questions} earliest question(s)")
        if not parts:
            return None
        kept = (
            f" All {self.kept_questions} of your earlier questions are still included."
            if self.kept_questions and not self.dropped_questions
            else ""
        )
        return (
            f"Left out of this request to fit the context window ({num_ctx:,} tokens): {_join(parts)}."
            f"{kept} Start a new chat, or raise the window (--num-ctx / ADVISOR_NUM_CTX), to keep more."
        )


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


# A shortened earlier question keeps its start: enough for the model to know what a follow-up refers to.
SHORT_QUESTION_CHARS = 600


class _Exchange:
    """One earlier exchange, reducible step by step: full -> without tool work -> question only -> shortened
    question -> gone. Keeps each message's cost so trimming stays linear in the history length."""

    __slots__ = ("question", "work", "answers", "question_cost", "work_cost", "answers_cost", "messages")

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages
        first = messages[0]
        self.question: dict[str, Any] | None = first if first.get("role") == "user" else None
        self.work: list[int] = []  # indexes of assistant tool-call messages and tool results
        self.answers: list[int] = []  # indexes of assistant messages without tool calls
        self.question_cost = message_tokens(first) if self.question is not None else 0
        self.work_cost = 0
        self.answers_cost = 0
        for i, message in enumerate(messages):
            if i == 0 and self.question is not None:
                continue
            cost = message_tokens(message)
            if message.get("role") == "assistant" and not message.get("tool_calls"):
                self.answers.append(i)
                self.answers_cost += cost
            else:
                self.work.append(i)
                self.work_cost += cost

    @property
    def cost(self) -> int:
        return self.question_cost + self.work_cost + self.answers_cost

    def kept(self) -> list[dict[str, Any]]:
        keep = set(self.work) | set(self.answers)
        out = [m for i, m in enumerate(self.messages) if i in keep]
        if self.question is not None:
            out.insert(0, self.question)
        return out


@dataclass(frozen=True)
class ContextBudget:
    num_ctx: int
    reserve_output: int

    @classmethod
    def for_num_ctx(cls, num_ctx: int) -> ContextBudget:
        # Room for the answer: a quarter of the window, capped — an advisor answer is a few hundred tokens.
        return cls(num_ctx=num_ctx, reserve_output=min(1024, num_ctx // 4))

    @property
    def input_budget(self) -> int:
        return self.num_ctx - self.reserve_output - TEMPLATE_OVERHEAD_TOKENS

    def fit(
        self,
        *,
        render_system: Callable[[Sequence[P]], str],
        passages: Sequence[P],
        tool_specs: Sequence[dict[str, Any]],
        history: Sequence[dict[str, Any]],
        current: Sequence[dict[str, Any]],
        tools_cost: int | None = None,
    ) -> Fit[P]:
        """Messages for one request: system (with passages) + trimmed history + the current turn.

        `current` (this turn's user message and its tool rounds) is never trimmed: without it the request
        is meaningless. What does not fit goes in this order, each step oldest exchange first, stopping as
        soon as the request fits: the tool calls and results of earlier exchanges, then earlier answers,
        then the lowest-ranked passages, then the tail of long earlier questions, and only then earlier
        questions themselves — a follow-up ("and with 32k context?") is meaningless without the question it
        refers to. Raises ContextOverflow when even system + tools + current exceed the budget.
        `tools_cost` lets a caller pass the (constant) token cost of `tool_specs` it computed once.
        """
        budget = self.input_budget
        tools_cost = tools_tokens(tool_specs) if tools_cost is None else tools_cost
        current_tokens = sum(message_tokens(m) for m in current)
        trim = _Trim(budget, tools_cost + current_tokens, render_system, passages, history)
        trim.run()
        total = trim.total
        self._check_fits(tools_cost + trim.system_tokens, total, current_tokens)
        messages = [{"role": "system", "content": render_system(trim.passages)}]
        for ex in trim.exchanges:
            messages.extend(ex.kept())
        messages.extend(current)
        counts = trim.counts
        return Fit(
            messages=messages,
            passages=trim.passages,
            dropped_messages=counts["tool"] + counts["answer"] + counts["question"],
            dropped_passages=counts["passage"],
            estimated_tokens=total,
            budget_tokens=budget,
            dropped_tool_messages=counts["tool"],
            dropped_answers=counts["answer"],
            shortened_questions=counts["short"],
            dropped_questions=counts["question"],
            kept_questions=sum(1 for ex in trim.exchanges if ex.question is not None),
        )

    def _check_fits(self, frame: int, total: int, current_tokens: int) -> None:
        """Raise ContextOverflow when the frame (system + tools) or the whole request exceeds the budget."""
        budget = self.input_budget
        if frame > budget:
            raise ContextOverflow(
                f"The context window (num_ctx={self.num_ctx}) is too small for the system prompt and the "
                f"tool descriptions alone (about {frame} tokens plus {self.reserve_output} for the answer). "
                f"Raise num_ctx (ADVISOR_NUM_CTX / --num-ctx) to at least "
                f"{_round_up(frame + self.reserve_output + TEMPLATE_OVERHEAD_TOKENS + 512)}; nothing was "
                "sent to the model."
            )
        if total > budget:
            raise ContextOverflow(
                f"This request needs about {total} tokens (your message and this turn's tool results about "
                f"{current_tokens}) but the context window is {self.num_ctx} tokens with "
                f"{self.reserve_output} kept for the answer. Shorten the message or raise num_ctx "
                f"(ADVISOR_NUM_CTX / --num-ctx); "
                f"nothing was sent to the model."
            )


class _Trim(Generic[P]):
    """What `ContextBudget.fit` leaves out, step by step, until the request fits (see its docstring)."""

    def __init__(
        self,
        budget: int,
        fixed: int,
        render_system: Callable[[Sequence[P]], str],
        passages: Sequence[P],
        history: Sequence[dict[str, Any]],
    ) -> None:
        self.budget, self.fixed, self.render_system = budget, fixed, render_system
        self.passages = list(passages)
        self.system_tokens = self._system_cost()
        self.exchanges = [_Exchange(ex) for ex in split_exchanges(history)]
        self.history_tokens = sum(ex.cost for ex in self.exchanges)
        self.counts = dict.fromkeys(("tool", "answer", "passage", "short", "question"), 0)

    @property
    def total(self) -> int:
        return self.fixed + self.system_tokens + self.history_tokens

    def over(self) -> bool:
        return self.total > self.budget

    def run(self) -> None:
        for step in (self._tool_work, self._answers, self._passages, self._long_questions, self._questions):
            if not self.over():
                return
            step()

    def _system_cost(self) -> int:
        return message_tokens({"content": self.render_system(self.passages)})

    def _tool_work(self) -> None:  # 1. tool work of earlier exchanges, oldest first
        for ex in self.exchanges:
            if not self.over():
                return
            if ex.work:
                self.history_tokens -= ex.work_cost
                self.counts["tool"] += len(ex.work)
                ex.work, ex.work_cost = [], 0

    def _answers(self) -> None:  # 2. earlier answers
        for ex in self.exchanges:
            if not self.over():
                return
            if ex.answers:
                self.history_tokens -= ex.answers_cost
                self.counts["answer"] += len(ex.answers)
                ex.answers, ex.answers_cost = [], 0

    def _passages(self) -> None:  # 3. passages, lowest-ranked first
        while self.passages and self.over():
            self.passages.pop()
            self.counts["passage"] += 1
            self.system_tokens = self._system_cost()

    def _long_questions(self) -> None:  # 4. the tail of long earlier questions
        for ex in self.exchanges:
            if not self.over():
                return
            q = ex.question
            text = str(q.get("content") or "") if q is not None else ""
            if q is not None and len(text) > SHORT_QUESTION_CHARS:
                ex.question = {**q, "content": text[:SHORT_QUESTION_CHARS] + " … [shortened]"}
                new_cost = message_tokens(ex.question)
                self.history_tokens -= ex.question_cost - new_cost
                ex.question_cost = new_cost
                self.counts["short"] += 1

    def _questions(self) -> None:  # 5. earlier questions, oldest first: the last resort
        while self.exchanges and self.over():
            ex = self.exchanges.pop(0)
            self.history_tokens -= ex.cost
            self.counts["question"] += 1 if ex.question is not None else 0
            self.counts["tool"] += len(ex.work)
            self.counts["answer"] += len(ex.answers)


def _round_up(tokens: int, step: int = 1024) -> int:
    return -(-tokens // step) * step


def compact_json(data: Any, max_tokens: int) -> str:
    """Serialise a tool result compactly, shortening long lists until it fits `max_tokens`.

    A cut string would be invalid JSON the model then misreads; shortening lists keeps the structure valid
    and records what was left out, so the model can say so or narrow its query.
    """
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    if estimate_tokens(text) <= max_tokens:
        return text
    for keep in (20, 10, 5, 3, 1, 0):
        shortened = _shorten_lists(data, keep)
        if isinstance(shortened, dict):
            shortened = {**shortened, "_truncated": f"lists shortened to {keep} items to fit the context"}
        text = json.dumps(shortened, separators=(",", ":"), ensure_ascii=False, default=str)
        if estimate_tokens(text) <= max_tokens:
            return text
    limit = int(max_tokens * CHARS_PER_TOKEN) - 120
    return json.dumps(
        {"_truncated": "result too large for the context window", "preview": text[: max(limit, 0)]},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _shorten_lists(node: Any, keep: int) -> Any:
    if isinstance(node, dict):
        return {k: _shorten_lists(v, keep) for k, v in node.items()}
    if isinstance(node, list):
        items = [_shorten_lists(v, keep) for v in node[:keep]]
        if len(node) > keep:
            items.append(f"... {len(node) - keep} more omitted")
        return items
    return node


# ------------------------------------------------------------------------------------------------------------
# Earlier tool results, summarised. The full JSON of a tool result (~2 KB) is what the model needs in the turn
# that asked for it; a later turn only needs what was found — the verdict and the key numbers — so history
# keeps that, and the answer the model wrote from the full result carries the rest.
# ------------------------------------------------------------------------------------------------------------

SUMMARY_PREFIX = "[summary of an earlier tool result] "
# Prose fields that explain rather than state a result; the turn that used them already turned them into
# the answer, and `text` is a passage body (passages from earlier turns are not resent).
_SUMMARY_SKIP = frozenset(
    {"assumptions", "sources", "flags", "price_note", "matched_on", "text", "source", "suggestions", "why"}
)
_SUMMARY_STRING_CHARS = 160
_SUMMARY_LIST_ITEMS = 6
SUMMARY_MAX_CHARS = 700

Projection = dict[str, "bool | Projection"]


def _keys(names: str, **nested: Projection) -> Projection:
    out: Projection = dict.fromkeys(names.split(), True)
    out.update(nested)
    return out


# The verdict and key numbers of each tool of the public contract (tools.REGISTRY); a list of records keeps
# the projected fields of its first few records. Tools not listed here get the generic summary.
SUMMARY_FIELDS: dict[str, Projection] = {
    "estimate_speed": _keys(
        "chip model quant context_tokens weights_gb kv_cache_gb bandwidth_gbps ceiling_tokens_per_second "
        "expected_tokens_per_second expected_range prefill_tokens_per_second"
    ),
    "check_memory_fit": _keys(
        "verdict fits_on_gpu chip memory_gb model quant context_tokens kv_cache_type max_context_tokens",
        breakdown=_keys("weights_gb kv_cache_gb total_gb gpu_budget_gb headroom_gb"),
    ),
    "lookup_benchmarks": _keys(
        "",
        llm_rows=_keys("machine model quant result"),
        image_rows=_keys("machine model seconds"),
    ),
    "recommend_machine": _keys(
        "summary",
        recommendation=_keys("machine approx_price_usd memory_gb expected_tokens_per_second fit_verdict"),
        alternatives=_keys("machine approx_price_usd"),
    ),
    "search_knowledge": _keys("", passages=_keys("id title")),
    "measure_speed": _keys(
        "model measured_tokens_per_second estimated_tokens_per_second measured_vs_estimate"
    ),
}


def summarise_tool_result(name: str, data: Any) -> str:
    """A compact, valid-JSON summary of a tool result for history: the verdict and the key numbers.

    Tools of the public contract keep the fields listed in SUMMARY_FIELDS; any other tool (a colleague adds
    one) keeps numbers, booleans and short strings at any depth, without explanatory prose (assumptions,
    sources, suggestions, passage texts). Lists of records keep their first few records and their count.
    """
    projection = SUMMARY_FIELDS.get(name)
    summary = _project(data, projection) if projection is not None else _summarise(data)
    text = json.dumps(summary, separators=(",", ":"), ensure_ascii=False, default=str)
    if len(text) > SUMMARY_MAX_CHARS:
        text = compact_json(summary, int(SUMMARY_MAX_CHARS / CHARS_PER_TOKEN))
    return SUMMARY_PREFIX + text


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _SUMMARY_STRING_CHARS:
        return value[:_SUMMARY_STRING_CHARS].rstrip() + "…"
    return value


def _project(node: Any, projection: Projection) -> Any:
    if isinstance(node, list):
        items = [_project(v, projection) for v in node[:_SUMMARY_LIST_ITEMS]]
        if len(node) > _SUMMARY_LIST_ITEMS:
            items.append(f"... {len(node)} in all")
        return items
    if not isinstance(node, dict):
        return _short(node)
    out: dict[str, Any] = {}
    for key, sub in projection.items():
        value = node.get(key)
        if value is None or value == [] or value == {}:
            continue
        out[key] = _project(value, sub) if isinstance(sub, dict) else _short(value)
    return out


def _summarise(node: Any) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _SUMMARY_SKIP or value is None or value == [] or value == {}:
                continue
            kept = _summarise(value)
            if kept not in (None, [], {}):
                out[key] = kept
        return out
    if isinstance(node, list):
        if len(node) <= 4 and all(isinstance(v, int | float | bool) for v in node):
            return node
        items = [_summarise(v) for v in node[:_SUMMARY_LIST_ITEMS] if not isinstance(v, str) or len(v) < 80]
        items = [v for v in items if v not in (None, {}, [])]
        if items and len(node) > _SUMMARY_LIST_ITEMS:
            items.append(f"... {len(node)} in all")
        return items or None
    return _short(node)
