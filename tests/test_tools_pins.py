"""Pins that fail when the domain maths is wrong, not only when the code crashes.

A mutation run (one deliberate bug at a time) showed these slip through the older tests: a speed ceiling that
ignores the KV cache read per token, a fit check that lets a model run 2 GB over budget (``headroom >= -2``)
and a fit check without a "tight" band (``tight_threshold = 0``). The verdict pins here sit 0.05 GB on each
side of every boundary, measured RELATIVE to the numbers the tool itself reports (its ``total_gb``,
``gpu_budget_gb``, ``ram_gb``...), so a change to the memory rules (GPU fraction, overhead, OS reserve) moves
the inputs the tests derive, not the boundaries they check. The hypothesis invariants run over the whole
model catalog and every chip bin.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.chips import chip_bins
from tools.estimate import estimate_speed
from tools.fit import check_memory_fit
from tools.models import catalog
from tools.schemas import CheckMemoryFitInput, CheckMemoryFitOutput, EstimateSpeedInput, EstimateSpeedOutput

RANK = {"fits": 0, "tight": 1, "partial_offload": 2, "does_not_fit": 3}
STEP = 0.05  # GB each side of a boundary; the tool reports GB to 0.01, so rounding cannot blur the side


def fit(**kw: object) -> CheckMemoryFitOutput:
    return check_memory_fit(CheckMemoryFitInput.model_validate(kw))


def speed(**kw: object) -> EstimateSpeedOutput:
    return estimate_speed(EstimateSpeedInput.model_validate(kw))


# ---- speed ceiling: bandwidth / (weights + KV cache) bytes per token ---------------------------------


def test_long_context_ceiling_includes_the_kv_cache_read_per_token() -> None:
    """70B Q4_K_M, 128k context, 400 GB/s: 42.5 GB weights + 43.0 GB KV per token -> 4.68 tok/s, not 9.41."""
    out = speed(bandwidth_gbps=400, model="llama3.3:70b", quant="Q4_K_M", context_tokens=131072)
    assert out.kv_cache_gb == pytest.approx(
        42.95, abs=0.05
    )  # 2 x 80 layers x 8 kv heads x 128 x 2 B x 131072
    assert out.ceiling_tokens_per_second == pytest.approx(4.68, abs=0.02)
    assert out.expected_tokens_per_second <= out.ceiling_tokens_per_second
    short = speed(bandwidth_gbps=400, model="llama3.3:70b", quant="Q4_K_M", context_tokens=0)
    assert short.ceiling_tokens_per_second == pytest.approx(9.41, abs=0.02)


# ---- check_memory_fit: exact verdicts 0.05 GB either side of every boundary -------------------------------


def _limit_for_headroom(base: CheckMemoryFitOutput, headroom_gb: float) -> float:
    """A GPU limit (GB) that leaves exactly `headroom_gb` beside the tool's own total for this request."""
    return round(base.breakdown.total_gb + headroom_gb, 4)


@pytest.mark.parametrize(
    ("request_kw", "regime"),
    [
        # small budget (~7 GB): the "tight" band is its 0.5 GB floor
        ({"chip": "M4 Max", "memory_gb": 128, "model": "llama3.1:8b", "context_tokens": 8192}, "floor"),
        # large budget (~57 GB): the "tight" band is 5 % of the budget
        ({"chip": "M4 Max", "memory_gb": 128, "model": "llama3.3:70b", "context_tokens": 32768}, "share"),
    ],
)
def test_fit_verdict_pins_around_the_gpu_budget(request_kw: dict[str, object], regime: str) -> None:
    base = fit(**request_kw, gpu_memory_limit_gb=120)
    assert base.verdict == "fits" and base.breakdown.gpu_budget_gb == pytest.approx(120)
    total = base.breakdown.total_gb

    def at_headroom(h: float) -> CheckMemoryFitOutput:
        out = fit(**request_kw, gpu_memory_limit_gb=_limit_for_headroom(base, h))
        assert out.breakdown.total_gb == pytest.approx(
            total, abs=0.011
        )  # the need does not depend on the limit
        assert out.breakdown.headroom_gb == pytest.approx(h, abs=0.011)
        return out

    # 0 GB of headroom is the GPU boundary: just over -> tight (fits_on_gpu), just under -> partial offload.
    over = at_headroom(+STEP)
    assert (over.verdict, over.fits_on_gpu) == ("tight", True)
    under = at_headroom(-STEP)
    assert (under.verdict, under.fits_on_gpu) == ("partial_offload", False)
    # Well past a rounding error but far from "2 GB over" still does not run on the GPU.
    assert at_headroom(-1.5).verdict == "partial_offload"

    # The tight band: max(0.5 GB, 5 % of the budget) of headroom.
    if regime == "floor":
        band = 0.5
        assert at_headroom(band - STEP).breakdown.gpu_budget_gb * 0.05 < band
    else:
        # headroom = 0.05 x budget  <=>  budget = total / 0.95
        band = (total / 0.95) * 0.05
        assert band > 0.5 + STEP
    assert at_headroom(band - STEP).verdict == "tight"
    assert at_headroom(band + STEP).verdict == "fits"


