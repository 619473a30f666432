"""Tool registry: the single source for the agent's tool list, the MCP server, the CLI and schema export.

A tool is a plain typed function ``input_model -> output_model``. The registry wraps it so that callers which
only have loosely typed arguments (an LLM's tool call, a JSON string from a small model, CLI flags) get either
a validated result or a :class:`ToolError` whose message is safe to show to a user or hand back to the model.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["Registry", "Tool", "ToolError", "ToolErrorKind", "format_validation_error", "inline_refs"]


class ToolErrorKind(StrEnum):
    """What kind of problem a ToolError is, for code that reacts to it (the message is for people)."""

    GENERIC = "generic"  # bad input or a domain error nobody needs to tell apart
    UNKNOWN_MODEL = "unknown_model"  # a model our catalog does not know (a caller may resolve it elsewhere)


class ToolError(ValueError):
    """Bad input or a domain error (unknown chip, impossible size...).

    ``str(err)`` is always a complete, user-presentable sentence naming the field(s) involved and, where
    possible, the accepted values or closest matches. ``fields`` lists the offending field paths so callers
    (UI, tests) can highlight them without parsing the message; ``kind`` says which kind of error it is so
    callers can branch on it without matching the message text.
    """

    def __init__(
        self, message: str, *, fields: list[str] | None = None, kind: ToolErrorKind = ToolErrorKind.GENERIC
    ) -> None:
        super().__init__(message)
        self.fields: list[str] = list(fields or [])
        self.kind: ToolErrorKind = kind


# MCP annotations of every tool: they compute from local tables or read the local index / a local Ollama, so
# nothing is written, nothing leaves the machine, and repeating a call changes nothing.
MCP_ANNOTATIONS: dict[str, bool] = {
    "readOnlyHint": True,
    "destructiveHint": False,
    "idempotentHint": True,
    "openWorldHint": False,
}

_MAX_ERRORS = 10  # problems listed in one error message; the rest are counted


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            # pydantic puts function-validator / union-member names into loc; they mean nothing to a user.
            text = str(item)
            if text.startswith(("function-", "tagged-union", "union[", "json-or-python")):
                continue
            # A nested unknown key is user input: clip it (a 1 MB name stays out of errors at any depth).
            parts.append(("." if parts else "") + _clip(text))
    return "".join(parts) or "(arguments)"


def format_validation_error(tool_name: str, err: ValidationError) -> ToolError:
    """Turn a pydantic ValidationError into one readable ToolError naming every offending field."""
    lines: list[str] = []
    fields: list[str] = []
    errors = err.errors(include_url=False)
    for e in errors[:_MAX_ERRORS]:
        path = _loc_to_path(tuple(e.get("loc", ())))
        msg = str(e.get("msg", "invalid value"))
        # Custom validators raise ValueError("...") which pydantic prefixes with "Value error, ".
        msg = msg.removeprefix("Value error, ")
        got = e.get("input")
        shown = ""
        if e.get("type") not in ("missing",) and not isinstance(got, dict | list):
            text = repr(got)
            shown = f" (got {text[:60]}{'...' if len(text) > 60 else ''})"
        lines.append(f"{path}: {msg}{shown}")
        if path not in fields:
            fields.append(path)
    if len(errors) > _MAX_ERRORS:
        lines.append(f"and {len(errors) - _MAX_ERRORS} more")
    head = f"Invalid arguments for {tool_name}: " if tool_name else "Invalid arguments: "
    return ToolError(head + "; ".join(lines), fields=fields)


def inline_refs(schema: dict[str, Any], *, for_output: bool = False) -> dict[str, Any]:
    """Return a copy of a pydantic JSON schema with every ``$ref`` replaced by its definition.

    Why: Ollama's tool parser, several OpenAI-compatible servers and some MCP clients ignore ``$defs``, so a
    nested model (e.g. ``architecture``) would arrive as an empty object. Our models are not recursive, so a
    plain expansion terminates; a recursion guard still raises rather than looping forever.

    Input schemas (the default) are then given one ``type`` per property (see ``_single_type_properties``);
    ``for_output=True`` keeps pydantic's ``anyOf: [X, null]``, because a null in a result must validate.
    """
    defs: dict[str, Any] = schema.get("$defs", {})

    def expand(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                name = str(node["$ref"]).rsplit("/", 1)[-1]
                if name in seen:
                    raise ValueError(f"recursive schema reference {name!r} cannot be inlined")
                target = expand(copy.deepcopy(defs[name]), (*seen, name))
                extra = {k: expand(v, seen) for k, v in node.items() if k != "$ref"}
                return {**target, **extra}
            return {k: expand(v, seen) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [expand(v, seen) for v in node]
        return node

    out = expand(schema, ())
    assert isinstance(out, dict)
    return out if for_output else _single_type_properties(out)


def _single_type_properties(node: Any) -> Any:
    """Input-schema shape every agent framework reads: one ``type`` per property, optional ones ``nullable``.

    pydantic emits ``anyOf: [X, {type: null}]`` for ``X | None``. Ollama's tool parser reads only ``type``,
    and smolagents reads one ``type`` string per argument and treats every argument without
    ``"nullable": true`` as required (it rejects an integer for ``type: ["number", "null"]``). So an
    optional ``X | None`` input becomes ``X`` + ``"nullable": true`` (the OpenAPI 3.0 spelling several
    frameworks read), and every other optional property (one with a default) is marked ``nullable`` too.
    Omitting the argument is the schema's way to say "none"; the server still accepts an explicit null for
    any optional argument (``Tool.validate`` treats it as omitted), so a client that sends one is not refused.

    Output schemas are *not* shaped this way: a result that is null must validate, so they keep pydantic's
    ``anyOf`` (see ``Tool.output_schema``).
    """
    if isinstance(node, list):
        return [_single_type_properties(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _single_type_properties(v) for k, v in node.items()}
    any_of = node.get("anyOf")
    if isinstance(any_of, list):
        non_null = [s for s in any_of if not (isinstance(s, dict) and s.get("type") == "null")]
        if len(non_null) == 1 and len(any_of) == 2 and isinstance(non_null[0], dict):
            inner = non_null[0]
            if isinstance(inner.get("type"), str):
                rest = {k: v for k, v in node.items() if k != "anyOf"}
                if rest.get("default", 0) is None:
                    del rest["default"]  # "default": null would contradict the single type; omission says it
                node = {**inner, **rest, "nullable": True}
    props = node.get("properties")
    if node.get("type") == "object" and isinstance(props, dict):
        required = set(node.get("required", []))
        node["properties"] = {
            name: ({**prop, "nullable": True} if name not in required and isinstance(prop, dict) else prop)
            for name, prop in props.items()
        }
    return node


_SHOWN = 60


def _clip(text: str) -> str:
    """At most ``_SHOWN`` characters of what the caller sent (a 1 MB argument name stays out of errors)."""
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _clip_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _drop_nested_nulls(arguments: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Inside nested objects (``cluster``, ``architecture``) too, an explicit null for an optional property
    means "not given": the schema marks it ``nullable``, so a framework may send ``"link": null``."""

    def clean(value: Any, prop: Any) -> Any:
        if not (
            isinstance(value, Mapping) and isinstance(prop, dict) and isinstance(prop.get("properties"), dict)
        ):
            return value
        props, required = prop["properties"], set(prop.get("required", []))
        return {
            k: clean(v, props.get(k))
            for k, v in value.items()
            if not (v is None and isinstance(k, str) and k in props and k not in required)
        }

    props = schema.get("properties", {})
    return {k: clean(v, props.get(k)) for k, v in arguments.items()}


