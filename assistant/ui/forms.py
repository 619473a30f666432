"""The Tools tab: one form per tool, generated from the tool's JSON schema.

A new tool in the registry gets a form without UI code, and the forms work with no model (and no Ollama)
at all. A result is shown as a short summary, a chart when the tool has one, and the full JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import gradio as gr
from pydantic import BaseModel, Field

from assistant.charts import chart_for_tool_result
from assistant.safe_json import loads
from assistant.toolset import run_tool
from tools.registry import Registry, Tool, ToolError

__all__ = ["FormField", "arguments_from_form", "form_fields", "result_markdown", "tool_form"]

FieldKind = Literal["text", "int", "float", "bool", "choice", "json", "list"]


class FormField(BaseModel):
    """One input of a tool form, derived from a property of the tool's JSON schema."""

    name: str
    kind: FieldKind
    label: str
    info: str = ""
    required: bool = False
    default: Any = None
    choices: list[Any] = Field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None


def _schema_types(prop: Mapping[str, Any]) -> list[str]:
    t = prop.get("type")
    if isinstance(t, list):
        return [str(x) for x in t if x != "null"]
    if isinstance(t, str):
        return [t]
    for key in ("anyOf", "oneOf"):
        if isinstance(prop.get(key), list):
            return [x for sub in prop[key] if isinstance(sub, Mapping) for x in _schema_types(sub)]
    return []


_SCALAR_KINDS: list[tuple[str, FieldKind]] = [("boolean", "bool"), ("integer", "int"), ("number", "float")]


def _field_kind(prop: Mapping[str, Any], enum: list[Any] | None) -> FieldKind:
    types = _schema_types(prop)
    if enum:
        return "choice"
    if "object" in types:
        return "json"
    if "array" in types:
        items = prop.get("items")
        item_types = _schema_types(items) if isinstance(items, Mapping) else []
        return "list" if item_types in (["string"], []) else "json"
    return next((kind for name, kind in _SCALAR_KINDS if name in types), "text")


def _form_field(name: str, prop: Mapping[str, Any], required: bool) -> FormField:
    enum = prop.get("enum")
    if enum is None and prop.get("const") is not None:
        enum = [prop["const"]]
    kind = _field_kind(prop, enum)
    info = str(prop.get("description", "")).strip()
    if kind == "json" and "properties" in prop:
        keys = ", ".join(prop["properties"])
        info = (info + " " if info else "") + f"JSON object with: {keys}."
    lo = prop.get("minimum", prop.get("exclusiveMinimum"))
    hi = prop.get("maximum", prop.get("exclusiveMaximum"))
    return FormField(
        name=name,
        kind=kind,
        label=name.replace("_", " "),
        info=info,
        required=required,
        default=prop.get("default"),
        choices=list(enum or []),
        minimum=float(lo) if isinstance(lo, int | float) else None,
        maximum=float(hi) if isinstance(hi, int | float) else None,
    )


def form_fields(tool: Tool) -> list[FormField]:
    """Form inputs for a tool, straight from its input schema (so no tool has a hand-written form)."""
    schema = tool.input_schema()
    required = set(schema.get("required", []))
    return [_form_field(name, prop, name in required) for name, prop in schema.get("properties", {}).items()]


def _argument(spec: FormField, value: Any) -> Any:
    """One non-empty form value as the tool argument it stands for."""
    if spec.kind == "bool":
        return bool(value)
    if spec.kind in ("int", "float"):
        return _number(spec, value)
    if spec.kind == "json":
        try:
            return loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError as exc:
            raise ToolError(f"{spec.name}: not valid JSON ({exc.msg})", fields=[spec.name]) from None
        except (ValueError, RecursionError):  # nested too deep for the decoder
            raise ToolError(f"{spec.name}: not valid JSON (nested too deep)", fields=[spec.name]) from None
    if spec.kind == "list":
        items = [x.strip() for x in str(value).replace("\n", ",").split(",")]
        return [x for x in items if x]
    return value


def _is_unset(spec: FormField, value: Any) -> bool:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return True
    # A tri-state bool (None = no preference) left unticked means "no preference".
    return spec.kind == "bool" and spec.default is None and value is False and not spec.required


def arguments_from_form(fields: Sequence[FormField], values: Sequence[Any]) -> dict[str, Any]:
    """Form values -> tool arguments. Empty inputs are left out so the tool's own defaults apply.

    Raises ToolError for a JSON field that does not parse, naming the field, like the tool would.
    """
    args: dict[str, Any] = {}
    for spec, value in zip(fields, values, strict=True):
        if not _is_unset(spec, value):
            args[spec.name] = _argument(spec, value.strip() if isinstance(value, str) else value)
    return args


