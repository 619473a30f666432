"""estimate_speed: decode tokens/s of a model on a Mac -- hard ceiling plus a calibrated expectation."""

from __future__ import annotations

from dataclasses import dataclass

from tools.chips import MachineSpec, resolve_machine
from tools.cluster import SOURCE as CLUSTER_SOURCE
from tools.cluster import ClusterPlan, decode_factor, plan, prefill_factor
from tools.data_files import GB
from tools.fit import gpu_budget, gpu_fit_for, quant_for_runtime
from tools.models import ResolvedModel, resolve_model_and_quant
from tools.quants import QuantSpec
from tools.schemas import (
    CheckMemoryFitInput,
    ClusterResult,
    EstimateSpeedInput,
    EstimateSpeedOutput,
    ModelArchitecture,
)
from tools.sizes import (
    WeightsRead,
    attention_flops_per_prompt_token,
    attention_read_bytes,
    kv_cache_bytes,
    weights_read,
)
from tools.speed import (
    TokenWork,
    expert_share,
    prefill_light,
    quant_weights,
    speed_model,
    tier_from_bandwidth,
)

SOURCES_SPEED = [
    "decode ceiling = memory bandwidth / bytes read per token (weights read for one token + KV cache read)",
    "tools/data/speed_model.yaml (fitted on tools/data/calibration_decode.csv: "
    "XiongjieDai/GPU-Benchmarks-on-LLM-Inference, itsmostafa/inference-speed-tests, AlexsJones/llmfit "
    "community data and PR #1031, ml-explore/mlx-examples #1029, brand-o/normiebench, "
    "stared/benching-local-llms-on-apple-silicon; and the fit split of tools/data/calibration_2026.csv: MoE "
    "and M5 measurements, each row's source there)",
]


def _r(x: float, nd: int = 2) -> float:
    return float(round(x, nd))


def _prefill(
    machine: MachineSpec,
    arch: ModelArchitecture,
    q: QuantSpec,
    active_b: float,
    moe: bool,
    ctx: int,
    share: float | None = None,
) -> tuple[float | None, list[str], list[str]]:
    """Prompt-processing tokens/s for a prompt of max(512, ctx) tokens; None only without a chip."""
    pm = speed_model().prefill
    if machine.bin is None:
        return None, ["Prefill not estimated: no chip given (it depends on GPU cores, not bandwidth)."], []
    gen = machine.bin.generation
    cores = machine.gpu_cores or max(machine.bin.gpu_cores)
    prompt = max(512, ctx)
    attn = attention_flops_per_prompt_token(arch, prompt)
    mlx = q.engine == "mlx"
    tps, notes = pm.tokens_per_second(gen, cores, active_b, prefill_light(q), moe, attn, mlx, prompt, share)
    tpc, used, _ = pm.rate(gen)
    notes.append(
        f"Prefill ~ {tpc:.3f} effective TFLOPS per GPU core (M{used}, fitted on public llama.cpp/MLX prompt "
        f"measurements) x {cores} cores / (2 x {active_b:.3g}B + attention over a {prompt}-token prompt)"
        + (
            f"; MoE factor x{pm.moe_factor * pm.moe_efficiency(share):.2f} (experts get small batches)"
            if moe
            else ""
        )
        + (
            f"; MLX: x{pm.mlx_factor:.2f} and {pm.mlx_startup(gen):.2g} s start-up per prompt, so short "
            "prompts run at lower tok/s"
            if mlx
            else ""
        )
        + f"; error band x{pm.range_low:.2f}-x{pm.range_high:.2f} (meant to hold about 8 in 10 measurements "
        "from a source the fit had not seen)."
    )
    if used >= 5:
        slow = tps * pm.no_accelerator_tflops_per_core / tpc
        notes.append(
            f"M{gen} prefill assumes a runtime that drives the GPU neural accelerators (Metal 4 tensor API: "
            "MLX on macOS 26.2+, llama.cpp builds with PR #27461, Aug 2026). Without it (LM Studio's GGUF "
            f"runtime up to 2.28.2; Ollama's GGUF engine is unverified) expect ~{slow:.0f} tok/s. Decode is "
            "unaffected."
        )
    return tps, notes, [f"prefill M{used}: {pm.sources[used]}"]


def estimate_speed(p: EstimateSpeedInput) -> EstimateSpeedOutput:
    """Why both numbers: the ceiling is physics (never exceeded); the expectation is what people measure."""
    if p.cluster is not None:
        return _estimate_cluster(p)
    return _estimate_one(p, judge_fit=True)


