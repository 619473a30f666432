"""Machines: names people type, bins and memory sizes, runtimes, the shared memory rule, buying advice,
benchmark lookup flags and clusters -- each pinned through the public tool functions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools.chips import chip_bins
from tools.registry import ToolError
from tools.schemas import CheckMemoryFitInput, EstimateSpeedInput

ROOT = Path(__file__).resolve().parents[1]


def _cli_json(*args: str) -> Any:
    """`python -m tools ARGS` as a user runs it: exit code 0 and its JSON output."""
    res = subprocess.run(
        [sys.executable, "-m", "tools", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def est(**kw: object) -> object:
    from tools.estimate import estimate_speed

    return estimate_speed(EstimateSpeedInput.model_validate(kw))


def fit(**kw: object):  # type: ignore[no-untyped-def]
    from tools.fit import check_memory_fit

    return check_memory_fit(CheckMemoryFitInput.model_validate(kw))


# ---- names people type ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("chip", "label", "bandwidth"),
    [
        ("M4-Pro", "M4 Pro 16/20-core GPU", 273),
        ("M3-Max", "M3 Max 40-core GPU", 400),
        ("M2-Ultra", "M2 Ultra 60/76-core GPU", 800),
        ("m4_max", "M4 Max 40-core GPU", 546),
        ("M4 Pro 14-core CPU 20-core GPU", "M4 Pro 20-core GPU", 273),
        ("M4 Max 14-core CPU", "M4 Max 32-core GPU", 410),
        ("MacBook Pro 16 M4 Max", "M4 Max 40-core GPU", 546),
        ("Mac Studio (M3 Ultra)", "M3 Ultra 80-core GPU", 819),
        ("Mac mini M4 Pro", "M4 Pro 16/20-core GPU", 273),
        ("MacBook Pro M4", "M4 8/10-core GPU", 120),
        ("Mac mini (M6)", "M6 12-core GPU", 170),
        # Apple's CPU/GPU shorthand: the 30 was ignored and the 40-core bin (400 GB/s) assumed.
        ("M3 Max 14/30", "M3 Max 30-core GPU", 300),
        ("M2 Ultra 24/76", "M2 Ultra 76-core GPU", 800),
    ],
)
def test_names_people_type_resolve_to_the_right_tier(chip: str, label: str, bandwidth: float) -> None:
    out = est(chip=chip, model="llama3.1:8b")
    assert (out.chip, out.bandwidth_gbps) == (label, bandwidth)  # type: ignore[attr-defined]


def test_tier_assumption_is_stated_when_the_bin_is_guessed() -> None:
    out = est(chip="MacBook Pro 16 M4 Max", model="llama3.1:8b")
    assert any("Assumed the 40-core M4 Max (546 GB/s)" in a for a in out.assumptions)  # type: ignore[attr-defined]


def test_apple_cpu_core_wording_is_not_read_as_gpu_cores() -> None:
    out = est(chip="M4 Pro 12-core CPU", model="llama3.1:8b")
    assert out.gpu_cores == 16  # type: ignore[attr-defined]
    with pytest.raises(ToolError, match="12-core-CPU M4 Pro came with 16 GPU cores, not 20"):
        est(chip="M4 Pro 12-core CPU 20-core GPU", model="llama3.1:8b")
    with pytest.raises(ToolError, match="never had a 13-core CPU"):
        est(chip="M4 Pro 13-core CPU", model="llama3.1:8b")


@pytest.mark.parametrize(
    ("chip", "needle"),
    [
        ("Mac Studio", "names a Mac Studio but not its chip; the Mac Studio came with M1 Max, .*M5 Ultra"),
        ("M4 Pro or M4 Max", r"more than one chip \(M4 Pro and M4 Max\)"),
        ("M7 Max", "'M7 Max' is not an Apple Silicon chip we know.*Closest: "),
        ("Snapdragon X", "unknown chip 'Snapdragon X'"),
        # The MacBook Neo has an A18 Pro: no "e.g. MacBook Neo M4" suggestion for a chip it never had.
        ("MacBook Neo", "names a MacBook Neo, which has no Apple M-series chip .*A18 Pro"),
        # A tier word the chip pattern could not take must not be dropped (silently the base chip before).
        ("M4 Prox", "'M4 Prox' is ambiguous: read the chip as M4, but 'prox'"),
        ("Max M4", "'Max M4' is ambiguous.*M4, M4 Pro, M4 Max"),
        ("M4 (Pro)", "'M4 \\(Pro\\)' is ambiguous"),
        ("M4 Pro Max", "read the chip as M4 Pro, but 'max'"),
        ("M4 Max 14/40", "never had a 14-core CPU with a 40-core GPU"),
    ],
)
def test_unknown_or_ambiguous_names_are_errors(chip: str, needle: str) -> None:
    with pytest.raises(ToolError, match=needle):
        est(chip=chip, model="llama3.1:8b")


def test_product_that_never_had_the_chip_is_stated() -> None:
    out = est(chip="M3 Max Mac Studio", memory_gb=64, model="llama3.1:8b")
    assert out.chip == "M3 Max 40-core GPU"  # type: ignore[attr-defined]
    assert any("Apple never sold a Mac Studio with the M3 Max" in a for a in out.assumptions)  # type: ignore[attr-defined]


def test_memory_sizes_a_bin_never_had_are_refused() -> None:
    with pytest.raises(ToolError, match="60-core M3 Ultra was sold with 96 or 256 GB, not 512 GB"):
        fit(chip="M3 Ultra", gpu_cores=60, memory_gb=512, model="llama3.1:8b")
    out = fit(chip="M3 Ultra", memory_gb=512, model="llama3.1:8b")
    assert out.chip == "M3 Ultra 80-core GPU"
    assert "512 GB identifies the 80-core M3 Ultra bin (819 GB/s)." in out.assumptions
    with pytest.raises(ToolError, match="M5 Max was sold with 36 GB, not 96 GB"):
        fit(chip="M5 Max", gpu_cores=32, memory_gb=96, model="llama3.1:8b")
    with pytest.raises(ToolError, match="M5 Ultra was sold with 96, 256 or 512 GB, not 192 GB"):
        fit(chip="M5 Ultra", memory_gb=192, model="llama3.1:8b")


def test_secondary_and_conflicting_figures_are_shown() -> None:
    out = est(chip="M5 Ultra", memory_gb=96, model="llama3.1:8b")
    assert out.bandwidth_gbps == 1200  # type: ignore[attr-defined]
    assert any(
        a.startswith("Secondary or conflicting figure: M5 Ultra 64-core bandwidth 1200 GB/s")
        for a in out.assumptions  # type: ignore[attr-defined]
    )
    m6 = est(chip="M6", model="llama3.1:8b")
    assert any("153 GB/s for the 16 GB SKU (conflict" in a for a in m6.assumptions)  # type: ignore[attr-defined]


def test_every_bin_has_a_source_and_cpu_map_consistent_with_its_gpu_cores() -> None:
    for b in chip_bins():
        assert b.source
        for _, gpus in b.cpu_cores:
            assert set(gpus) & set(g for bb in chip_bins() if bb.chip == b.chip for g in bb.gpu_cores)


# ---- one memory rule, per runtime -----------------------------------------------------------------------
def _observations() -> list[dict[str, str]]:
    from tools.data_files import load_csv

    return load_csv("fit_observations.csv")


def observation_arguments(row: dict[str, str]) -> dict[str, object]:
    """The machine, model and runtime of an observed fit outcome, as tool arguments."""
    kw: dict[str, object] = {
        "chip": row["chip"],
        "gpu_cores": int(row["gpu_cores"]) if row["gpu_cores"] else None,
        "memory_gb": float(row["memory_gb"]),
        "quant": row["quant"],
        "context_tokens": int(row["context_tokens"]),
        "runtime": row["runtime"],
    }
    if row["model"]:
        kw["model"] = row["model"]
    else:
        kw["params_billion"] = float(row["params_billion"])
    return kw


@pytest.mark.parametrize("row", _observations(), ids=lambda r: f"{r['runtime']}-{r['chip']}-{r['memory_gb']}")
def test_fit_agrees_with_every_observed_outcome(row: dict[str, str]) -> None:
    out = fit(**observation_arguments(row))
    assert out.fits_on_gpu == (row["outcome"] == "gpu"), (row, out.verdict, out.breakdown)
    assert out.runtime == row["runtime"]


def test_observations_cover_every_runtime_and_both_outcomes() -> None:
    seen = {(r["runtime"], r["outcome"]) for r in _observations()}
    assert seen == {(rt, o) for rt in ("ollama", "llama.cpp", "mlx") for o in ("gpu", "not_gpu")}


def test_8gb_m1_runs_8b_q4_k_m_on_its_gpu_under_ollama() -> None:
    # Before: a fixed 1 GiB llama.cpp margin made this 'does_not_fit' (total 6.84 GB > 5.73 GB budget).
    out = fit(chip="M1", memory_gb=8, model="llama3.1:8b")
    assert (out.runtime, out.verdict, out.fits_on_gpu) == ("ollama", "tight", True)
    # 5.71: Ollama's 4.9 GB llama3.1:8b file (catalog refresh, 2026) with the runtime's own buffers.
    assert out.breakdown.total_gb == 5.71 and out.breakdown.gpu_budget_gb == 5.73
    assert any(a.startswith("Verdict for Ollama") for a in out.assumptions)


def test_runtime_changes_the_verdict_and_says_why() -> None:
    ollama = fit(chip="M4 Pro", memory_gb=48, model="llama3.3:70b")
    mlx = fit(chip="M4 Pro", memory_gb=48, model="llama3.3:70b", runtime="mlx")
    assert (ollama.verdict, mlx.verdict) == ("partial_offload", "does_not_fit")
    assert mlx.quant == "MLX-4bit"
    assert "MLX does not load GGUF Q4_K_M: sized as its MLX equivalent, MLX-4bit." in mlx.assumptions
    assert any("has no CPU offload" in a for a in mlx.assumptions)
    lcpp = fit(chip="M1", memory_gb=8, model="llama3.1:8b", runtime="llama.cpp")
    assert lcpp.verdict == "tight"
    assert any("--fit-target 1024 MiB" in a for a in lcpp.assumptions)


@pytest.mark.parametrize("runtime", ["ollama", "llama.cpp", "mlx"])
def test_estimate_and_fit_never_disagree_over_the_catalog(runtime: str) -> None:
    from tools.models import catalog

    machines = [("M1", 8), ("M4", 16), ("M4 Pro", 24), ("M4 Pro", 48), ("M4 Max", 128), ("M3 Ultra", 256)]
    checked = disagree = 0
    for tag, entry in catalog().items():
        ctx = min(8192, entry.native_ctx)
        for chip, mem in machines:
            f = fit(chip=chip, memory_gb=mem, model=tag, context_tokens=ctx, runtime=runtime)
            e = est(chip=chip, memory_gb=mem, model=tag, context_tokens=ctx, runtime=runtime)
            checked += 1
            disagree += e.fits_on_gpu != f.fits_on_gpu  # type: ignore[attr-defined]
            warned = any("does not fit the GPU budget" in a for a in e.assumptions)  # type: ignore[attr-defined]
            assert warned == (not f.fits_on_gpu)
    assert checked == len(catalog()) * len(machines) and disagree == 0


def test_without_memory_size_the_chips_configurations_are_checked() -> None:
    """No memory_gb: a model no configuration of the chip can hold is said not to fit (not left unknown), and
    otherwise the assumptions name the smallest configuration that holds it -- each configuration judged by
    check_memory_fit's own rule."""
    huge = est(chip="MacBook Pro 16 M4 Max", model="deepseek-r1:671b")
    assert huge.fits_on_gpu is False  # type: ignore[attr-defined]
    assert any("does not fit the GPU budget of any M4 Max" in a for a in huge.assumptions)  # type: ignore[attr-defined]
    assert not fit(chip="M4 Max", memory_gb=128, model="deepseek-r1:671b").fits_on_gpu

    big = est(chip="M4 Pro", gpu_cores=20, model="llama3.3:70b", context_tokens=4096)
    assert big.fits_on_gpu is None  # type: ignore[attr-defined]
    note = next(a for a in big.assumptions if a.startswith("memory_gb not given"))  # type: ignore[attr-defined]
    assert "64 GB or more, not with 24, 48 GB" in note
    for mem, fits in ((48, False), (64, True)):
        out = fit(chip="M4 Pro", gpu_cores=20, memory_gb=mem, model="llama3.3:70b", context_tokens=4096)
        assert out.fits_on_gpu is fits

    small = est(chip="M4", model="llama3.1:8b")
    assert small.fits_on_gpu is True  # type: ignore[attr-defined]
    assert any("fits every M4" in a for a in small.assumptions)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("chip", "model", "count"),
    [("M4 Pro", "llama3.3:70b", 2), ("M4 Pro", "llama3.1:8b", 2), ("M4 Max", "deepseek-r1:671b", 4)],
)
def test_a_cluster_without_memory_size_carries_no_single_mac_memory_verdict(
    chip: str, model: str, count: int
) -> None:
    """The cluster answer is built on one node's estimate; that node's verdict over the chip's memory
    configurations (one Mac alone) must not be passed off as the cluster's: its fit is not checked."""
    out = est(chip=chip, model=model, cluster={"count": count, "link": "thunderbolt5"})
    notes: list[str] = out.assumptions  # type: ignore[attr-defined]
    assert out.fits_on_gpu is None  # type: ignore[attr-defined]
    assert [a for a in notes if a.startswith("memory_gb not given")] == [
        "memory_gb not given: whether the model fits the cluster is not checked."
    ], notes
    assert not any("does not fit the GPU budget" in a for a in notes), notes


