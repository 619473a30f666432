"""Machine names and memory fit as an adversarial user types them: each case is a defect found by probing the
public tools (estimate_speed / check_memory_fit) with names, memory sizes and clusters people really write."""

from __future__ import annotations

import pytest

from tests.test_tools_machines import observation_arguments
from tools.registry import ToolError
from tools.schemas import CheckMemoryFitInput, EstimateSpeedInput


def _observations() -> list[dict[str, str]]:
    from tools.data_files import load_csv

    return load_csv("fit_observations.csv")


def est(**kw: object):  # type: ignore[no-untyped-def]
    from tools.estimate import estimate_speed

    return estimate_speed(EstimateSpeedInput.model_validate(kw))


def fit(**kw: object):  # type: ignore[no-untyped-def]
    from tools.fit import check_memory_fit

    return check_memory_fit(CheckMemoryFitInput.model_validate(kw))


# ---- GPU core counts written the way spec sheets and forum posts write them --------------------------------
@pytest.mark.parametrize(
    "chip",
    [
        "M4 Max 32 GPU cores",
        "m4 max 32gpu",
        "M4 Max 32GPU",
        "M4 Max 32-GPU",
        "M4 Max 14CPU 32GPU",
        "M4 Max 32 GPU",
    ],
)
def test_gpu_count_before_the_word_gpu_picks_the_bin(chip: str) -> None:
    # Was: the count was dropped and the 40-core bin (546 GB/s, a third more bandwidth) assumed.
    out = est(chip=chip, model="llama3.1:8b")
    assert (out.chip, out.bandwidth_gbps, out.gpu_cores) == ("M4 Max 32-core GPU", 410, 32)


@pytest.mark.parametrize(
    ("chip", "label"),
    [
        # Apple's spec line lists the Neural Engine's cores too: they are neither CPU nor GPU cores.
        ("Apple M4 Pro chip with 12-core CPU, 16-core Neural Engine", "M4 Pro 16-core GPU"),
        ("M4 Pro 14-core CPU, 16-core Neural Engine", "M4 Pro 20-core GPU"),
        ("M3 Max with 16-core Neural Engine", "M3 Max 40-core GPU"),
    ],
)
def test_neural_engine_cores_are_not_cpu_or_gpu_cores(chip: str, label: str) -> None:
    out = est(chip=chip, model="llama3.1:8b")
    assert out.chip == label
    assert not any("16-core' in" in a for a in out.assumptions)


def test_neural_engine_cores_alone_pick_no_bin() -> None:
    out = est(chip="M4 Pro 16-core Neural Engine", model="llama3.1:8b")
    assert (out.chip, out.gpu_cores) == ("M4 Pro 16/20-core GPU", None)


# ---- tier words that are misspelt or made up ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("chip", "word"),
    [
        ("M2 Utra", "utra"),
        ("M4 Mx", "mx"),
        ("M4 Ulta", "ulta"),
        ("M4 Pr", "pr"),
        ("M3 Extreme", "extreme"),
        ("M4 Plus", "plus"),
        ("M5 Super", "super"),
        ("Mac Studio M2 Ultr 192GB", "ultr"),
    ],
)
def test_a_misspelt_or_unknown_tier_word_is_not_read_as_the_base_chip(chip: str, word: str) -> None:
    # Was: silently the base chip (an M2 for "M2 Utra": 100 instead of 800 GB/s), no assumption stated.
    with pytest.raises(ToolError, match=f"ambiguous.*'{word}'"):
        est(chip=chip, model="llama3.1:8b")


@pytest.mark.parametrize(
    ("chip", "word"), [("M4 (Max)", "max"), ("M4, Max 64GB", "max"), ("M4 [Pro] 48GB", "pro")]
)
def test_a_real_tier_word_set_apart_from_the_chip_is_not_called_no_tier(chip: str, word: str) -> None:
    # Still ambiguous (refused), but the message said "'max' ... is not an Apple chip tier (Pro, Max, Ultra)".
    with pytest.raises(ToolError, match=f"ambiguous.*'{word}'") as err:
        est(chip=chip, model="llama3.1:8b")
    assert "not an Apple chip tier" not in str(err.value)


