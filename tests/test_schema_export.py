"""`python -m tools schema --format openai|ollama|mcp`, each fed to its consumer's own validator.

- ollama: the `ollama` client's `Tool` model (what `ollama.chat(tools=...)` parses the specs into);
- mcp: the MCP SDK's `Tool` type (what `tools/list` entries are parsed into by every SDK client);
- openai: the function-calling envelope, its `parameters` checked against the JSON Schema Draft 2020-12
  meta-schema;
and for every format, each schema in it is itself a valid Draft 2020-12 schema that accepts a real call.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tools import REGISTRY

ROOT = Path(__file__).resolve().parents[1]

# One valid call per exported tool: the exported input schema must accept it.
CALLS: dict[str, dict[str, Any]] = {
    "estimate_speed": {"chip": "M3 Max", "model": "qwen2.5:32b", "context_tokens": 4096},
    "check_memory_fit": {"chip": "M4 Pro", "memory_gb": 48, "model": "llama3.3:70b"},
    "lookup_benchmarks": {"query": "m4 pro 70b", "limit": 5},
    "recommend_machine": {"budget_usd": 1500, "workload": "llm"},
}


def export(fmt: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "tools", "schema", "--format", fmt],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    specs = json.loads(done.stdout)
    assert [s.get("name") or s["function"]["name"] for s in specs] == REGISTRY.names()
    return list(specs)


def check_schema(schema: dict[str, Any], name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(CALLS[name])


def test_ollama_format_parses_as_the_ollama_clients_tool_model() -> None:
    from ollama import Tool as OllamaTool

    for spec in export("ollama"):
        tool = OllamaTool.model_validate(spec)
        assert tool.function is not None and tool.function.parameters is not None
        # Nothing is silently dropped by the client's model: the spec round-trips.
        assert tool.model_dump(exclude_none=True, by_alias=True) == spec
        check_schema(spec["function"]["parameters"], spec["function"]["name"])


def test_mcp_format_parses_as_the_mcp_sdk_tool_type() -> None:
    from mcp_types import Tool as MCPTool

    for spec in export("mcp"):
        tool = MCPTool.model_validate(spec)
        assert tool.input_schema == spec["inputSchema"] and tool.output_schema == spec["outputSchema"]
        # The annotations the MCP server publishes travel with the export too.
        assert tool.annotations is not None and tool.annotations.read_only_hint is True, tool.name
        assert tool.annotations.idempotent_hint is True and tool.annotations.destructive_hint is False
        check_schema(tool.input_schema, tool.name)
        assert tool.output_schema is not None
        jsonschema.Draft202012Validator.check_schema(tool.output_schema)
        result = REGISTRY.get(tool.name).run(CALLS[tool.name]).model_dump(mode="json")
        jsonschema.Draft202012Validator(tool.output_schema).validate(result)


def test_openai_format_is_a_function_tool_with_a_valid_json_schema() -> None:
    for spec in export("openai"):
        assert set(spec) == {"type", "function"} and spec["type"] == "function"
        function = spec["function"]
        assert set(function) == {"name", "description", "parameters"}
        assert function["description"] and function["parameters"]["type"] == "object"
        check_schema(function["parameters"], function["name"])


# Not "ollama": its parameter model has no additionalProperties; the server-side check rejects extras there.
@pytest.mark.parametrize("fmt", ["openai", "mcp"])
def test_json_schema_formats_reject_an_unknown_argument(fmt: str) -> None:
    for spec in export(fmt):
        params = spec.get("inputSchema") or spec["function"]["parameters"]
        name = spec.get("name") or spec["function"]["name"]
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(params).validate({**CALLS[name], "bogus": 1})