def _ctx_for(base: CheckMemoryFitOutput, ctx: int, kv_gb_target: float) -> int:
    """Context whose (linear, f16) KV cache is `kv_gb_target` GB, from the KV size reported at `ctx`."""
    per_token = base.breakdown.kv_cache_gb / ctx
    return math.ceil(kv_gb_target / per_token)


def test_fit_verdict_pins_around_the_ram_boundary() -> None:
    """Partial offload (layers on the CPU) needs the model in RAM beside macOS; without room: does not fit."""
    request_kw: dict[str, object] = {"chip": "M3 Max", "memory_gb": 64, "model": "llama3.3:70b"}
    probe_ctx = 65536
    probe = fit(**request_kw, context_tokens=probe_ctx)
    b = probe.breakdown
    ram, os_gb, weights, overhead = b.ram_gb, b.os_headroom_gb, b.weights_gb, b.overhead_gb

    # Everything the GPU would hold, plus the OS reserve, is 0.05 GB below RAM -> the CPU can take the rest.
    ctx_room = _ctx_for(probe, probe_ctx, ram - STEP - os_gb - weights - overhead) - 50
    room = fit(**request_kw, context_tokens=ctx_room)
    r = room.breakdown
    assert ram - 2 * STEP <= r.weights_gb + r.kv_cache_gb + r.overhead_gb + os_gb <= ram - STEP + 0.005
    room = fit(**request_kw, context_tokens=ctx_room, gpu_memory_limit_gb=_limit_for_headroom(room, -STEP))
    assert (room.verdict, room.fits_on_gpu) == ("partial_offload", False)

    # Weights + KV alone, plus the OS reserve, are 0.05 GB above RAM -> nowhere to put it.
    ctx_none = _ctx_for(probe, probe_ctx, ram + STEP - os_gb - weights) + 50
    none = fit(**request_kw, context_tokens=ctx_none)
    n = none.breakdown
    assert ram + STEP <= n.weights_gb + n.kv_cache_gb + os_gb <= ram + 2 * STEP + 0.005
    limited = fit(**request_kw, context_tokens=ctx_none, gpu_memory_limit_gb=_limit_for_headroom(none, -STEP))
    assert (limited.verdict, limited.fits_on_gpu) == ("does_not_fit", False)
    # The same request with the GPU limit raised to all of RAM fits the GPU budget but leaves macOS short.
    raised = fit(**request_kw, context_tokens=ctx_none, gpu_memory_limit_gb=ram - 0.01)
    assert raised.breakdown.headroom_gb > 1
    assert (raised.verdict, raised.fits_on_gpu) == ("tight", True)
    assert any("swapping" in a for a in raised.assumptions)


# ---- invariants over the whole catalog -------------------------------------------------------------

MODELS = sorted(catalog())
BINS = chip_bins()
CHIP_MEMORY = sorted({(b.chip, m) for b in BINS for m in b.memory_gb})
INVARIANTS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def model_and_contexts(draw: st.DrawFn) -> tuple[str, int, int]:
    tag = draw(st.sampled_from(MODELS))
    native = catalog()[tag].native_ctx
    a, b = sorted(draw(st.lists(st.integers(256, native), min_size=2, max_size=2)))
    return tag, a, b


