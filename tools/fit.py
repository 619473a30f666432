"""check_memory_fit: will weights + KV cache + compute buffer fit the Metal GPU budget of a Mac?

Units: every ``*_gb`` output is 1e9 bytes. Apple's "48 GB" of unified memory is 48 GiB (48 x 2^30 bytes =
51.5 GB); the default GPU budget is a fraction of that (recommendedMaxWorkingSetSize).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tools.catalog import (
    GB,
    GIB,
    CatalogModel,
    QuantSpec,
    kv_cache_bytes,
    load_yaml,
    quants,
    resolve_machine,
    resolve_model_and_quant,
    weights_bytes,
)
from tools.registry import ToolError
from tools.schemas import CheckMemoryFitInput, CheckMemoryFitOutput, MemoryBreakdown, ModelArchitecture

N_BATCH = 512  # llama.cpp / Ollama default physical batch
VOCAB_ASSUMED = 152_064  # largest common vocab (Qwen2.5); only sizes the logits buffer
MARGIN_BYTES = 1 * GIB  # llama.cpp --fit-target default (1024 MiB free per device)
QUANT_LADDER = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_K_S", "IQ4_XS", "Q3_K_M", "IQ3_XXS", "Q2_K")
MAC_MEMORY_SIZES = (8, 16, 18, 24, 32, 36, 48, 64, 96, 128, 192, 256, 512)

SOURCES_FIT = [
    "reference/domain-notes.md 2.2 (KV = 2 x layers x kv_heads x head_dim x ctx x bytes x parallel; Ollama "
    "fs/ggml/ggml.go GraphSize incl. Gemma SWA)",
    "reference/domain-notes.md 2.3 (compute graph: Ollama llm/memory.go llama formula; llama.cpp "
    "--fit-target "
    "1024 MiB margin)",
    "reference/domain-notes.md 2.4 + tools/data/gpu_working_set.yaml (Metal recommendedMaxWorkingSetSize: "
    "2/3 of RAM up to 36 GB, 3/4 above; iogpu.wired_limit_mb override)",
]


def default_gpu_fraction(memory_gb: float) -> float:
    for rule in load_yaml("gpu_working_set.yaml")["rule"]:
        if memory_gb <= float(rule["max_installed_gb"]):
            return float(rule["fraction"])
    return 0.75


def os_headroom_gb(ram_gb: float) -> float:
    """Memory macOS and everyday apps keep (domain-notes 2.4: ~4-8 GB)."""
    return min(8.0, max(4.0, 0.1 * ram_gb))


def compute_buffer_bytes(arch: ModelArchitecture, ctx_total: int) -> tuple[float, float]:
    """(with flash attention, without) -- Ollama's llama graph formula; FA removes the ctx x heads scores
    term.

    Why assume FA: Ollama >= 0.30 runs llama-server, whose flash attention is on by default on Metal, and KV
    quantisation requires it. The no-FA figure is returned so the caller can say what turning it off costs.
    """
    heads = arch.n_heads or arch.n_kv_heads * 4
    hidden = heads * arch.head_dim
    logits = 4 * N_BATCH * (hidden + VOCAB_ASSUMED)
    with_fa = max(4 * N_BATCH * (1 + 4 * hidden), logits)
    without = max(4 * N_BATCH * (1 + 4 * hidden + ctx_total * (1 + heads)), logits)
    return float(with_fa), float(without)


@dataclass
class _Need:
    weights: float
    kv: float
    compute: float
    compute_no_fa: float

    @property
    def overhead(self) -> float:
        return self.compute + MARGIN_BYTES

    @property
    def gpu_total(self) -> float:
        return self.weights + self.kv + self.overhead


def _need(
    arch: ModelArchitecture, q: QuantSpec, entry: CatalogModel | None, ctx: int, kv_type: str, parallel: int
) -> _Need:
    w, _ = weights_bytes(arch.params_billion, q, entry)
    kv = kv_cache_bytes(arch, ctx, kv_type, parallel)
    c, c_nofa = compute_buffer_bytes(arch, ctx * parallel)
    return _Need(w, kv, c, c_nofa)


def _max_context(
    arch: ModelArchitecture,
    q: QuantSpec,
    entry: CatalogModel | None,
    kv_type: str,
    parallel: int,
    budget: float,
) -> int:
    if _need(arch, q, entry, 1, kv_type, parallel).gpu_total > budget:
        return 0
    lo, hi = 1, arch.native_context
    if _need(arch, q, entry, hi, kv_type, parallel).gpu_total <= budget:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _need(arch, q, entry, mid, kv_type, parallel).gpu_total <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def _g(x: float) -> float:
    return float(round(x / GB, 2))


def check_memory_fit(p: CheckMemoryFitInput) -> CheckMemoryFitOutput:
    assumptions: list[str] = []
    sources: list[str] = []
    machine = resolve_machine(p.chip, p.gpu_cores, p.memory_gb, need_memory=True)
    assumptions += machine.assumptions
    sources += machine.sources
    if machine.memory_gb is None:  # resolve_machine guarantees it; keeps the type checker honest
        raise ToolError("memory_gb: required for a fit check.", fields=["memory_gb"])
    mem_gb = float(machine.memory_gb)
    model, q, model_notes, model_sources = resolve_model_and_quant(
        p.model, p.params_billion, p.architecture, p.quant, p.context_tokens
    )
    assumptions += model_notes
    sources += model_sources
    entry = model.catalog_entry
    arch = model.arch

    ram = mem_gb * GIB
    from tools.this_mac import detect

    budget_src: str
    if p.gpu_memory_limit_gb is not None:
        budget = p.gpu_memory_limit_gb * GB
        budget_src = (
            f"given gpu_memory_limit_gb = {p.gpu_memory_limit_gb:g} GB (iogpu.wired_limit_mb override)"
        )
        if budget > ram:
            raise ToolError(
                f"gpu_memory_limit_gb: {p.gpu_memory_limit_gb:g} GB exceeds the machine's "
                f"{mem_gb:g} GB ({ram / GB:.1f} GB) of RAM.",
                fields=["gpu_memory_limit_gb"],
            )
    else:
        mac = detect() if p.chip is None else None
        if mac is not None and mac.wired_limit_mb:
            budget = mac.wired_limit_mb * 2**20
            budget_src = f"this Mac's iogpu.wired_limit_mb = {mac.wired_limit_mb}"
        else:
            frac = default_gpu_fraction(mem_gb)
            budget = frac * ram
            budget_src = (
                f"macOS default GPU budget {frac:.3g} x {mem_gb:g} GiB = {budget / GIB:.2f} GiB "
                f"({budget / GB:.2f} GB); macOS 26 may allow up to ~0.84"
            )
    assumptions.append(f"GPU budget: {budget_src}.")
    assumptions.append(
        f"Apple's '{mem_gb:g} GB' is {mem_gb:g} GiB = {ram / GB:.2f} GB; all *_gb figures are 1e9 bytes."
    )

    need = _need(arch, q, entry, p.context_tokens, p.kv_cache_type, p.parallel)
    _, wnote = weights_bytes(arch.params_billion, q, entry)
    if wnote:
        assumptions.append(wnote)
    if p.kv_cache_type != "f16":
        assumptions.append(
            f"KV cache {p.kv_cache_type} needs flash attention (OLLAMA_FLASH_ATTENTION=1 with "
            f"OLLAMA_KV_CACHE_TYPE={p.kv_cache_type}); sized at its true block size (q8_0 34/32, q4_0 "
            f"18/32 B/elem)."
        )
    if arch.sliding_window and arch.global_layer_every:
        assumptions.append(
            f"Sliding-window attention: only every {arch.global_layer_every}th layer caches the full "
            f"context, the "
            f"rest cache {arch.sliding_window} tokens."
        )
    assumptions.append(
        f"Overhead = compute buffer {need.compute / GB:.2f} GB (flash attention on, the llama-server "
        f"default on "
        f"Metal; without it {need.compute_no_fa / GB:.2f} GB) + llama.cpp's 1 GiB free-memory margin."
    )
    os_gb = os_headroom_gb(ram / GB)
    ram_need = need.weights + need.kv + need.compute + os_gb * GB
    headroom = budget - need.gpu_total
    tight_threshold = max(0.5 * GB, 0.05 * budget)
    if headroom >= 0:
        if ram_need > ram:
            verdict = "tight"
            assumptions.append(
                f"Fits the GPU budget but leaves less than {os_gb:g} GB for macOS and apps: expect swapping."
            )
        else:
            verdict = "tight" if headroom < tight_threshold else "fits"
    else:
        verdict = "partial_offload" if ram_need <= ram else "does_not_fit"
    fits = verdict in ("fits", "tight")
    max_ctx = _max_context(arch, q, entry, p.kv_cache_type, p.parallel, budget)

    suggestions = _suggestions(
        p, arch, q, entry, need, budget, ram, mem_gb, os_gb, verdict, max_ctx, tight_threshold
    )
    if verdict == "partial_offload":
        suggestions.insert(
            0,
            "As is, Ollama/llama.cpp would first shrink the context, then keep some layers on the CPU: "
            "it runs, "
            "but several times slower (CPU layers read at a fraction of GPU speed).",
        )
    return CheckMemoryFitOutput(
        verdict=verdict,  # type: ignore[arg-type]
        fits_on_gpu=fits,
        chip=machine.label,
        memory_gb=mem_gb,
        model=model.tag,
        params_billion=round(arch.params_billion, 3),
        quant=q.quant,
        bits_per_weight=round(need.weights * 8 / (arch.params_billion * 1e9), 3),
        context_tokens=p.context_tokens,
        kv_cache_type=p.kv_cache_type,
        parallel=p.parallel,
        breakdown=MemoryBreakdown(
            weights_gb=_g(need.weights),
            kv_cache_gb=_g(need.kv),
            overhead_gb=_g(need.overhead),
            total_gb=_g(need.gpu_total),
            gpu_budget_gb=_g(budget),
            headroom_gb=_g(headroom),
            ram_gb=_g(ram),
            os_headroom_gb=round(os_gb, 2),
        ),
        max_context_tokens=max_ctx,
        suggestions=suggestions,
        assumptions=assumptions,
        sources=sources + SOURCES_FIT,
    )


def _suggestions(
    p: CheckMemoryFitInput,
    arch: ModelArchitecture,
    q: QuantSpec,
    entry: CatalogModel | None,
    need: _Need,
    budget: float,
    ram: float,
    mem_gb: float,
    os_gb: float,
    verdict: str,
    max_ctx: int,
    tight_threshold: float,
) -> list[str]:
    out: list[str] = []
    ctx, kv_type, par = p.context_tokens, p.kv_cache_type, p.parallel
    if verdict == "fits":
        if max_ctx >= arch.native_context:
            out.append(f"Even the full trained context ({arch.native_context} tokens) fits.")
        else:
            out.append(f"Context up to ~{max_ctx} tokens fits with these settings.")
        return out
    table = quants()
    cur_bpw = q.bpw(arch.params_billion)
    for name in QUANT_LADDER:
        cand = table[name]
        if cand.bpw(arch.params_billion) >= cur_bpw - 1e-9:
            continue
        n2 = _need(arch, cand, entry, ctx, kv_type, par)
        if budget - n2.gpu_total >= tight_threshold:
            warn = " Below 4 bits quality drops noticeably." if cand.nominal_bpw < 4 else ""
            out.append(
                f"Use {name}: weights {_g(n2.weights)} GB, total {_g(n2.gpu_total)} GB, fits with "
                f"{_g(budget - n2.gpu_total)} GB to spare.{warn}"
            )
            break
    if 0 < max_ctx < ctx:
        out.append(f"Reduce the context to {max_ctx} tokens or less (num_ctx / OLLAMA_CONTEXT_LENGTH).")
    if kv_type == "f16" and need.kv > 0.5 * GB:
        n2 = _need(arch, q, entry, ctx, "q8_0", par)
        fits2 = "then fits" if budget - n2.gpu_total >= 0 else "still not enough alone"
        out.append(
            f"Quantise the KV cache: OLLAMA_FLASH_ATTENTION=1 OLLAMA_KV_CACHE_TYPE=q8_0 cuts it from "
            f"{_g(need.kv)} to {_g(n2.kv)} GB ({fits2}); small quality cost."
        )
    if par > 1:
        n2 = _need(arch, q, entry, ctx, kv_type, 1)
        out.append(f"Use OLLAMA_NUM_PARALLEL=1: KV cache drops to {_g(n2.kv)} GB.")
    reserve = max(8 * GB, 0.1 * ram)
    wanted = need.gpu_total + 0.5 * GB
    if wanted <= ram - reserve and wanted > budget:
        mib = int(math.ceil(wanted / 2**20 / 1024) * 1024)
        wired = load_yaml("gpu_working_set.yaml")["override"]
        out.append(
            f"Raise the GPU limit: `sudo sysctl iogpu.wired_limit_mb={mib}` ({mib / 1024:.0f} GiB of "
            f"{mem_gb:g}). Risk: {wired['risk']} Resets on reboot."
        )
    if verdict in ("does_not_fit", "partial_offload") or not out:
        for size in MAC_MEMORY_SIZES:
            r = size * GIB
            if need.gpu_total <= default_gpu_fraction(size) * r:
                out.append(
                    f"A Mac with {size} GB or more runs this as configured within the default GPU budget."
                )
                break
        else:
            out.append("No single Mac holds this as configured; use a smaller quant or model.")
    return out