def _estimate_one(p: EstimateSpeedInput, *, judge_fit: bool) -> EstimateSpeedOutput:
    """One Mac's estimate; `judge_fit` False (a cluster's node) leaves fits_on_gpu to the caller, without
    the single-Mac memory verdict or its notes."""
    machine = resolve_machine(p.chip, p.gpu_cores, p.memory_gb, p.bandwidth_gbps)
    model, q, model_notes, model_sources = resolve_model_and_quant(
        p.model, p.params_billion, p.architecture, p.quant, p.context_tokens
    )
    # The runtime's own format, as in check_memory_fit (MLX does not load GGUF Q4_K_M: it runs MLX-4bit), so
    # the two tools report the same quant and weights for the same question.
    q, rnotes = quant_for_runtime(q, p.runtime)
    arch = model.arch
    wr = weights_read(arch, q, model.sizing_entry)
    active_b, wnotes, wsources = _weights_notes(model, wr)
    kv = kv_cache_bytes(arch, p.context_tokens)
    decode, dnotes = _decode(machine, arch, q, wr, kv, p.context_tokens)
    fits_on_gpu, fnotes = _fits_on_gpu(p, machine, model, q) if judge_fit else (None, [])
    share = expert_share(model.sizing_entry, arch) if wr.moe else None
    prefill, pnotes, psources = _prefill(machine, arch, q, active_b, wr.moe, p.context_tokens, share)
    total_b = arch.params_billion
    return EstimateSpeedOutput(
        chip=machine.label,
        gpu_cores=machine.gpu_cores,
        bandwidth_gbps=_r(machine.bandwidth_gbps, 2),
        model=model.tag,
        params_billion=_r(total_b, 3),
        active_params_billion=_r(active_b, 3),
        quant=q.quant,
        bits_per_weight=_r(wr.total_bytes * 8 / (total_b * 1e9), 3),
        weights_gb=_r(wr.total_bytes / GB),
        active_weights_gb=_r(wr.active_bytes / GB),
        kv_cache_gb=_r(kv / GB, 3),
        context_tokens=p.context_tokens,
        ceiling_tokens_per_second=_r(decode.ceiling),
        expected_tokens_per_second=_r(decode.expected),
        expected_range=(_r(decode.low), _r(decode.high)),
        efficiency=_r(decode.expected / decode.ceiling, 3),
        prefill_tokens_per_second=_r(prefill, 0) if prefill else None,
        runtime=p.runtime,
        fits_on_gpu=fits_on_gpu,
        assumptions=[*machine.assumptions, *model_notes, *rnotes, *wnotes, *dnotes, *fnotes, *pnotes],
        sources=[*machine.sources, *model_sources, *wsources, *psources, *SOURCES_SPEED],
    )


def _weights_notes(model: ResolvedModel, wr: WeightsRead) -> tuple[float, list[str], list[str]]:
    """Parameters read per token (billions), and the notes and sources on the weights' sizes."""
    entry = model.sizing_entry
    total_b = model.arch.params_billion
    w_total, w_active = wr.total_bytes, wr.active_bytes
    active_b = model.arch.active_params_billion or (
        total_b * w_active / w_total if wr.moe and w_total > 0 else total_b
    )
    notes = list(wr.notes)
    sources: list[str] = []
    if entry is not None and entry.moe is not None:
        sources.append(f"MoE layout {entry.tag}: {entry.moe.src}")
    if entry is not None and entry.size_src:
        sources.append(f"file size {entry.tag}: {entry.size_src} (as of {entry.as_of})")
    if total_b < 3:
        notes.append(
            "Small model: embeddings/output stay at higher precision, so the real file can be ~5-10% larger."
        )
    return active_b, notes, sources


@dataclass(frozen=True)
class _Decode:
    """Decode tokens/s: the bandwidth ceiling, the calibrated expectation and its range."""

    ceiling: float
    expected: float
    low: float
    high: float


