"""What a model writes in its message content that is not the answer: tool calls and <think> blocks.

Small models (and Ollama when its template parser misses) often write a tool call as text; models without a
thinking parser stream their reasoning inside ``<think>...</think>``. The agent holds back content that may
still be a tool call (`may_be_text_tool_call`), parses it at the end of the round (`parse_text_tool_calls`)
and splits thinking off as it streams (`ThinkTags`).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from assistant.chat_model import ToolCall
from assistant.safe_json import loads

__all__ = ["ThinkTags", "may_be_text_tool_call", "parse_text_tool_calls"]

_FENCE = re.compile(r"^```(?:json|tool_call|tool_code)?\s*(.*?)\s*```$", re.DOTALL)
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def may_be_text_tool_call(stripped: str) -> bool:
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


def parse_text_tool_calls(content: str, known: Collection[str]) -> list[ToolCall] | None:
    """Tool calls written as the whole message content, or None when the content is an ordinary answer."""
    text = content.strip()
    if not text:
        return None
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    blocks = [b for b in _TAGGED.findall(text)] if text.startswith("<tool_call>") else [text]
    calls: list[ToolCall] = []
    for block in blocks:
        try:
            value = loads(block)
        except (ValueError, RecursionError):
            return None
        items = value if isinstance(value, list) else [value]
        for item in items:
            call = _call_from_json(item, known)
            if call is None:
                return None
            calls.append(call)
    return calls or None


def _call_from_json(item: Any, known: Collection[str]) -> ToolCall | None:
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
    return ToolCall(name=name, arguments=args)


_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


class ThinkTags:
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
