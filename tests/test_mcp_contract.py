"""Contract test: every result a tool returns validates against the outputSchema the server publishes.

Hypothesis generates valid inputs for every listed tool; each is sent through the official MCP client over
stdio and over streamable HTTP (one session per transport, the servers of tests/test_mcp.py). The generated
input must itself validate against the published inputSchema, and every successful result's
``structuredContent`` must validate against the published outputSchema with ``jsonschema`` (Draft 2020-12),
besides the check the SDK client makes on its own. A domain error ("does not fit", "exceeds the trained
context") is a valid answer too, but each tool must also succeed on some generated inputs, and
``recommend_machine`` must be exercised with budgets too small for any recommendation (its ``null`` result
is what once broke every schema-validating client).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_mcp import (  # noqa: F401 - fixtures are found by name
    SyncSession,
    closed_ollama_url,
    http_client_session,
    http_server,
    portal,
    standin_url,
    stdio_client_session,
)
from tools import REGISTRY
from tools.chips import chip_bins
from tools.models import catalog

EXAMPLES = 12  # per tool and transport: the machine is slow, and the SDK client validates each one too

_BINS = chip_bins()
_TAGS = sorted(catalog())
_QUANTS = [None, "Q4_K_M", "Q8_0", "F16", "Q3_K_M", "MLX-4bit"]
_CONTEXT = st.one_of(st.integers(1, 131_072), st.sampled_from([2048, 4096, 8192, 32768]))


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def _machine(draw: st.DrawFn, *, memory: bool) -> dict[str, Any]:
    b = draw(st.sampled_from(_BINS))
    out: dict[str, Any] = {"chip": draw(st.sampled_from([b.chip, b.chip.lower(), b.chip.upper()]))}
    if draw(st.booleans()):
        out["gpu_cores"] = draw(st.sampled_from(b.gpu_cores))
    if memory or draw(st.booleans()):
        out["memory_gb"] = draw(st.sampled_from(b.memory_gb))
    return out


@st.composite
def _model(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"model": draw(st.sampled_from(_TAGS))}
    return {"params_billion": draw(st.floats(0.5, 700, allow_nan=False).map(lambda x: round(x, 2)))}


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


@st.composite
def estimate_speed(draw: st.DrawFn) -> dict[str, Any]:
    machine = (
        draw(_machine(memory=False))
        if draw(st.integers(0, 4))
        else {"bandwidth_gbps": draw(st.floats(50, 1200))}
    )
    return _drop_none(
        {
            **machine,
            **draw(_model()),
            "quant": draw(st.sampled_from(_QUANTS)),
            "context_tokens": draw(_optional(st.integers(0, 131_072))),
        }
    )


@st.composite
def check_memory_fit(draw: st.DrawFn) -> dict[str, Any]:
    return _drop_none(
        {
            **draw(_machine(memory=True)),
            **draw(_model()),
            "quant": draw(st.sampled_from(_QUANTS)),
            "context_tokens": draw(_optional(_CONTEXT)),
            "kv_cache_type": draw(_optional(st.sampled_from(["f16", "q8_0", "q4_0"]))),
            "parallel": draw(_optional(st.integers(1, 8))),
            "gpu_memory_limit_gb": draw(_optional(st.floats(8, 512).map(lambda x: round(x, 1)))),
        }
    )


_WORDS = ["m4 pro", "m3 max", "m2 ultra", "mac mini", "studio", "70b", "8b", "qwen", "llama", "flux", "sdxl"]


@st.composite
def lookup_benchmarks(draw: st.DrawFn) -> dict[str, Any]:
    words = st.lists(st.sampled_from(_WORDS), max_size=3).map(" ".join)
    return _drop_none(
        {
            "query": draw(_optional(st.one_of(words, st.text(max_size=40)))),
            "machine": draw(_optional(st.sampled_from(_WORDS))),
            "model": draw(_optional(st.sampled_from(_WORDS))),
            "kind": draw(_optional(st.sampled_from(["llm", "image", "any"]))),
            "limit": draw(_optional(st.integers(1, 500))),
        }
    )


@st.composite
def recommend_machine(draw: st.DrawFn) -> dict[str, Any]:
    target = draw(st.integers(0, 2))
    return _drop_none(
        {
            # Small budgets on purpose: "nothing to recommend yet" (a null recommendation) is a valid answer.
            "budget_usd": draw(_optional(st.one_of(st.floats(100, 800), st.floats(800, 15_000)))),
            "workload": draw(_optional(st.sampled_from(["llm", "image", "research"]))),
            "target_model": draw(st.sampled_from(_TAGS)) if target == 1 else None,
            "target_params_billion": draw(st.floats(1, 400)) if target == 2 else None,
            "quant": draw(st.sampled_from(_QUANTS)),
            "context_tokens": draw(_optional(st.integers(1, 32_768))),
            "portable": draw(_optional(st.booleans())),
        }
    )


@st.composite
def search_knowledge(draw: st.DrawFn) -> dict[str, Any]:
    query = st.one_of(
        st.sampled_from(["unified memory", "bandwidth", "ollama num_ctx", "neural engine", "flux"]),
        st.text(min_size=1, max_size=80).filter(str.strip),
    )
    return _drop_none({"query": draw(query), "k": draw(_optional(st.integers(1, 20)))})


@st.composite
def measure_speed(draw: st.DrawFn) -> dict[str, Any]:
    return {"model": draw(st.sampled_from(["qwen2.5:7b", "llama3.1:8b", "qwen2.5:7b-instruct"]))}


STRATEGIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "estimate_speed": estimate_speed(),
    "check_memory_fit": check_memory_fit(),
    "lookup_benchmarks": lookup_benchmarks(),
    "recommend_machine": recommend_machine(),
    "search_knowledge": search_knowledge(),
    "measure_speed": measure_speed(),
}


@pytest.fixture(scope="module", params=["stdio", "http"])
def session(request: pytest.FixtureRequest) -> SyncSession:
    """One client session per transport for the whole module (tests/test_mcp.py's servers)."""
    return request.getfixturevalue(f"{request.param}_client_session")  # type: ignore[no-any-return]


def test_every_listed_tool_has_a_strategy(session: SyncSession) -> None:
    missing = [t.name for t in session.list_tools() if t.name not in STRATEGIES]
    assert not missing, f"add an input strategy for {missing} to STRATEGIES"


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_results_validate_against_the_published_output_schema(session: SyncSession, name: str) -> None:
    listed = {t.name: t for t in session.list_tools()}
    if name not in listed:
        pytest.skip(f"{name} is not offered on the {session.transport} server (no Ollama there)")
    info = listed[name]
    assert info.output_schema is not None, f"{name} publishes no outputSchema"
    jsonschema.Draft202012Validator.check_schema(info.input_schema)
    jsonschema.Draft202012Validator.check_schema(info.output_schema)
    inputs = jsonschema.Draft202012Validator(info.input_schema)
    outputs = jsonschema.Draft202012Validator(info.output_schema)
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(arguments=STRATEGIES[name])
    def check(arguments: dict[str, Any]) -> None:
        problems = [e.message for e in inputs.iter_errors(arguments)]
        assert not problems, f"generated input does not match the inputSchema: {problems}"
        # The SDK client validates structuredContent itself and raises on a mismatch; that failure is the
        # contract breaking, so it is not caught here.
        result = session.call(name, arguments)
        if result.is_error:
            outcomes["error"] += 1
            assert result.structured_content is None
            return
        outcomes["ok"] += 1
        errors = sorted(outputs.iter_errors(result.structured_content), key=lambda e: list(e.path))
        assert not errors, f"{name}({arguments}) -> {[f'{list(e.path)}: {e.message}' for e in errors]}"
        if name == "recommend_machine" and result.structured_content["recommendation"] is None:  # type: ignore[index]
            outcomes["null recommendation"] += 1

    check()
    if name == "recommend_machine":
        # Explicit small budgets as well, whatever hypothesis drew: these return a null recommendation.
        for budget in (300, 600, 700):
            result = session.call(name, {"budget_usd": budget, "workload": "llm"})
            assert not result.is_error, result.content
            assert not list(outputs.iter_errors(result.structured_content))
            if result.structured_content["recommendation"] is None:  # type: ignore[index]
                outcomes["null recommendation"] += 1
        assert outcomes["null recommendation"], "no input produced a null recommendation"
    assert outcomes["ok"], f"no generated input succeeded for {name}: {outcomes}"


def test_every_tool_is_annotated_read_only_and_idempotent(session: SyncSession) -> None:
    for info in session.list_tools():
        assert info.annotations is not None, info.name
        assert info.annotations.read_only_hint is True and info.annotations.idempotent_hint is True, info.name
        assert info.annotations.destructive_hint is False, info.name


def test_the_exported_mcp_format_is_what_the_server_lists(session: SyncSession) -> None:
    """`python -m tools schema --format mcp` (REGISTRY.mcp_spec) and tools/list agree tool for tool."""
    listed = {t.name: t for t in session.list_tools()}
    for tool in REGISTRY:
        spec = tool.mcp_spec()
        info = listed[tool.name]
        assert info.input_schema == spec["inputSchema"] and info.output_schema == spec["outputSchema"]
        # With Ollama wired in, the server's toolset adds a sentence ("Any model installed in Ollama ...").
        assert info.title == spec["title"] and (info.description or "").startswith(spec["description"])
        assert info.annotations is not None
        assert info.annotations.model_dump(by_alias=True, exclude_none=True) == spec["annotations"]


def test_small_argument_problems_come_back_as_short_clear_errors(session: SyncSession) -> None:
    huge = session.call("estimate_speed", {"x" * 1_000_000: 1, "chip": "M3 Max"})
    assert huge.is_error
    text = huge.content[0].text  # type: ignore[union-attr]
    assert "unknown argument" in text and len(text) < 600
    nested = session.call("estimate_speed", {"chip": "M3 Max", "cluster": {"count": 2, "y" * 1_000_000: 1}})
    assert nested.is_error
    text = nested.content[0].text  # type: ignore[union-attr]
    assert "cluster.yyy" in text and len(text) < 600
    boolean = session.call(
        "check_memory_fit",
        {"chip": "M4 Pro", "memory_gb": 48, "model": "llama3.3:70b", "context_tokens": True},
    )
    assert boolean.is_error and "context_tokens: expected a number, got a boolean" in boolean.content[0].text  # type: ignore[union-attr]
    null = session.call(
        "check_memory_fit",
        {"chip": "M4 Pro", "memory_gb": 48, "model": "llama3.3:70b", "context_tokens": None, "quant": None},
    )
    assert not null.is_error, null.content
    assert null.structured_content["context_tokens"] == 4096  # type: ignore[index]
    nested_null = session.call(
        "estimate_speed",
        {"chip": "M3 Ultra", "memory_gb": 512, "params_billion": 1000, "cluster": {"count": 2, "link": None}},
    )
    assert not nested_null.is_error, nested_null.content
    assert nested_null.structured_content["cluster"]["link"] == "thunderbolt5"  # type: ignore[index]