def _reject_booleans_for_numbers(
    tool_name: str, arguments: Mapping[str, Any], schema: dict[str, Any]
) -> None:
    """``true`` is not a number: pydantic's lax mode would read it as 1 (``context_tokens: true`` -> 1 token).

    Walks the arguments along the input schema (nested objects such as ``architecture`` too) and raises a
    ToolError naming every numeric field that was given a boolean. Strings such as "48" stay accepted (the
    CLI and small models send those), so strict mode is not an option.
    """
    bad: list[str] = []

    def walk(value: Any, prop: Any, path: str) -> None:
        if not isinstance(prop, dict):
            return
        if isinstance(value, bool) and prop.get("type") in ("integer", "number"):
            bad.append(path)
        elif isinstance(value, Mapping) and isinstance(prop.get("properties"), dict):
            for key, sub in value.items():
                if isinstance(key, str) and key in prop["properties"]:
                    walk(sub, prop["properties"][key], f"{path}.{key}")

    props = schema.get("properties", {})
    for key, value in arguments.items():
        walk(value, props.get(key), key)
    if bad:
        raise ToolError(
            f"Invalid arguments for {tool_name}: "
            + "; ".join(f"{path}: expected a number, got a boolean" for path in bad),
            fields=bad,
        )


def _ollama_property(prop: dict[str, Any]) -> dict[str, Any]:
    """Flatten one property into what Ollama's ``Tool.Function.Parameters.Property`` keeps.

    Ollama's client drops every key except type/items/description/enum, so constraints (ranges, defaults,
    nested object fields) are moved into the description where the model can still read them.
    """
    t = prop.get("type", "string")
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        t = non_null[0] if len(non_null) == 1 else non_null
    out: dict[str, Any] = {"type": t}
    desc = str(prop.get("description", "")).strip()
    hints: list[str] = []
    for key, word in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if key in prop:
            hints.append(f"{word} {prop[key]}")
    if "default" in prop and prop["default"] is not None:
        hints.append(f"default {json.dumps(prop['default'])}")
    if t == "object" and isinstance(prop.get("properties"), dict):
        req = set(prop.get("required", []))
        inner = ", ".join(
            f"{k}{'' if k in req else '?'}: {_short_type(v)}" for k, v in prop["properties"].items()
        )
        hints.append(f"object with fields {{{inner}}}")
    if hints:
        desc = (desc + " " if desc else "") + "(" + "; ".join(hints) + ")"
    if desc:
        out["description"] = desc
    if "enum" in prop:
        out["enum"] = list(prop["enum"])
    if "items" in prop:
        out["items"] = prop["items"]
    return out