def test_cli_takes_product_names_and_runtime() -> None:
    out = _cli_json(
        "check_memory_fit",
        "--chip",
        "Mac mini M4-Pro",
        "--memory-gb",
        "48",
        "--model",
        "llama3.3:70b",
        "--runtime",
        "mlx",
    )
    assert (out["chip"], out["runtime"], out["verdict"]) == ("M4 Pro 16/20-core GPU", "mlx", "does_not_fit")


# ---- recommend_machine ----------------------------------------------------------------------------------
def rec(**kw: object):  # type: ignore[no-untyped-def]
    from tools.recommend import recommend_machine
    from tools.schemas import RecommendMachineInput, RecommendMachineOutput

    out = recommend_machine(RecommendMachineInput.model_validate(kw))
    # A valid typed result every time: it round-trips through its own schema.
    RecommendMachineOutput.model_validate(out.model_dump())
    return out


def test_machine_list_is_the_current_line_up_with_sourced_dated_prices() -> None:
    from tools.recommend import candidates

    cands = candidates()
    chips = {c.chip for c in cands if c.status == "current"}
    assert {"M5 Pro", "M5 Max", "M5 Ultra", "M6"} <= chips
    assert all(c.price_source and c.price_as_of and c.price_usd > 0 for c in cands)
    by_id = {c.id: c for c in cands}
    assert (by_id["mini_m5pro_48"].price_usd, by_id["mini_m5pro_48"].price_as_of) == (2299, "2026-08-25")
    assert by_id["studio_m3ultra_512"].price_usd == 9499
    assert {"mbp_m3max_64", "mini_m4pro_48", "studio_m2ultra_192"} <= set(by_id)  # the article's picks


