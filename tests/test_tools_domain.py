"""Unit tests per tool, including the article's worked figures and its table errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel

from tools import REGISTRY, ToolError, ToolErrorKind
from tools.chips import parse_chip
from tools.data_files import GIB
from tools.fit import default_gpu_fraction
from tools.models import catalog, is_catalog_model, resolve_model_tag
from tools.quants import quants, resolve_quant
from tools.schemas import (
    CheckMemoryFitOutput,
    EstimateSpeedOutput,
    LookupBenchmarksOutput,
    RecommendMachineOutput,
)
from tools.sizes import kv_cache_bytes

T = TypeVar("T", bound=BaseModel)

Arguments = Mapping[str, Any] | str


def _run(name: str, output: type[T], arguments: Arguments) -> T:
    """The tool as the agent and MCP call it (loosely typed arguments), its output typed for the checks."""
    out = REGISTRY.get(name).run(arguments)
    assert isinstance(out, output)
    return out


def est(arguments: Arguments) -> EstimateSpeedOutput:
    return _run("estimate_speed", EstimateSpeedOutput, arguments)


def fit(arguments: Arguments) -> CheckMemoryFitOutput:
    return _run("check_memory_fit", CheckMemoryFitOutput, arguments)


def look(arguments: Arguments) -> LookupBenchmarksOutput:
    return _run("lookup_benchmarks", LookupBenchmarksOutput, arguments)


def rec(arguments: Arguments) -> RecommendMachineOutput:
    return _run("recommend_machine", RecommendMachineOutput, arguments)


# ---- article worked figures -------------------------------------------------------------------------------
def test_70b_q4_k_m_is_about_42_gb() -> None:
    out = est({"chip": "M3 Max", "gpu_cores": 40, "model": "llama3.3:70b", "context_tokens": 0})
    assert out.weights_gb == pytest.approx(42.5, abs=0.3)
    assert out.bits_per_weight == pytest.approx(4.82, abs=0.01)
    # llama.cpp prints GiB: 39.6 GiB for Llama-3-70B Q4_K_M
    assert out.weights_gb * 1e9 / GIB == pytest.approx(39.6, abs=0.1)


def test_400_gbps_ceiling_for_70b_is_about_9_4() -> None:
    out = est({"bandwidth_gbps": 400, "model": "llama3.3:70b", "context_tokens": 0})
    assert 9.3 <= out.ceiling_tokens_per_second <= 9.5
    assert out.expected_tokens_per_second < out.ceiling_tokens_per_second
    lo, hi = out.expected_range
    assert lo <= out.expected_tokens_per_second <= hi <= out.ceiling_tokens_per_second


def test_70b_does_not_fit_48gb_m4_pro() -> None:
    out = fit({"chip": "M4 Pro", "memory_gb": 48, "model": "llama3.3:70b"})
    assert out.fits_on_gpu is False
    # 45.3 GB needed vs a 38.7 GB GPU budget; weights + KV + macOS (49.3 GB) still fit the 51.5 GB of RAM.
    assert out.verdict == "partial_offload"
    assert out.breakdown.gpu_budget_gb == pytest.approx(0.75 * 48 * GIB / 1e9, abs=0.01)
    assert out.max_context_tokens == 0
    assert any("IQ3" in s or "Q3" in s or "Q2" in s for s in out.suggestions)
    assert any("64 GB" in s for s in out.suggestions)
    # At 16k context the KV cache (5.4 GB) pushes weights + KV + macOS past RAM: nowhere to offload to.
    longer = fit({"chip": "M4 Pro", "memory_gb": 48, "model": "llama3.3:70b", "context_tokens": 16384})
    assert (longer.verdict, longer.fits_on_gpu) == ("does_not_fit", False)


def test_m3_pro_is_150_gbps() -> None:
    out = est({"chip": "M3 Pro", "model": "llama3.1:8b"})
    assert out.bandwidth_gbps == 150


def test_70b_fits_64gb_m3_max_at_8k() -> None:
    out = fit({"chip": "M3 Max", "memory_gb": 64, "model": "llama3.3:70b", "context_tokens": 8192})
    # 46.6 GB of a 51.5 GB budget: 4.9 GB of headroom, more than the 5 % tight band (2.6 GB)
    assert out.fits_on_gpu and out.verdict == "fits"
    b = out.breakdown
    assert b.total_gb == pytest.approx(b.weights_gb + b.kv_cache_gb + b.overhead_gb, abs=0.02)
    assert b.headroom_gb == pytest.approx(b.gpu_budget_gb - b.total_gb, abs=0.02)
    assert 8192 <= out.max_context_tokens < 131072


# ---- machine resolution -----------------------------------------------------------------------------------
def test_bin_is_picked_by_cores_or_memory_and_stated() -> None:
    assert est({"chip": "M3 Max", "gpu_cores": 30, "model": "llama3.1:8b"}).bandwidth_gbps == 300
    by_mem = est({"chip": "M4 Max", "memory_gb": 36, "model": "llama3.1:8b"})
    assert by_mem.bandwidth_gbps == 410
    assert any("identifies" in a for a in by_mem.assumptions)
    default = est({"chip": "m3 max", "model": "llama3.1:8b"})
    assert default.bandwidth_gbps == 400
    assert any("Assumed the 40-core" in a for a in default.assumptions)
    assert est({"chip": "Apple M5 Max 32-core", "model": "llama3.1:8b"}).bandwidth_gbps == 460


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"chip": "M3 Max", "gpu_cores": 35}, "30 or 40"),
        ({"chip": "M3 Max", "gpu_cores": 30, "memory_gb": 64}, "36 or 96"),
        ({"chip": "M4 Pro", "memory_gb": 32}, "24, 48 or 64"),
        ({"chip": "M7 Max"}, "Accepted"),
        ({"chip": "Pentium"}, "Accepted"),
        ({"chip": "M3 Max 40-core", "gpu_cores": 30}, "contradicts"),
    ],
)
def test_bad_machines_raise_with_accepted_values(args: dict, needle: str) -> None:
    with pytest.raises(ToolError, match=needle):
        est({**args, "model": "llama3.1:8b"})


def test_no_chip_off_mac_says_pass_chip(monkeypatch: pytest.MonkeyPatch) -> None:
    import tools.this_mac as tm

    monkeypatch.setattr(tm, "detect", lambda: None)
    with pytest.raises(ToolError, match="pass chip|Pass chip"):
        est({"model": "llama3.1:8b"})
    with pytest.raises(ToolError, match="chip"):
        fit({"model": "llama3.1:8b"})


def test_this_mac_parsers() -> None:
    from tools.this_mac import parse_brand, parse_gpu_cores

    assert parse_brand("Apple M3 Max") == "M3 Max"
    assert parse_brand("Apple M4") == "M4"
    assert parse_brand("Intel(R) Core(TM) i9") is None
    assert parse_gpu_cores('{"SPDisplaysDataType": [{"sppci_cores": "40"}]}') == 40
    assert parse_gpu_cores("not json") is None


def test_parse_chip_variants() -> None:
    assert parse_chip("m4pro") == ("M4 Pro", None)
    assert parse_chip("Apple M3 Max (40-core GPU)") == ("M3 Max", 40)


# ---- models and quants ------------------------------------------------------------------------------------
def test_tag_aliases_and_embedded_quant() -> None:
    e, q, _ = resolve_model_tag("qwen2.5:14b-instruct-q4_K_M")
    assert e.tag == "qwen2.5:14b" and q is not None and resolve_quant(q)[0].quant == "Q4_K_M"
    assert resolve_model_tag("llama3.1")[0].tag == "llama3.1:8b"
    assert resolve_model_tag("deepseek-r1:14b-qwen-distill-q4_K_M")[0].tag == "deepseek-r1:14b"
    assert resolve_model_tag("Llama-3.3-70B-Instruct")[0].tag == "llama3.3:70b"


def test_quant_in_tag_is_used() -> None:
    out = est({"chip": "M2 Ultra", "model": "llama3.1:8b-instruct-q8_0"})
    assert out.quant == "Q8_0"


def test_unknown_model_gives_closest_matches() -> None:
    with pytest.raises(ToolError, match="Closest: .*qwen2.5"):
        est({"chip": "M3 Max", "model": "qwen2.6"})
    # A tag with a size is answered from the tag, with the assumption and the near catalog tags stated.
    out = est({"chip": "M3 Max", "model": "qwen2.6:14b"})
    assert out.params_billion == 14.0 and out.active_params_billion == 14.0
    note = next(a for a in out.assumptions if "not in our catalog" in a)
    assert "not in our catalog" in note and "'14b' = 14B parameters, assumed dense" in note
    assert "qwen2.5:14b" in note
    with pytest.raises(ToolError, match="needs a size"):
        est({"chip": "M3 Max", "model": "codellama"})


@pytest.mark.parametrize(
    ("name", "arguments", "field"),
    [
        ("estimate_speed", {"chip": "M3 Max", "model": "qwen2.6"}, "model"),
        ("check_memory_fit", {"chip": "M3 Max", "memory_gb": 36, "model": "nonsense"}, "model"),
        ("estimate_speed", {"chip": "M3 Max", "model": "hf.co/foo/Bar-GGUF:Q4_K_M"}, "model"),
        ("recommend_machine", {"budget_usd": 1500, "workload": "llm", "target_model": "foo"}, "target_model"),
    ],
)
def test_unknown_model_errors_carry_their_kind(name: str, arguments: dict[str, Any], field: str) -> None:
    # Callers (assistant.toolset) branch on the kind, never on the wording of the message.
    with pytest.raises(ToolError, match=f"{field}: unknown model") as err:
        REGISTRY.get(name).run(arguments)
    assert err.value.kind is ToolErrorKind.UNKNOWN_MODEL
    assert err.value.fields == [field]


@pytest.mark.parametrize(
    "arguments",
    [
        {"chip": "M3 Max", "model": "codellama"},  # a known family without a size: not an unknown model
        {"chip": "M3 Max", "model": "llama3.1:8b", "quant": "Q9_Z"},
        {"chip": "M9 Max", "model": "llama3.1:8b"},
        {"chip": "M3 Max", "model": "llama3.1:8b", "context_tokens": "lots"},
    ],
)
def test_other_tool_errors_are_generic(arguments: dict[str, Any]) -> None:
    with pytest.raises(ToolError) as err:
        REGISTRY.get("estimate_speed").run(arguments)
    assert err.value.kind is ToolErrorKind.GENERIC


def test_unknown_quant_lists_accepted() -> None:
    with pytest.raises(ToolError, match="quant.*Q4_K_M"):
        est({"chip": "M3 Max", "model": "llama3.1:8b", "quant": "Q9_Z"})
    assert resolve_quant("mlx 4bit")[0].quant == "MLX-4bit"
    assert resolve_quant("fp16")[0].quant == "F16"


def test_moe_reads_only_active_params() -> None:
    dense = est({"chip": "M4 Pro", "params_billion": 30.5, "quant": "Q4_K_M"})
    moe = est({"chip": "M4 Pro", "model": "qwen3:30b-a3b"})
    assert moe.active_params_billion == pytest.approx(3.34)
    assert moe.ceiling_tokens_per_second > 5 * dense.ceiling_tokens_per_second
    assert any("MoE" in a for a in moe.assumptions)


def test_context_slows_decode_and_grows_kv() -> None:
    short = est({"chip": "M3 Max", "gpu_cores": 40, "model": "llama3.1:8b", "context_tokens": 256})
    long = est({"chip": "M3 Max", "gpu_cores": 40, "model": "llama3.1:8b", "context_tokens": 8192})
    assert long.kv_cache_gb > short.kv_cache_gb
    assert 0.6 < long.expected_tokens_per_second / short.expected_tokens_per_second < 0.95


def test_context_beyond_native_is_rejected() -> None:
    with pytest.raises(ToolError, match="context_tokens"):
        est({"chip": "M3 Max", "model": "phi3:mini", "context_tokens": 100000})


def test_lower_quant_is_less_efficient_per_byte() -> None:
    q4 = est({"chip": "M2 Ultra", "model": "llama3.1:8b", "quant": "Q4_K_M"})
    f16 = est({"chip": "M2 Ultra", "model": "llama3.1:8b", "quant": "F16"})
    assert f16.efficiency > q4.efficiency
    assert q4.expected_tokens_per_second > f16.expected_tokens_per_second


def test_kv_cache_gqa_and_swa() -> None:
    arch = catalog()["llama3.1:8b"].architecture()
    assert kv_cache_bytes(arch, 8192) == 2 * 32 * 8 * 128 * 2 * 8192  # 1 GiB
    assert kv_cache_bytes(arch, 8192, "q8_0") == pytest.approx(kv_cache_bytes(arch, 8192) * 34 / 64)
    assert kv_cache_bytes(arch, 4096, parallel=4) == kv_cache_bytes(arch, 16384)
    g = catalog()["gemma3:27b"].architecture()
    full = 2 * 62 * 16 * 128 * 2 * 32768
    assert kv_cache_bytes(g, 32768) < 0.25 * full


def test_explicit_architecture_for_unknown_model() -> None:
    arch = {"params_billion": 12, "n_layers": 40, "n_kv_heads": 8, "head_dim": 128, "native_context": 65536}
    out = est({"chip": "M4 Max", "gpu_cores": 40, "model": "my-finetune:12b", "architecture": arch})
    assert out.params_billion == 12
    assert out.kv_cache_gb == pytest.approx(2 * 40 * 8 * 128 * 2 * 2048 / 1e9, abs=1e-3)


def test_quant_table_is_monotone_in_bits() -> None:
    q = quants()
    assert q["Q2_K"].bpw(8) < q["Q4_K_M"].bpw(8) < q["Q6_K"].bpw(8) < q["Q8_0"].bpw(8) < q["F16"].bpw(8)


# ---- fit ---------------------------------------------------------------------------------------------------
def test_gpu_fraction_rule() -> None:
    assert default_gpu_fraction(16) == pytest.approx(2 / 3, abs=1e-3)
    assert default_gpu_fraction(36) == pytest.approx(2 / 3, abs=1e-3)
    assert default_gpu_fraction(64) == 0.75


def test_wired_limit_override_changes_verdict_and_sysctl_suggested() -> None:
    base = fit({"chip": "M3 Max", "memory_gb": 64, "model": "llama3.3:70b", "context_tokens": 32768})
    assert (base.verdict, base.fits_on_gpu) == ("partial_offload", False)
    assert any("iogpu.wired_limit_mb=" in s and "Risk" in s for s in base.suggestions)
    raised = fit(
        {
            "chip": "M3 Max",
            "memory_gb": 64,
            "model": "llama3.3:70b",
            "context_tokens": 32768,
            "gpu_memory_limit_gb": 58,
        }
    )
    assert (raised.verdict, raised.fits_on_gpu) == ("fits", True)


def test_kv_quant_and_parallel_change_kv() -> None:
    a = fit({"chip": "M4 Pro", "memory_gb": 48, "model": "qwen2.5:14b", "context_tokens": 32768})
    b = fit(
        {
            "chip": "M4 Pro",
            "memory_gb": 48,
            "model": "qwen2.5:14b",
            "context_tokens": 32768,
            "kv_cache_type": "q8_0",
        }
    )
    c = fit(
        {"chip": "M4 Pro", "memory_gb": 48, "model": "qwen2.5:14b", "context_tokens": 32768, "parallel": 2}
    )
    assert b.breakdown.kv_cache_gb == pytest.approx(a.breakdown.kv_cache_gb * 34 / 64, rel=0.01)
    assert c.breakdown.kv_cache_gb == pytest.approx(2 * a.breakdown.kv_cache_gb, rel=0.01)


def test_tiny_model_fits_everywhere_with_full_context() -> None:
    out = fit({"chip": "M1", "memory_gb": 16, "model": "llama3.2:1b", "context_tokens": 4096})
    assert out.verdict == "fits"
    assert out.max_context_tokens > 4096


def test_override_above_ram_rejected() -> None:
    with pytest.raises(ToolError, match="gpu_memory_limit_gb"):
        fit({"chip": "M4 Pro", "memory_gb": 24, "model": "llama3.1:8b", "gpu_memory_limit_gb": 40})


def test_fit_needs_memory() -> None:
    with pytest.raises(ToolError, match="memory_gb.*24, 48 or 64"):
        fit({"chip": "M4 Pro", "model": "llama3.1:8b"})


# ---- lookup_benchmarks
# ---------------------------------------------------------------------------------------
def test_lookup_flags_impossible_rows() -> None:
    rows = look({"query": "70b"}).llm_rows
    by = {r.machine: r for r in rows}
    studio = by["M3 Max Studio 128GB (40-core GPU)"]
    assert studio.tokens_per_second == 9.8 and studio.physically_impossible
    assert studio.ceiling_tokens_per_second == pytest.approx(9.4, abs=0.1)
    mbp = by["M3 Max MBP 64GB (30-core GPU)"]
    assert mbp.physically_impossible and mbp.ceiling_tokens_per_second == pytest.approx(7.05, abs=0.1)
    assert any("36 or 96" in f for f in mbp.flags)
    assert any("Mac Studio" in f for f in studio.flags)
    oom = by["M4 Pro Mac mini 48GB"]
    assert oom.tokens_per_second is None and any("agrees" in f for f in oom.flags)
    assert all(r.source.startswith("the article 'Apple Silicon AI Workstation 2026") for r in rows)


def test_lookup_flags_nonexistent_model() -> None:
    rows = look({"model": "34b"}).llm_rows
    assert len(rows) == 4
    assert all(any("does not exist" in f for f in r.flags) for r in rows)


@pytest.mark.parametrize(
    ("query", "n_llm", "n_img"),
    [("m4 pro", 4, 3), ("Mac mini", 4, 3), ("flux", 0, 3), ("studio sdxl", 0, 1), ("M3 Max 70B", 2, 0)],
)
def test_lookup_forgiving_matching(query: str, n_llm: int, n_img: int) -> None:
    out = look({"query": query})
    assert (len(out.llm_rows), len(out.image_rows)) == (n_llm, n_img)


def test_lookup_image_row_values() -> None:
    out = look({"machine": "studio", "model": "flux"})
    assert [r.seconds for r in out.image_rows] == [29.0]


def test_lookup_no_match_explains() -> None:
    out = look({"query": "m4 pro flux 70b"})
    assert not out.llm_rows and not out.image_rows
    assert any("no row matches" in m for m in out.matched_on)


# ---- recommend_machine
# --------------------------------------------------------------------------------------
def test_recommend_under_1500_is_m4_pro_mini_48() -> None:
    out = rec({"budget_usd": 1500})
    assert out.recommendation is not None
    assert out.recommendation.chip == "M4 Pro" and out.recommendation.memory_gb == 48
    assert out.recommendation.expected_tokens_per_second is not None
    assert any("M3 Pro" in a for a in out.avoid)


def test_recommend_70b_needs_64gb_and_max_bandwidth() -> None:
    out = rec({"target_model": "llama3.3:70b"})
    r = out.recommendation
    assert r is not None and r.memory_gb >= 64 and r.bandwidth_gbps >= 400
    assert r.fit_verdict == "fits"
    assert any("never made" in t for t in out.trade_offs)


def test_recommend_small_budget_says_wait() -> None:
    out = rec({"budget_usd": 600})
    assert out.recommendation is None
    assert "wait" in out.summary.lower()


def test_recommend_image_prefers_gpu_cores() -> None:
    out = rec({"workload": "image", "budget_usd": 3000})
    r = out.recommendation
    # an M5-generation core (Neural Accelerator) counts as 2.5 older ones: the 32-core M5 Max Studio ($2,499)
    # now outranks 40-core M3/M4 Max machines (was: gpu_cores >= 40)
    assert r is not None and r.gpu_cores * (2.5 if r.chip.startswith("M5") else 1) >= 40
    assert any("compute-bound" in r for r in out.reasons)


def test_recommend_unknown_target_model() -> None:
    with pytest.raises(ToolError, match="target_model"):
        rec({"target_model": "gpt-9:turbo"})  # no size in the tag: unknown


def test_control_characters_in_a_chip_name_do_not_drop_its_tier() -> None:
    from tools.chips import parse_chip

    assert parse_chip("M4\x00 Pro") == ("M4 Pro", None)
    assert parse_chip("\ufeffM3\u202e Max 40-core\x1b[0m") == ("M3 Max", 40)


def test_gpt_oss_120b_is_known_with_moe_active_params() -> None:
    from tools import REGISTRY

    out = REGISTRY.get("estimate_speed").run({"chip": "M4 Max", "memory_gb": 128, "model": "gpt-oss:120b"})
    assert out.weights_gb == 65.0 and out.active_params_billion == 5.13  # type: ignore[attr-defined]
    # Decode reads only the active experts: far faster than a dense model of the same file size.
    assert out.ceiling_tokens_per_second > 100  # type: ignore[attr-defined]


# ---- issue 15: MoE layout, new models, tag sizing, prefill on every chip ---------------------------------
def test_gpt_oss_bytes_per_token_follow_its_tensor_layout() -> None:
    out = est({"chip": "M4 Pro", "gpu_cores": 20, "model": "gpt-oss:20b", "context_tokens": 0})
    # BF16 attention/shared/head (~1.22B params = 2.49 GB) + 4/32 of the 10.15 GB MXFP4 experts, scaled to
    # the 14 GB file: 3.78 GB, not 14 x 3.61/20.91 = 2.42 GB.
    assert out.active_weights_gb == pytest.approx(3.78, abs=0.02)
    assert out.ceiling_tokens_per_second == pytest.approx(273 / 3.78, rel=0.01)
    assert any("BF16 non-expert tensors, MXFP4 experts" in a for a in out.assumptions)
    # the 8-bit non-expert build (ggml-org GGUF, mlx-community MXFP4-Q8) reads less per token
    q8 = est({"chip": "M4 Pro", "gpu_cores": 20, "model": "gpt-oss:20b", "quant": "MXFP4-Q8"})
    assert 2.5 < q8.active_weights_gb < 2.7
    big = est({"chip": "M3 Ultra", "model": "gpt-oss:120b", "context_tokens": 0})
    assert big.active_weights_gb == pytest.approx(5.07, abs=0.05)


def test_gpt_oss_cannot_be_requantised_to_iq3() -> None:
    with pytest.raises(ToolError, match="not available as IQ3_XXS.*MXFP4"):
        est({"chip": "M4 Pro", "model": "gpt-oss:20b", "quant": "IQ3_XXS"})
    from tools.models import catalog, quant_allowed

    assert not quant_allowed(catalog()["gpt-oss:20b"], "IQ3_XXS")
    assert quant_allowed(catalog()["gpt-oss:20b"], "MXFP4")
    assert quant_allowed(catalog()["qwen3:30b-a3b"], "IQ3_XXS")


def test_deepseek_r1_671b_on_a_512gb_m3_ultra_is_moe_not_dense() -> None:
    out = est({"chip": "M3 Ultra", "gpu_cores": 80, "memory_gb": 512, "model": "deepseek-r1:671b"})
    assert out.params_billion == 671.0 and out.quant == "Q4_K_M" and out.weights_gb == 404.0
    # 36.6B read per token at ~4.8 bpw = 22 GB: ceiling ~37 tok/s, expectation in the measured 14-25 range
    assert out.active_weights_gb == pytest.approx(22.0, abs=0.3)
    assert 30 < out.ceiling_tokens_per_second < 40
    assert 14 <= out.expected_tokens_per_second <= 25
    assert out.expected_tokens_per_second <= out.ceiling_tokens_per_second
    # MLA: the cache holds a 576-value latent per layer and token, ~70 KB/token in f16, not 5 MB
    assert out.kv_cache_gb == pytest.approx(61 * 576 * 2 * 2048 / 1e9, rel=0.01)


def test_known_moe_is_never_treated_as_dense() -> None:
    for tag in ("qwen3:30b-a3b", "qwen3:235b-a22b", "mixtral:8x7b", "qwen3.6:35b-a3b", "gemma4:26b-a4b"):
        out = est({"chip": "M3 Ultra", "model": tag, "context_tokens": 0})
        assert out.active_weights_gb < 0.35 * out.weights_gb, tag
        assert any("MoE" in a for a in out.assumptions), tag


def test_new_models_are_sized_from_the_tag_with_the_assumption_stated() -> None:
    moe = est({"chip": "M4 Max", "model": "newmoe:30b-a3b", "quant": "Q4_K_M"})
    assert (moe.params_billion, moe.active_params_billion) == (30.0, 3.0)
    assert any("'30b-a3b' = 30B total, 3B active per token (MoE)" in a for a in moe.assumptions)
    assert moe.active_weights_gb == pytest.approx(moe.weights_gb / 10, rel=0.01)
    mix = est({"chip": "M4 Max", "model": "somemix:8x7b"})
    assert (mix.params_billion, mix.active_params_billion) == (46.7, 12.9)
    dense = est({"chip": "M4 Max", "model": "brandnew:27b", "context_tokens": 200_000})
    assert dense.params_billion == 27.0 and dense.active_weights_gb == dense.weights_gb
    assert any("assumed dense" in a for a in dense.assumptions)


def test_new_tag_of_a_known_moe_family_is_not_read_as_dense() -> None:
    # deepseek-v3.2:671b is not in the catalog; read as a dense 671B it came out ~10x too slow (1 tok/s).
    known = est({"chip": "M3 Ultra", "memory_gb": 512, "model": "deepseek-v3:671b"})
    new = est({"chip": "M3 Ultra", "memory_gb": 512, "model": "deepseek-v3.2:671b"})
    assert new.active_params_billion == 37.6
    assert new.expected_tokens_per_second == pytest.approx(known.expected_tokens_per_second, rel=0.1)
    assert any("family and size of the catalog MoE deepseek-v3" in a for a in new.assumptions)
    # Same leading name but another generation is not a sibling (a dense llama3.1:109b is not llama4:scout).
    other = est({"chip": "M3 Ultra", "memory_gb": 512, "model": "llama3.1:109b"})
    assert other.active_params_billion == 109.0
    # No sibling to borrow from: stays dense, but says that a model this large is probably MoE.
    big = est({"chip": "M3 Ultra", "memory_gb": 512, "model": "qwen3-coder:480b"})
    assert big.active_params_billion == 480.0
    assert any("Most open models of 480B are mixture-of-experts" in a for a in big.assumptions)


def test_hugging_face_gguf_names_resolve_by_repo_and_quant_tag() -> None:
    # `ollama pull hf.co/<user>/<repo>-GGUF:<quant>`: the repo names the model, the tag the quant.
    known = est({"chip": "M4 Max", "model": "hf.co/bartowski/Meta-Llama-3.1-8B-Instruct-GGUF:Q8_0"})
    assert (known.model, known.quant) == ("llama3.1:8b", "Q8_0")
    read_as = "Hugging Face repo Meta-Llama-3.1-8B-Instruct read as llama3.1:8b"
    assert any(read_as in a for a in known.assumptions)
    moe = est({"chip": "M4 Max", "model": "hf.co/unsloth/Qwen3-30B-A3B-GGUF:Q4_K_M"})
    assert moe.model == "qwen3:30b-a3b" and moe.active_params_billion == 3.34
    new = est({"chip": "M4 Max", "model": "hf.co/unsloth/Brandnew-24B-Instruct-2506-GGUF:Q5_K_M"})
    assert (new.params_billion, new.quant) == (24.0, "Q5_K_M")
    assert any("'24b' = 24B parameters, assumed dense" in a for a in new.assumptions)
    # A newer release of a catalog family at a catalog size (Mistral Small 3.2 24B): that row's shape.
    small = est({"chip": "M4 Max", "model": "hf.co/unsloth/Mistral-Small-3.2-24B-Instruct-2506-GGUF:Q5_K_M"})
    assert (small.params_billion, small.quant) == (23.57, "Q5_K_M")
    assert any("read as mistral-small:24b: same family and size" in a for a in small.assumptions)
    # Installed, such a GGUF is still described by its own /api/show facts (it may be a fine-tune).
    assert not is_catalog_model("hf.co/bartowski/Meta-Llama-3.1-8B-Instruct-GGUF:Q8_0")
    with pytest.raises(ToolError, match="Hugging Face repo 'foo' is not in our catalog"):
        est({"chip": "M4 Max", "model": "hf.co/unsloth/foo-GGUF:Q4_K_M"})


def test_installed_model_facts_override_the_layout() -> None:
    arch = {
        "params_billion": 20.9,
        "n_layers": 24,
        "n_kv_heads": 8,
        "head_dim": 64,
        "native_context": 131072,
        "n_experts": 32,
        "n_experts_active": 4,
        "weights_gb": 13.8,
        "active_weights_gb": 3.7,
    }
    out = est({"chip": "M4 Pro", "gpu_cores": 20, "architecture": arch, "context_tokens": 0})
    assert out.weights_gb == 13.8 and out.active_weights_gb == 3.7
    assert any("per-tensor layout" in a for a in out.assumptions)


def test_prefill_is_estimated_for_every_chip_and_m5_uses_its_accelerators() -> None:
    from tools.chips import chip_names

    for chip in chip_names():
        out = est({"chip": chip, "model": "llama3.1:8b", "context_tokens": 0})
        assert out.prefill_tokens_per_second is not None and out.prefill_tokens_per_second > 50, chip
    m4 = est({"chip": "M4 Max", "gpu_cores": 40, "model": "qwen3.6:27b", "context_tokens": 0})
    m5 = est({"chip": "M5 Max", "gpu_cores": 40, "model": "qwen3.6:27b", "context_tokens": 0})
    assert m4.prefill_tokens_per_second and m5.prefill_tokens_per_second
    assert 2.0 < m5.prefill_tokens_per_second / m4.prefill_tokens_per_second < 4.0
    assert any("neural accelerators" in a for a in m5.assumptions)
    # ax-engine README, M5 Max llama.cpp pp512 Qwen3.6-27B Q4_K_M: 759.7 tok/s
    assert m5.prefill_tokens_per_second == pytest.approx(759.7, rel=0.15)


def test_mlx_prefill_pays_a_start_up_so_short_prompts_run_slower_than_llama_cpp_batches() -> None:
    # defai-digital/ax-engine README, M5 Max, Qwen3.6-35B-A3B MLX 4-bit (mlx_lm.benchmark): 1599.5 tok/s at a
    # 512-token prompt, 3513.1 at 2048 -- the same model, so a per-prompt start-up, not a per-token rate.
    args = {"chip": "M5 Max", "gpu_cores": 40, "model": "qwen3.6:35b-a3b"}
    short = est({**args, "quant": "MLX-4bit", "context_tokens": 512}).prefill_tokens_per_second
    long = est({**args, "quant": "MLX-4bit", "context_tokens": 2048}).prefill_tokens_per_second
    assert short and long
    assert 0.4 < short / long < 0.75
    assert short == pytest.approx(1599.5, rel=0.15)
    # llama.cpp splits every prompt into 512-token micro-batches and times no start-up: a longer prompt only
    # adds attention work (same source: 3146.6 tok/s at 512, 3542.3 at 2048).
    g_short = est({**args, "quant": "Q4_K_M", "context_tokens": 512}).prefill_tokens_per_second
    g_long = est({**args, "quant": "Q4_K_M", "context_tokens": 2048}).prefill_tokens_per_second
    assert g_short and g_long and 0.9 < g_short / g_long < 1.1
    out = est({**args, "quant": "MLX-4bit", "context_tokens": 512})
    assert any("start-up per prompt" in a for a in out.assumptions)


def test_moe_prefill_slows_when_each_expert_gets_few_tokens_of_a_batch() -> None:
    # gpt-oss:120b routes to 4 of 128 experts (16 tokens per expert in a 512-token batch), gpt-oss:20b to 4 of
    # 32 (64 tokens): per active parameter the 120b model prefills slower (fit rows: 16-token models measure
    # 0.74-0.95x, 32-token models 1.14-1.24x the flat MoE factor).
    args = {"chip": "M4 Max", "gpu_cores": 40, "context_tokens": 512}
    big = est({**args, "model": "gpt-oss:120b"})
    small = est({**args, "model": "gpt-oss:20b"})
    assert big.prefill_tokens_per_second and small.prefill_tokens_per_second
    per_param = (big.prefill_tokens_per_second * big.active_params_billion) / (
        small.prefill_tokens_per_second * small.active_params_billion
    )
    assert per_param < 0.8
    assert any("experts get small batches" in a for a in big.assumptions)


def test_m1_max_reaches_less_of_its_bandwidth_than_m1_pro_and_mlx_pays_per_token() -> None:
    # itsmostafa/inference-speed-tests: M1 Pro Qwen2.5-7B Q4_K_M 26.9 tok/s = 63 % of 200 GB/s; M1 Max
    # llama3.1:8b Q4_K_M 38.7 tok/s = 47 % of 400 GB/s (XiongjieDai/normiebench M1 Max rows agree).
    pro = est({"chip": "M1 Pro", "gpu_cores": 16, "model": "qwen2.5:7b", "context_tokens": 400})
    big = est({"chip": "M1 Max", "gpu_cores": 32, "model": "llama3.1:8b", "context_tokens": 400})
    assert pro.efficiency > big.efficiency + 0.1
    assert pro.expected_tokens_per_second == pytest.approx(26.9, rel=0.12)
    assert big.expected_tokens_per_second == pytest.approx(38.7, rel=0.1)
    # AlexsJones/llmfit M4 Pro: Llama-3.2-1B MLX-4bit 220.2 vs Q4_K_M 216.5 tok/s -- MLX's smaller file does
    # not make a 1B model faster, its per-token overhead eats the difference.
    args = {"chip": "M4 Pro", "gpu_cores": 20, "model": "llama3.2:1b", "context_tokens": 150}
    mlx = est({**args, "quant": "MLX-4bit"}).expected_tokens_per_second
    gguf = est({**args, "quant": "Q4_K_M"}).expected_tokens_per_second
    assert mlx / gguf < 1.08
    assert mlx == pytest.approx(220.2, rel=0.12)


def test_refreshed_ollama_sizes() -> None:
    assert est({"chip": "M4 Max", "model": "qwen2.5:72b"}).weights_gb == 47.0
    small = est({"chip": "M4", "model": "llama3.2:1b"})
    assert small.quant == "Q8_0" and small.weights_gb == 1.3
    assert est({"chip": "M4", "model": "gemma3:4b"}).weights_gb == 3.3
    assert any("as of" in s for s in est({"chip": "M4", "model": "gemma3:4b"}).sources)


def test_kv_cache_read_is_in_the_ceiling_and_expected_never_exceeds_it() -> None:
    out = est({"bandwidth_gbps": 400, "model": "llama3.3:70b", "context_tokens": 131072})
    # 42.52 GB of weights + 42.9 GB of f16 KV cache read per token at 128k: 400 / 85.5 = 4.68 tok/s
    assert out.ceiling_tokens_per_second == pytest.approx(4.68, abs=0.02)
    assert out.expected_tokens_per_second <= out.ceiling_tokens_per_second


def test_prefill_for_a_generation_without_measurements_borrows_the_newest_older_one() -> None:
    from tools.speed import speed_model

    pm = speed_model().prefill
    rate, used, note = pm.rate(6)
    assert used == 5 and rate == pm.tflops_per_core[5]
    assert note is not None and "M6" in note and "unverified" in note
    assert pm.rate(3)[2] is None


def test_memory_fit_never_suggests_a_quant_gpt_oss_does_not_exist_in() -> None:
    out = fit({"chip": "M4", "memory_gb": 16, "model": "gpt-oss:20b"})
    assert not any("IQ3_XXS" in s or "Q2_K" in s or "Q3_K_M" in s for s in out.suggestions)
    # a model whose weights do requantise still gets the smaller-quant suggestion
    dense = fit({"chip": "M4", "memory_gb": 16, "model": "qwen2.5:14b", "quant": "Q8_0"})
    assert any(s.startswith("Use Q") for s in dense.suggestions)


def test_current_ollama_tags_that_were_missing_have_rows() -> None:
    # shared/data/2026/ollama_models_2026.csv: qwen3.5:122b is the 122b-a10b MoE (read as dense 122B before,
    # ~3.5x too slow), llama4:maverick was refused, qwen3.8's default tag is 27b.
    big = est({"chip": "M5 Max", "memory_gb": 128, "model": "qwen3.5:122b"})
    assert (big.model, big.active_params_billion, big.weights_gb) == ("qwen3.5:122b-a10b", 10.0, 81.0)
    # Public M5 Max 128 GB MLX-4bit measurement at 4K context: 65.9 tok/s (calibration_2026.csv row 87).
    m5 = est(
        {
            "chip": "M5 Max",
            "memory_gb": 128,
            "model": "qwen3.5:122b-a10b",
            "quant": "MLX-4bit",
            "context_tokens": 4096,
        }
    )
    assert m5.expected_range[0] <= 65.9 <= m5.expected_range[1]
    mav = est({"chip": "M3 Ultra", "memory_gb": 512, "model": "llama4:maverick"})
    assert mav.active_params_billion == 17.0 and mav.weights_gb == 245.0
    assert est({"chip": "M4 Max", "model": "qwen3.8"}).model == "qwen3.8:27b"
    assert est({"chip": "M4 Max", "model": "deepseek-v3.1"}).model == "deepseek-v3.1:671b"
    for tag in ("qwen3.5:122b-a10b", "llama4:maverick", "deepseek-v3.1:671b", "qwen3.8:27b"):
        entry = catalog()[tag]
        assert entry.size_src and entry.as_of and entry.src


@pytest.mark.parametrize(
    ("quant", "sized_as"),
    [("UD-Q4_K_XL", "Q4_K_M"), ("Q2_K_XL", "Q2_K"), ("UD-Q3_K_XL", "Q3_K_L"), ("UD-Q8_K_XL", "Q8_0")],
)
def test_unsloth_dynamic_quants_are_sized_as_the_nearest_k_quant(quant: str, sized_as: str) -> None:
    # hf.co/unsloth/...-GGUF:UD-Q4_K_XL is how many people pull models; it was 'unknown quantisation'.
    out = est({"chip": "M4 Max", "model": f"hf.co/unsloth/Qwen3-30B-A3B-GGUF:{quant}"})
    assert out.quant == sized_as
    assert any("Unsloth dynamic" in a and "a little larger" in a for a in out.assumptions)
    with pytest.raises(ToolError, match="unknown quantisation 'Q9_K_XL'"):
        resolve_quant("Q9_K_XL")


def test_full_tag_adds_latest_only_where_ollama_would() -> None:
    from tools.models import full_tag

    assert full_tag("nomic-embed-text") == "nomic-embed-text:latest"
    assert full_tag(" qwen3:8b ") == "qwen3:8b"
    assert (
        full_tag("hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF")
        == "hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:latest"
    )
    assert full_tag("hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M").endswith(":Q4_K_M")
    assert full_tag("localhost:5000/ns/model") == "localhost:5000/ns/model:latest"


@pytest.mark.parametrize("memory_gb,context", [(16, 16384), (64, 32768), (128, 131072)])
def test_suggested_wired_limit_leaves_what_the_ram_check_keeps_for_macos(
    memory_gb: int, context: int
) -> None:
    """One rule for memory left to macOS: the sysctl suggested never wires more than the RAM check allows."""
    import re

    model = {16: "qwen2.5:14b", 64: "llama3.3:70b", 128: "llama3.3:70b"}[memory_gb]
    chip = {16: "M4", 64: "M3 Max", 128: "M4 Max"}[memory_gb]
    quant = "Q8_0" if memory_gb == 128 else None
    res = fit(
        {"chip": chip, "memory_gb": memory_gb, "model": model, "context_tokens": context, "quant": quant}
    )
    limits = [int(m) for s in res.suggestions for m in re.findall(r"wired_limit_mb=(\d+)", s)]
    assert limits, res.suggestions
    left_gb = (memory_gb * GIB - limits[0] * 2**20) / 1e9
    assert left_gb >= res.breakdown.os_headroom_gb - 1.1  # the suggestion rounds up to whole GiB


def test_installed_weights_size_is_used_by_both_tools() -> None:
    """An installed model's file size from /api/show (`architecture.weights_gb`) sizes the weights in the
    memory verdict as in the speed estimate: the two tools never disagree on the weights."""
    arch = {"params_billion": 8, "n_layers": 32, "n_kv_heads": 8, "head_dim": 128, "native_context": 8192}
    question = {"chip": "M4 Pro", "memory_gb": 24, "model": "my-finetune:8b", "context_tokens": 4096}
    plain = fit(question | {"architecture": arch})
    installed = fit(question | {"architecture": arch | {"weights_gb": 18.0}})
    assert plain.breakdown.weights_gb < 6 and installed.breakdown.weights_gb == pytest.approx(18.0, abs=0.01)
    assert any("18 GB as reported for the installed model" in a for a in installed.assumptions)
    speed = est(
        {k: v for k, v in question.items() if k != "context_tokens"}
        | {"architecture": arch | {"weights_gb": 18.0}}
    )
    assert speed.weights_gb == pytest.approx(installed.breakdown.weights_gb, abs=0.01)
    # 18 GB of weights do not fit the 16 GB GPU budget of a 24 GB Mac (parameters x bits said ~4.9 GB).
    assert plain.fits_on_gpu and not installed.fits_on_gpu and speed.fits_on_gpu is False
