"""check_memory_fit: will weights + KV cache + compute buffer fit the Metal GPU budget of a Mac?

Units: every ``*_gb`` output is 1e9 bytes. Apple's "48 GB" of unified memory is 48 GiB (48 x 2^30 bytes =
51.5 GB); the default GPU budget is a fraction of that (recommendedMaxWorkingSetSize).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from tools.chips import MachineSpec, resolve_machine
from tools.cluster import SOURCE as CLUSTER_SOURCE
from tools.cluster import ClusterPlan
from tools.cluster import plan as cluster_plan
from tools.data_files import GB, GIB, load_yaml
from tools.models import CatalogModel, ResolvedModel, quant_allowed, resolve_model_and_quant
from tools.quants import QuantSpec, quants
from tools.registry import ToolError
from tools.schemas import (
    CheckMemoryFitInput,
    CheckMemoryFitOutput,
    ClusterResult,
    MemoryBreakdown,
    ModelArchitecture,
)
from tools.sizes import kv_cache_bytes, query_heads, weights_in_memory

N_BATCH = 512  # llama.cpp / Ollama default physical batch
VOCAB_ASSUMED = 152_064  # largest common vocab (Qwen2.5); only sizes the logits buffer
# Vocabulary per family (largest in the family), for the logits part of the compute buffer. Source:
# each family's HF config.json vocab_size; gptoss: openai/gpt-oss config.json.
VOCAB_BY_FAMILY = {
    "llama": 128_256,
    "qwen2": 152_064,
    "qwen3": 151_936,
    "qwen3moe": 151_936,
    "gemma2": 256_000,
    "gemma3": 262_208,
    "phi3": 100_352,
    "gptoss": 201_088,
}
QUANT_LADDER = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_K_S", "IQ4_XS", "Q3_K_M", "IQ3_XXS", "Q2_K")
MLX_QUANT_LADDER = ("MLX-8bit", "MLX-6bit", "MLX-4bit", "MLX-3bit")
# How to set context and KV-cache type in each runtime (for suggestions).
_RUNTIME_KNOBS = {
    "ollama": ("num_ctx / OLLAMA_CONTEXT_LENGTH", "OLLAMA_FLASH_ATTENTION=1 OLLAMA_KV_CACHE_TYPE=q8_0"),
    "llama.cpp": ("-c / --ctx-size", "-fa on -ctk q8_0 -ctv q8_0"),
    "mlx": ("--max-kv-size", "--kv-bits 8 (mlx-lm)"),
}
MAC_MEMORY_SIZES = (8, 16, 18, 24, 32, 36, 48, 64, 96, 128, 192, 256, 512)

SOURCES_FIT = [
    "KV cache = 2 x layers x kv_heads x head_dim x ctx x bytes x parallel (Ollama fs/ggml/ggml.go GraphSize, "
    "incl. Gemma sliding-window layers)",
    "compute buffer: Ollama llm/memory.go llama graph formula; llama.cpp --fit-target 1024 MiB margin",
    "tools/data/gpu_working_set.yaml (Metal recommendedMaxWorkingSetSize: 2/3 of RAM up to 36 GB, 3/4 above; "
    "iogpu.wired_limit_mb override; memory left to macOS)",
]


def default_gpu_fraction(memory_gb: float) -> float:
    for rule in load_yaml("gpu_working_set.yaml")["rule"]:
        if memory_gb <= float(rule["max_installed_gb"]):
            return float(rule["fraction"])
    return 0.75


@dataclass(frozen=True)
class RuntimeSpec:
    name: str
    label: str
    margin_bytes: float
    tight_below_bytes: float
    tight_above_fraction: float | None
    cpu_offload: bool
    note: str
    source: str


def runtime_spec(name: str) -> RuntimeSpec:
    r = load_yaml("runtimes.yaml")["runtimes"][name]
    frac = r.get("tight_above_fraction")
    return RuntimeSpec(
        name=name,
        label=str(r["label"]),
        margin_bytes=float(r["margin_mib"]) * 2**20,
        tight_below_bytes=float(r["tight_below_mib"]) * 2**20,
        tight_above_fraction=float(frac) if frac is not None else None,
        cpu_offload=bool(r["cpu_offload"]),
        note=str(r["note"]),
        source=f"runtime {name}: {r['source']}",
    )


def gpu_budget(
    mem_gb: float, *, override_gb: float | None = None, use_this_mac: bool = False
) -> tuple[float, str]:
    """The Metal GPU budget in bytes and where it came from -- the one rule both tools use."""
    ram = mem_gb * GIB
    if override_gb is not None:
        if override_gb * GB > ram:
            raise ToolError(
                f"gpu_memory_limit_gb: {override_gb:g} GB exceeds the machine's "
                f"{mem_gb:g} GB ({ram / GB:.1f} GB) of RAM.",
                fields=["gpu_memory_limit_gb"],
            )
        return (
            override_gb * GB,
            f"given gpu_memory_limit_gb = {override_gb:g} GB (iogpu.wired_limit_mb override)",
        )
    if use_this_mac:
        from tools.this_mac import detect

        mac = detect()
        if mac is not None and mac.wired_limit_mb:
            return mac.wired_limit_mb * 2**20, f"this Mac's iogpu.wired_limit_mb = {mac.wired_limit_mb}"
    frac = default_gpu_fraction(mem_gb)
    budget = frac * ram
    return budget, (
        f"macOS default GPU budget {frac:.3g} x {mem_gb:g} GiB = {budget / GIB:.2f} GiB "
        f"({budget / GB:.2f} GB); macOS 26 may allow up to ~0.84"
    )


_MLX_BY_BITS = ((3.0, "MLX-3bit"), (4.0, "MLX-4bit"), (6.0, "MLX-6bit"), (8.0, "MLX-8bit"))


def quant_for_runtime(q: QuantSpec, runtime: str) -> tuple[QuantSpec, list[str]]:
    """MLX runs its own quantisations, Ollama/llama.cpp run GGUF: read a quant the runtime cannot load as the
    runtime's nearest equivalent, and say so."""
    table = quants()
    if runtime == "mlx" and q.engine != "mlx" and q.quant != "MXFP4":
        if q.family == "float":
            name = "MLX-BF16"
        else:
            name = min(_MLX_BY_BITS, key=lambda bn: abs(bn[0] - (q.nominal_bpw - 0.5)))[1]
        return table[name], [f"MLX does not load GGUF {q.quant}: sized as its MLX equivalent, {name}."]
    if runtime == "ollama" and q.engine == "mlx":
        # Ollama's 2026 library ships -mlx and -nvfp4 tags, which it runs with its MLX engine on Macs.
        return q, [
            f"{q.quant} is an MLX format: Ollama runs it with its MLX engine (the library's -mlx / -nvfp4 "
            "tags); sized as given, judged by Ollama's placement rule (whether that engine can offload "
            "layers to the CPU is not in our sources)."
        ]
    if runtime != "mlx" and q.engine == "mlx":
        return q, [f"{q.quant} is an MLX format; {runtime} loads GGUF files (sized as given)."]
    return q, []


