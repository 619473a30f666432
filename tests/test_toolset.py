"""build_toolset: the pure tools plus search_knowledge, measure_speed and installed-model resolution."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from assistant.ollama import OllamaLayer
from assistant.toolset import build_toolset
from knowledge.search import KnowledgeBase
from tests.ollama_standin import MYSTERY_CODER_13B, ChatScript, OllamaStandIn
from tests.ollama_standin import TINY_MOE as TINY_MOE_SPEC
from tools import REGISTRY, ToolError, ToolErrorKind

PURE = ["estimate_speed", "check_memory_fit", "lookup_benchmarks", "recommend_machine"]

MYSTERY = MYSTERY_CODER_13B


@pytest.fixture
def knowledge(tmp_path: Path) -> KnowledgeBase:
    folder = tmp_path / "passages"
    folder.mkdir()
    (folder / "wired.md").write_text(
        "---\nid: wired-limit\ntitle: GPU memory limit\nsection: Settings\nsource: test\n---\n\n"
        "sudo sysctl iogpu.wired_limit_mb=40960 lets the GPU use more unified memory.\n",
        encoding="utf-8",
    )
    (folder / "quant.md").write_text(
        "---\nid: quant\ntitle: Quantisation\nsection: Basics\nsource: test\n---\n\nQ4_K_M halves memory.\n",
        encoding="utf-8",
    )
    return KnowledgeBase(tmp_path / "data", None, passages_dir=folder)


def test_without_runtime_it_is_the_pure_registry_and_never_mutates_it(
    standin: OllamaStandIn, knowledge: KnowledgeBase
) -> None:
    assert build_toolset(None, None).names() == PURE
    full = build_toolset(knowledge, OllamaLayer(standin.url))
    assert full.names() == [*PURE, "search_knowledge", "measure_speed"]
    assert REGISTRY.names() == PURE  # the shared registry is untouched
    for tool in full:
        spec = tool.ollama_spec()
        assert spec["type"] == "function" and spec["function"]["name"] == tool.name
        assert spec["function"]["parameters"]["type"] == "object"
    search = full.get("search_knowledge").ollama_spec()["function"]["parameters"]
    assert search["required"] == ["query"]


def test_search_knowledge_tool(knowledge: KnowledgeBase) -> None:
    tool = build_toolset(knowledge, None).get("search_knowledge")
    out = tool.run({"query": "sysctl wired limit", "k": 2})
    assert out.passages[0].id == "wired-limit" and out.mode == "lexical"  # type: ignore[attr-defined]
    assert tool.run('{"query": "quantisation memory"}').passages  # type: ignore[attr-defined]
    with pytest.raises(ToolError, match="k"):
        tool.run({"query": "x", "k": 0})
    with pytest.raises(ToolError, match="query"):
        tool.run({})


def test_installed_model_unknown_to_the_catalog_is_resolved_via_api_show(standin: OllamaStandIn) -> None:
    standin.add_model(MYSTERY)
    tools = build_toolset(None, OllamaLayer(standin.url))
    speed = tools.get("estimate_speed").run({"chip": "M3 Max", "model": "mystery-coder:13b"})
    assert speed.params_billion == pytest.approx(13.016, rel=1e-3)  # type: ignore[attr-defined]
    assert speed.quant == "Q8_0"  # type: ignore[attr-defined] # taken from /api/show when not asked for
    assert "/api/show" in speed.assumptions[0]  # type: ignore[attr-defined]
    assert any("mystery-coder:13b" in s for s in speed.sources)  # type: ignore[attr-defined]
    assert [r.json["model"] for r in standin.requests_to("/api/show")] == ["mystery-coder:13b"]

    fit = tools.get("check_memory_fit").run(
        {
            "chip": "M3 Max",
            "memory_gb": 36,
            "model": "mystery-coder:13b",
            "quant": "Q4_K_M",
            "context_tokens": 8192,
        }
    )
    assert fit.quant.upper().startswith("Q4_K_M")  # type: ignore[attr-defined] # an explicit quant wins
    assert fit.breakdown.kv_cache_gb > 0  # type: ignore[attr-defined]
    # catalog models never cost an /api/show round trip
    standin.clear_requests()
    tools.get("estimate_speed").run({"chip": "M3 Max", "model": "qwen2.5:7b"})
    assert standin.requests_to("/api/show") == []


def test_unknown_and_not_installed_model_error_is_clear(standin: OllamaStandIn) -> None:
    tools = build_toolset(None, OllamaLayer(standin.url))
    with pytest.raises(ToolError) as err:
        tools.get("estimate_speed").run({"chip": "M3 Max", "model": "nonexistent-model"})
    message = str(err.value)
    assert "unknown model" in message and "not installed in Ollama either" in message
    assert err.value.fields == ["model"] and err.value.kind is ToolErrorKind.UNKNOWN_MODEL
    # without Ollama the catalog's own message stands
    with pytest.raises(ToolError, match="unknown model") as plain:
        build_toolset(None, None).get("estimate_speed").run({"chip": "M3 Max", "model": "nonexistent-model"})
    assert "Ollama" not in str(plain.value)
    # another model error (a family without a size) is not an unknown model: its message stands as is
    with pytest.raises(ToolError, match="needs a size") as sizeless:
        tools.get("estimate_speed").run({"chip": "M3 Max", "model": "codellama"})
    assert "Ollama" not in str(sizeless.value) and sizeless.value.kind is ToolErrorKind.GENERIC
    # a tag with a size is answered from the tag when the model is not installed, saying so
    out = tools.get("estimate_speed").run({"chip": "M3 Max", "model": "nonexistent-model:3b"})
    assert out.params_billion == 3.0  # type: ignore[attr-defined]
    notes = " ".join(out.assumptions)  # type: ignore[attr-defined]
    assert "size read from the tag" in notes and "Not read from Ollama" in notes


def test_unknown_model_when_ollama_is_down_is_still_a_tool_error(standin: OllamaStandIn) -> None:
    tools = build_toolset(None, OllamaLayer(standin.url, timeout_s=60.0))
    with standin.down(), pytest.raises(ToolError, match="could not describe it"):
        tools.get("check_memory_fit").run({"chip": "M3 Max", "memory_gb": 36, "model": "mystery-coder"})


def test_measure_speed_reports_measurement_next_to_the_estimate(standin: OllamaStandIn) -> None:
    standin.script_chat(ChatScript(text="word " * 20, eval_count=200, eval_duration_ns=4_000_000_000))
    tool = build_toolset(None, OllamaLayer(standin.url)).get("measure_speed")
    out = tool.run({"model": "qwen2.5:7b"})
    assert out.measured_tokens_per_second == pytest.approx(50.0)  # type: ignore[attr-defined]
    assert out.eval_count == 200  # type: ignore[attr-defined]
    if out.estimated_tokens_per_second is None:  # type: ignore[attr-defined] # not on a Mac: says why
        assert any("No estimate for comparison" in a for a in out.assumptions)  # type: ignore[attr-defined]
    else:  # pragma: no cover - on a Mac the estimate for this machine is there
        assert out.measured_vs_estimate is not None  # type: ignore[attr-defined]
    request = standin.last_chat_request()
    assert request.model == "qwen2.5:7b" and request.options.get("num_predict")


def test_measure_speed_errors_are_tool_errors(standin: OllamaStandIn) -> None:
    tool = build_toolset(None, OllamaLayer(standin.url)).get("measure_speed")
    with pytest.raises(ToolError, match="ollama pull mistral:7b"):
        tool.run({"model": "mistral:7b"})
    with pytest.raises(ToolError, match="model"):
        tool.run({"model": ""})


def _tiny_moe_tensors() -> tuple[tuple[str, str, tuple[int, ...]], ...]:
    t: list[tuple[str, str, tuple[int, ...]]] = [
        ("token_embd.weight", "Q8_0", (1024, 32000)),
        ("output.weight", "Q6_K", (1024, 32000)),
        ("output_norm.weight", "F32", (1024,)),
    ]
    for i in range(2):
        t += [
            (f"blk.{i}.attn_norm.weight", "F32", (1024,)),
            (f"blk.{i}.attn_q.weight", "Q4_K", (1024, 1024)),
            (f"blk.{i}.attn_k.weight", "Q4_K", (1024, 256)),
            (f"blk.{i}.attn_v.weight", "Q6_K", (1024, 256)),
            (f"blk.{i}.attn_output.weight", "Q4_K", (1024, 1024)),
            (f"blk.{i}.ffn_gate_inp.weight", "F32", (1024, 8)),
            (f"blk.{i}.ffn_gate_exps.weight", "MXFP4", (1024, 2048, 8)),
            (f"blk.{i}.ffn_up_exps.weight", "MXFP4", (1024, 2048, 8)),
            (f"blk.{i}.ffn_down_exps.weight", "MXFP4", (2048, 1024, 8)),
        ]
    return tuple(t)


TINY_MOE = dataclasses.replace(TINY_MOE_SPEC, tensors=_tiny_moe_tensors())


def test_installed_moe_reads_bytes_per_token_from_its_tensor_layout(standin: OllamaStandIn) -> None:
    """A MoE model with no size in its name: /api/show's tensors give the bytes read per token."""
    standin.add_model(TINY_MOE)
    tools = build_toolset(None, OllamaLayer(standin.url))
    args = {"chip": "M4 Pro", "gpu_cores": 20, "model": "tinymoe", "context_tokens": 0}
    out = tools.get("estimate_speed").run(args)
    embd = 1024 * 32000 * 8.5 / 8
    head = 1024 * 32000 * 6.5625 / 8
    attn = 2 * (2 * 1024 * 1024 * 4.5 / 8 + 1024 * 256 * 4.5 / 8 + 1024 * 256 * 6.5625 / 8)
    f32 = (1024 + 2 * (1024 + 1024 * 8)) * 4
    experts = 2 * 3 * (1024 * 2048 * 8) * 4.25 / 8
    total = embd + head + attn + f32 + experts
    active = head + attn + f32 + experts * 2 / 8  # token_embd: one row per token; 2 of 8 experts
    assert out.weights_gb == pytest.approx(total / 1e9, abs=0.006)  # type: ignore[attr-defined]
    assert out.active_weights_gb == pytest.approx(active / 1e9, abs=0.006)  # type: ignore[attr-defined]
    assert out.quant == "MXFP4"  # type: ignore[attr-defined]
    assert "tensor by tensor" in out.assumptions[0]  # type: ignore[attr-defined]
    expected_ceiling = 273e9 / (round(active / 1e9, 3) * 1e9)
    assert out.ceiling_tokens_per_second == pytest.approx(expected_ceiling, rel=0.01)  # type: ignore[attr-defined]
    shows = standin.requests_to("/api/show")
    assert [r.json["model"] for r in shows] == ["tinymoe"] and shows[0].json["verbose"] is True