BUDGETS = [1, 50, 600, 999, 1000, 1299, 1500, 2000, 2500, 3000, 5000, 10_000, 20_000, 1_000_000]


@pytest.mark.parametrize("workload", ["llm", "image", "research", "both"])
def test_every_budget_gives_a_valid_result_and_never_an_avoided_machine(workload: str) -> None:
    from tools.recommend import avoid_reason, candidates

    by_label = {c.label: c for c in candidates()}
    for budget in BUDGETS:
        out = rec(budget_usd=budget, workload=workload)
        assert out.reasons and out.summary
        options = ([out.recommendation] if out.recommendation else []) + out.alternatives
        for o in options:
            assert avoid_reason(by_label[o.machine], workload) is None, (budget, o.machine)
        if out.recommendation is not None:
            assert out.recommendation.approx_price_usd is not None
            assert out.recommendation.approx_price_usd <= budget
        else:
            assert out.summary.startswith("No purchase recommended: ")


def test_1000_dollars_no_longer_returns_an_avoided_machine() -> None:
    # Before: the 24 GB base M4 mini ($799), which the avoid-list names ("M4 base").
    out = rec(budget_usd=1000)
    assert out.recommendation is None
    # The cheapest is the article's "$1200" pick (priced at the article's $1,200 since issue 15's probe).
    assert "the cheapest that does is the Mac mini M4 Pro, 48 GB (refurbished/used) (~$1,200)" in out.summary
    assert out.alternatives[0].machine == "Mac mini M4 Pro, 48 GB (refurbished/used)"


