"""Make any value strict-JSON and UTF-8 safe, and bounded, before it is stored or shown.

Why: Python's json accepts `NaN`/`Infinity` and `\\ud800` escapes that strict encoders (the Ollama client,
orjson in Gradio) refuse. A value like that stored in a conversation's history broke every later turn of the
session; shown in the UI, it made Gradio fail to encode the whole update. So values from outside (the user's
text, the model's text and tool arguments) pass through here first:
- lone surrogates become U+FFFD (a valid pair is joined into its character);
- non-finite floats become None, ints beyond 2**53 become strings (JavaScript cannot hold them exactly and
  orjson refuses beyond 64 bits);
- nesting deeper than `max_depth` and containers longer than `max_items` are cut, with a marker.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["clean_text", "decode_object", "is_sendable", "json_safe", "loads"]

MAX_DEPTH = 32
MAX_ITEMS = 1000
MAX_SAFE_INT = 2**53


def clean_text(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD, so it encodes as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def json_safe(
    value: Any,
    *,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
    max_chars: int | None = None,
    _depth: int = 0,
) -> Any:
    """A copy of `value` that strict JSON encoders accept (see the module docstring for what changes).

    `max_chars` also cuts long strings (for display; history keeps strings whole).
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if max_chars is not None and len(value) > max_chars:
            value = value[:max_chars] + f" … ({len(value) - max_chars:,} more characters)"
        return clean_text(value)
    if isinstance(value, int):
        return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if _depth >= max_depth:
        return "… (nested too deep to show)"
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i >= max_items:
                out["…"] = f"{len(value) - max_items} more entries not shown"
                break
            out[clean_text(str(key))[:200]] = json_safe(
                item, max_depth=max_depth, max_items=max_items, max_chars=max_chars, _depth=_depth + 1
            )
        return out
    if isinstance(value, list | tuple):
        items = [
            json_safe(x, max_depth=max_depth, max_items=max_items, _depth=_depth + 1)
            for x in value[:max_items]
        ]
        if len(value) > max_items:
            items.append(f"… {len(value) - max_items} more items not shown")
        return items
    return clean_text(str(value))


def is_sendable(value: Any) -> bool:
    """Whether a strict JSON encoder and UTF-8 accept `value` as it is."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, TypeError, RecursionError, UnicodeEncodeError):
        return False
    return True


def _parse_int(digits: str) -> int | float:
    """json's int hook: a number too long for int() (over 4,300 digits raises ValueError) becomes a float
    (inf), which `json_safe` then treats like `1e400`, instead of failing the whole turn."""
    try:
        return int(digits)
    except ValueError:
        return float(digits)


def loads(text: str) -> Any:
    """`json.loads` that never fails on a huge integer (raises ValueError/RecursionError on bad JSON only)."""
    return json.loads(text, parse_int=_parse_int)


def decode_object(text: str) -> dict[str, Any] | None:
    """Tool-call arguments sent as a JSON string: the object they encode ({} for blank text), or None when
    the text is not a JSON object. The assistant's decoder of argument strings (agent, transport repair); a
    tool itself decodes its arguments with `tools.registry.decode_arguments`, which raises a ToolError."""
    if not text.strip():
        return {}
    try:
        value = loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