@pytest.mark.parametrize(
    "chip", ["M4 chip", "M4 Mac", "M4 mini", "M4 Pro 14-inch", 'M4 Pro 16"', "M4 (2024)"]
)
def test_ordinary_words_after_the_chip_are_still_fine(chip: str) -> None:
    assert est(chip=chip, model="llama3.1:8b").chip is not None


# ---- "binned" ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("chip", "label", "bandwidth"),
    [
        ("M4 Max binned", "M4 Max 32-core GPU", 410),
        ("M3 Max (binned)", "M3 Max 30-core GPU", 300),
        ("M4 Pro binned", "M4 Pro 16-core GPU", 273),
        ("M4 Max unbinned", "M4 Max 40-core GPU", 546),
    ],
)
def test_binned_means_the_lower_gpu_bin(chip: str, label: str, bandwidth: float) -> None:
    # Was: 'binned' ignored and the top bin assumed ("Assumed the 40-core M4 Max"): the opposite of what was
    # said.
    out = est(chip=chip, model="llama3.1:8b")
    assert (out.chip, out.bandwidth_gbps) == (label, bandwidth)
    assert any("binned" in a for a in out.assumptions)


# ---- CPU/GPU shorthand that matches no configuration -------------------------------------------------------
@pytest.mark.parametrize(
    ("chip", "needle"),
    [
        ("M5 Max 16/40", r"'16/40'.*M5 Max.*18-core CPU: 32 or 40-core GPU"),
        ("M4 9/10", r"'9/10'.*M4"),
        ("M4 Pro 24/512", r"'24/512'.*write memory as e\.g\. '24GB'"),
    ],
)
def test_a_core_pair_the_chip_never_had_is_refused_not_ignored(chip: str, needle: str) -> None:
    # Was: the pair was dropped silently and the top bin assumed.
    with pytest.raises(ToolError, match=needle):
        est(chip=chip, model="llama3.1:8b")


def test_screen_sizes_with_a_slash_are_not_a_core_pair() -> None:
    out = est(chip="MacBook Pro 14/16-inch (M5 Max, 40-core GPU)", model="llama3.1:8b")
    assert out.chip == "M5 Max 40-core GPU"


# ---- memory sizes ------------------------------------------------------------------------------------------
def test_96gb_m2_max_needs_the_38_core_gpu() -> None:
    with pytest.raises(ToolError, match="30-core M2 Max was sold with 32 or 64 GB, not 96 GB"):
        fit(chip="M2 Max", gpu_cores=30, memory_gb=96, model="llama3.1:8b")
    out = fit(chip="M2 Max", memory_gb=96, model="llama3.1:8b")
    assert out.chip == "M2 Max 38-core GPU"
    assert "96 GB identifies the 38-core M2 Max bin (400 GB/s)." in out.assumptions


def test_ssd_size_in_a_product_name_is_not_read_as_memory() -> None:
    # Was: "memory_gb: the M4 Pro was sold with 24, 48 or 64 GB, not 512 GB".
    out = fit(chip="Mac mini M4 Pro 512GB SSD 24GB RAM", model="llama3.1:8b")
    assert out.memory_gb == 24
    out = fit(chip="Mac Studio M4 Max 36GB 512GB SSD", model="llama3.1:8b")
    assert out.memory_gb == 36


def test_two_memory_sizes_in_one_name_are_not_guessed() -> None:
    with pytest.raises(ToolError, match="more than one memory size"):
        fit(chip="M4 Pro 24GB 48GB", model="llama3.1:8b")


def test_m3_ultra_bandwidth_is_shown_as_a_conflicting_figure() -> None:
    # 819 GB/s is the bus figure (techpowerup); Apple says "over 800", llama.cpp #4167 lists 800. Was: shown
    # as a plain fact, unlike the other conflicting figures (M5 Ultra, M6).
    for kw in (
        {"chip": "M3 Ultra"},
        {"chip": "Mac Studio M3 Ultra 512GB"},
        {"chip": "M3 Ultra", "gpu_cores": 60},
    ):
        out = est(**kw, model="llama3.1:8b")
        assert out.bandwidth_gbps == 819
        assert any(
            a.startswith("Secondary or conflicting figure: M3 Ultra bandwidth 819 GB/s") and "800" in a
            for a in out.assumptions
        ), out.assumptions


