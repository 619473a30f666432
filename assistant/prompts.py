"""The system prompt and the passage block.

Written for the small local models people actually run (7-8B): short imperative rules, the tool list with one
line of purpose each, and passages headed by their ids so a citation `[p:id]` can be checked afterwards.
The tool list is rendered from the registry so that a new tool never needs a prompt edit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Protocol


class _NamedTool(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...


class _PassageLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def section(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def text(self) -> str: ...


SYSTEM_PROMPT_TEMPLATE = """\
You are Mac AI Advisor, a careful assistant for people running local AI (LLMs, image models) on Apple \
Silicon Macs. Everything runs offline on the user's Mac.

Tools you can call:
{tool_lines}

Rules:
1. For speed, memory, benchmark or buying questions, call the matching tool and use its numbers. Prefer tool \
results over your own memory; never invent a number a tool could give you.
2. If a tool returns an error, fix the arguments and call it again, or tell the user what is missing.
3. Ground explanations in the knowledge passages below and cite them inline as [p:ID] with the exact id \
shown. Do not cite ids that are not listed.
4. Be honest about uncertainty: say when a number is an estimate, give the range, and mention the key \
assumption (quantisation, context length).
5. Answer in the user's units and terms (GB, tokens/s, seconds, dollars); keep the answer short and concrete.
"""

NO_PASSAGES = (
    "(No knowledge passages were retrieved for this question; call search_knowledge if you need one.)"
)


def tool_lines(tools: Iterable[_NamedTool]) -> str:
    lines = []
    for tool in tools:
        # A tool's description starts with what it is for, in a user's words (tools/__init__.py): one source.
        lines.append(f"- {tool.name}: {_first_sentence(tool.description)}")
    return "\n".join(lines) if lines else "- (none)"


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return match.group(1) if match else text


def build_system_prompt(tools: Iterable[_NamedTool]) -> str:
    return SYSTEM_PROMPT_TEMPLATE.format(tool_lines=tool_lines(tools))


def format_passage(passage: _PassageLike) -> str:
    """One passage as the model sees it; the id header is what makes `[p:id]` citations verifiable."""
    heading = " / ".join(part for part in (passage.title, passage.section) if part)
    return f"[p:{passage.id}] {heading} (source: {passage.source})\n{passage.text.strip()}"


def passages_block(passages: Sequence[_PassageLike]) -> str:
    if not passages:
        return "Knowledge passages:\n" + NO_PASSAGES
    body = "\n\n".join(format_passage(p) for p in passages)
    return "Knowledge passages (cite as [p:ID]):\n\n" + body


def system_message(prompt: str, passages: Sequence[_PassageLike]) -> str:
    """Prompt and passages in one system message: several chat templates keep only the first one."""
    return prompt + "\n" + passages_block(passages)


FORCE_ANSWER_NOTE = (
    "You have used all tool calls available for this question. Do not call tools any more: answer now with "
    "the tool results and passages you already have, and say what remains uncertain."
)

CITATION_RE = re.compile(r"\[p:([^\]\n]{1,300})\]")


def cited_ids(text: str, known: Iterable[str]) -> list[str]:
    """Ids cited in `text` that really were in context, in first-cited order (invented ids are dropped)."""
    allowed = set(known)
    seen: list[str] = []
    for match in CITATION_RE.finditer(text):
        for raw in re.split(r"[,;\s]+", match.group(1)):
            pid = raw.strip().removeprefix("p:")
            if pid in allowed and pid not in seen:
                seen.append(pid)
    return seen