def os_headroom_gb(ram_gb: float) -> float:
    """Memory left to macOS and everyday apps: the one rule (tools/data/gpu_working_set.yaml macos_reserve).

    The RAM check keeps it free and the wired-limit suggestion leaves it.
    """
    r = load_yaml("gpu_working_set.yaml")["macos_reserve"]
    return min(float(r["max_gb"]), max(float(r["min_gb"]), float(r["fraction"]) * ram_gb))


def compute_buffer_bytes(arch: ModelArchitecture, ctx_total: int) -> tuple[float, float]:
    """(with flash attention, without) -- Ollama's llama graph formula; FA removes the ctx x heads scores
    term.

    Why assume FA: Ollama >= 0.30 runs llama-server, whose flash attention is on by default on Metal, and KV
    quantisation requires it. The no-FA figure is returned so the caller can say what turning it off costs.
    """
    heads = query_heads(arch)
    hidden = heads * arch.head_dim
    logits = 4 * N_BATCH * (hidden + VOCAB_BY_FAMILY.get(arch.family or "", VOCAB_ASSUMED))
    with_fa = max(4 * N_BATCH * (1 + 4 * hidden), logits)
    without = max(4 * N_BATCH * (1 + 4 * hidden + ctx_total * (1 + heads)), logits)
    return float(with_fa), float(without)