@INVARIANTS
@given(mc=model_and_contexts(), chip_bin=st.sampled_from(BINS))
def test_speed_invariants(mc: tuple[str, int, int], chip_bin: object) -> None:
    tag, short_ctx, long_ctx = mc
    chip = chip_bin.chip  # type: ignore[attr-defined]
    cores = chip_bin.gpu_cores[0]  # type: ignore[attr-defined]
    short = speed(chip=chip, gpu_cores=cores, model=tag, context_tokens=short_ctx)
    long = speed(chip=chip, gpu_cores=cores, model=tag, context_tokens=long_ctx)
    for out in (short, long):
        # The ceiling is the bandwidth over every byte read per token: active weights and the KV cache.
        assert out.ceiling_tokens_per_second == pytest.approx(
            out.bandwidth_gbps / (out.active_weights_gb + out.kv_cache_gb), rel=0.01, abs=0.02
        )
        assert 0 < out.expected_tokens_per_second <= out.ceiling_tokens_per_second
        lo, hi = out.expected_range
        assert lo <= out.expected_tokens_per_second <= hi <= out.ceiling_tokens_per_second
    # More context: more KV to read and more attention work, never faster.
    assert long.kv_cache_gb >= short.kv_cache_gb
    assert long.ceiling_tokens_per_second <= short.ceiling_tokens_per_second
    assert long.expected_tokens_per_second <= short.expected_tokens_per_second


@INVARIANTS
@given(
    mc=model_and_contexts(),
    chip_mem=st.sampled_from(CHIP_MEMORY),
    kv=st.sampled_from(["f16", "q8_0", "q4_0"]),
)
def test_fit_invariants_in_context(mc: tuple[str, int, int], chip_mem: tuple[str, int], kv: str) -> None:
    tag, short_ctx, long_ctx = mc
    chip, memory = chip_mem
    short = fit(chip=chip, memory_gb=memory, model=tag, context_tokens=short_ctx, kv_cache_type=kv)
    long = fit(chip=chip, memory_gb=memory, model=tag, context_tokens=long_ctx, kv_cache_type=kv)
    for out in (short, long):
        _consistent(out)
    assert long.breakdown.total_gb >= short.breakdown.total_gb
    assert RANK[long.verdict] >= RANK[short.verdict], (short.verdict, long.verdict)


@INVARIANTS
@given(
    tag=st.sampled_from(MODELS),
    chip=st.sampled_from(sorted({c for c, _ in CHIP_MEMORY})),
    ctx=st.integers(256, 131072),
    data=st.data(),
)
def test_fit_invariants_in_memory(tag: str, chip: str, ctx: int, data: st.DataObject) -> None:
    sizes = sorted({m for c, m in CHIP_MEMORY if c == chip})
    small, big = sorted(data.draw(st.lists(st.sampled_from(sizes), min_size=2, max_size=2)))
    ctx = min(ctx, catalog()[tag].native_ctx)
    less = fit(chip=chip, memory_gb=small, model=tag, context_tokens=ctx)
    more = fit(chip=chip, memory_gb=big, model=tag, context_tokens=ctx)
    for out in (less, more):
        _consistent(out)
    # More memory: a larger budget for the same need, never a worse verdict.
    assert more.breakdown.total_gb == pytest.approx(less.breakdown.total_gb, abs=0.011)
    assert more.breakdown.gpu_budget_gb >= less.breakdown.gpu_budget_gb
    assert RANK[more.verdict] <= RANK[less.verdict], (small, less.verdict, big, more.verdict)
    assert more.max_context_tokens >= less.max_context_tokens


def _consistent(out: CheckMemoryFitOutput) -> None:
    b = out.breakdown
    assert b.headroom_gb == pytest.approx(b.gpu_budget_gb - b.total_gb, abs=0.011)
    assert out.fits_on_gpu == (out.verdict in ("fits", "tight"))
    if out.verdict == "fits":
        assert b.headroom_gb >= 0
        assert b.headroom_gb >= 0.5 - 0.011  # never "fits" inside the tight band
    if out.verdict == "tight":
        assert b.headroom_gb >= -0.011
    if not out.fits_on_gpu:
        assert b.headroom_gb < 0.011
