"""recommend_machine and lookup_benchmarks as a demanding buyer uses them (issue 15): through the registry,
the interface the agent, the CLI and the MCP server share."""

from __future__ import annotations

from typing import Any

import pytest

from tools import REGISTRY, ToolError
from tools.recommend import avoid_reason, candidates
from tools.schemas import CheckMemoryFitOutput, LookupBenchmarksOutput, MachineOption, RecommendMachineOutput


def rec(**kw: Any) -> RecommendMachineOutput:
    out = REGISTRY.get("recommend_machine").run(kw)
    assert isinstance(out, RecommendMachineOutput)
    return out


def look(**kw: Any) -> LookupBenchmarksOutput:
    out = REGISTRY.get("lookup_benchmarks").run(kw)
    assert isinstance(out, LookupBenchmarksOutput)
    return out


def _single_speeds(target: str, budget: float) -> dict[str, float]:
    """Decode speed (estimate_speed, 4k context) of each allowed candidate in budget that holds the target."""
    fit, est = REGISTRY.get("check_memory_fit"), REGISTRY.get("estimate_speed")
    out: dict[str, float] = {}
    for c in candidates():
        if c.price_usd > budget or avoid_reason(c, "llm") is not None:
            continue
        m = {"chip": c.chip, "gpu_cores": c.gpu_cores, "memory_gb": c.memory_gb, "model": target}
        if not fit.run({**m, "context_tokens": 8192}).fits_on_gpu:  # type: ignore[attr-defined]
            continue
        out[c.label] = est.run({**m, "context_tokens": 4096}).expected_tokens_per_second  # type: ignore[attr-defined]
    return out


# ---- more money never buys a slower, dearer machine ---------------------------------------------------
@pytest.mark.parametrize("target", [None, "llama3.1:8b", "llama3.3:70b", "gpt-oss:120b", "qwen3:30b-a3b"])
def test_a_bigger_budget_never_picks_a_dearer_and_slower_machine(target: str | None) -> None:
    # Before: at $10k and more every one of these got the $9,499 512 GB M3 Ultra (memory per dollar counted
    # all 512 GB), slower than the $5,499 M5 Ultra that $7,000 got (gpt-oss:120b 63.7 vs 90 tok/s).
    picks: list[MachineOption] = []
    for budget in (3000, 4000, 5000, 7000, 10_000, 15_000, 50_000):
        args: dict[str, Any] = {"budget_usd": budget}
        if target is not None:
            args["target_model"] = target
        r = rec(**args).recommendation
        if r is not None:  # gpt-oss:120b: no single Mac within $3,000 holds it
            picks.append(r)
    assert len(picks) >= 6
    for lo, hi in zip(picks, picks[1:], strict=False):
        assert lo.expected_tokens_per_second is not None and hi.expected_tokens_per_second is not None
        dearer = (hi.approx_price_usd or 0) > (lo.approx_price_usd or 0)
        slower = hi.expected_tokens_per_second < lo.expected_tokens_per_second
        assert not (dearer and slower), (target, lo.machine, hi.machine)


def test_the_512gb_ultra_is_for_the_models_that_need_it() -> None:
    for target in ("qwen2.5:14b", "llama3.3:70b", "gpt-oss:120b", "qwen3:235b-a22b"):
        r = rec(budget_usd=15_000, target_model=target).recommendation
        assert r is not None and r.memory_gb < 512, target
    r = rec(budget_usd=15_000, target_model="deepseek-r1:671b").recommendation
    assert r is not None and r.memory_gb == 512


def test_235b_at_10k_is_the_256gb_m3_ultra_not_the_512gb_one() -> None:
    # Same chip, same speed, $2,400 less: the 256 GB M3 Ultra ($7,099 at launch, apple_lineup_2026.csv).
    out = rec(budget_usd=10_000, target_model="qwen3:235b-a22b")
    r = out.recommendation
    assert r is not None and (r.chip, r.memory_gb, r.approx_price_usd) == ("M3 Ultra", 256, 7099)
    assert "2025-03-05" in r.price_note and "$7,099" in r.price_note


def test_the_articles_1200_dollar_pick_is_within_1200_dollars() -> None:
    # Article: "If I had $1200, M4 Pro mini 48GB with external SSD." Before: nothing within $1,200.
    r = rec(budget_usd=1200).recommendation
    assert r is not None and (r.chip, r.memory_gb) == ("M4 Pro", 48)
    assert "If I had $1200" in r.price_note