def test_run_tool_gives_a_result_or_a_sentence_never_an_exception() -> None:
    """run_tool is the one wrapper the agent, the MCP server and the Tools tab share."""
    from pydantic import BaseModel

    from assistant.toolset import run_tool
    from tools import Tool

    class Broken(BaseModel):
        pass

    def explode(params: Broken) -> Broken:
        raise RuntimeError("a bug")

    registry = build_toolset(None, None).extended(
        Tool(name="broken", description="d", input_model=Broken, output_model=Broken, func=explode)
    )
    ok = run_tool(registry, "estimate_speed", '{"chip": "M3 Max", "model": "qwen2.5:7b"}')
    assert ok.error is None and ok.result is not None and ok.result.expected_tokens_per_second > 0  # type: ignore[attr-defined]
    unknown = run_tool(registry, "estimate_sped", {})
    assert unknown.result is None and "Unknown tool 'estimate_sped'" in (unknown.error or "")
    assert "estimate_speed" in (unknown.error or "")
    bad = run_tool(registry, "estimate_speed", {"chip": "M3 Max", "model": "qwen2.5:7b", "bits": 4})
    assert bad.result is None and "unknown argument" in (bad.error or "")
    broken = run_tool(registry, "broken", {})
    assert broken.result is None and broken.error == "broken failed internally (RuntimeError: a bug)"
    assert "Traceback" not in broken.error