# ---- clusters ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["tensor", "pipeline"])
def test_clusters_beyond_the_measured_four_macs_say_they_are_extrapolated(split: str) -> None:
    # Was: 8 Macs tensor parallel answered 1.87x decode and 3.78x prefill with no word that every public
    # measurement has 2-4 nodes.
    kw: dict[str, object] = {"chip": "M4 Max", "memory_gb": 128, "model": "llama3.3:70b"}
    for tool in (est, fit):
        eight = tool(**kw, cluster={"count": 8, "split": split})
        assert any("more than 4 Macs" in a and "extrapolated" in a for a in eight.assumptions)
        four = tool(**kw, cluster={"count": 4, "split": split})
        assert not any("more than 4 Macs" in a for a in four.assumptions)


def test_a_cluster_that_does_not_fit_names_the_context_it_was_judged_at() -> None:
    # estimate_speed judges the fit at check_memory_fit's 4096-token window when no context is given; its note
    # said "At 2048 tokens this does not fit", a context that was not checked.
    kw: dict[str, object] = {
        "chip": "M4 Max",
        "memory_gb": 128,
        "params_billion": 671,
        "cluster": {"count": 3},
    }
    e, f = est(**kw), fit(**kw)
    assert e.fits_on_gpu is False and f.verdict == "does_not_fit" and f.context_tokens == 4096
    note = next(a for a in e.assumptions if "does not fit 3 x 128 GB" in a)
    assert note.startswith("At 4096 tokens"), note


# ---- one memory rule over a grid ---------------------------------------------------------------------------
_GRID_MODELS: list[dict[str, object]] = [
    {"model": "llama3.1:8b"},
    {"model": "llama3.3:70b"},
    {"model": "qwen3:30b-a3b"},  # MoE
    {"model": "gpt-oss:120b"},  # MoE, MXFP4 experts only
    {"model": "deepseek-r1:671b"},  # MoE
    {"model": "gemma3:27b"},  # sliding-window layers
    {"model": "newmodel:30b-a3b"},  # MoE read from the tag
    {"params_billion": 14},  # params only
]
_GRID_QUANTS = [None, "Q8_0", "Q2_K", "MLX-4bit"]
_GRID_CONTEXTS = [None, 32768]


def _both(kw: dict[str, object]) -> tuple[object, object]:
    """(estimate_speed, check_memory_fit) for the same question, or the ToolError message each raised."""
    outs: list[object] = []
    for tool in (est, fit):
        try:
            outs.append(tool(**kw))
        except ToolError as e:
            outs.append(str(e))
    return outs[0], outs[1]


@pytest.mark.parametrize("runtime", ["ollama", "llama.cpp", "mlx"])
def test_estimate_and_fit_agree_over_every_chip_bin_memory_size_quant_and_context(runtime: str) -> None:
    """Every memory size of every chip bin x dense / MoE / tag-only / params-only models x quants x contexts:
    estimate_speed's fits_on_gpu (memory given) is check_memory_fit's verdict, and both refuse the same
    inputs (a quant gpt-oss does not exist in, a context beyond a model's training)."""
    from tools.chips import chip_bins

    machines = sorted({(b.chip, b.gpu_cores[0], m) for b in chip_bins() for m in b.memory_gb})
    checked = refused = 0
    for chip, cores, mem in machines:
        for model in _GRID_MODELS:
            for quant in _GRID_QUANTS:
                for ctx in _GRID_CONTEXTS:
                    kw: dict[str, object] = {
                        "chip": chip,
                        "gpu_cores": cores,
                        "memory_gb": mem,
                        "runtime": runtime,
                    }
                    kw |= model
                    if quant:
                        kw["quant"] = quant
                    if ctx:
                        kw["context_tokens"] = ctx
                    e, f = _both(kw)
                    if isinstance(e, str) or isinstance(f, str):
                        assert isinstance(e, str) and isinstance(f, str), (kw, e, f)
                        refused += 1
                        continue
                    checked += 1
                    assert (e.fits_on_gpu, e.quant, e.runtime) == (  # type: ignore[attr-defined]
                        f.fits_on_gpu,  # type: ignore[attr-defined]
                        f.quant,  # type: ignore[attr-defined]
                        f.runtime,  # type: ignore[attr-defined]
                    ), (kw, f.verdict)  # type: ignore[attr-defined]
    # The grid is mostly answered: refusals are the model/quant/context combinations that do not exist.
    assert checked > 3 * refused and checked > 1000, (checked, refused)


