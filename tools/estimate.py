"""estimate_speed: decode tokens/s of a model on a Mac -- hard ceiling plus a calibrated expectation."""

from __future__ import annotations

from tools.catalog import (
    GB,
    attention_read_bytes,
    kv_cache_bytes,
    resolve_machine,
    resolve_model_and_quant,
    weights_bytes,
)
from tools.schemas import EstimateSpeedInput, EstimateSpeedOutput
from tools.speed import quant_weights, speed_model, tier_from_bandwidth

SOURCES_SPEED = [
    "reference/domain-notes.md 1.1 (ceiling = bandwidth / bytes read per token)",
    "tools/data/speed_model.yaml (fitted on tools/data/calibration_decode.csv: "
    "XiongjieDai/GPU-Benchmarks-on-LLM-"
    "Inference, itsmostafa/inference-speed-tests, AlexsJones/llmfit community data and PR #1031, "
    "ml-explore/mlx-examples #1029, brand-o/normiebench, stared/benching-local-llms-on-apple-silicon)",
]


def _r(x: float, nd: int = 2) -> float:
    return float(round(x, nd))


def estimate_speed(p: EstimateSpeedInput) -> EstimateSpeedOutput:
    """Why both numbers: the ceiling is physics (never exceeded); the expectation is what people measure."""
    if p.cluster is not None:
        return _estimate_cluster(p)
    assumptions: list[str] = []
    sources: list[str] = []
    machine = resolve_machine(p.chip, p.gpu_cores, p.memory_gb, p.bandwidth_gbps)
    assumptions += machine.assumptions
    sources += machine.sources
    model, q, model_notes, model_sources = resolve_model_and_quant(
        p.model, p.params_billion, p.architecture, p.quant, p.context_tokens
    )
    assumptions += model_notes
    sources += model_sources
    entry = model.catalog_entry
    arch = model.arch
    total_b = arch.params_billion
    active_b = arch.active_params_billion or total_b
    w_total, wnote = weights_bytes(total_b, q, entry)
    if wnote:
        assumptions.append(wnote)
    if active_b < total_b:
        # MoE: only the routed experts (plus shared parts, included in the published active count) are read.
        w_active = w_total * active_b / total_b
        assumptions.append(
            f"MoE: {active_b:g}B of {total_b:g}B parameters are read per token; weights per token scaled "
            "accordingly (the calibration has no MoE rows, so the expectation is less certain)."
        )
    else:
        w_active = w_total
    if total_b < 3:
        assumptions.append(
            "Small model: embeddings/output stay at higher precision, so the real file can be ~5-10% larger."
        )
    kv = kv_cache_bytes(arch, p.context_tokens)
    bw = machine.bandwidth_gbps
    ceiling = bw * GB / (w_active + kv)

    sm = speed_model()
    tier = machine.tier
    if tier is None:
        tier = tier_from_bandwidth(bw)
        assumptions.append(f"Tier for the fixed per-token cost inferred from {bw:g} GB/s: {tier}.")
    generation = machine.bin.generation if machine.bin else None
    _, qnote = quant_weights(q)
    if qnote:
        assumptions.append(qnote)
    attn = attention_read_bytes(arch, p.context_tokens)
    if arch.n_heads is None:
        assumptions.append("Query-head count unknown: attention cost assumes 4 query heads per KV head.")
    t = sm.seconds_per_token(w_active, bw, tier, q, attn, generation)
    expected = min(1.0 / t, ceiling) if t > 0 else ceiling
    low = expected * sm.range_low
    if active_b < total_b:
        # Measured MoE rows (bench/estimator_accuracy.py, MoE check) run 20-40% below the dense-model
        # expectation: routing and many small expert matmuls add per-token work the dense fit does not see.
        low = expected * 0.6
        assumptions.append(
            "MoE models measured 20-40% below this expectation on an M4 Pro (llmfit community data: "
            "Qwen3-30B-A3B, gpt-oss-20b); the low end of the range reflects that."
        )
    high = min(expected * sm.range_high, ceiling)
    assumptions.append(
        f"Expected speed from the calibrated model T = W/BW*(a+d_quant) + t0[{tier}] + attention(context); "
        f"range = 10th-90th percentile of measured/predicted on the calibration rows. Engine: "
        f"llama.cpp/Ollama "
        f"for GGUF quants (MLX is typically 0-10% faster)."
    )
    if p.context_tokens > 16384:
        assumptions.append(
            "Long context: calibration data reaches ~16k tokens; beyond that the slow-down is extrapolated."
        )
    fits_on_gpu: bool | None = None
    if machine.memory_gb is not None:
        # The same rule as check_memory_fit (tools.fit.assess_gpu_fit), so the two tools never disagree.
        from tools.fit import gpu_budget, gpu_fit_for, quant_for_runtime

        fq, _ = quant_for_runtime(q, p.runtime)
        budget, _ = gpu_budget(float(machine.memory_gb), use_this_mac=p.chip is None)
        gf = gpu_fit_for(
            arch, fq, entry, p.context_tokens, float(machine.memory_gb), p.runtime, budget=budget
        )
        fits_on_gpu = gf.fits_on_gpu
        if not fits_on_gpu:
            assumptions.append(
                f"At {p.context_tokens} tokens this does not fit the GPU budget of a "
                f"{machine.memory_gb:g} GB Mac under {p.runtime} (check_memory_fit: {gf.verdict}); the "
                "estimate assumes it runs fully on the GPU."
            )

    prefill = None
    gen = machine.bin.generation if machine.bin else None
    if machine.bin is not None and gen is not None and gen in sm.prefill_tflops_per_core:
        cores = machine.gpu_cores or max(machine.bin.gpu_cores)
        if cores:
            prefill = sm.prefill_tflops_per_core[gen] * cores * 1e12 / (2 * active_b * 1e9)
            assumptions.append(
                f"Prefill ~ {sm.prefill_tflops_per_core[gen]:.3f} effective TFLOPS per GPU core (M{gen}, "
                f"from "
                f"llama.cpp pp512) x {cores} cores / (2 x {active_b:g}B); +-30%, falls at long prompts."
            )
            sources.append(sm.prefill_sources[gen])
    elif gen is not None:
        assumptions.append(f"Prefill not estimated: no pp512 measurement for M{gen} in our data.")
    return EstimateSpeedOutput(
        chip=machine.label,
        gpu_cores=machine.gpu_cores,
        bandwidth_gbps=_r(bw, 2),
        model=model.tag,
        params_billion=_r(total_b, 3),
        active_params_billion=_r(active_b, 3),
        quant=q.quant,
        bits_per_weight=_r(w_total * 8 / (total_b * 1e9), 3),
        weights_gb=_r(w_total / GB),
        active_weights_gb=_r(w_active / GB),
        kv_cache_gb=_r(kv / GB, 3),
        context_tokens=p.context_tokens,
        ceiling_tokens_per_second=_r(ceiling),
        expected_tokens_per_second=_r(expected),
        expected_range=(_r(low), _r(high)),
        efficiency=_r(expected / ceiling, 3),
        prefill_tokens_per_second=_r(prefill, 0) if prefill else None,
        runtime=p.runtime,
        fits_on_gpu=fits_on_gpu,
        assumptions=assumptions,
        sources=sources + SOURCES_SPEED,
    )