def _short_type(prop: Any) -> str:
    if not isinstance(prop, dict):
        return "any"
    t = prop.get("type", "any")
    if isinstance(t, list):
        return "|".join(str(x) for x in t)
    return str(t)


@functools.cache
def _input_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = inline_refs(model.model_json_schema(mode="validation"))
    schema.pop("title", None)
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return schema


@functools.cache
def _output_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = inline_refs(model.model_json_schema(mode="serialization"), for_output=True)
    schema.pop("title", None)
    return schema


def decode_arguments(arguments: object, tool_name: str, fields: Sequence[str]) -> Mapping[Any, Any]:
    """A tool call's arguments as a mapping: a mapping, JSON text or bytes of an object, None or "" for none.

    The one decoder of loosely typed arguments (a model's tool call, a JSON string from a small model, CLI
    input); anything else is a ToolError that names the tool and its fields.
    """
    if arguments is None:
        return {}
    if isinstance(arguments, bytes | bytearray):
        try:
            arguments = arguments.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ToolError(f"Invalid arguments for {tool_name}: not UTF-8 text") from exc
    if isinstance(arguments, str):
        text = arguments.strip()
        if not text:
            return {}
        try:
            arguments = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ToolError(
                f"Invalid arguments for {tool_name}: expected a JSON object, could not parse it "
                f"({exc.__class__.__name__}: {str(exc)[:120]})"
            ) from exc
        if arguments is None:
            return {}
    if not isinstance(arguments, Mapping):
        raise ToolError(
            f"Invalid arguments for {tool_name}: expected an object of named arguments, "
            f"got {type(arguments).__name__}. Fields: {', '.join(fields)}"
        )
    return arguments