def test_671b_at_10k_is_a_512gb_m3_ultra() -> None:
    out = rec(budget_usd=10_000, target_params_billion=671)
    r = out.recommendation
    assert r is not None and (r.chip, r.memory_gb, r.approx_price_usd) == ("M3 Ultra", 512, 9499)
    assert r.fit_verdict == "tight" and r.status == "discontinued"  # ~404 GB of weights in 512 GB
    assert any("discontinued: buy refurbished or used" in t for t in out.trade_offs)


def test_budget_picks_weigh_speed_and_memory_per_dollar() -> None:
    picks = {b: rec(budget_usd=b).recommendation for b in (1500, 2000, 3000, 5000)}
    assert {b: (r.machine if r else None) for b, r in picks.items()} == {
        1500: "Mac mini M4 Pro, 48 GB (refurbished/used)",
        2000: "MacBook Pro M3 Max (40-core GPU), 64 GB, refurbished",
        3000: "Mac Studio M4 Max (40-core GPU), 64 GB",
        # was the M4 Max 128 GB ($3,499, 40 tok/s): memory per dollar now counts memory only up to twice
        # what the target needs (at least 64 GB), so the faster 96 GB M3 Ultra ($3,999, 48 tok/s) wins
        5000: "Mac Studio M3 Ultra (60-core GPU), 96 GB",
    }
    assert any("memory per dollar" in x for x in rec(budget_usd=3000).reasons)


def test_workload_both_counts_the_image_model_memory() -> None:
    alone = rec(target_model="llama3.3:70b")
    both = rec(target_model="llama3.3:70b", workload="both")
    assert alone.recommendation is not None and alone.recommendation.memory_gb == 64
    assert both.recommendation is not None and both.recommendation.memory_gb >= 96
    assert any("FLUX.1 [dev]" in a and "~18.9 GB" in a for a in both.assumptions)
    # SD 1.5 (~3.1 GB) still leaves room for 70B on 64 GB; SDXL (~8.5 GB) does not.
    sd15 = rec(target_model="llama3.3:70b", workload="both", image_model="SD 1.5")
    assert sd15.recommendation is not None and sd15.recommendation.memory_gb == 64
    sdxl = rec(target_model="llama3.3:70b", workload="both", image_model="SDXL")
    assert sdxl.recommendation is not None and sdxl.recommendation.memory_gb == 128
    with pytest.raises(ToolError, match="image_model: unknown image model 'dall-e'. Known: flux, sdxl, sd15"):
        rec(workload="image", image_model="dall-e")


# ---- lookup_benchmarks ----------------------------------------------------------------------------------
def look(**kw: object):  # type: ignore[no-untyped-def]
    from tools.benchmarks import lookup_benchmarks
    from tools.schemas import LookupBenchmarksInput

    return lookup_benchmarks(LookupBenchmarksInput.model_validate(kw))


def test_rows_above_90_percent_of_the_ceiling_are_suspicious() -> None:
    rows = look().llm_rows
    flagged = {(r.machine, r.model) for r in rows if r.suspicious}
    assert flagged == {
        ("M3 Max MBP 64GB (30-core GPU)", "Llama 3.1 8B"),
        ("M3 Max MBP 64GB (30-core GPU)", "Qwen 2.5 14B"),
        ("M3 Max MBP 64GB (30-core GPU)", "Llama 3.1 34B"),
        ("M3 Max MBP 64GB (30-core GPU)", "Llama 3.3 70B"),
        ("M3 Max Studio 128GB (40-core GPU)", "Qwen 2.5 14B"),
        ("M3 Max Studio 128GB (40-core GPU)", "Llama 3.1 34B"),
        ("M3 Max Studio 128GB (40-core GPU)", "Llama 3.3 70B"),
    }
    by = {(r.machine, r.model): r for r in rows}
    r = by[("M3 Max Studio 128GB (40-core GPU)", "Qwen 2.5 14B")]
    assert (r.efficiency, r.physically_impossible) == (0.934, False)
    assert "Suspicious: 41 tok/s is 93% of the bandwidth ceiling (43.88 tok/s)" in " ".join(r.flags)
    ok = by[("M4 Pro Mac mini 48GB", "Llama 3.1 8B")]
    assert (ok.efficiency, ok.suspicious) == (0.768, False)
    assert all(r.suspicious for r in rows if r.physically_impossible)