def _decode(
    machine: MachineSpec, arch: ModelArchitecture, q: QuantSpec, wr: WeightsRead, kv: float, ctx: int
) -> tuple[_Decode, list[str]]:
    notes: list[str] = []
    bw = machine.bandwidth_gbps
    ceiling = bw * GB / (wr.active_bytes + kv)
    sm = speed_model()
    tier = machine.tier
    if tier is None:
        tier = tier_from_bandwidth(bw)
        notes.append(f"Tier for the fixed per-token cost inferred from {bw:g} GB/s: {tier}.")
    generation = machine.bin.generation if machine.bin else None
    _, qnote = quant_weights(q)
    if qnote:
        notes.append(qnote)
    attn = attention_read_bytes(arch, ctx)
    if arch.n_heads is None:
        notes.append("Query-head count unknown: attention cost assumes 4 query heads per KV head.")
    work = TokenWork(
        weights_bytes=wr.active_bytes,
        bw_gbps=bw,
        tier=tier,
        q=q,
        attn_bytes=attn,
        generation=generation,
        moe_layers=wr.moe_layers,
        kv_bytes=kv,
    )
    t = sm.seconds_per_token(work)
    expected = min(1.0 / t, ceiling) if t > 0 else ceiling
    low = expected * sm.range_low
    if wr.moe:
        low = expected * sm.moe_range_low
        notes.append(
            "MoE: the expectation adds fitted costs for scattered expert reads and per-layer routing "
            "(tools/data/speed_model.yaml, fitted on public MoE measurements); MoE rows scatter more than "
            "dense ones, hence the wider range."
        )
    high = min(expected * sm.range_high, ceiling)
    notes.append(
        f"Expected speed from the calibrated model T = W/BW*(a+d_quant) + t0[{tier}] + attention(context); "
        "range = 10th-90th percentile of measured/predicted on public measurements, each predicted by a fit "
        "that had not seen its source (meant to hold about 8 in 10 new measurements). Engine: "
        "llama.cpp/Ollama for GGUF quants (MLX is typically 0-10% faster)."
    )
    if ctx > 16384:
        notes.append(
            "Long context: calibration data reaches ~16k tokens; beyond that the slow-down is extrapolated."
        )
    return _Decode(ceiling, expected, low, high), notes


def _fits_on_gpu(
    p: EstimateSpeedInput, machine: MachineSpec, model: ResolvedModel, q: QuantSpec
) -> tuple[bool | None, list[str]]:
    """The same rule as check_memory_fit (tools.fit.assess_gpu_fit), so the two tools never disagree.

    Without memory_gb the chip's memory configurations are checked instead: True if every one holds the model,
    False if none does (no such Mac runs it, whatever the speed would be), else None with the ones that do.
    """
    if machine.memory_gb is None:
        return _fits_any_configuration(p, machine, model, q)
    fq, _ = quant_for_runtime(q, p.runtime)
    budget, _ = gpu_budget(float(machine.memory_gb), use_this_mac=p.chip is None)
    fit_ctx = fit_context(p, model.arch)
    gf = gpu_fit_for(
        model.arch, fq, model.sizing_entry, fit_ctx, float(machine.memory_gb), p.runtime, budget=budget
    )
    if gf.fits_on_gpu:
        return True, []
    return False, [
        f"At {fit_ctx} tokens this does not fit the GPU budget of a "
        f"{machine.memory_gb:g} GB Mac under {p.runtime} (check_memory_fit: {gf.verdict}); the "
        "estimate assumes it runs fully on the GPU."
    ]


def _fits_any_configuration(
    p: EstimateSpeedInput, machine: MachineSpec, model: ResolvedModel, q: QuantSpec
) -> tuple[bool | None, list[str]]:
    if machine.bin is None:
        return None, []
    fq, _ = quant_for_runtime(q, p.runtime)
    fit_ctx = fit_context(p, model.arch)
    sizes = sorted(machine.bin.memory_gb)
    fitting = [
        m
        for m in sizes
        if gpu_fit_for(
            model.arch, fq, model.sizing_entry, fit_ctx, float(m), p.runtime, budget=gpu_budget(float(m))[0]
        ).fits_on_gpu
    ]
    offered = ", ".join(f"{m:g}" for m in sizes)
    if not fitting:
        return False, [
            f"At {fit_ctx} tokens this does not fit the GPU budget of any {machine.label} "
            f"(memory options {offered} GB) under {p.runtime}: no such Mac runs it; the speed above is what "
            "it would be if the weights fitted (check_memory_fit gives the details; a cluster or a larger "
            "chip is needed)."
        ]
    if fitting[0] == sizes[0]:
        return True, [f"memory_gb not given: fits every {machine.label} configuration ({offered} GB)."]
    return None, [
        f"memory_gb not given: at {fit_ctx} tokens under {p.runtime} this fits an {machine.label} with "
        f"{fitting[0]:g} GB or more, not with {', '.join(f'{m:g}' for m in sizes if m < fitting[0])} GB."
    ]


def fit_context(p: EstimateSpeedInput, arch: ModelArchitecture) -> int:
    """The context window fits_on_gpu is judged at: the one given, else check_memory_fit's default window.

    Why: a runtime allocates its whole window (num_ctx) however few tokens are in use, so with both tools on
    their defaults (2048 tokens in use here, a 4096 window there) they must still give the same answer.
    """
    if "context_tokens" in p.model_fields_set:
        return p.context_tokens
    window = int(CheckMemoryFitInput.model_fields["context_tokens"].default)
    return min(max(p.context_tokens, window), arch.native_context)