@dataclass(frozen=True)
class Tool:
    """One public tool. ``func`` is a plain typed function taking an ``input_model`` instance."""

    name: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    func: Callable[[Any], BaseModel]

    def validate(self, arguments: Mapping[str, Any] | str | None) -> BaseModel:
        """Parse arguments (a mapping, a JSON string, or None for "no arguments") into the input model."""
        arguments = decode_arguments(arguments, self.name, list(self.input_model.model_fields))
        self._refuse_unknown(arguments)
        # An explicit null for an optional argument means "not given" (the schema marks every optional
        # argument nullable, and some frameworks send null rather than omitting it).
        fields = self.input_model.model_fields
        arguments = {k: v for k, v in arguments.items() if not (v is None and not fields[k].is_required())}
        schema = _input_schema(self.input_model)
        arguments = _drop_nested_nulls(arguments, schema)
        _reject_booleans_for_numbers(self.name, arguments, schema)
        try:
            return self.input_model.model_validate(dict(arguments))
        except ValidationError as err:
            raise format_validation_error(self.name, err) from None
        except RecursionError as exc:
            raise ToolError(f"Invalid arguments for {self.name}: input nested too deeply") from exc

    def _refuse_unknown(self, arguments: Mapping[Any, Any]) -> None:
        """ToolError naming unknown argument names (with the closest accepted one), if any."""
        unknown = [k for k in arguments if not isinstance(k, str) or k not in self.input_model.model_fields]
        if unknown:
            import difflib

            accepted = list(self.input_model.model_fields)
            parts = []
            for k in unknown[:10]:
                name = _clip(str(k))
                close = difflib.get_close_matches(name, accepted, n=1)
                parts.append(_clip_repr(k) + (f" (did you mean {close[0]!r}?)" if close else ""))
            if len(unknown) > 10:
                parts.append(f"and {len(unknown) - 10} more")
            raise ToolError(
                f"Invalid arguments for {self.name}: unknown argument(s) {', '.join(parts)}. "
                f"Accepted: {', '.join(accepted)}",
                fields=[_clip(str(k)) for k in unknown[:10]],
            )

    def run(self, arguments: Mapping[str, Any] | str | None) -> BaseModel:
        """Validate (dict, or a JSON string as small models send) then call.

        Raises ToolError with a clear message on any validation problem or domain error. Never another
        exception: an unexpected failure inside a tool is a bug, but the caller (an agent loop, an MCP
        request) must still get a presentable message rather than a traceback, so it is wrapped too.
        """
        params = self.validate(arguments)
        try:
            result = self.func(params)
        except ToolError:
            raise
        except ValidationError as err:
            raise format_validation_error(self.name, err) from None
        except (ValueError, ArithmeticError, OverflowError) as exc:
            raise ToolError(f"{self.name} could not compute a result: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - contract: never another exception type
            raise ToolError(f"{self.name} failed internally ({exc.__class__.__name__}: {exc})") from exc
        if not isinstance(result, self.output_model):
            raise ToolError(f"{self.name} returned {type(result).__name__}, not {self.output_model.__name__}")
        return result

    def input_schema(self) -> dict[str, Any]:
        """JSON schema derived from the input model, every $ref inlined."""
        return copy.deepcopy(_input_schema(self.input_model))

    def output_schema(self) -> dict[str, Any]:
        """JSON schema of the result (nullable fields as ``anyOf`` with null, so a null result validates)."""
        return copy.deepcopy(_output_schema(self.output_model))

    def ollama_spec(self) -> dict[str, Any]:
        """The shape Ollama's /api/chat ``tools`` accepts; nested constraints are folded into descriptions."""
        full = self.input_schema()
        props = {k: _ollama_property(v) for k, v in full.get("properties", {}).items()}
        params: dict[str, Any] = {"type": "object", "properties": props}
        params["required"] = list(full.get("required", []))
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": params},
        }

    def openai_spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.input_schema(),
            },
        }

    def mcp_spec(self) -> dict[str, Any]:
        """MCP ``tools/list`` entry, as the MCP server publishes it (name, title, description, schemas,
        annotations), so a client configured from ``python -m tools schema --format mcp`` sees the same."""
        return {
            "name": self.name,
            "title": self.name.replace("_", " ").capitalize(),
            "description": self.description,
            "inputSchema": self.input_schema(),
            "outputSchema": self.output_schema(),
            "annotations": dict(MCP_ANNOTATIONS),
        }


class Registry:
    """Ordered mapping name -> Tool. ``extended`` returns a new registry so the shared one is never
    mutated."""

    def __init__(self, tools: list[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools or []:
            self.register(t)

    def register(self, tool: Tool) -> Tool:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except (KeyError, TypeError):
            import difflib

            close = difflib.get_close_matches(str(name), list(self._tools), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ToolError(
                f"Unknown tool {name!r}.{hint} Available: {', '.join(self._tools)}", fields=["name"]
            ) from None

    def names(self) -> list[str]:
        return list(self._tools)

    def extended(self, *tools: Tool) -> Registry:
        new = Registry(list(self._tools.values()))
        for t in tools:
            new.register(t)
        return new

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __repr__(self) -> str:
        return f"Registry({self.names()})"