@pytest.mark.parametrize("query", ["rtx 4090", "m5 max", "m4 pro 405b"])
def test_a_query_that_matches_nothing_returns_nothing_and_says_so(query: str) -> None:
    out = look(query=query)
    assert (out.llm_rows, out.image_rows) == ([], [])
    assert any(m.startswith("nothing in the article's tables matches") for m in out.matched_on)


def test_no_query_still_lists_everything_and_stray_words_are_only_ignored() -> None:
    assert (len(look().llm_rows), len(look().image_rows)) == (18, 9)
    out = look(query="m4 pro please")
    assert (len(out.llm_rows), len(out.image_rows)) == (4, 3)
    assert "ignored (match no row): please" in out.matched_on


# ---- clusters ---------------------------------------------------------------------------------------------
def test_cluster_memory_matches_the_public_multi_mac_runs() -> None:
    # Kimi K2 Thinking (1T, native 4-bit) "does not fit on one node" but ran on 4 M3 Ultras (Geerling / exo).
    one = fit(chip="M3 Ultra", memory_gb=512, params_billion=1000, quant="MLX-4bit", runtime="mlx")
    four = fit(
        chip="M3 Ultra",
        memory_gb=512,
        params_billion=1000,
        quant="MLX-4bit",
        runtime="mlx",
        cluster={"count": 4},
    )
    assert (one.fits_on_gpu, four.fits_on_gpu) == (False, True)
    assert four.cluster is not None
    assert (four.cluster.nodes, four.cluster.split, four.cluster.total_memory_gb) == (4, "tensor", 2048)
    assert four.cluster.per_node_need_gb == four.breakdown.total_gb == 141.5
    # DeepSeek V3.1 671B at 8 bits: 4 x 256 GB holds it (the smaller nodes of that cluster); 2 x 256 GB not.
    ds = {"chip": "M3 Ultra", "memory_gb": 256, "params_billion": 671, "quant": "MLX-8bit", "runtime": "mlx"}
    assert fit(**ds, cluster={"count": 4}).fits_on_gpu is True
    assert fit(**ds, cluster={"count": 2}).fits_on_gpu is False


def test_cluster_verdict_names_its_engine() -> None:
    out = fit(chip="M4 Pro", memory_gb=64, model="llama3.3:70b", cluster={"count": 2, "link": "10gbe"})
    assert (out.runtime, out.cluster.split if out.cluster else None) == ("mlx", "pipeline")
    assert any("Ollama cannot split one model across Macs" in a for a in out.assumptions)
    assert any("No public Mac-cluster measurement over 10GbE" in a for a in out.assumptions)


def test_cluster_decode_scales_far_less_than_memory() -> None:
    base = {"chip": "M5 Max", "memory_gb": 128, "model": "gpt-oss:120b"}
    one = est(**base)
    pipe = est(**base, cluster={"count": 2, "split": "pipeline"})
    tp2 = est(**base, cluster={"count": 2})
    tp4 = est(**base, cluster={"count": 4})
    single = one.expected_tokens_per_second  # type: ignore[attr-defined]
    factors = [o.cluster.decode_factor_vs_one_node for o in (pipe, tp2, tp4)]  # type: ignore[attr-defined]
    # exo #2070: 2 M5 Max over TB5 TCP/IP pipeline 68 tok/s vs ~80-89 on one (0.76-0.85); MLX distributed
    # tensor parallel 98 (1.10-1.23); mlx-lm #698: 4 M3 Ultras 24.6 vs ~16 (1.54).
    assert 0.74 <= factors[0] <= 0.86
    assert factors[1:] == [1.231, 1.516]
    assert all(o.cluster.single_node_tokens_per_second == single for o in (pipe, tp2, tp4))  # type: ignore[attr-defined]
    assert tp2.ceiling_tokens_per_second == pytest.approx(2 * one.ceiling_tokens_per_second, abs=0.02)  # type: ignore[attr-defined]
    assert pipe.ceiling_tokens_per_second == one.ceiling_tokens_per_second  # type: ignore[attr-defined]
    assert tp4.fits_on_gpu is True and tp4.cluster.per_node_need_gb < 30  # type: ignore[attr-defined]


def test_cluster_fit_and_speed_agree() -> None:
    for count in (2, 3, 4):
        kw = {"chip": "M4 Max", "memory_gb": 128, "params_billion": 671, "cluster": {"count": count}}
        f = fit(**kw)
        e = est(**kw, context_tokens=4096)
        assert e.fits_on_gpu == f.fits_on_gpu, count  # type: ignore[attr-defined]
    assert [
        fit(chip="M4 Max", memory_gb=128, params_billion=671, cluster={"count": c}).fits_on_gpu
        for c in (3, 4)
    ] == [
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        (
            {"cluster": {"count": 2, "link": "10gbe", "split": "tensor"}},
            "measured only over Thunderbolt 5 RDMA",
        ),
        (
            {"cluster": {"count": 2, "split": "tensor"}, "runtime": "llama.cpp"},
            "llama.cpp RPC splits by layers",
        ),
    ],
)
def test_cluster_combinations_without_measurements_are_refused(kw: dict[str, object], needle: str) -> None:
    with pytest.raises(ToolError, match=needle):
        fit(chip="M4 Max", memory_gb=128, model="llama3.3:70b", **kw)