def _number(spec: FormField, value: Any) -> int | float:
    """Optional numbers come from a text box (an empty gr.Number would send 0, not "unset")."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ToolError(f"{spec.name}: {str(value)!r} is not a number", fields=[spec.name]) from None
    if spec.kind == "int" and number.is_integer():
        return int(number)
    return number


def _component_for(spec: FormField, elem_id: str) -> gr.components.Component:
    label = spec.label + (" *" if spec.required else "")
    info = spec.info or None
    if spec.kind == "choice":
        choices = list(spec.choices)
        value = spec.default if spec.default in choices else (None if not spec.required else choices[0])
        return gr.Dropdown(
            choices=choices, value=value, label=label, info=info, allow_custom_value=False, elem_id=elem_id
        )
    if spec.kind == "bool":
        return gr.Checkbox(value=bool(spec.default), label=label, info=info, elem_id=elem_id)
    if spec.kind in ("int", "float") and spec.default is None:
        kind = "whole number" if spec.kind == "int" else "number"
        return gr.Textbox(
            value=None, label=label, info=info, placeholder=f"{kind}, optional", elem_id=elem_id
        )
    if spec.kind in ("int", "float"):
        return gr.Number(
            value=spec.default,
            label=label,
            info=info,
            precision=0 if spec.kind == "int" else None,
            elem_id=elem_id,
        )
    if spec.kind == "json":
        return gr.Code(
            value=None, language="json", label=label + " (JSON, optional)", lines=3, elem_id=elem_id
        )
    placeholder = str(spec.default) if spec.default is not None else None
    return gr.Textbox(value=None, label=label, info=info, placeholder=placeholder, lines=1, elem_id=elem_id)


def _machine_line(option: Mapping[str, Any], *, note: bool = False) -> str:
    """Machine — price · speed · fit, on one line (the price note only when asked: it can be long)."""
    price = option.get("approx_price_usd")
    parts = [f"about ${price:,.0f}" if isinstance(price, int | float) else "price unknown"]
    speed = option.get("expected_tokens_per_second")
    if isinstance(speed, int | float):
        band = option.get("expected_range")
        span = f" ({band[0]:.0f}–{band[1]:.0f})" if isinstance(band, list | tuple) and len(band) == 2 else ""
        parts.append(f"~{speed:.0f} tokens/s{span}")
    if option.get("fit_verdict"):
        parts.append("fit: " + str(option["fit_verdict"]).replace("_", " "))
    line = f"**{option.get('machine', '?')}** — " + " · ".join(parts)
    if note and option.get("price_note"):
        line += f"  \n  <sub>Price: {option['price_note']}</sub>"
    return line


def _recommendation_lines(result: Mapping[str, Any]) -> list[str]:
    """recommend_machine's answer first: which machine, what it costs, how fast it runs the target model."""
    rec = result.get("recommendation")
    lines = ["", "**Recommended machine**"]
    lines.append(
        f"- {_machine_line(rec, note=True)}" if isinstance(rec, Mapping) else "- none: the advice is to wait"
    )
    if result.get("summary"):
        lines.append(f"\n{result['summary']}")
    alternatives = [a for a in result.get("alternatives") or [] if isinstance(a, Mapping)]
    if alternatives:
        lines.append("\n**Alternatives**")
        lines.extend(f"- {_machine_line(a)}" for a in alternatives[:5])
    return lines


def result_markdown(tool_name: str, result: Mapping[str, Any]) -> str:
    lines = [f"**{tool_name}** ran."]
    if "recommendation" in result:
        lines.extend(_recommendation_lines(result))
    speeds = ("measured_tokens_per_second", "expected_tokens_per_second", "ceiling_tokens_per_second")
    for key in ("verdict", *speeds, "max_context_tokens"):
        if result.get(key) is not None:  # a figure the tool could not give is left out, not shown as None
            lines.append(f"- {key.replace('_', ' ')}: **{result[key]}**")
    for key in ("suggestions", "reasons", "assumptions"):
        items = result.get(key) or []
        if items:
            lines.append(f"\n**{key.capitalize()}**")
            lines.extend(f"- {x}" for x in items[:12])
    if result.get("sources"):
        lines.append("\n<sub>Sources: " + "; ".join(str(s) for s in result["sources"][:8]) + "</sub>")
    return "\n".join(lines)


def run_form(
    tool: Tool, toolset: Registry, specs: Sequence[FormField], values: Sequence[Any]
) -> tuple[Any, ...]:
    """(summary, chart update, full result) for one press of a form's Run button."""
    try:
        arguments = arguments_from_form(specs, values)
    except ToolError as err:
        return f"⚠️ {err}", gr.Plot(visible=False), None
    outcome = run_tool(toolset, tool.name, arguments)  # never raises, like a tool call in the chat or MCP
    if outcome.result is None:
        return f"⚠️ {outcome.error}", gr.Plot(visible=False), None
    result = outcome.result.model_dump(mode="json")
    figure = chart_for_tool_result(tool.name, arguments, result, toolset)
    plot_update = gr.Plot(value=figure, visible=True) if figure is not None else gr.Plot(visible=False)
    return result_markdown(tool.name, result), plot_update, result


def tool_form(tool: Tool, toolset: Registry) -> None:
    """One sub-tab with a form for `tool`, rendered inside the current Blocks context."""
    specs = form_fields(tool)
    with gr.Tab(tool.name, id=f"tool-{tool.name}"):
        gr.Markdown(tool.description)
        inputs: list[gr.components.Component] = []
        with gr.Row():
            cols = [gr.Column(), gr.Column()]
        for i, spec in enumerate(specs):
            with cols[i % 2]:
                inputs.append(_component_for(spec, f"{tool.name}-{spec.name}"))
        run = gr.Button(f"Run {tool.name}", variant="primary", elem_id=f"run-{tool.name}")
        summary = gr.Markdown(elem_id=f"summary-{tool.name}")
        plot = gr.Plot(visible=False, label="Chart", elem_id=f"tools-chart-{tool.name}")
        with gr.Accordion("Full result (JSON)", open=False):
            raw = gr.JSON(label=None)

    def run_pressed(*values: Any) -> tuple[Any, ...]:
        return run_form(tool, toolset, specs, values)

    run.click(run_pressed, inputs, [summary, plot, raw], api_visibility="private", concurrency_limit=None)