@pytest.mark.parametrize("count", [2, 3, 4, 8])
def test_estimate_and_fit_agree_for_clusters_over_links_and_splits(count: int) -> None:
    machines = [
        ("M4 Pro", 64),
        ("M4 Max", 128),
        ("M3 Ultra", 512),
        ("M5 Max", 128),
        ("M1 Max", 64),
        ("M2", 24),
    ]
    links: list[dict[str, object]] = [
        {},
        {"link": "10gbe"},
        {"link": "thunderbolt4"},
        {"split": "pipeline"},
    ]
    for chip, mem in machines:
        for model in _GRID_MODELS:
            for link in links:
                for runtime in ("ollama", "llama.cpp", "mlx"):
                    kw: dict[str, object] = {
                        "chip": chip,
                        "memory_gb": mem,
                        "runtime": runtime,
                        "cluster": {"count": count, **link},
                    }
                    e, f = _both(kw | model)
                    if isinstance(e, str) or isinstance(f, str):
                        assert e == f, (kw, model, e, f)
                        continue
                    assert (e.fits_on_gpu, e.runtime) == (f.fits_on_gpu, f.runtime), (kw, model)  # type: ignore[attr-defined]
                    assert e.cluster.nodes == f.cluster.nodes == count  # type: ignore[attr-defined]
                    assert (e.cluster.link, e.cluster.split) == (f.cluster.link, f.cluster.split)  # type: ignore[attr-defined]
                    assert e.cluster.per_node_need_gb == f.cluster.per_node_need_gb  # type: ignore[attr-defined]


@pytest.mark.parametrize("row", _observations(), ids=lambda r: f"{r['runtime']}-{r['chip']}-{r['memory_gb']}")
def test_estimate_speed_reproduces_every_observed_outcome_too(row: dict[str, str]) -> None:
    out = est(**observation_arguments(row))
    assert (out.fits_on_gpu, out.runtime) == (row["outcome"] == "gpu", row["runtime"]), row


# ---- settings named in the runtime the verdict is for ------------------------------------------------------
@pytest.mark.parametrize(
    ("runtime", "knob", "foreign"),
    [
        ("mlx", "--kv-bits 4", ("OLLAMA_", "-ctk")),
        ("llama.cpp", "-fa on -ctk q4_0 -ctv q4_0", ("OLLAMA_", "--kv-bits")),
        ("ollama", "OLLAMA_KV_CACHE_TYPE=q4_0", ("-ctk", "--kv-bits")),
    ],
)
def test_kv_cache_type_note_names_the_runtimes_own_setting(
    runtime: str, knob: str, foreign: tuple[str, ...]
) -> None:
    # Was: "KV cache q4_0 needs flash attention (OLLAMA_FLASH_ATTENTION=1 ...)" whatever the runtime.
    out = fit(chip="M4 Pro", memory_gb=48, model="llama3.1:8b", runtime=runtime, kv_cache_type="q4_0")
    note = next(a for a in out.assumptions if a.startswith("KV cache q4_0"))
    assert knob in note and not any(f in note for f in foreign), note


def test_mlx_parallel_suggestion_is_not_a_llama_cpp_flag() -> None:
    # Was: "Use one parallel slot (-np 1)" under runtime mlx (-np is llama-server's flag).
    out = fit(
        chip="M4 Pro", memory_gb=48, model="llama3.1:8b", runtime="mlx", parallel=4, context_tokens=131072
    )
    par = next(s for s in out.suggestions if "KV cache drops to" in s)
    assert "-np" not in par and "one request at a time" in par, par