def test_cluster_must_have_two_or_more_nodes() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        fit(chip="M4 Max", memory_gb=128, model="llama3.3:70b", cluster={"count": 1})


def test_cli_accepts_a_cluster_as_json() -> None:
    out = _cli_json(
        "estimate_speed",
        "--chip",
        "M5 Max",
        "--memory-gb",
        "128",
        "--model",
        "gpt-oss:120b",
        "--cluster",
        '{"count": 2, "link": "thunderbolt5"}',
    )
    assert (
        out["cluster"]["nodes"],
        out["cluster"]["split"],
        out["cluster"]["decode_factor_vs_one_node"],
    ) == (
        2,
        "tensor",
        1.231,
    )


def test_recommend_names_clusters_for_671b_and_proposes_one_when_no_single_mac_holds_the_model() -> None:
    out = rec(budget_usd=10_000, target_params_billion=671)
    assert out.recommendation is not None and out.recommendation.memory_gb == 512
    assert out.cluster_option is None  # no cluster within $10k beats the single 512 GB M3 Ultra
    assert any(
        r.startswith("Clusters also run a 671B model: e.g. 4 x Mac Studio M4 Max") for r in out.reasons
    )
    big = rec(budget_usd=25_000, target_params_billion=1000)
    assert big.recommendation is None and big.cluster_option is not None
    c = big.cluster_option
    assert (c.count, c.machine, c.total_price_usd, c.total_memory_gb, c.split) == (
        2,
        "Mac Studio M3 Ultra (80-core GPU), 512 GB (refurbished/used)",
        18_998,
        1024,
        "tensor",
    )
    assert big.summary.startswith("No single Mac in budget runs a 1000B model; 2 x Mac Studio M3 Ultra")


def test_no_cluster_is_named_for_a_small_model_one_cheaper_mac_holds() -> None:
    # $1,000, default 14B target: nothing in budget, the cheapest single Mac that holds it costs $1,299; two
    # $1,500 minis are no answer (the reasons used to name that cluster).
    out = rec(budget_usd=1000)
    assert out.recommendation is None and out.cluster_option is None
    assert any(
        "the cheapest that does is the Mac mini M4 Pro, 48 GB (refurbished/used)" in r for r in out.reasons
    )
    assert not any("luster" in r for r in out.reasons)


def test_recommend_proposes_a_cluster_only_when_it_beats_the_single_pick() -> None:
    # $15,000: two M5 Ultra 96 GB Studios ($10,998) decode gpt-oss:120b >10% faster than any one Mac in
    # budget.
    out = rec(budget_usd=15_000, target_model="gpt-oss:120b")
    assert out.recommendation is not None and out.cluster_option is not None
    singles = [o.expected_tokens_per_second or 0.0 for o in [out.recommendation, *out.alternatives]]
    assert out.cluster_option.expected_tokens_per_second is not None
    assert out.cluster_option.expected_tokens_per_second > 1.1 * max(singles)
    assert out.cluster_option.total_price_usd <= 15_000
    # $5,400: two M4 Max 64 GB ($5,398, 70 tok/s) beat the pick (an M4 Max 128 GB, 57 tok/s) but not the
    # M5 Max 128 GB ($5,099, 68 tok/s) in the same budget: no cluster (one was proposed before).
    assert rec(budget_usd=5400, target_model="gpt-oss:120b").cluster_option is None
    assert rec(budget_usd=3000).cluster_option is None  # a 14B target: one Mac is enough


def test_memory_in_the_name_is_used_and_checked() -> None:
    out = fit(chip="Mac Studio M3 Ultra 512GB", model="llama3.3:70b")
    assert (out.memory_gb, out.chip) == (512, "M3 Ultra 80-core GPU")
    assert "Memory read from chip: 512 GB." in out.assumptions
    with pytest.raises(ToolError, match="memory_gb: 256 contradicts the 512 GB in chip="):
        fit(chip="Mac Studio M3 Ultra 512GB", memory_gb=256, model="llama3.3:70b")
    e = est(chip="M5 Max 128GB", model="gpt-oss:120b", cluster={"count": 2})
    assert e.cluster is not None and e.cluster.total_memory_gb == 256  # type: ignore[attr-defined]


def test_unknown_gpu_core_count_within_a_bin_is_stated() -> None:
    out = est(chip="M4 Pro", model="llama3.1:8b")
    assert (
        "GPU cores not given: this M4 Pro bin came with 16 or 20 GPU cores (same 273 GB/s, so decode is "
        "unaffected); core-dependent figures (prefill) assume 20." in out.assumptions  # type: ignore[attr-defined]
    )