@dataclass
class _Need:
    weights: float
    kv: float
    compute: float
    compute_no_fa: float
    margin: float = 0.0
    nodes: int = 1  # a cluster: each node holds 1/nodes of weights and KV plus its own compute buffer

    @property
    def overhead(self) -> float:
        return self.compute + self.margin

    @property
    def gpu_total(self) -> float:
        """GPU memory one node needs (the whole model on a single Mac)."""
        return (self.weights + self.kv) / self.nodes + self.overhead


def _need(
    arch: ModelArchitecture,
    q: QuantSpec,
    entry: CatalogModel | None,
    ctx: int,
    kv_type: str,
    parallel: int,
    margin: float = 0.0,
    nodes: int = 1,
) -> _Need:
    w, _ = weights_in_memory(arch, q, entry)
    kv = kv_cache_bytes(arch, ctx, kv_type, parallel)
    c, c_nofa = compute_buffer_bytes(arch, ctx * parallel)
    return _Need(w, kv, c, c_nofa, margin, nodes)


@dataclass
class GpuFit:
    verdict: str
    need: _Need
    budget: float
    ram: float
    os_gb: float
    tight_threshold: float
    notes: list[str]

    @property
    def fits_on_gpu(self) -> bool:
        return self.verdict in ("fits", "tight")

    @property
    def headroom(self) -> float:
        return self.budget - self.need.gpu_total


def assess_gpu_fit(need: _Need, budget: float, mem_gb: float, rt: RuntimeSpec) -> GpuFit:
    """The single memory rule: check_memory_fit's verdict and estimate_speed's warning both come from here."""
    ram = mem_gb * GIB
    notes: list[str] = []
    os_gb = os_headroom_gb(ram / GB)
    ram_need = (need.weights + need.kv) / need.nodes + need.compute + os_gb * GB
    headroom = budget - need.gpu_total
    tight_threshold = max(0.5 * GB, 0.05 * budget, rt.tight_below_bytes)
    if headroom >= 0:
        if ram_need > ram:
            verdict = "tight"
            notes.append(
                f"Fits the GPU budget but leaves less than {os_gb:g} GB for macOS and apps: expect swapping."
            )
        elif rt.tight_above_fraction is not None and need.gpu_total > rt.tight_above_fraction * budget:
            verdict = "tight"
            notes.append(
                f"{rt.label}: above {rt.tight_above_fraction:g} of the GPU budget, which mlx-lm warns "
                "may be slow."
            )
        else:
            verdict = "tight" if headroom < tight_threshold else "fits"
        if rt.name == "llama.cpp" and headroom < rt.tight_below_bytes:
            notes.append(
                "llama-server's default --fit keeps 1 GiB free (--fit-target 1024 MiB): with less "
                "headroom it shrinks the context or moves layers to the CPU; load with -ngl 99 and a "
                "smaller --fit-target to keep everything on the GPU."
            )
    elif rt.cpu_offload:
        verdict = "partial_offload" if ram_need <= ram else "does_not_fit"
    else:
        verdict = "does_not_fit"
        notes.append(
            f"{rt.label} has no CPU offload: beyond the GPU budget it pages heavily or fails to load."
        )
    return GpuFit(verdict, need, budget, ram, os_gb, tight_threshold, notes)


def gpu_fit_for(
    arch: ModelArchitecture,
    q: QuantSpec,
    entry: CatalogModel | None,
    ctx: int,
    mem_gb: float,
    runtime: str,
    *,
    budget: float | None = None,
    nodes: int = 1,
) -> GpuFit:
    rt = runtime_spec(runtime)
    if budget is None:
        budget, _ = gpu_budget(mem_gb)
    need = _need(arch, q, entry, ctx, kv_type="f16", parallel=1, margin=rt.margin_bytes, nodes=nodes)
    return assess_gpu_fit(need, budget, mem_gb, rt)


def _max_context(need_at: Callable[[int], _Need], native_context: int, budget: float) -> int:
    """The largest context (up to the trained one) whose need fits the budget; 0 when none does."""
    if need_at(1).gpu_total > budget:
        return 0
    lo, hi = 1, native_context
    if need_at(hi).gpu_total <= budget:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if need_at(mid).gpu_total <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def _g(x: float) -> float:
    return float(round(x / GB, 2))


