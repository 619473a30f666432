"""How big the context window is, and which tools a turn gets: the two levers on what a request costs.

`num_ctx` "auto" asks the project's own fit checker (`check_memory_fit`) for the largest context that still
fits this Mac's GPU budget next to the model's weights, caps it by the model's trained length (Ollama's
/api/show `context_length`) and by a setting (`ADVISOR_MAX_NUM_CTX`), and rounds it down to a multiple of
1024. Where there is no Mac to measure (Linux, CI) or Ollama cannot describe the model, it falls back to
8192 tokens and says so. An explicit `--num-ctx` / `ADVISOR_NUM_CTX` always wins.

Tool schemas cost ~2.4k tokens for the six tools — a third of an 8k window — so a turn is sent only the
tools it can use: the core tools always, the others when the question asks for what they do or an earlier
turn of the last two used them. The rule is deliberately generous: a tool left out is a wrong answer, a tool
sent needlessly costs a few hundred tokens.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "CORE_TOOLS",
    "FALLBACK_NUM_CTX",
    "ContextWindow",
    "ContextWindows",
    "choose_num_ctx",
    "recently_used_tools",
    "select_tools",
]

log = logging.getLogger(__name__)

# Used where the fit cannot be measured, and the floor of the automatic choice: the system prompt, the tool
# schemas, four passages and a tool round need about 5k tokens plus the answer.
FALLBACK_NUM_CTX = 8192
_STEP = 1024


@dataclass(frozen=True)
class ContextWindow:
    """The num_ctx a model gets, and why (shown next to the context meter)."""

    num_ctx: int
    reason: str
    auto: bool = True


class _FitTool(Protocol):
    def run(self, arguments: Mapping[str, Any] | str | None) -> Any: ...


def choose_num_ctx(
    fit_tool: _FitTool | None,
    model: str,
    *,
    trained_context: int | None,
    max_num_ctx: int,
    machine: Mapping[str, Any] | None = None,
) -> ContextWindow:
    """The largest window that fits the GPU next to the model's weights, within the trained length and cap.

    `machine` (chip, memory_gb, ...) is passed to the fit checker; None means this Mac, which the tools read
    from sysctl on macOS and which is absent elsewhere — then the fallback applies.
    """
    limit = min(max_num_ctx, trained_context) if trained_context else max_num_ctx
    caps = f"cap ADVISOR_MAX_NUM_CTX={max_num_ctx:,}"
    if trained_context:
        caps += f", trained length {trained_context:,}"
    fallback = min(FALLBACK_NUM_CTX, limit)
    if fit_tool is None:
        return ContextWindow(fallback, f"auto: {fallback:,} tokens (no fit checker; {caps})")
    from tools import ToolError  # the tools package; imported here to keep this module cheap to import

    arguments = {**(machine or {}), "model": model, "context_tokens": min(2048, limit)}
    try:
        result = fit_tool.run(arguments)
    except ToolError as err:
        from tools.this_mac import detect

        why = "no Mac to size it against here" if machine is None and detect() is None else str(err)
        return ContextWindow(fallback, f"auto: {fallback:,} tokens, the fallback ({why}; {caps})")
    from tools import CheckMemoryFitOutput

    if not isinstance(result, CheckMemoryFitOutput):  # a registry whose check_memory_fit is another tool
        return ContextWindow(fallback, f"auto: {fallback:,} tokens (no fit checker; {caps})")
    max_fit = result.max_context_tokens
    where = result.chip or "this Mac"
    if max_fit <= 0:
        return ContextWindow(
            fallback,
            f"auto: {fallback:,} tokens: {model}'s weights alone exceed the GPU budget of {where}, so Ollama "
            "will offload part of it to the CPU; a larger window would only make that worse",
        )
    chosen = max(min(limit, max_fit) // _STEP * _STEP, fallback)
    if chosen > max_fit:
        return ContextWindow(
            chosen,
            f"auto: {chosen:,} tokens, the smallest window the assistant works with; only {max_fit:,} fit "
            f"next to {model}'s weights on {where}",
        )
    return ContextWindow(
        chosen,
        f"auto: {chosen:,} tokens: up to {max_fit:,} fit next to {model}'s weights on {where} ({caps})",
    )


# ------------------------------------------------------------------------------------------------------------
# Tools a turn can use
# ------------------------------------------------------------------------------------------------------------

# Always sent: the calculators almost every question needs, and the follow-up search.
CORE_TOOLS = frozenset({"estimate_speed", "check_memory_fit", "search_knowledge"})

_SPEED = r"fast|slow|speed|tok(?:en)?s?\s*/\s*s|tok/s|t/s|tokens?\s+(?:per|a|each)\s+sec|decode|generat"
_MEASURED = r"benchmark|measur|test|tried|real|actual|article|blog|post|published|compar|vs\.?|versus"
_IMAGE = r"image|sdxl|sd\s?1\.5|stable\s+diffusion|flux|draw\s+things|comfy|picture|photo|diffusion"
_BUY = (
    r"buy|budget|purchas|recommend|should\s+i\s+(?:get|pick|choose)|which\s+mac|what\s+mac|\$|usd|dollar|"
    r"price|cost|afford|upgrade|worth|spend|cheap|expensive|money|refurb|order"
)
_MINE = r"measur|benchmark|test|my\s+(?:mac|machine|computer|laptop|own)|this\s+(?:mac|machine)|real|actual"

# Optional tools and the words that make a question about them. A tool this table does not know (a
# colleague adds one) is always sent.
TOOL_TRIGGERS: dict[str, re.Pattern[str]] = {
    "lookup_benchmarks": re.compile(rf"{_SPEED}|{_MEASURED}|{_IMAGE}", re.IGNORECASE),
    "recommend_machine": re.compile(_BUY, re.IGNORECASE),
    "measure_speed": re.compile(_MINE, re.IGNORECASE),
}


def recently_used_tools(history: Sequence[Mapping[str, Any]], exchanges: int = 2) -> set[str]:
    """Names of tools called in the last `exchanges` exchanges: a follow-up usually needs them again."""
    names: set[str] = set()
    seen = 0
    for message in reversed(history):
        role = message.get("role")
        if role == "assistant":
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, Mapping) else None
                name = function.get("name") if isinstance(function, Mapping) else None
                if isinstance(name, str):
                    names.add(name)
        elif role == "tool" and isinstance(message.get("tool_name"), str):
            names.add(message["tool_name"])
        elif role == "user":
            seen += 1
            if seen >= exchanges:
                break
    return names


def select_tools(question: str, available: Collection[str], recent: Collection[str] = ()) -> frozenset[str]:
    """The tools to send with a turn about `question`: core, unknown, asked-for, named, or recently used."""
    lowered = question.lower()
    chosen = set()
    for name in available:
        trigger = TOOL_TRIGGERS.get(name)
        if (
            name in CORE_TOOLS
            or trigger is None
            or name in recent
            or name in lowered
            or trigger.search(question) is not None
        ):
            chosen.add(name)
    return frozenset(chosen)


class ContextWindows:
    """num_ctx per model: the explicit setting, else `choose_num_ctx`, looked up once per model and cached.

    Shared logic for the agent (the chat's requests) and measure_speed (which must run a model with the same
    window, or Ollama reloads it and measures a different KV cache). `trained_length` reads a model's trained
    context (Ollama's /api/show) and may raise when Ollama is down or the model is missing: then the fallback
    is used for now and the model is looked up again next time. `fit_tool` is called when needed, so a
    registry can be finished after this object is made.
    """

    def __init__(
        self,
        setting: int | str,
        max_num_ctx: int,
        trained_length: Callable[[str], int | None],
        fit_tool: Callable[[], _FitTool | None],
        machine: Mapping[str, Any] | None = None,
    ) -> None:
        self.setting = setting
        self.max_num_ctx = max_num_ctx
        self.trained_length = trained_length
        self.fit_tool = fit_tool
        self.machine = machine
        self._cache: dict[str, ContextWindow] = {}
        self._lock = threading.Lock()

    def __call__(self, model: str) -> ContextWindow:
        if isinstance(self.setting, int):
            reason = f"set: {self.setting:,} tokens (ADVISOR_NUM_CTX / --num-ctx)"
            return ContextWindow(self.setting, reason, auto=False)
        window = self._cache.get(model)
        if window is not None:
            return window
        trained: int | None = None
        described = True
        try:
            trained = self.trained_length(model)
        except Exception as exc:  # noqa: BLE001 - Ollama down / model missing: the chat itself says so
            log.info("could not read %s's trained context length: %s", model, exc)
            described = False
        window = choose_num_ctx(
            self.fit_tool(),
            model,
            trained_context=trained,
            max_num_ctx=self.max_num_ctx,
            machine=self.machine,
        )
        if described:  # otherwise ask again next time: Ollama may be up, the model pulled
            with self._lock:
                self._cache[model] = window
        return window

    def num_ctx(self, model: str) -> int:
        return self(model).num_ctx