# ---- clusters only when they beat every single Mac in budget --------------------------------------------
@pytest.mark.parametrize(
    ("target", "budget"),
    [("gpt-oss:120b", 10_000), ("gpt-oss:120b", 5400), ("qwen3:235b-a22b", 10_000), ("llama3.3:70b", 15_000)],
)
def test_a_cluster_beats_the_fastest_single_mac_in_budget(target: str, budget: float) -> None:
    # Before: at $10k two M5 Max 48 GB Studios ($6,198, 84 tok/s on gpt-oss:120b) were proposed as beating
    # the pick, while one M5 Ultra 96 GB ($5,499) decodes it at 90 tok/s.
    out = rec(budget_usd=budget, target_model=target)
    if out.cluster_option is None:
        return
    best_single = max(_single_speeds(target, budget).values(), default=0.0)
    assert out.cluster_option.expected_tokens_per_second is not None
    assert out.cluster_option.expected_tokens_per_second > 1.1 * best_single, (target, budget)


def test_gpt_oss_120b_at_10k_proposes_no_slower_cluster() -> None:
    out = rec(budget_usd=10_000, target_model="gpt-oss:120b")
    assert out.cluster_option is None
    r = out.recommendation
    assert r is not None and r.expected_tokens_per_second == max(
        _single_speeds("gpt-oss:120b", 10_000).values()
    )


# ---- clear errors ------------------------------------------------------------------------------------------
def test_unknown_target_model_names_the_recommend_field_and_image_models() -> None:
    with pytest.raises(ToolError) as e:
        rec(target_model="gpt-9:turbo")  # no size in the tag ("1t" is now read as 1000B)
    assert "target_params_billion" in str(e.value)
    assert " pass params_billion" not in str(e.value)
    with pytest.raises(ToolError) as img:
        rec(target_model="flux")
    assert 'workload "image"' in str(img.value) and "image_model" in str(img.value)


# ---- lookup_benchmarks -------------------------------------------------------------------------------------
@pytest.mark.parametrize("query", ["all", "everything", "show me all", "all rows"])
def test_asking_for_all_lists_every_row(query: str) -> None:
    out = look(query=query)
    assert (len(out.llm_rows), len(out.image_rows)) == (18, 9)


def test_the_setup_words_of_the_article_match_their_rows() -> None:
    # The LLM table was run with Ollama; SDXL and SD 1.5 are Stable Diffusion; the 70B row printed OOM.
    ollama = look(query="ollama")
    assert len(ollama.llm_rows) == 16 and not ollama.image_rows  # the table, not the prose MLX/llama.cpp rows
    sd = look(query="stable diffusion")
    assert {r.model for r in sd.image_rows} == {"SDXL", "SD 1.5"} and not sd.llm_rows
    oom = look(query="oom")
    assert [(r.machine, r.result) for r in oom.llm_rows] == [("M4 Pro Mac mini 48GB", "OOM")]
    assert all(r.source for r in [*ollama.llm_rows, *oom.llm_rows])
    assert all(r.source for r in sd.image_rows)


# ---- wording the buyer reads ------------------------------------------------------------------------------
def test_research_without_a_64gb_laptop_in_budget_says_so() -> None:
    # The article's research pick is an M3 Max MacBook Pro (64-128 GB); at $1,300 none is in budget and the
    # answer is a desktop: the reasons must say that rather than only restate the laptop advice.
    out = rec(budget_usd=1300, workload="research")
    r = out.recommendation
    assert r is not None and r.machine.startswith("Mac mini")
    assert any(
        "No laptop with at least 64 GB runs qwen2.5:14b within $1,300" in x and "~$2,000" in x
        for x in out.reasons
    )
    # 671B: laptops with 64 GB are in budget, but none holds the model
    big = rec(budget_usd=10_000, workload="research", target_model="deepseek-r1:671b")
    assert any(
        x.startswith("No laptop with at least 64 GB runs deepseek-r1:671b within $10,000:")
        for x in big.reasons
    )
    laptop = rec(budget_usd=2500, workload="research")
    assert laptop.recommendation is not None and laptop.recommendation.machine.startswith(
        "MacBook Pro M3 Max"
    )
    assert not any("No laptop" in x for x in laptop.reasons)