def _resolve(
    p: CheckMemoryFitInput,
) -> tuple[MachineSpec, float, ResolvedModel, QuantSpec, list[str], list[str]]:
    """(machine, its memory in GB, model, quant, assumptions, sources) as the fit check reads the input."""
    machine = resolve_machine(p.chip, p.gpu_cores, p.memory_gb, need_memory=True)
    if machine.memory_gb is None:  # resolve_machine guarantees it; keeps the type checker honest
        raise ToolError("memory_gb: required for a fit check.", fields=["memory_gb"])
    model, q, model_notes, model_sources = resolve_model_and_quant(
        p.model, p.params_billion, p.architecture, p.quant, p.context_tokens
    )
    assumptions = machine.assumptions + model_notes
    sources = machine.sources + model_sources
    return machine, float(machine.memory_gb), model, q, assumptions, sources


@dataclass
class _Assessed:
    """The fit check's reading of its input and its verdict, before the report (max context, suggestions)."""

    machine: MachineSpec
    mem_gb: float
    model: ResolvedModel
    q: QuantSpec
    plan: ClusterPlan | None
    runtime: str
    rt: RuntimeSpec
    budget: float
    need: _Need
    gf: GpuFit
    assumptions: list[str]  # up to the GPU budget; the sizing and verdict notes are the report's
    sources: list[str]


def _assess(p: CheckMemoryFitInput) -> _Assessed:
    machine, mem_gb, model, q, assumptions, sources = _resolve(p)
    plan = cluster_plan(p.cluster, p.runtime, machine.chip) if p.cluster is not None else None
    if plan is not None:
        assumptions += plan.notes
        sources.append(CLUSTER_SOURCE)
    runtime: str = plan.runtime if plan else p.runtime
    nodes = plan.count if plan else 1
    rt = runtime_spec(runtime)
    q, rnotes = quant_for_runtime(q, runtime)
    assumptions += rnotes
    budget, budget_src = gpu_budget(mem_gb, override_gb=p.gpu_memory_limit_gb, use_this_mac=p.chip is None)
    assumptions += [
        f"Verdict for {rt.label}: {rt.note}",
        f"GPU budget: {budget_src}.",
        f"Apple's '{mem_gb:g} GB' is {mem_gb:g} GiB = {mem_gb * GIB / GB:.2f} GB; all *_gb figures are 1e9 "
        "bytes.",
    ]
    need = _need(
        model.arch,
        q,
        model.sizing_entry,
        p.context_tokens,
        p.kv_cache_type,
        p.parallel,
        rt.margin_bytes,
        nodes,
    )
    gf = assess_gpu_fit(need, budget, mem_gb, rt)
    return _Assessed(machine, mem_gb, model, q, plan, runtime, rt, budget, need, gf, assumptions, sources)


def memory_fit_verdict(p: CheckMemoryFitInput) -> GpuFit:
    """check_memory_fit's verdict alone: the same reading and rule, without the largest-context search, the
    suggestions and the report (recommend_machine asks this of every candidate and reports only the verdict).
    """
    return _assess(p).gf


def check_memory_fit(p: CheckMemoryFitInput) -> CheckMemoryFitOutput:
    a = _assess(p)
    entry, arch, q, rt, need, gf = a.model.sizing_entry, a.model.arch, a.q, a.rt, a.need, a.gf
    nodes = need.nodes
    assumptions = a.assumptions + _sizing_notes(p, arch, q, entry, need, rt) + gf.notes
    max_ctx = _max_context(
        lambda ctx: _need(arch, q, entry, ctx, p.kv_cache_type, p.parallel, rt.margin_bytes, nodes),
        arch.native_context,
        a.budget,
    )
    cluster_out = None
    if a.plan is not None:
        cluster_out = _cluster_result(a.plan, a.runtime, need, a.budget, a.mem_gb)
        assumptions.append(
            f"Cluster: breakdown total_gb, gpu_budget_gb and headroom_gb are per node ({nodes} nodes, "
            f"{nodes * a.mem_gb:g} GB in all)."
        )
    suggestions = _suggestions(p, arch, q, entry, gf, a.mem_gb, max_ctx, a.runtime)
    return CheckMemoryFitOutput(
        verdict=gf.verdict,  # type: ignore[arg-type]
        fits_on_gpu=gf.fits_on_gpu,
        runtime=a.runtime,
        cluster=cluster_out,
        chip=a.machine.label,
        memory_gb=a.mem_gb,
        model=a.model.tag,
        params_billion=round(arch.params_billion, 3),
        quant=q.quant,
        bits_per_weight=round(need.weights * 8 / (arch.params_billion * 1e9), 3),
        context_tokens=p.context_tokens,
        kv_cache_type=p.kv_cache_type,
        parallel=p.parallel,
        breakdown=_breakdown(gf),
        max_context_tokens=max_ctx,
        suggestions=suggestions,
        assumptions=assumptions,
        sources=a.sources + SOURCES_FIT,
    )