_SINGLE_NODE_FIT_NOTE = "does not fit the GPU budget of a"


def _estimate_cluster(p: EstimateSpeedInput) -> EstimateSpeedOutput:
    """A thin layer over the single-machine estimate: one node's decode as if the model fitted, scaled by the
    measured cluster factors in tools/data/clusters.yaml."""
    from tools.cluster import SOURCE as CLUSTER_SOURCE
    from tools.cluster import decode_factor, plan, prefill_factor
    from tools.fit import gpu_budget, gpu_fit_for, quant_for_runtime
    from tools.schemas import ClusterResult

    assert p.cluster is not None
    pl = plan(p.cluster, p.runtime)
    single = estimate_speed(p.model_copy(update={"cluster": None, "runtime": pl.runtime}))
    exp, low, high, why = decode_factor(pl, single.expected_tokens_per_second)
    low = min(low, decode_factor(pl, single.expected_range[0])[1])
    high = max(high, decode_factor(pl, single.expected_range[1])[2])
    n = pl.count
    ceiling = single.ceiling_tokens_per_second * (n if pl.split == "tensor" else 1)
    exp, low, high = min(exp, ceiling), min(low, ceiling), min(high, ceiling)
    notes = [a for a in single.assumptions if _SINGLE_NODE_FIT_NOTE not in a] + pl.notes
    notes.append(f"Cluster decode from one node's {single.expected_tokens_per_second:g} tok/s: {why}.")
    if pl.split == "tensor":
        notes.append(
            f"Ceiling: {n} nodes each read 1/{n} of the weights per token ({n} x one node's ceiling)."
        )
    else:
        notes.append("Ceiling: a pipeline still reads all weights once per token, one node after another.")
    fits: bool | None = None
    per_node_need = per_node_budget = None
    mem = resolve_machine(p.chip, p.gpu_cores, p.memory_gb, p.bandwidth_gbps).memory_gb
    if mem is not None or p.chip is not None:
        model, q, _, _ = resolve_model_and_quant(
            p.model, p.params_billion, p.architecture, p.quant, p.context_tokens
        )
        if mem is None:
            notes.append("memory_gb not given: whether the model fits the cluster is not checked.")
        else:
            fq, _ = quant_for_runtime(q, pl.runtime)
            budget, _ = gpu_budget(float(mem), use_this_mac=p.chip is None)
            gf = gpu_fit_for(
                model.arch,
                fq,
                model.catalog_entry,
                p.context_tokens,
                float(mem),
                pl.runtime,
                budget=budget,
                nodes=n,
            )
            fits = gf.fits_on_gpu
            per_node_need, per_node_budget = _r(gf.need.gpu_total / GB), _r(budget / GB)
            if not fits:
                notes.append(
                    f"At {p.context_tokens} tokens this does not fit {n} x {mem:g} GB (check_memory_fit "
                    f"with the same cluster: {gf.verdict}); the estimate assumes it does."
                )
    prefill = single.prefill_tokens_per_second
    if prefill is not None:
        prefill = _r(prefill * prefill_factor(pl), 0)
        notes.append(
            f"Prefill x {prefill_factor(pl):.2f} for {n} nodes ({pl.split}: tensor parallel measured 233 -> "
            "363 tok/s from 2 to 4 nodes at 10K context, exo #1468; a pipeline does not speed up one prompt)."
        )
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
            "assumptions": notes,
            "sources": single.sources + [CLUSTER_SOURCE],
        }
    )