def test_an_image_only_no_pick_does_not_talk_about_tokens_of_context() -> None:
    out = rec(budget_usd=1000, workload="image")
    assert out.recommendation is None
    assert "runs the image model on the GPU" in out.summary and "tokens" not in out.summary


def test_no_cluster_is_suggested_when_none_holds_the_model() -> None:
    # 3000B at Q4 (~1.8 TB) is more than 4 x 512 GB can hold: "consider ... a cluster of Macs" was wrong.
    out = rec(budget_usd=50_000, target_params_billion=3000)
    assert out.recommendation is None and out.cluster_option is None
    assert "no cluster of up to 4 Macs in our list holds it either" in out.summary
    assert not any(x.endswith("or a cluster of Macs.") for x in out.reasons)
    # where a cluster does hold it, the suggestion stays
    big = rec(budget_usd=25_000, target_params_billion=1000)
    assert big.cluster_option is not None


@pytest.mark.parametrize(
    ("query", "n_llm", "n_img"), [("SD-1.5", 0, 3), ("sd-xl m4 pro", 0, 1), ("SDXL", 0, 3)]
)
def test_hyphenated_image_model_names_match(query: str, n_llm: int, n_img: int) -> None:
    out = look(query=query)
    assert (len(out.llm_rows), len(out.image_rows)) == (n_llm, n_img)


@pytest.mark.parametrize(
    ("query", "n_llm", "n_img"),
    [("image m3 max", 0, 6), ("m3 max images", 0, 6), ("llm m3 max", 10, 0), ("m3 max tok/s", 10, 0)],
)
def test_saying_image_or_llm_picks_the_table(query: str, n_llm: int, n_img: int) -> None:
    # "image m3 max" returned the M3 Max LLM rows as well: the word that names the table was dropped.
    out = look(query=query)
    assert (len(out.llm_rows), len(out.image_rows)) == (n_llm, n_img)
    assert look(query=query, kind="any").matched_on[0] == f"kind={'image' if n_img else 'llm'}"


def test_a_model_name_outweighs_a_table_word() -> None:
    # "tokens" with an image model: the model decides (an agent often passes the user's sentence as query)
    out = look(query="how many tokens per second for flux on the m4 pro")
    assert (len(out.llm_rows), len(out.image_rows)) == (0, 1)


# ---- current machines without a published price ---------------------------------------------------------
def test_671b_names_the_current_512gb_m5_ultra_whose_price_is_not_published() -> None:
    # The only single Mac in the list that holds 671B is a discontinued (used) M3 Ultra; Apple's current
    # M5 Ultra Studio also ships with 512 GB, but no price is published, so the buyer must hear of it.
    out = rec(budget_usd=10_000, target_model="deepseek-r1:671b")
    assert out.recommendation is not None and out.recommendation.status == "discontinued"
    said = [r for r in out.reasons if "Mac Studio M5 Ultra (80-core GPU), 512 GB" in r]
    assert len(said) == 1 and "price not published" in said[0] and "not weighed" in said[0]
    # a laptop buyer for gpt-oss:120b hears of the current 128 GB M5 Max MacBook Pro
    lap = rec(budget_usd=6000, target_model="gpt-oss:120b", portable=True)
    assert any("MacBook Pro M5 Max (40-core GPU), 128 GB" in r for r in lap.reasons)
    # not when a current, priced machine in budget runs the target
    for args in ({"budget_usd": 3000}, {"budget_usd": 6000, "target_model": "gpt-oss:120b"}):
        assert not any("not weighed" in r for r in rec(**args).reasons), args


def test_the_70b_advice_is_given_for_70b_class_models_only() -> None:
    seventy = rec(budget_usd=3000, target_model="llama3.3:70b")
    assert any(r.startswith("For 70B-class models") for r in seventy.reasons)
    for target in ("deepseek-r1:671b", "qwen3:235b-a22b", "llama3.1:405b"):
        out = rec(budget_usd=15_000, target_model=target)
        assert out.recommendation is not None
        assert not any(r.startswith("For 70B-class models") for r in out.reasons), target


