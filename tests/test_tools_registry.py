"""Registry contract: schema derivation ($refs inlined), spec shapes, argument parsing and error wrapping."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from tools import REGISTRY, ModelArchitecture, Registry, Tool, ToolError
from tools.registry import inline_refs

NAMES = ["estimate_speed", "check_memory_fit", "lookup_benchmarks", "recommend_machine"]


def _walk(node: object) -> list[dict]:
    out: list[dict] = []
    if isinstance(node, dict):
        out.append(node)
        for v in node.values():
            out += _walk(v)
    elif isinstance(node, list):
        for v in node:
            out += _walk(v)
    return out


def test_registry_has_the_four_public_tools_in_order() -> None:
    assert REGISTRY.names() == NAMES
    assert len(REGISTRY) == 4
    assert "estimate_speed" in REGISTRY and "nope" not in REGISTRY
    assert [t.name for t in REGISTRY] == NAMES


def test_get_unknown_tool_names_closest() -> None:
    with pytest.raises(ToolError, match="estimate_speed"):
        REGISTRY.get("estimate_sped")


def test_extended_returns_new_registry_and_leaves_original() -> None:
    class In(BaseModel):
        x: int

    class Out(BaseModel):
        y: int
        assumptions: list[str] = []
        sources: list[str] = []

    extra = Tool("double", "Doubles x.", In, Out, lambda p: Out(y=p.x * 2))
    bigger = REGISTRY.extended(extra)
    assert bigger.names() == [*NAMES, "double"]
    assert REGISTRY.names() == NAMES
    assert bigger.get("double").run('{"x": 4}').y == 8  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        bigger.register(extra)
    assert isinstance(bigger, Registry)


@pytest.mark.parametrize("name", NAMES)
def test_schemas_have_no_refs_and_list_input_fields(name: str) -> None:
    tool = REGISTRY.get(name)
    for spec in (
        tool.input_schema(),
        tool.output_schema(),
        tool.openai_spec(),
        tool.ollama_spec(),
        tool.mcp_spec(),
    ):
        text = json.dumps(spec)
        assert "$ref" not in text and "$defs" not in text
    schema = tool.input_schema()
    assert schema["type"] == "object"
    assert set(schema["properties"]) == set(tool.input_model.model_fields)


@pytest.mark.parametrize("name", NAMES)
def test_output_models_carry_assumptions_and_sources(name: str) -> None:
    props = REGISTRY.get(name).output_schema()["properties"]
    assert "assumptions" in props and "sources" in props


def test_architecture_is_inlined_as_object_with_fields() -> None:
    arch = REGISTRY.get("estimate_speed").input_schema()["properties"]["architecture"]
    assert arch["type"] == "object"
    assert {"params_billion", "n_layers", "n_kv_heads", "head_dim", "native_context"} <= set(
        arch["properties"]
    )


def test_ollama_spec_is_accepted_by_the_ollama_client_model() -> None:
    from ollama._types import Tool as OllamaTool

    for tool in REGISTRY:
        spec = tool.ollama_spec()
        assert spec["type"] == "function" and spec["function"]["name"] == tool.name
        parsed = OllamaTool.model_validate(spec)
        props = parsed.function.parameters.properties  # type: ignore[union-attr]
        assert props is not None
        for name, prop in props.items():
            assert prop.type, f"{tool.name}.{name} lost its type"
            assert "null" not in (prop.type if isinstance(prop.type, list) else [prop.type])


def test_openai_spec_shape() -> None:
    spec = REGISTRY.get("check_memory_fit").openai_spec()
    assert spec["type"] == "function"
    params = spec["function"]["parameters"]
    assert params["properties"]["kv_cache_type"]["enum"] == ["f16", "q8_0", "q4_0"]


def test_mcp_spec_shape() -> None:
    spec = REGISTRY.get("lookup_benchmarks").mcp_spec()
    assert set(spec) == {"name", "title", "description", "inputSchema", "outputSchema", "annotations"}
    assert spec["annotations"]["readOnlyHint"] is True and spec["annotations"]["idempotentHint"] is True
    assert spec["inputSchema"]["type"] == "object"


def test_inline_refs_expands_nested_definitions() -> None:
    class Inner(BaseModel):
        a: int

    class Outer(BaseModel):
        inner: Inner
        maybe: Inner | None = None

    schema = inline_refs(Outer.model_json_schema())
    assert schema["properties"]["inner"]["properties"]["a"]["type"] == "integer"
    assert schema["properties"]["maybe"]["type"] == "object"


def test_run_accepts_json_string_dict_and_none_like_inputs() -> None:
    tool = REGISTRY.get("lookup_benchmarks")
    a = tool.run('{"query": "70b"}')
    b = tool.run({"query": "70b"})
    assert a.model_dump() == b.model_dump()
    assert tool.run(None).llm_rows  # type: ignore[attr-defined]
    assert tool.run("").llm_rows  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "fields"),
    [
        ({"chip": "M3 Max", "model": "llama3.3:70b", "context_tokens": -5}, ["context_tokens"]),
        ({"chip": 12, "model": "llama3.3:70b"}, ["chip"]),
        ({"chip": "M3 Max", "params_billion": -1}, ["params_billion"]),
        ({"chip": "M3 Max", "params_billion": 1e9}, ["params_billion"]),
        ({"chip": "M3 Max", "model": "x", "colour": "red"}, ["colour"]),
        ({"chip": "M3 Max", "architecture": {"params_billion": 7}}, ["architecture.n_layers"]),
    ],
)
def test_validation_errors_name_the_fields(args: dict, fields: list[str]) -> None:
    with pytest.raises(ToolError) as info:
        REGISTRY.get("estimate_speed").run(args)
    for f in fields:
        assert f in str(info.value)
        assert any(f in x for x in info.value.fields)


@pytest.mark.parametrize("junk", ["{not json", "[1, 2]", "42", '"text"', "null x"])
def test_junk_strings_become_tool_errors(junk: str) -> None:
    with pytest.raises(ToolError, match="estimate_speed"):
        REGISTRY.get("estimate_speed").run(junk)


def test_unknown_argument_suggests_the_right_name() -> None:
    with pytest.raises(ToolError, match="did you mean 'memory_gb'"):
        REGISTRY.get("check_memory_fit").run({"chip": "M4 Pro", "memory_gbs": 48, "model": "llama3.1:8b"})


def test_model_architecture_rejects_inconsistent_values() -> None:
    with pytest.raises(ValueError):
        ModelArchitecture(
            params_billion=7,
            n_layers=32,
            n_kv_heads=8,
            head_dim=128,
            native_context=4096,
            active_params_billion=9,
        )


def test_internal_failure_is_wrapped_as_tool_error() -> None:
    class In(BaseModel):
        x: int

    def boom(_: BaseModel) -> BaseModel:
        raise KeyError("oops")

    with pytest.raises(ToolError, match="failed internally"):
        Tool("boom", "d", In, In, boom).run({"x": 1})