# ---- memory sizes that are not quite a configuration -------------------------------------------------------
def test_a_memory_size_near_a_configuration_is_read_as_it_and_said() -> None:
    # Was: 48.4 accepted as "the 48 GB bin" but 48.4 GiB used for the GPU budget and echoed as the memory.
    out = fit(chip="M4 Pro", memory_gb=48.4, model="llama3.1:8b")
    ref = fit(chip="M4 Pro", memory_gb=48, model="llama3.1:8b")
    assert out.memory_gb == 48 and out.breakdown.gpu_budget_gb == ref.breakdown.gpu_budget_gb
    assert "memory_gb 48.4 read as the 48 GB configuration." in out.assumptions


def test_memory_given_in_decimal_gigabytes_is_read_as_apples_size() -> None:
    # 48 GiB = 51.54 GB: someone who converted Apple's "48 GB" to 1e9 bytes was refused ("not 51.5 GB").
    out = fit(chip="M4 Pro", memory_gb=51.5, model="llama3.1:8b")
    assert out.memory_gb == 48
    assert any(
        a.startswith("memory_gb 51.5 read as the 48 GB configuration (48 GiB = 51.54 GB")
        for a in out.assumptions
    )
    with pytest.raises(ToolError, match="M4 Pro was sold with 24, 48 or 64 GB, not 50 GB"):
        fit(chip="M4 Pro", memory_gb=50, model="llama3.1:8b")


# ---- bandwidth and repeated counts in a name --------------------------------------------------------------
@pytest.mark.parametrize(
    ("chip", "label", "bandwidth"),
    [
        ("M4 Max 410 GB/s", "M4 Max 32-core GPU", 410),
        ("M4 Max 546GB/s 64GB", "M4 Max 40-core GPU", 546),
        ("M3 Max 300 GB/s", "M3 Max 30-core GPU", 300),
        ("M4 Pro 273GB/s", "M4 Pro 16/20-core GPU", 273),
    ],
)
def test_bandwidth_in_a_name_is_read_as_bandwidth_not_memory(chip: str, label: str, bandwidth: float) -> None:
    # Was: "410 GB/s" read as 410 GB of memory ("the M4 Max was sold with 36, 48, 64 or 128 GB, not 410 GB"),
    # or as storage next to a memory size.
    out = est(chip=chip, model="llama3.1:8b")
    assert (out.chip, out.bandwidth_gbps) == (label, bandwidth)
    assert not any("storage" in a for a in out.assumptions)


def test_a_bandwidth_the_chip_never_had_is_refused() -> None:
    with pytest.raises(ToolError, match="the M4 Max has 410 or 546 GB/s, not 400"):
        est(chip="M4 Max 400 GB/s", model="llama3.1:8b")


@pytest.mark.parametrize(
    "chip", ["M4 Max 32-core GPU 40-core GPU", "M2 Max 38-core 30-core", "M4 Max GPU 32 GPU 40"]
)
def test_two_gpu_core_counts_in_one_name_are_not_guessed(chip: str) -> None:
    # Was: the last count won silently.
    with pytest.raises(ToolError, match="more than one GPU core count"):
        est(chip=chip, model="llama3.1:8b")


@pytest.mark.parametrize(
    "chip",
    [
        "2x Mac Studio M3 Ultra 512GB",
        "M2 Ultra x2",
        "dual M2 Ultra",
        "4 x M4 Pro",
        "two M4 Max",
        "M4 Max × 3",
    ],
)
def test_several_macs_in_the_chip_field_point_to_cluster_instead_of_answering_for_one(chip: str) -> None:
    # Was: the count was dropped and the answer given for a single Mac, with no word about it.
    for tool in (est, fit):
        with pytest.raises(ToolError, match=r"describes several Macs.*cluster"):
            tool(chip=chip, memory_gb=None, model="llama3.1:8b")


@pytest.mark.parametrize("chip", ["1x M3 Ultra 512GB", "M3 Ultra x1 512GB", "1 x Mac Studio M3 Ultra 512GB"])
def test_one_mac_counted_as_one_is_not_refused_as_several(chip: str) -> None:
    # "1x" is one Mac: it was refused as "describes several Macs" and pointed to a cluster.
    out = fit(chip=chip, model="llama3.1:8b")
    assert (out.chip, out.memory_gb) == ("M3 Ultra 80-core GPU", 512.0)
    assert est(chip=chip, model="llama3.1:8b").bandwidth_gbps == 819