def test_a_query_for_an_untested_machine_points_to_the_estimate() -> None:
    out = look(query="m5 max")
    assert any("estimate_speed" in m for m in out.matched_on)


def test_an_image_pick_is_explained_by_its_gpu_cores() -> None:
    # The summary gave the machine's LLM blurb ("holds 235B-class MoE models") to someone buying for Flux.
    out = rec(budget_usd=10_000, workload="image")
    r = out.recommendation
    assert r is not None
    assert f"{r.gpu_cores}-core GPU" in out.summary and "MoE" not in out.summary


# ---- what was sized for is what is said --------------------------------------------------------------------
def test_a_quant_in_the_tag_is_the_one_stated() -> None:
    # Before: "Quantisation: Q4_K_M (Ollama's default)" while the Q8_0 of the tag was sized for.
    tagged = rec(budget_usd=5000, target_model="llama3.3:70b-instruct-q8_0")
    given = rec(budget_usd=5000, target_model="llama3.3:70b", quant="Q8_0")
    for out in (tagged, given):
        assert not any(a.startswith("Quantisation: Q4_K_M") for a in out.assumptions)
        assert "llama3.3:70b at Q8_0" in out.summary
        assert out.recommendation is not None
    assert tagged.recommendation == given.recommendation
    plain = rec(budget_usd=5000, target_model="llama3.3:70b")
    assert any(a.startswith("Quantisation: Q4_K_M") for a in plain.assumptions)
    assert "on llama3.3:70b." in plain.summary


def test_target_params_billion_next_to_target_model_is_said_to_be_ignored() -> None:
    out = rec(budget_usd=5000, target_model="llama3.2:1b", target_params_billion=405)
    assert any("target_params_billion (405) is ignored" in a for a in out.assumptions)


@pytest.mark.parametrize(
    ("target", "slowest"), [(None, "Mac mini M6, 32 GB"), ("llama3.3:70b", "Mac mini M5 Pro, 64 GB")]
)
def test_alternatives_to_a_budget_pick_are_its_runners_up(target: str | None, slowest: str) -> None:
    # Before: the four cheapest machines, e.g. $1,200-2,300 minis as the alternatives to a $5,499 M5 Ultra.
    args: dict[str, Any] = {"budget_usd": 10_000}
    if target is not None:
        args["target_model"] = target
    alts = [a.machine for a in rec(**args).alternatives]
    assert "Mac Studio M3 Ultra (60-core GPU), 96 GB" in alts
    assert slowest not in alts


# ---- the machines' own claims hold ------------------------------------------------------------------------
def _current_70b_speeds(max_price: float) -> dict[str, float]:
    fit, est = REGISTRY.get("check_memory_fit"), REGISTRY.get("estimate_speed")
    out = {}
    for c in candidates():
        if c.status != "current" or c.price_usd > max_price:
            continue
        m = {"chip": c.chip, "gpu_cores": c.gpu_cores, "memory_gb": c.memory_gb, "model": "llama3.3:70b"}
        if fit.run({**m, "context_tokens": 8192}).fits_on_gpu:  # type: ignore[attr-defined]
            out[c.id] = est.run({**m, "context_tokens": 4096}).expected_tokens_per_second  # type: ignore[attr-defined]
    return out


def test_the_fastest_and_cheapest_70b_claims_are_true() -> None:
    # "The fastest current Mac that holds 70B at Q4" was said of the M5 Max 64 GB (11 tok/s) while the
    # current M5 Ultra 96 GB decodes it at 18 tok/s.
    by = {c.id: c for c in candidates()}
    assert "The fastest current Mac under $5,000 that holds 70B at Q4" in by["studio_m5max_64"].why
    under_5k = _current_70b_speeds(5000)
    assert under_5k["studio_m5max_64"] == max(under_5k.values())
    assert "Cheapest current Mac that holds a 70B model at Q4" in by["mini_m5pro_64"].why
    every = _current_70b_speeds(1e9)
    assert min(every, key=lambda i: by[i].price_usd) == "mini_m5pro_64"


def test_the_512gb_m3_ultra_is_not_called_the_only_mac_for_671b() -> None:
    r = rec(budget_usd=10_000, target_model="deepseek-r1:671b").recommendation
    assert r is not None and "The one priced Mac" in r.why
    assert "M5 Ultra Studio also comes with 512 GB" in r.why


