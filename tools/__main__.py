"""Command line: ``python -m tools <tool> --arg value ...`` | ``list`` | ``schema --format
openai|ollama|mcp``.

Flags are derived from each tool's input model, so the CLI can never drift from the schemas the agent and MCP
see. Bad arguments print one clear line on stderr and exit with status 2 -- never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from tools import REGISTRY
from tools.registry import Tool, ToolError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _add_tool_parser(sub: Any, tool: Tool) -> None:
    schema = tool.input_schema()
    p = sub.add_parser(tool.name, help=tool.description.split(". ")[0], description=tool.description)
    for name, prop in schema.get("properties", {}).items():
        t = prop.get("type")
        types = t if isinstance(t, list) else [t]
        help_text = str(prop.get("description", ""))
        if "enum" in prop:
            help_text += f" One of: {', '.join(map(str, prop['enum']))}."
        if "default" in prop and prop["default"] is not None:
            help_text += f" Default: {prop['default']}."
        if "object" in types:
            help_text += " (JSON object)"
        flags = [f"--{name}"]
        if "_" in name:
            flags.append(f"--{name.replace('_', '-')}")
        p.add_argument(*flags, dest=name, metavar=name.upper(), help=help_text, default=None)
    p.add_argument("--pretty", action="store_true", help="Readable tables instead of JSON.")


def _coerce(tool: Tool, raw: dict[str, str | None]) -> dict[str, Any]:
    """Only object-typed fields are parsed as JSON; pydantic's lax mode converts '48' -> 48.0 itself."""
    props = tool.input_schema().get("properties", {})
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if v is None:
            continue
        t = props.get(k, {}).get("type")
        types = t if isinstance(t, list) else [t]
        if "object" in types:
            try:
                out[k] = json.loads(v)
            except json.JSONDecodeError as exc:
                raise ToolError(
                    f"{k}: expected a JSON object, could not parse {v!r} ({exc.msg})", fields=[k]
                ) from exc
            except (
                ValueError,
                RecursionError,
            ) as exc:  # a 5000-digit number, nesting deeper than Python's stack
                raise ToolError(
                    f"{k}: expected a small JSON object, this one cannot be read", fields=[k]
                ) from exc
        else:
            out[k] = v
    return out


_LISTS = ("suggestions", "reasons", "trade_offs", "avoid", "matched_on", "assumptions", "sources")


def _pretty(result: BaseModel) -> None:
    from rich.console import Console

    console = Console()
    data = result.model_dump(mode="json")
    console.print(_scalars(data))
    for k, v in data.items():
        if isinstance(v, dict):
            _print_mapping(console, k, v)
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            _print_rows(console, k, v)
    for k in _LISTS:
        items = data.get(k)
        if items:
            console.print(f"[bold]{k}[/bold]")
            for it in items:
                console.print(f"  - {it}")


def _scalars(data: dict[str, Any]) -> Table:
    """Scalar fields and short lists of scalars (not the prose lists printed at the end), one row each."""
    from rich.table import Table

    scalars = Table(show_header=False, box=None)
    for k, v in data.items():
        if not isinstance(v, list | dict):
            scalars.add_row(f"[bold]{k}[/bold]", str(v))
        elif isinstance(v, list) and v and not isinstance(v[0], dict | list) and k not in (*_LISTS, "flags"):
            scalars.add_row(f"[bold]{k}[/bold]", ", ".join(map(str, v)))
    return scalars


def _print_mapping(console: Console, title: str, mapping: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=title, show_header=False)
    for kk, vv in mapping.items():
        t.add_row(kk, json.dumps(vv) if isinstance(vv, list | dict) else str(vv))
    console.print(t)


def _print_rows(console: Console, title: str, rows: list[dict[str, Any]]) -> None:
    """A table of rows (benchmark rows, alternatives) and each row's flags under it."""
    from rich.table import Table

    cols = [c for c in rows[0] if c not in ("flags", "source", "price_note", "why", "setting")]
    t = Table(title=title)
    for c in cols:
        t.add_column(c)
    for row in rows:
        t.add_row(*(str(row.get(c)) for c in cols))
    console.print(t)
    for row in rows:
        for f in row.get("flags", []) or []:
            console.print(f"  [yellow]![/yellow] {row.get('machine', '')} / {row.get('model', '')}: {f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="python -m tools", description="Typed domain tools for local AI on Apple Silicon.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="List the tools.")
    sp = sub.add_parser("schema", help="Export tool schemas from the registry.")
    sp.add_argument("--format", choices=("openai", "ollama", "mcp"), default="openai")
    for tool in REGISTRY:
        _add_tool_parser(sub, tool)
    args = parser.parse_args(argv)
    if args.command == "list":
        for tool in REGISTRY:
            print(f"{tool.name}: {tool.description.split('. ')[0]}.")
        return 0
    if args.command == "schema":
        fmt = args.format
        specs = [
            t.openai_spec() if fmt == "openai" else t.ollama_spec() if fmt == "ollama" else t.mcp_spec()
            for t in REGISTRY
        ]
        print(json.dumps(specs, indent=2))
        return 0
    tool = REGISTRY.get(args.command)
    raw = {k: v for k, v in vars(args).items() if k not in ("command", "pretty")}
    try:
        result = tool.run(_coerce(tool, raw))
    except ToolError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.pretty:
        _pretty(result)
    else:
        print(result.model_dump_json(indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