def test_a_mac_whose_ports_our_sources_do_not_give_is_not_said_to_lack_thunderbolt_5() -> None:
    # The M6 Mac mini's ports are in none of our sources: "The M6 has no Thunderbolt 5 port" was stated
    # as fact and an explicit thunderbolt5 link refused.
    kw: dict[str, object] = {"chip": "M6", "memory_gb": 32, "model": "qwen2.5:32b"}
    default = fit(**kw, cluster={"count": 2})
    assert (default.cluster.link, default.cluster.split) == ("thunderbolt4", "pipeline")
    assert not any("has no Thunderbolt 5 port" in a for a in default.assumptions)
    assert any("not in our sources" in a for a in default.assumptions)
    asked = est(**kw, cluster={"count": 2, "link": "thunderbolt5"})
    assert asked.cluster.link == "thunderbolt5"
    assert any("not in our sources" in a for a in asked.assumptions)
    # A Mac known to have only Thunderbolt 4 is still refused RDMA.
    with pytest.raises(ToolError, match="the M1 Max has no Thunderbolt 5 port"):
        fit(chip="M1 Max", memory_gb=64, model="llama3.3:70b", cluster={"count": 2, "link": "thunderbolt5"})


def test_fit_without_memory_lists_the_sizes_of_the_bin_the_cores_name() -> None:
    # Was: "the M4 Max was sold with 36, 48, 64 or 128 GB" for the 32-core M4 Max, which came with 36 GB only.
    out = fit(chip="M4 Max 32-core", model="llama3.1:8b")
    assert out.memory_gb == 36 and out.chip == "M4 Max 32-core GPU"
    assert "The 32-core M4 Max was sold with 36 GB only: memory_gb taken as 36." in out.assumptions
    assert fit(chip="M5 Ultra", gpu_cores=64, model="llama3.1:8b").memory_gb == 96
    with pytest.raises(
        ToolError, match=r"needed for a fit check; the 60-core M3 Ultra was sold with 96 or 256 GB\."
    ):
        fit(chip="M3 Ultra", gpu_cores=60, model="llama3.1:8b")
    with pytest.raises(ToolError, match=r"the M4 Max was sold with 36, 48, 64 or 128 GB\."):
        fit(chip="M4 Max", model="llama3.1:8b")


def test_apples_full_configuration_line_is_accepted() -> None:
    # Apple's configurator wording with memory and storage is ~110 characters; the chip field stopped at 80.
    line = (
        "Apple M4 Max chip with 16\u2011core CPU, 40\u2011core GPU, 16\u2011core Neural Engine, "
        "128GB unified memory, 2TB SSD storage"
    )
    out = fit(chip=line, model="llama3.3:70b")
    assert (out.chip, out.memory_gb) == ("M4 Max 40-core GPU", 128)


def test_tensor_split_on_a_mac_without_thunderbolt_5_says_why() -> None:
    # Was: "over Thunderbolt 4 use pipeline" with no link asked for: the reason (the M2 Ultra has no
    # Thunderbolt 5 port, so the default link fell back) was in a note the error never showed.
    with pytest.raises(ToolError, match=r"tensor parallelism .* The M2 Ultra has no Thunderbolt 5 port"):
        est(chip="M2 Ultra", memory_gb=192, model="llama3.3:70b", cluster={"count": 2, "split": "tensor"})


@pytest.mark.parametrize(
    ("split", "want"),
    [
        ("Tensor", "tensor"),
        ("tensor parallel", "tensor"),
        ("TP", "tensor"),
        ("PP", "pipeline"),
        ("Pipeline", "pipeline"),
    ],
)
def test_split_spellings_people_type_are_accepted(split: str, want: str) -> None:
    # 'TB5' and 'MLX' were accepted but 'Tensor' / 'pipeline parallel' were refused by the exact-case enum.
    out = fit(chip="M4 Max", memory_gb=128, model="llama3.3:70b", cluster={"count": 2, "split": split})
    assert out.cluster.split == want