def _breakdown(gf: GpuFit) -> MemoryBreakdown:
    need = gf.need
    return MemoryBreakdown(
        weights_gb=_g(need.weights),
        kv_cache_gb=_g(need.kv),
        overhead_gb=_g(need.overhead),
        total_gb=_g(need.gpu_total),
        gpu_budget_gb=_g(gf.budget),
        headroom_gb=_g(gf.headroom),
        ram_gb=_g(gf.ram),
        os_headroom_gb=round(gf.os_gb, 2),
    )


def _cluster_result(
    plan: ClusterPlan, runtime: str, need: _Need, budget: float, mem_gb: float
) -> ClusterResult:
    return ClusterResult(
        nodes=plan.count,
        link=plan.link,
        split=plan.split,
        runtime=runtime,
        total_memory_gb=plan.count * mem_gb,
        per_node_need_gb=_g(need.gpu_total),
        per_node_budget_gb=_g(budget),
        notes=plan.notes,
    )


def _sizing_notes(
    p: CheckMemoryFitInput,
    arch: ModelArchitecture,
    q: QuantSpec,
    entry: CatalogModel | None,
    need: _Need,
    rt: RuntimeSpec,
) -> list[str]:
    """How weights, KV cache and overhead were sized (for assumptions)."""
    notes = weights_in_memory(arch, q, entry)[1]
    if p.kv_cache_type != "f16":
        kv = p.kv_cache_type
        how = {
            "ollama": f"needs flash attention (OLLAMA_FLASH_ATTENTION=1 with OLLAMA_KV_CACHE_TYPE={kv})",
            "llama.cpp": f"needs flash attention (-fa on -ctk {kv} -ctv {kv})",
            "mlx": f"is mlx-lm's --kv-bits {kv[1]} (group-quantised, about the same size)",
        }[rt.name]
        notes.append(f"KV cache {kv} {how}; sized at its true block size (q8_0 34/32, q4_0 18/32 B/elem).")
    if arch.sliding_window and arch.global_layer_every:
        notes.append(
            f"Sliding-window attention: only every {arch.global_layer_every}th layer caches the full "
            f"context, the rest cache {arch.sliding_window} tokens."
        )
    margin = f" + {rt.margin_bytes / GB:.2f} GB runtime margin" if rt.margin_bytes else ""
    notes.append(
        f"Overhead = compute buffer {need.compute / GB:.2f} GB (flash attention on, the llama-server "
        f"default on Metal; without it {need.compute_no_fa / GB:.2f} GB){margin}."
    )
    return notes