def test_optional_cluster_objects_are_left_out_of_dumps_but_stay_in_the_schemas() -> None:
    from tools import REGISTRY

    schemas = {t.name: t.output_schema() for t in REGISTRY}
    assert "cluster" in schemas["estimate_speed"]["properties"]
    assert "cluster" in schemas["check_memory_fit"]["properties"]
    assert "cluster_option" in schemas["recommend_machine"]["properties"]
    assert "cluster" not in fit(chip="M4 Pro", memory_gb=48, model="llama3.1:8b").model_dump(mode="json")
    assert "cluster" in fit(
        chip="M4 Pro", memory_gb=48, model="llama3.1:8b", cluster={"count": 2}
    ).model_dump(mode="json")


def test_suggestions_use_the_runtimes_own_quants_and_settings() -> None:
    mlx = fit(chip="M4 Pro", memory_gb=48, model="llama3.3:70b", runtime="mlx").suggestions
    assert mlx[0].startswith("Use MLX-3bit: weights 30.87 GB")
    assert any("--kv-bits 8 (mlx-lm)" in s for s in mlx)
    lcpp = fit(chip="M4 Pro", memory_gb=48, model="llama3.3:70b", runtime="llama.cpp", context_tokens=32768)
    assert any("-fa on -ctk q8_0 -ctv q8_0" in s for s in lcpp.suggestions)
    small = fit(chip="M1", memory_gb=8, model="llama3.1:8b", runtime="llama.cpp", context_tokens=16384)
    assert "Reduce the context to 4240 tokens or less (-c / --ctx-size)." in small.suggestions
    ollama = fit(chip="M4 Pro", memory_gb=48, model="llama3.3:70b").suggestions
    assert any(s.startswith("Use Q3_K_M") or s.startswith("Use IQ3_XXS") for s in ollama)
    assert any("OLLAMA_FLASH_ATTENTION=1 OLLAMA_KV_CACHE_TYPE=q8_0" in s for s in ollama)


def test_apple_typography_in_core_counts() -> None:
    out = est(chip="Apple M4 Max with 14\u2011core CPU, 32\u2011core GPU", model="llama3.1:8b")
    assert (out.chip, out.bandwidth_gbps) == ("M4 Max 32-core GPU", 410)  # type: ignore[attr-defined]


def test_deepseek_r1_671b_at_10k_runs_on_a_512gb_m3_ultra_and_on_clusters() -> None:
    out = rec(budget_usd=10_000, target_model="deepseek-r1:671b")
    r = out.recommendation
    assert r is not None and (r.machine, r.fit_verdict) == (
        "Mac Studio M3 Ultra (80-core GPU), 512 GB (refurbished/used)",
        "tight",
    )
    assert r.expected_tokens_per_second is not None and r.expected_tokens_per_second > 5
    assert any(x.startswith("Clusters also run deepseek-r1:671b: e.g. 4 x") for x in out.reasons)


def test_target_tag_newer_than_the_catalog_gets_an_answer_like_the_other_tools() -> None:
    # estimate_speed/check_memory_fit size 'foo:30b-a3b' from its tag; recommend_machine used to refuse it.
    out = rec(budget_usd=10_000, workload="llm", target_model="deepseek-v3.2:671b")
    assert out.recommendation is not None and out.recommendation.memory_gb == 512
    assert any("family and size of the catalog MoE deepseek-v3" in a for a in out.assumptions)
    moe = rec(budget_usd=1500, workload="llm", target_model="foo:30b-a3b")
    assert moe.recommendation is not None and moe.recommendation.expected_tokens_per_second
    assert any("'30b-a3b' = 30B total, 3B active" in a for a in moe.assumptions)
    with pytest.raises(ToolError, match="target_model: unknown model 'foo'"):
        rec(budget_usd=1500, workload="llm", target_model="foo")


def test_image_workload_says_it_ignores_the_llm_target() -> None:
    out = rec(budget_usd=5000, workload="image", target_model="deepseek-r1:671b")
    assert any("the LLM target (deepseek-r1:671b) is not weighed" in a for a in out.assumptions)


@pytest.mark.parametrize(
    ("quant", "mlx_quant"), [(None, "MLX-4bit"), ("Q8_0", "MLX-8bit"), ("F16", "MLX-BF16")]
)
def test_speed_and_fit_read_a_gguf_quant_the_same_way_under_mlx(quant: str | None, mlx_quant: str) -> None:
    # check_memory_fit sized Q4_K_M as MLX-4bit under runtime mlx while estimate_speed kept Q4_K_M.
    kw: dict[str, object] = {"chip": "M4 Pro", "memory_gb": 48, "model": "llama3.1:8b", "runtime": "mlx"}
    if quant:
        kw["quant"] = quant
    e, f = est(**kw), fit(**kw)
    assert e.quant == f.quant == mlx_quant  # type: ignore[attr-defined]
    assert e.weights_gb == f.breakdown.weights_gb  # type: ignore[attr-defined]
    assert any("MLX does not load GGUF" in a for a in e.assumptions)  # type: ignore[attr-defined]


def test_alternatives_over_the_budget_say_so() -> None:
    out = rec(budget_usd=1500, workload="llm")
    assert out.recommendation is not None and out.recommendation.approx_price_usd <= 1500
    over = [a for a in out.alternatives if (a.approx_price_usd or 0) > 1500]
    assert over, "the comparison options above the budget are part of this case"
    assert all(a.why.startswith("Over the $1,500 budget") for a in over)
    assert not any(a.why.startswith("Over") for a in out.alternatives if (a.approx_price_usd or 0) <= 1500)