def test_full_width_characters_from_japanese_and_chinese_input_methods_are_read() -> None:
    # Was: "unknown chip 'Ｍ３ Ｕｌｔｒａ ５１２ＧＢ'" (the IME's full-width letters and digits).
    out = fit(chip="Ｍ３ Ｕｌｔｒａ ５１２ＧＢ", model="llama3.3:70b")
    assert (out.chip, out.memory_gb) == ("M3 Ultra 80-core GPU", 512)


# ---- a bin one public benchmark reports (M5 MacBook Air, 8-core GPU) -----------------------------------
def test_an_m5_with_an_8_core_gpu_is_answered_and_marked_unverified() -> None:
    # Rapid-MLX's benchmark of a 16 GB MacBook Air M5 reports 8 GPU cores; it was refused ("never had").
    out = est(chip="MacBook Air M5 8-core GPU", model="llama3.1:8b")
    assert out.gpu_cores == 8 and out.bandwidth_gbps == 153
    assert any("UNVERIFIED" in a and "8-core" in a for a in out.assumptions)
    full = est(chip="M5", gpu_cores=10, model="llama3.1:8b")
    assert out.prefill_tokens_per_second is not None and full.prefill_tokens_per_second is not None
    assert out.prefill_tokens_per_second < full.prefill_tokens_per_second, "prefill scales with GPU cores"
    # Plain "M5" stays the 10-core chip every Apple source lists, and says so.
    plain = est(chip="M5", model="llama3.1:8b")
    assert plain.gpu_cores is None or plain.gpu_cores == 10
    assert any("10-core M5" in a for a in plain.assumptions)
    assert not any("UNVERIFIED" in a for a in plain.assumptions)


# ---- "will a 70B fit in 64 GB?" with no chip named ---------------------------------------------------------
@pytest.mark.parametrize("memory_gb", [8, 16, 24, 36, 48, 64, 96, 128, 192])
@pytest.mark.parametrize("model", ["llama3.1:8b", "qwen3:32b", "llama3.3:70b", "gpt-oss:120b"])
def test_memory_size_alone_gets_the_verdict_estimate_speed_gives(memory_gb: int, model: str) -> None:
    # check_memory_fit refused ("Pass chip and memory_gb") where estimate_speed with a raw bandwidth answered.
    answer = fit(memory_gb=memory_gb, model=model)
    assert answer.chip is None and answer.memory_gb == memory_gb
    assert any(f"any Mac with {memory_gb} GB" in a for a in answer.assumptions)
    assert answer.fits_on_gpu == est(bandwidth_gbps=400, memory_gb=memory_gb, model=model).fits_on_gpu
    chip = {
        8: "M2",
        16: "M2",
        24: "M2",
        36: "M3 Max",
        48: "M4 Pro",
        64: "M4 Pro",
        96: "M3 Max",
        128: "M4 Max",
        192: "M2 Ultra",
    }[memory_gb]
    assert fit(chip=chip, memory_gb=memory_gb, model=model).verdict == answer.verdict, (
        "the chip changes no verdict"
    )


@pytest.mark.parametrize(
    "chip",
    ["M4 Pro 48GB dual monitor", "M4 Pro 48GB with two displays", "M4 Pro 48GB two Thunderbolt 5 ports"],
)
def test_accessories_counted_in_a_name_are_not_several_macs(chip: str) -> None:
    # 'dual monitor' was refused as "describes several Macs ('dual')".
    assert fit(chip=chip, model="llama3.1:8b").memory_gb == 48


@pytest.mark.parametrize(
    ("chip", "memory"), [("M4 Pro 48G", 48), ("M4 Max 128 GiB", 128), ("M2 Ultra 192 G", 192)]
)
def test_memory_written_g_or_gib_is_read(chip: str, memory: int) -> None:
    # '48G' and '128 GiB' were silently dropped: check_memory_fit then asked for memory_gb.
    assert fit(chip=chip, model="llama3.1:8b").memory_gb == memory


def test_an_8_core_m5_with_24_gb_is_not_refused() -> None:
    # The unverified 8-core bin was limited to 16 GB, refusing 'M5 8-core GPU 24GB' on a guess.
    out = fit(chip="M5 8-core GPU 24GB", model="llama3.1:8b")
    assert out.chip == "M5 8-core GPU" and out.memory_gb == 24
    assert any("UNVERIFIED" in a for a in out.assumptions)