def _estimate_cluster(p: EstimateSpeedInput) -> EstimateSpeedOutput:
    """A thin layer over the single-machine estimate: one node's decode as if the model fitted, scaled by the
    measured cluster factors in tools/data/clusters.yaml."""
    assert p.cluster is not None
    machine = resolve_machine(p.chip, p.gpu_cores, p.memory_gb, p.bandwidth_gbps)
    mem = machine.memory_gb
    pl = plan(p.cluster, p.runtime, machine.chip)
    single = _estimate_one(p.model_copy(update={"cluster": None, "runtime": pl.runtime}), judge_fit=False)
    exp, low, high, why = decode_factor(pl, single.expected_tokens_per_second)
    low = min(low, decode_factor(pl, single.expected_range[0])[1])
    high = max(high, decode_factor(pl, single.expected_range[1])[2])
    n = pl.count
    ceiling = single.ceiling_tokens_per_second * (n if pl.split == "tensor" else 1)
    exp, low, high = min(exp, ceiling), min(low, ceiling), min(high, ceiling)
    notes = single.assumptions + pl.notes
    notes.append(f"Cluster decode from one node's {single.expected_tokens_per_second:g} tok/s: {why}.")
    if pl.split == "tensor":
        notes.append(
            f"Ceiling: {n} nodes each read 1/{n} of the weights per token ({n} x one node's ceiling)."
        )
    else:
        notes.append("Ceiling: a pipeline still reads all weights once per token, one node after another.")
    fits, per_node_need, per_node_budget, fit_notes = _cluster_fit(p, pl, mem)
    prefill, prefill_notes = _cluster_prefill(pl, single.prefill_tokens_per_second)
    return single.model_copy(
        update={
            "ceiling_tokens_per_second": _r(ceiling),
            "expected_tokens_per_second": _r(exp),
            "expected_range": (_r(low), _r(high)),
            "efficiency": _r(exp / ceiling, 3),
            "prefill_tokens_per_second": prefill,
            "runtime": pl.runtime,
            "fits_on_gpu": fits,
            "cluster": ClusterResult(
                nodes=n,
                link=pl.link,
                split=pl.split,
                runtime=pl.runtime,
                total_memory_gb=n * mem if mem is not None else None,
                per_node_need_gb=per_node_need,
                per_node_budget_gb=per_node_budget,
                single_node_tokens_per_second=single.expected_tokens_per_second,
                decode_factor_vs_one_node=_r(exp / single.expected_tokens_per_second, 3),
                notes=pl.notes,
            ),
            "assumptions": notes + fit_notes + prefill_notes,
            "sources": single.sources + [CLUSTER_SOURCE],
        }
    )


def _cluster_fit(
    p: EstimateSpeedInput, pl: ClusterPlan, mem: float | None
) -> tuple[bool | None, float | None, float | None, list[str]]:
    """(fits on the nodes' GPUs, GB needed per node, GB budget per node, notes); None when not checked."""
    if mem is None and p.chip is None:
        return None, None, None, []
    model, q, _, _ = resolve_model_and_quant(
        p.model, p.params_billion, p.architecture, p.quant, p.context_tokens
    )
    if mem is None:
        return None, None, None, ["memory_gb not given: whether the model fits the cluster is not checked."]
    fq, _ = quant_for_runtime(q, pl.runtime)
    budget, _ = gpu_budget(float(mem), use_this_mac=p.chip is None)
    n = pl.count
    gf = gpu_fit_for(
        model.arch,
        fq,
        model.sizing_entry,
        fit_context(p, model.arch),
        float(mem),
        pl.runtime,
        budget=budget,
        nodes=n,
    )
    notes: list[str] = []
    if not gf.fits_on_gpu:
        notes.append(
            f"At {fit_context(p, model.arch)} tokens this does not fit {n} x {mem:g} GB (check_memory_fit "
            f"with the same cluster: {gf.verdict}); the estimate assumes it does."
        )
    return gf.fits_on_gpu, _r(gf.need.gpu_total / GB), _r(budget / GB), notes


def _cluster_prefill(pl: ClusterPlan, single_prefill: float | None) -> tuple[float | None, list[str]]:
    if single_prefill is None:
        return None, []
    return _r(single_prefill * prefill_factor(pl), 0), [
        f"Prefill x {prefill_factor(pl):.2f} for {pl.count} nodes ({pl.split}: tensor parallel measured "
        "233 -> 363 tok/s from 2 to 4 nodes at 10K context, exo #1468; a pipeline does not speed up one "
        "prompt)."
    ]