@pytest.mark.parametrize("name", ["FLUX.1-schnell", "FLUX.1 [schnell]", "Flux.1 [dev]", "flux1-dev"])
def test_flux_spellings_from_the_model_cards_are_known(name: str) -> None:
    out = rec(budget_usd=3000, workload="both", image_model=name)
    assert any(a.startswith("Image model: FLUX.1") for a in out.assumptions)


def test_speed_and_fit_agree_on_their_defaults_too() -> None:
    # estimate_speed defaults to 2048 tokens in use, check_memory_fit to a 4096 window; Ollama allocates the
    # window, so on defaults both must answer at 4096 (llama2:7b on an 8 GB M1 fits at 2048, not at 4096).
    kw: dict[str, object] = {"chip": "M1", "memory_gb": 8, "model": "llama2:7b"}
    e, f = est(**kw), fit(**kw)
    assert f.verdict == "does_not_fit" and e.fits_on_gpu is False  # type: ignore[attr-defined]
    assert any("At 4096 tokens this does not fit" in a for a in e.assumptions)  # type: ignore[attr-defined]
    # Given explicitly, the same context is judged in both.
    e2, f2 = est(**kw, context_tokens=2048), fit(**kw, context_tokens=2048)
    assert e2.fits_on_gpu is True and f2.verdict in ("fits", "tight")  # type: ignore[attr-defined]


def test_llama_cpp_cluster_without_a_split_is_a_pipeline_not_an_error() -> None:
    # The default split over Thunderbolt 5 is tensor, which llama.cpp RPC cannot do: with no split asked for,
    # estimate_speed refused and recommend_machine (which evaluates clusters) failed for runtime llama.cpp.
    kw: dict[str, object] = {
        "chip": "M4 Max",
        "memory_gb": 128,
        "model": "llama3.1:405b",
        "runtime": "llama.cpp",
    }
    e = est(**kw, cluster={"count": 2})
    f = fit(**kw, cluster={"count": 2})
    assert e.cluster.split == f.cluster.split == "pipeline"  # type: ignore[attr-defined]
    out = rec(budget_usd=10_000, workload="llm", target_model="gpt-oss:120b", runtime="llama.cpp")
    assert out.recommendation is not None
    with pytest.raises(ToolError, match="llama.cpp RPC splits by layers"):
        est(**kw, cluster={"count": 2, "split": "tensor"})


def test_cluster_of_macs_without_thunderbolt_5_is_not_given_rdma() -> None:
    # M1 Max Macs have Thunderbolt 4: the default link (thunderbolt5, tensor over RDMA) was applied silently.
    kw: dict[str, object] = {"chip": "M1 Max", "memory_gb": 64, "model": "llama3.3:70b"}
    f = fit(**kw, cluster={"count": 2})
    e = est(**kw, cluster={"count": 2})
    assert (f.cluster.link, f.cluster.split) == ("thunderbolt4", "pipeline")  # type: ignore[attr-defined]
    assert e.cluster.split == "pipeline"  # type: ignore[attr-defined]
    assert any("The M1 Max has no Thunderbolt 5 port" in a for a in f.assumptions)  # type: ignore[attr-defined]
    with pytest.raises(ToolError, match="the M1 Max has no Thunderbolt 5 port"):
        fit(**kw, cluster={"count": 2, "link": "thunderbolt5"})


def test_enum_spellings_people_type_are_accepted() -> None:
    # 'MLX', 'llama-cpp', 'TB5', 'Both' were refused by the exact-case enums.
    assert fit(chip="M4 Pro", memory_gb=48, model="llama3.1:8b", runtime="MLX").runtime == "mlx"  # type: ignore[attr-defined]
    assert fit(chip="M4 Pro", memory_gb=48, model="llama3.1:8b", runtime="llama-cpp").runtime == "llama.cpp"  # type: ignore[attr-defined]
    e = est(chip="M4 Max", memory_gb=128, model="llama3.3:70b", cluster={"count": 2, "link": "Thunderbolt 5"})
    assert e.cluster.link == "thunderbolt5"  # type: ignore[attr-defined]
    assert rec(budget_usd=3000, workload="Both").reasons
    kv = fit(chip="M4 Pro", memory_gb=48, model="llama3.1:8b", kv_cache_type="Q8_0")
    assert kv.kv_cache_type == "q8_0"  # type: ignore[attr-defined]
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="Input should be 'ollama', 'llama.cpp' or 'mlx'"):
        fit(chip="M4 Pro", memory_gb=48, model="llama3.1:8b", runtime="lm studio")


def test_memory_and_cores_typed_with_their_unit_are_read() -> None:
    # '48GB' / '40-core' were refused as not-a-number (the chip text already accepted '48GB').
    out = fit(chip="M4 Max", memory_gb="48 GB", gpu_cores="40-core", model="llama3.1:8b")
    assert (out.memory_gb, out.chip) == (48.0, "M4 Max 40-core GPU")  # type: ignore[attr-defined]
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="valid number"):
        fit(chip="M4 Max", memory_gb="lots", model="llama3.1:8b")