def _suggestions(
    p: CheckMemoryFitInput,
    arch: ModelArchitecture,
    q: QuantSpec,
    entry: CatalogModel | None,
    gf: GpuFit,
    mem_gb: float,
    max_ctx: int,
    runtime: str = "ollama",
) -> list[str]:
    out: list[str] = []
    if gf.verdict == "partial_offload":
        out.append(
            f"As is, {runtime_spec(runtime).label} would first shrink the context, then keep some layers on "
            "the CPU: it runs, but several times slower (CPU layers read at a fraction of GPU speed)."
        )
    need, budget = gf.need, gf.budget
    ctx_knob, kv_knob = _RUNTIME_KNOBS.get(runtime, _RUNTIME_KNOBS["ollama"])
    ctx, kv_type, par = p.context_tokens, p.kv_cache_type, p.parallel
    if gf.verdict == "fits":
        if max_ctx >= arch.native_context:
            out.append(f"Even the full trained context ({arch.native_context} tokens) fits.")
        else:
            out.append(f"Context up to ~{max_ctx} tokens fits with these settings.")
        return out
    out += _smaller_quant(arch, q, entry, gf, ctx, kv_type, par, runtime)
    if 0 < max_ctx < ctx:
        out.append(f"Reduce the context to {max_ctx} tokens or less ({ctx_knob}).")
    if kv_type == "f16" and need.kv > 0.5 * GB:
        n2 = _need(arch, q, entry, ctx, "q8_0", par, need.margin, need.nodes)
        fits2 = "then fits" if budget - n2.gpu_total >= 0 else "still not enough alone"
        out.append(
            f"Quantise the KV cache: {kv_knob} cuts it from "
            f"{_g(need.kv)} to {_g(n2.kv)} GB ({fits2}); small quality cost."
        )
    if par > 1:
        n2 = _need(arch, q, entry, ctx, kv_type, 1, need.margin, need.nodes)
        knob = {
            "ollama": "OLLAMA_NUM_PARALLEL=1",
            "llama.cpp": "one parallel slot (-np 1)",
            "mlx": "one request at a time (no batched requests)",
        }.get(runtime, "one parallel slot")
        out.append(f"Use {knob}: KV cache drops to {_g(n2.kv)} GB.")
    reserve = gf.os_gb * GB
    wanted = need.gpu_total + 0.5 * GB
    if wanted <= gf.ram - reserve and wanted > budget:
        mib = int(math.ceil(wanted / 2**20 / 1024) * 1024)
        wired = load_yaml("gpu_working_set.yaml")["override"]
        out.append(
            f"Raise the GPU limit: `sudo sysctl iogpu.wired_limit_mb={mib}` ({mib / 1024:.0f} GiB of "
            f"{mem_gb:g}). Risk: {wired['risk']} Resets on reboot."
        )
    if gf.verdict in ("does_not_fit", "partial_offload") or not out:
        out.append(_bigger_mac(need))
    return out


def _smaller_quant(
    arch: ModelArchitecture,
    q: QuantSpec,
    entry: CatalogModel | None,
    gf: GpuFit,
    ctx: int,
    kv_type: str,
    par: int,
    runtime: str,
) -> list[str]:
    """The largest smaller quant (that exists for this model) which fits with headroom, if any."""
    table = quants()
    cur_bpw = q.bpw(arch.params_billion)
    for name in MLX_QUANT_LADDER if runtime == "mlx" else QUANT_LADDER:
        cand = table[name]
        if cand.bpw(arch.params_billion) >= cur_bpw - 1e-9 or not quant_allowed(entry, name):
            continue  # not smaller, or does not exist for this model (gpt-oss: MXFP4 experts only)
        n2 = _need(arch, cand, entry, ctx, kv_type, par, gf.need.margin, gf.need.nodes)
        if gf.budget - n2.gpu_total >= gf.tight_threshold:
            warn = " Below 4 bits quality drops noticeably." if cand.nominal_bpw < 4 else ""
            return [
                f"Use {name}: weights {_g(n2.weights)} GB, total {_g(n2.gpu_total)} GB, fits with "
                f"{_g(gf.budget - n2.gpu_total)} GB to spare.{warn}"
            ]
    return []


def _bigger_mac(need: _Need) -> str:
    """The smallest Mac memory size (per node) that holds this within the default GPU budget."""
    for size in MAC_MEMORY_SIZES:
        if need.gpu_total <= default_gpu_fraction(size) * size * GIB:
            each = f"{need.nodes} Macs with {size} GB each" if need.nodes > 1 else f"A Mac with {size} GB"
            return f"{each} or more runs this as configured within the default GPU budget."
    if need.nodes == 1:
        return (
            "No single Mac holds this as configured; use a smaller quant or model, or a cluster of Macs "
            "(pass cluster: 2-4 Macs over Thunderbolt 5)."
        )
    return "Not even the largest Macs hold this in a cluster of this size; add nodes or use a smaller quant."