def test_a_laptop_buyer_is_not_sent_a_cluster_of_laptops() -> None:
    # Before: portable, gpt-oss:120b, $15k -> "3 x MacBook Pro 14-inch M5 Max, 36 GB over Thunderbolt 5".
    out = rec(budget_usd=15_000, target_model="gpt-oss:120b", portable=True)
    assert out.cluster_option is None and not any("luster" in r for r in out.reasons)
    none = rec(budget_usd=50_000, target_model="deepseek-r1:671b", portable=True)
    assert none.recommendation is None and none.cluster_option is None
    assert "No laptop in our list runs deepseek-r1:671b" in none.summary
    assert "without portable" in none.summary


# ---- image generation in the M5 generation -----------------------------------------------------------------
def test_image_picks_count_the_m5_neural_accelerators() -> None:
    # Image generation is compute-bound; every M5-generation GPU core has a Neural Accelerator (compute-bound
    # prompt processing measured 2.5-4x an M4's). Before: $6,000 bought a used 2023 M2 Ultra (76 cores) over
    # the current M5 Ultra (64 cores, $5,499), counting cores alone.
    out = rec(budget_usd=6000, workload="image")
    r = out.recommendation
    assert r is not None and r.chip == "M5 Ultra" and r.status == "current"
    assert any("Neural Accelerator" in a and "2.5" in a for a in out.assumptions)
    # below any M5 Studio's price the article's rule (most GPU cores) still decides
    low = rec(budget_usd=2400, workload="image")
    assert low.recommendation is not None and low.recommendation.chip == "M3 Max"


@pytest.mark.parametrize(
    ("written", "dollars"),
    [
        ("$1,500", 1500),
        ("1,500", 1500),
        ("1.5k", 1500),
        ("$5K", 5000),
        ("10000 USD", 10000),
        ("US$3000", 3000),
    ],
)
def test_a_budget_written_the_way_people_write_it_is_read(written: str, dollars: int) -> None:
    # "$1,500" and "5k" were refused as "not a valid number"; a model passes the user's own words.
    assert rec(budget_usd=written) == rec(budget_usd=dollars)


@pytest.mark.parametrize("written", ["12,34", "1,5000", "$", "abc", "-5", "0"])
def test_a_budget_that_is_not_an_amount_is_still_refused(written: str) -> None:
    with pytest.raises(ToolError, match="budget_usd"):
        rec(budget_usd=written)


@pytest.mark.parametrize(
    ("budget", "target"), [(10_000, "qwen3:235b"), (20_000, "qwen3:235b"), (40_000, "deepseek-r1:671b")]
)
def test_a_cluster_for_workload_both_leaves_one_node_room_for_the_image_model(
    budget: int, target: str
) -> None:
    # The image model is not split over Macs: one node must hold it next to its share of the LLM. Clusters
    # ignored it (2 x 96 GB M3 Ultra for qwen3:235b + Flux at $10k, each node already at its GPU budget).
    from tools.recommend import image_model_need

    out = rec(budget_usd=budget, workload="both", target_model=target)
    assert out.cluster_option is not None
    node = next(c for c in candidates() if c.label == out.cluster_option.machine)
    per_node = REGISTRY.get("check_memory_fit").run(
        {
            "chip": node.chip,
            "gpu_cores": node.gpu_cores,
            "memory_gb": node.memory_gb,
            "model": target,
            "context_tokens": 8192,
            "cluster": {"count": out.cluster_option.count, "link": "thunderbolt5"},
        }
    )
    assert isinstance(per_node, CheckMemoryFitOutput)
    image_gb = image_model_need(None)[0]
    assert per_node.breakdown.headroom_gb >= image_gb, (out.cluster_option, per_node.breakdown, image_gb)


def test_a_cluster_named_beyond_the_budget_says_so() -> None:
    # At $10k, '4 x Mac Studio M4 Max (~$13,996 in all)' was named for 671B, not said to be over budget.
    out = rec(budget_usd=10_000, target_model="deepseek-r1:671b")
    (mention,) = [r for r in out.reasons if r.startswith("Clusters also run")]
    assert "over your $10,000 budget" in mention
    unlimited = rec(target_model="deepseek-r1:671b")
    assert not any("over your" in r for r in unlimited.reasons)
