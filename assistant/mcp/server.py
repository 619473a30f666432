"""MCP server over the tool registry.

Why a registry adapter instead of ``@server.tool()`` functions: the registry is the single source of every
tool's schema (agent, CLI, schema export, MCP). Re-declaring the tools as Python signatures here would let
the MCP schema drift from the one the agent uses. Each registry tool is therefore published with exactly
``Tool.input_schema()`` / ``Tool.output_schema()``, validated by ``Tool.run()`` (same messages the agent's
model sees) and answered with ``structuredContent`` dumped from the output model.
"""

from __future__ import annotations

import json
import logging
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError as MCPToolError
from mcp.server.mcpserver.tools import Tool as MCPTool
from mcp.server.mcpserver.tools.tool_manager import ToolManager
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import ConfigDict, Field

from assistant.safe_json import loads

if TYPE_CHECKING:
    # Imported when the tools are first listed, not at start-up: `initialize` is answered without them.
    from tools.registry import Registry
    from tools.registry import Tool as RegistryTool

__all__ = [
    "DEFAULT_HTTP_PORT",
    "SERVER_NAME",
    "build_server",
    "registry_tool_to_mcp",
]

log = logging.getLogger("assistant.mcp")

SERVER_NAME = "mac-ai-advisor"
DEFAULT_HTTP_PORT = 8765

_INSTRUCTIONS = (
    "Tools for running local AI on Apple Silicon Macs: decode-speed estimates, memory-fit checks, the "
    "article's measured benchmarks, machine recommendations and a searchable knowledge base. Prefer these "
    "numbers over recollection; every result lists its assumptions and sources."
)


class _AnyArguments(ArgModelBase):
    """Placeholder argument model: validation is the registry tool's job, not the SDK's.

    The SDK requires a FuncMetadata with an argument model; it is never used because ``RegistryBackedTool``
    overrides ``run``. Allowing extra keys keeps it harmless should the SDK ever consult it.
    """

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)


class RegistryBackedTool(MCPTool):
    """An SDK tool whose schema, validation and execution all come from one registry ``Tool``."""

    registry_tool: Any = Field(exclude=True)
    limiter: Any = Field(exclude=True)

    async def run(
        self,
        arguments: dict[str, Any],
        context: Context[Any, Any],  # noqa: ARG002 - the SDK's signature; registry tools take no context
        convert_result: bool = False,  # noqa: ARG002 - results are built here, never converted by the SDK
    ) -> Any:
        from assistant.toolset import run_tool
        from tools.registry import Registry

        tool: RegistryTool = self.registry_tool
        prepared = _preparse_json_arguments(arguments, self.parameters)
        # Tools are synchronous (table look-ups, a Chroma query, an Ollama request); a worker thread keeps the
        # event loop answering other requests while one runs. The outcome's error names the field and the
        # accepted values: exactly what a calling model needs to retry, so it goes back as an isError result.
        registry = Registry([tool])
        outcome = await anyio.to_thread.run_sync(
            run_tool, registry, tool.name, prepared, limiter=self.limiter
        )
        if outcome.result is None:
            raise MCPToolError(outcome.error or f"{tool.name} returned nothing")
        result = outcome.result
        structured = result.model_dump(mode="json", by_alias=True)
        text = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def _preparse_json_arguments(arguments: dict[str, Any] | None, schema: dict[str, Any]) -> dict[str, Any]:
    """Decode object/array arguments that a client sent as JSON strings.

    Why: several MCP clients (Claude Desktop notably) serialise nested objects such as ``architecture`` to a
    string. Only properties the schema types as object/array are touched, and only when the string parses to
    that shape, so a genuine string value is never altered.
    """
    if not arguments:
        return {}
    props = schema.get("properties", {})
    out = dict(arguments)
    for key, value in arguments.items():
        prop = props.get(key)
        if not isinstance(value, str) or not isinstance(prop, dict):
            continue
        declared = prop.get("type")
        types = set(declared) if isinstance(declared, list) else {declared}
        if not types & {"object", "array"}:
            continue
        try:
            parsed = loads(value)  # the app's one JSON decoder (huge integers do not fail the call)
        except (ValueError, RecursionError):
            continue
        if isinstance(parsed, dict | list):
            out[key] = parsed
    return out


def registry_tool_to_mcp(tool: RegistryTool) -> RegistryBackedTool:
    """Publish one registry tool: same name, description, input schema and output schema."""
    spec = tool.mcp_spec()  # the same entry `python -m tools schema --format mcp` exports
    output_schema = spec["outputSchema"]
    metadata = FuncMetadata(
        arg_model=_AnyArguments, output_schema=output_schema, output_model=tool.output_model
    )
    return RegistryBackedTool(
        fn=tool.run,
        name=tool.name,
        title=spec["title"],
        description=tool.description,
        parameters=spec["inputSchema"],
        fn_metadata=metadata,
        is_async=False,
        context_kwarg=None,
        # Read-only and idempotent: see tools.registry.MCP_ANNOTATIONS.
        annotations=ToolAnnotations.model_validate(spec["annotations"]),
        registry_tool=tool,
        # One call per tool at a time: the knowledge index and the Ollama client are not documented as
        # thread-safe, while different tools still run side by side.
        limiter=anyio.CapacityLimiter(1),
    )


def _version() -> str:
    """The project version from pyproject.toml (the project is not installed as a package, so no metadata)."""
    try:
        with open(Path(__file__).resolve().parents[2] / "pyproject.toml", "rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0"


class _LazyToolManager(ToolManager):
    """Builds the tool list on the first request that needs it (``tools/list`` or ``tools/call``).

    Why: a client's ``initialize`` must be answered in about the time the MCP SDK takes to import; desktop
    clients and agent frameworks give the handshake a few seconds. Loading the registry (and deciding which
    tools Ollama allows) waits until the client asks for tools.
    """

    def __init__(self, load: Callable[[], Registry]) -> None:
        super().__init__()
        self._load = load
        self._lock = threading.Lock()
        self._loaded = False

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                for tool in self._load():
                    self._tools[tool.name] = registry_tool_to_mcp(tool)
                self._loaded = True

    def get_tool(self, name: str) -> MCPTool | None:
        self._ensure_loaded()
        return super().get_tool(name)

    def list_tools(self) -> list[MCPTool]:
        self._ensure_loaded()
        return super().list_tools()


def build_server(
    registry: Registry | Callable[[], Registry], *, instructions: str | None = None
) -> MCPServer[Any]:
    """An MCPServer publishing every tool of ``registry`` (and nothing else).

    ``registry`` may be a function returning it: it is then called on the first ``tools/list`` or
    ``tools/call``, after the handshake has been answered.
    """
    server: MCPServer[Any] = MCPServer(
        SERVER_NAME,
        title="Mac AI advisor",
        version=_version(),
        instructions=instructions or _INSTRUCTIONS,
        tools=[] if callable(registry) else [registry_tool_to_mcp(t) for t in registry],
        log_level="WARNING",
    )
    if callable(registry):
        # The SDK has no hook for a deferred tool list; its ToolManager is the one place tools are looked up.
        server._tool_manager = _LazyToolManager(registry)
    return server
