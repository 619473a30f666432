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
        is meaningless. Raises ContextOverflow when even system + tools + current exceed the budget.
        `tools_cost` lets a caller pass the (constant) token cost of `tool_specs` it computed once.
        """
        budget = self.input_budget
        tools_cost = tools_tokens(tool_specs) if tools_cost is None else tools_cost
        fixed = tools_cost + sum(message_tokens(m) for m in current)
        kept_passages = list(passages)

        def system_cost(ps: Sequence[P]) -> int:
            return message_tokens({"content": render_system(ps)})

        system_tokens = system_cost(kept_passages)
        exchanges = split_exchanges(history)
        exchange_costs = [sum(message_tokens(m) for m in ex) for ex in exchanges]
        history_tokens = sum(exchange_costs)
        dropped_messages = 0
        while exchanges and fixed + system_tokens + history_tokens > budget:
            dropped = exchanges.pop(0)
            history_tokens -= exchange_costs.pop(0)
            dropped_messages += len(dropped)
        dropped_passages = 0
        while kept_passages and fixed + system_tokens + history_tokens > budget:
            kept_passages.pop()
            dropped_passages += 1
            system_tokens = system_cost(kept_passages)
        total = fixed + system_tokens + history_tokens
        frame = tools_cost + system_tokens
        if frame > budget:
            raise ContextOverflow(
                f"The context window (num_ctx={self.num_ctx}) is too small for the system prompt and the "
                f"tool descriptions alone (about {frame} tokens plus {self.reserve_output} for the answer). "
                f"Raise num_ctx (ADVISOR_NUM_CTX / --num-ctx) to at least "
                f"{_round_up(frame + self.reserve_output + TEMPLATE_OVERHEAD_TOKENS + 512)}; nothing was "
                "sent to the model."
            )
        if total > budget:
            current_tokens = sum(message_tokens(m) for m in current)
            raise ContextOverflow(
                f"This request needs about {total} tokens (your message and this turn's tool results about "
                f"{current_tokens}) but the context window is {self.num_ctx} tokens with "
                f"{self.reserve_output} kept for the answer. Shorten the message or raise num_ctx "
                f"(ADVISOR_NUM_CTX / --num-ctx); "
                f"nothing was sent to the model."
            )
        messages = [{"role": "system", "content": render_system(kept_passages)}]
        for exchange in exchanges:
            messages.extend(exchange)
        messages.extend(current)
        return Fit(
            messages=messages,
            passages=kept_passages,
            dropped_messages=dropped_messages,
            dropped_passages=dropped_passages,
            estimated_tokens=total,
            budget_tokens=budget,
        )


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
