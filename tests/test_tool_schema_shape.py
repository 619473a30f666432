"""The published tool schemas as other agent frameworks read them, and the argument checks behind them.

smolagents (through its MCP adapter) reads one ``type`` string per argument, requires a ``description``, and
treats every argument without ``"nullable": true`` as required; Ollama keeps one ``type`` per property; JSON
Schema validators (the MCP SDK client, langchain-mcp-adapters, pydantic-ai) check results against the output
schema, so a field that can be null must accept null there.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema
import pytest

from assistant.toolset import build_toolset
from knowledge.search import KnowledgeBase
from tools import REGISTRY, ToolError
from tools.registry import Registry

# The types smolagents accepts in a tool input (its AUTHORIZED_TYPES, version 1.26).
SMOLAGENTS_TYPES = {
    "string",
    "boolean",
    "integer",
    "number",
    "image",
    "audio",
    "array",
    "object",
    "any",
    "null",
}


@pytest.fixture(scope="module")
def toolset(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return build_toolset(KnowledgeBase(tmp_path_factory.mktemp("kb"), None), None)


def _properties(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any], bool]]:
    """(path, property schema, required) for every property, nested objects included."""
    out = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        out.append((f"{path}{name}", prop, name in required))
        if prop.get("type") == "object":
            out.extend(_properties(prop, f"{path}{name}."))
    return out


def test_every_input_property_has_one_type_a_description_and_nullable_iff_optional(toolset: Registry) -> None:
    checked = 0
    for tool in toolset:
        schema = tool.input_schema()
        jsonschema.Draft202012Validator.check_schema(schema)
        for path, prop, required in _properties(schema):
            where = f"{tool.name}.{path}"
            assert isinstance(prop.get("type"), str), f"{where}: one type string, got {prop.get('type')!r}"
            assert prop["type"] in SMOLAGENTS_TYPES, where
            assert "anyOf" not in prop and "oneOf" not in prop, where
            assert str(prop.get("description", "")).strip(), f"{where} has no description"
            assert prop.get("nullable", False) is (not required), f"{where}: nullable must mean optional"
            checked += 1
    assert checked > 40


def test_search_knowledge_refuses_extra_properties(toolset: Registry) -> None:
    assert toolset.get("search_knowledge").input_schema()["additionalProperties"] is False
    for tool in toolset:
        assert tool.input_schema().get("additionalProperties") is False, tool.name


def test_architecture_input_keeps_its_nullability() -> None:
    arch = REGISTRY.get("check_memory_fit").input_schema()["properties"]["architecture"]
    assert arch["type"] == "object" and arch["nullable"] is True
    assert arch["properties"]["family"]["description"]


def test_null_result_fields_validate_against_the_output_schema() -> None:
    tool = REGISTRY.get("recommend_machine")
    result = tool.run({"budget_usd": 500, "workload": "llm"}).model_dump(mode="json")
    assert result["recommendation"] is None
    jsonschema.Draft202012Validator(tool.output_schema()).validate(result)
    rec = tool.output_schema()["properties"]["recommendation"]
    assert {"type": "null"} in rec["anyOf"] and any(s.get("type") == "object" for s in rec["anyOf"])


def test_an_explicit_null_for_an_optional_argument_means_the_default() -> None:
    tool = REGISTRY.get("estimate_speed")
    base = {"chip": "M3 Max", "model": "qwen2.5:32b"}
    with_null = tool.run({**base, "context_tokens": None, "quant": None, "gpu_cores": None})
    assert with_null.model_dump() == tool.run(base).model_dump()


_ARCH = {"params_billion": 8, "n_layers": 32, "n_kv_heads": 8, "head_dim": 128, "native_context": 8192}
_BASE_CALLS: list[tuple[str, dict[str, Any]]] = [
    (
        "estimate_speed",
        {"chip": "M3 Ultra", "memory_gb": 512, "params_billion": 1000, "cluster": {"count": 2}},
    ),
    ("estimate_speed", {"chip": "M3 Max", "architecture": dict(_ARCH)}),
    (
        "check_memory_fit",
        {"chip": "M3 Ultra", "memory_gb": 512, "params_billion": 1000, "cluster": {"count": 2}},
    ),
    ("check_memory_fit", {"chip": "M4 Pro", "memory_gb": 48, "architecture": dict(_ARCH)}),
    ("lookup_benchmarks", {"query": "m4 pro"}),
    ("recommend_machine", {"budget_usd": 3000}),
    ("search_knowledge", {"query": "unified memory"}),
]


def _outcome(tool: Any, arguments: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", tool.run(arguments).model_dump(mode="json")
    except ToolError as err:
        return "error", str(err)


@pytest.mark.parametrize(
    ("name", "base"), _BASE_CALLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(_BASE_CALLS)]
)
def test_null_for_any_nullable_property_means_omitted_at_any_depth(
    toolset: Registry, name: str, base: dict[str, Any]
) -> None:
    """Every property the schema marks ``nullable`` accepts an explicit null, nested ones (``cluster.link``)
    included, and it means the same as leaving the property out."""
    tool = toolset.get(name)
    schema = tool.input_schema()
    checked = 0
    for path, prop, _required in _properties(schema):
        if not prop.get("nullable"):
            continue
        *outer, key = path.split(".")
        container = base
        for part in outer:
            if not isinstance(container.get(part), dict):
                break
            container = container[part]
        else:
            omitted = copy.deepcopy(base)
            with_null = copy.deepcopy(base)
            target_omitted, target_null = omitted, with_null
            for part in outer:
                target_omitted, target_null = target_omitted[part], target_null[part]
            target_omitted.pop(key, None)
            target_null[key] = None
            assert _outcome(tool, with_null) == _outcome(tool, omitted), f"{name}: {path} = null"
            checked += 1
    assert checked >= 1


@pytest.mark.parametrize(
    ("name", "arguments", "field"),
    [
        (
            "estimate_speed",
            {"chip": "M3 Max", "model": "qwen2.5:32b", "context_tokens": True},
            "context_tokens",
        ),
        ("check_memory_fit", {"chip": "M4 Pro", "memory_gb": True, "model": "llama3.3:70b"}, "memory_gb"),
        ("lookup_benchmarks", {"limit": False}, "limit"),
        (
            "estimate_speed",
            {
                "chip": "M3 Max",
                "architecture": {
                    "params_billion": 8,
                    "n_layers": True,
                    "n_kv_heads": 8,
                    "head_dim": 128,
                    "native_context": 8192,
                },
            },
            "architecture.n_layers",
        ),
    ],
)
def test_booleans_are_not_numbers(name: str, arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(ToolError) as err:
        REGISTRY.get(name).run(arguments)
    assert field in err.value.fields
    assert "boolean" in str(err.value)


def test_search_knowledge_k_refuses_a_boolean(toolset: Registry) -> None:
    with pytest.raises(ToolError, match="k: expected a number, got a boolean"):
        toolset.get("search_knowledge").run({"query": "memory", "k": True})


def test_a_huge_unknown_argument_name_is_truncated_in_the_error() -> None:
    name = "x" * 1_000_000
    with pytest.raises(ToolError) as err:
        REGISTRY.get("estimate_speed").run({name: 1, "chip": "M3 Max"})
    message = str(err.value)
    assert "unknown argument" in message and len(message) < 600
    assert all(len(f) < 100 for f in err.value.fields)


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        (
            "estimate_speed",
            {"chip": "M3 Max", "model": "qwen2.5:7b", "cluster": {"count": 2, "y" * 1_000_000: 1}},
        ),
        (
            "estimate_speed",
            {
                "chip": "M3 Max",
                "architecture": {
                    "z" * 1_000_000: 1,
                    "params_billion": 8,
                    "n_layers": 32,
                    "n_kv_heads": 8,
                    "head_dim": 128,
                    "native_context": 8192,
                },
            },
        ),
        (
            "check_memory_fit",
            {
                "chip": "M3 Max",
                "memory_gb": 64,
                "cluster": {"count": 2, **{f"k{i}" * 50_000: 1 for i in range(40)}},
            },
        ),
    ],
)
def test_huge_unknown_names_inside_nested_objects_are_truncated_too(
    name: str, arguments: dict[str, Any]
) -> None:
    with pytest.raises(ToolError) as err:
        REGISTRY.get(name).run(arguments)
    message = str(err.value)
    assert "Extra inputs are not permitted" in message and len(message) < 1500, message[:300]
    assert all(len(f) < 200 for f in err.value.fields)


def test_recommend_machine_accepts_the_context_its_schema_allows() -> None:
    tool = REGISTRY.get("recommend_machine")
    top = tool.input_schema()["properties"]["context_tokens"]["maximum"]
    out = tool.run({"budget_usd": 10_000, "target_model": "llama3.3:70b", "context_tokens": top})
    assert out.reasons  # type: ignore[attr-defined]
    with pytest.raises(ToolError, match="context_tokens"):
        tool.run({"budget_usd": 10_000, "target_model": "llama3.3:70b", "context_tokens": top + 1})
    # Only target_params_billion: no trained context is known, so the schema's maximum is accepted.
    assert tool.run({"budget_usd": 10_000, "target_params_billion": 70, "context_tokens": top}).reasons  # type: ignore[attr-defined]
    # No target: the error names the reference model sized for, and how to ask for a longer context.
    with pytest.raises(ToolError) as err:
        tool.run({"budget_usd": 10_000, "context_tokens": 65_536})
    assert err.value.fields == ["context_tokens"]
    assert "qwen2.5:14b" in str(err.value) and "target_model" in str(err.value)


def test_descriptions_match_the_schema_and_name_the_article(toolset: Registry) -> None:
    fit = toolset.get("check_memory_fit")
    assert not fit.input_schema().get("required")
    assert "needs chip and memory_gb" not in fit.description.lower()
    for name in ("lookup_benchmarks", "recommend_machine", "search_knowledge"):
        assert "Apple Silicon AI Workstation 2026" in toolset.get(name).description, name
    specs = json.dumps([t.mcp_spec() for t in toolset])
    assert "$ref" not in specs
    # An input schema that mentions "the article" says which one (the model reads these when calling).
    for tool in toolset:
        for path, prop, _ in [("", tool.input_schema(), False), *_properties(tool.input_schema())]:
            text = str(prop.get("description", ""))
            if "article" in text.lower():
                assert "Apple Silicon AI Workstation 2026" in text, f"{tool.name}.{path}: {text}"


def test_descriptions_are_unbroken_prose(toolset: Registry) -> None:
    """What a model or MCP client reads has no line breaks or double spaces left from wrapping the source."""

    def descriptions(node: Any, where: str) -> list[tuple[str, str]]:
        if isinstance(node, dict):
            own = [(where, node["description"])] if isinstance(node.get("description"), str) else []
            return own + [d for k, v in node.items() for d in descriptions(v, f"{where}.{k}")]
        if isinstance(node, list):
            return [d for i, v in enumerate(node) for d in descriptions(v, f"{where}[{i}]")]
        return []

    for tool in toolset:
        for where, text in descriptions(tool.mcp_spec(), tool.name):
            assert "\n" not in text and "  " not in text, f"{where}: {text!r}"
            assert not re.search(r"\b(the|a|an|of|to|with) \1\b", text), f"{where}: {text!r}"
