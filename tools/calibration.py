"""Offline fit of the decode-speed model (``python -m tools.calibration`` rewrites data/speed_model.yaml).

Kept in the package (not in bench/) so the benchmark's leave-one-source-out check refits with exactly the
code that produced the shipped parameters.
"""

from __future__ import annotations

import datetime as _dt
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import yaml

from tools.chips import ChipBin, chip_bins
from tools.data_files import DATA_DIR, from_row, load_csv
from tools.models import catalog, generic_architecture, resolve_model
from tools.quants import QuantSpec, resolve_quant
from tools.schemas import ModelArchitecture
from tools.sizes import attention_flops_per_prompt_token, attention_read_bytes, kv_cache_bytes, weights_read
from tools.speed import (
    PARAM_NAMES,
    PrefillModel,
    TokenWork,
    expert_share,
    feature_vector,
    kv_read_seconds,
    prefill_light,
)

CALIBRATION_FILE = "calibration_decode.csv"
CALIBRATION_2026 = "calibration_2026.csv"

# Sources whose measurements ran on llama.cpp builds from before its Metal flash-attention decode kernel
# was used (a stated property of the source, from its own dates; not fitted). XiongjieDai's README: LLaMA3
# rows are llama-bench snapshots of May 2024 (llama-bench then defaulted to -fa 0), LLaMA2 rows are "main"
# runs of Dec 2023. Without flash attention, the Metal KQ / KQV matrix-vector kernels broadcast each KV head
# to its query heads and read the K/V cache once per query head, so attention reads the MHA-equivalent K/V
# bytes (sizes.attention_read_bytes) at full bandwidth on top of what a current build reads. That term is
# added as a fixed (not fitted) cost to these rows only, in fitting and in leave-one-source-out scoring
# alike, so the fitted attention factor describes current builds -- the ones estimate_speed answers for.
LEGACY_ATTENTION_SOURCES: dict[str, str] = {
    "xiongjiedai": "llama.cpp builds of Dec 2023 / May 2024, before flash attention (MHA-equivalent K/V "
    "reads)",
}

PREFILL_ANCHORS_FILE = "prefill_anchors.csv"


@dataclass(frozen=True)
class PrefillAnchor:
    """One older llama.cpp pp512 measurement of an 8B Q4_K_M model (tools/data/prefill_anchors.csv)."""

    generation: int
    chip: str
    gpu_cores: int
    prefill_tps: float
    params_b: float
    source: str


@cache
def prefill_anchors() -> tuple[PrefillAnchor, ...]:
    return tuple(from_row(PrefillAnchor, r) for r in load_csv(PREFILL_ANCHORS_FILE))


@dataclass(frozen=True)
class CalibrationRow:
    source_id: str
    source: str
    chip: str
    tier: str
    generation: int
    bandwidth_gbps: float
    engine: str
    model_label: str
    model_tag: str | None
    params_b: float
    quant: QuantSpec
    context_tokens: int
    measured_tps: float
    weights_bytes: float
    kv_bytes: float
    attn_bytes: float
    moe_layers: int = 0
    category: str = "dense"

    @property
    def ceiling_tps(self) -> float:
        return self.bandwidth_gbps * 1e9 / (self.weights_bytes + self.kv_bytes)

    @property
    def fixed_seconds(self) -> float:
        """Known (not fitted) seconds per token: reading the KV cache once at the marketed bandwidth (every
        row; speed.kv_read_seconds), plus the attention cost of builds before flash attention
        (LEGACY_ATTENTION_SOURCES)."""
        bw = self.bandwidth_gbps * 1e9
        legacy = self.attn_bytes / bw if self.source_id in LEGACY_ATTENTION_SOURCES else 0.0
        return kv_read_seconds(self.kv_bytes, self.bandwidth_gbps) + legacy

    def features(self) -> list[float]:
        return feature_vector(
            TokenWork(
                self.weights_bytes,
                self.bandwidth_gbps,
                self.tier,
                self.quant,
                self.attn_bytes,
                self.generation,
                self.moe_layers,
            )
        )


def _tier_of(chip: str) -> tuple[str, int]:
    for b in chip_bins():
        if b.chip == chip:
            return b.tier, b.generation
    raise ValueError(f"calibration row names unknown chip {chip!r}")


def calibration_rows() -> list[CalibrationRow]:
    """Decode rows to fit on: the older dense set plus the 2026 rows of the ``fit`` split (trusted only)."""
    out: list[CalibrationRow] = []
    cat = catalog()
    for r in load_csv(CALIBRATION_FILE):
        if r["exclude_reason"]:
            continue
        tag = r["model_tag"] or None
        params = float(r["params_b"])
        q, _ = resolve_quant(r["quant"])
        entry = cat.get(tag) if tag else None
        arch = entry.architecture() if entry is not None else generic_architecture(params)[0]
        wr = weights_read(arch, q, entry)
        ctx = int(r["context_tokens"])
        out.append(
            CalibrationRow(
                source_id=r["source_id"],
                source=r["source"],
                chip=r["chip"],
                tier=_tier_of(r["chip"])[0],
                generation=_tier_of(r["chip"])[1],
                bandwidth_gbps=float(r["bandwidth_gbps"]),
                engine=r["engine"],
                model_label=r["model_label"],
                model_tag=tag,
                params_b=params,
                quant=q,
                context_tokens=ctx,
                measured_tps=float(r["decode_tps"]),
                weights_bytes=wr.active_bytes,
                kv_bytes=kv_cache_bytes(arch, ctx),
                attn_bytes=attention_read_bytes(arch, ctx),
                moe_layers=wr.moe_layers,
                category="moe" if wr.moe else "dense",
            )
        )
    # Rows collected for prefill (category "prefill": TTFT harnesses, mostly Rapid-MLX) feed the prefill fit
    # only; the decode fit takes the 2026 rows collected for MoE and M5 decode.
    return out + [r for r in rows_2026("fit") if r.category != "prefill"]


def chip_bin(chip: str, gpu_cores: str = "", memory_gb: str = "") -> ChipBin:
    """The bin a measurement ran on: GPU cores if stated, else memory size, else the fastest bin."""
    bins = [b for b in chip_bins() if b.chip == chip]
    if not bins:
        raise ValueError(f"calibration row names unknown chip {chip!r}")
    if gpu_cores:
        hit = [b for b in bins if int(gpu_cores) in b.gpu_cores]
        if hit:
            return hit[0]
    if memory_gb:
        hit = [b for b in bins if int(float(memory_gb)) in b.memory_gb]
        if hit:
            return max(hit, key=lambda b: b.bandwidth_gbps)
    return max(bins, key=lambda b: b.bandwidth_gbps)


@dataclass(frozen=True)
class Row2026:
    """One normalised public measurement (tools/data/calibration_2026.csv)."""

    row: str
    split: str
    trust: str
    category: str
    chip: str
    bin: ChipBin
    gpu_cores: int
    engine: str
    model_tag: str
    quant: QuantSpec
    context_tokens: int
    decode_tps: float | None
    prefill_tps: float | None
    arch: ModelArchitecture
    active_params_b: float
    weights_total: float
    weights_active: float
    moe: bool
    moe_layers: int
    source_url: str


@cache
def load_2026() -> tuple[Row2026, ...]:
    """Parsed once per process: the bench, the prefill anchors' held-out check and the fits all read it."""
    out: list[Row2026] = []
    for r in load_csv(CALIBRATION_2026):
        b = chip_bin(r["chip"], r["gpu_cores"], r["memory_gb"])
        q, _ = resolve_quant(r["quant"])
        model = resolve_model(r["model_tag"], None, None)
        wr = weights_read(model.arch, q, model.catalog_entry)
        active_b = model.arch.active_params_billion or model.arch.params_billion
        out.append(
            Row2026(
                row=r["row"],
                split=r["split"],
                trust=r["trust"],
                category=r["category"],
                chip=r["chip"],
                bin=b,
                gpu_cores=int(r["gpu_cores"]) if r["gpu_cores"] else max(b.gpu_cores),
                engine=r["engine"],
                model_tag=r["model_tag"],
                quant=q,
                context_tokens=int(r["context_tokens"]),
                decode_tps=float(r["decode_tps"]) if r["decode_tps"] else None,
                prefill_tps=float(r["prefill_tps"]) if r["prefill_tps"] else None,
                arch=model.arch,
                active_params_b=active_b,
                weights_total=wr.total_bytes,
                weights_active=wr.active_bytes,
                moe=wr.moe,
                moe_layers=wr.moe_layers,
                source_url=r["source_url"],
            )
        )
    return tuple(out)


def source_repository(source: str) -> str:
    """The repository (owner/name) a source string points at: a URL's path, else its leading owner/name
    ("XiongjieDai/GPU-Benchmarks-on-LLM-Inference README ..."). One benchmark repo is one source however
    many commits or files its rows were read from."""
    first = source.split(" ")[0]
    parts = first.split("/")
    return "/".join(parts[3:5] if first.startswith("http") else parts[:2])


def rows_2026(split: str) -> list[CalibrationRow]:
    """Trusted 2026 decode rows of one split as CalibrationRows."""
    out: list[CalibrationRow] = []
    for r in load_2026():
        if r.split != split or r.decode_tps is None:
            continue
        if r.trust != "high":
            continue
        ctx = r.context_tokens
        out.append(
            CalibrationRow(
                source_id="2026:" + source_repository(r.source_url),
                source=r.source_url,
                chip=r.chip,
                tier=r.bin.tier,
                generation=r.bin.generation,
                bandwidth_gbps=r.bin.bandwidth_gbps,
                engine=r.engine,
                model_label=r.model_tag,
                model_tag=r.model_tag,
                params_b=r.arch.params_billion,
                quant=r.quant,
                context_tokens=ctx,
                measured_tps=r.decode_tps,
                weights_bytes=r.weights_active,
                kv_bytes=kv_cache_bytes(r.arch, ctx),
                attn_bytes=attention_read_bytes(r.arch, ctx),
                moe_layers=r.moe_layers,
                category=r.category,
            )
        )
    return out


def _nnls(a: np.ndarray, b: np.ndarray, max_iter: int = 200) -> np.ndarray:
    """Lawson-Hanson non-negative least squares (no scipy dependency).

    Why non-negative: every parameter is a physical cost (inverse efficiency, seconds, attention factor) or an
    extra cost of a quant relative to Q4; a negative value would mean a machine gets faster by doing more
    work.
    """
    n = a.shape[1]
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    w = a.T @ (b - a @ x)
    for _ in range(max_iter):
        if passive.all() or (w[~passive] <= 1e-12).all():
            break
        j = int(np.argmax(np.where(~passive, w, -np.inf)))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            mask = passive & (z <= 0)
            alpha = np.min(x[mask] / (x[mask] - z[mask]))
            x = x + alpha * (z - x)
            passive &= x > 1e-15
        w = a.T @ (b - a @ x)
    return x


def fit(rows: list[CalibrationRow], ridge: float = 1e-3) -> dict[str, float]:
    """Weighted NNLS on relative error: each row is scaled by 1/T_measured so the fit minimises % error.

    A tiny ridge pulls parameters that the rows cannot identify (e.g. a tier with no rows in a
    leave-one-source-out split) towards zero instead of letting them take arbitrary values; such a tier then
    falls back to the mean of the identified tiers (see ``fill_unidentified``).
    """
    x = np.array([r.features() for r in rows], dtype=float)
    t = np.array([1.0 / r.measured_tps for r in rows], dtype=float)
    a = x / t[:, None]
    # features . theta + fixed = t  ->  (features / t) . theta = 1 - fixed / t
    # The base inverse efficiency ``a`` is fitted as 1 + a' (a' >= 0): no chip streams weights faster than its
    # marketed bandwidth, so the fit may not buy accuracy elsewhere with a > 100 % efficient F16 read.
    ia = PARAM_NAMES.index("a")
    b = np.array([1.0 - (r.fixed_seconds + x_r[ia]) * r.measured_tps for r, x_r in zip(rows, x, strict=True)])
    scale = np.maximum(np.abs(a).max(axis=0), 1e-12)
    a_s = a / scale
    a_aug = np.vstack([a_s, math.sqrt(ridge) * np.eye(a_s.shape[1])])
    b_aug = np.concatenate([b, np.zeros(a_s.shape[1])])
    theta = _nnls(a_aug, b_aug) / scale
    theta[ia] += 1.0
    params = dict(zip(PARAM_NAMES, (float(v) for v in theta), strict=True))
    return fill_unidentified(params, rows)


def fill_unidentified(params: dict[str, float], rows: list[CalibrationRow]) -> dict[str, float]:
    """A tier without rows (possible in leave-one-source-out) gets the mean fixed cost of the others."""
    tiers_seen = {r.tier for r in rows}
    seen_t0 = [params[f"t0_{t}"] for t in tiers_seen]
    for t in ("base", "pro", "max", "ultra"):
        if t not in tiers_seen:
            params[f"t0_{t}"] = statistics.fmean(seen_t0)
    return params


def predict_tps(params: dict[str, float], row: CalibrationRow) -> float:
    t = sum(f * params[n] for f, n in zip(row.features(), PARAM_NAMES, strict=True)) + row.fixed_seconds
    return min(1.0 / t, row.ceiling_tps) if t > 0 else row.ceiling_tps


def leave_one_source_out(rows: list[CalibrationRow]) -> list[tuple[CalibrationRow, float]]:
    """(row, predicted tok/s) for every row, each source's rows predicted by a fit that never saw that source:
    how the model does on a new source's measurements, which is what the error band has to describe."""
    out: list[tuple[CalibrationRow, float]] = []
    for sid in sorted({r.source_id for r in rows}):
        params = fit([r for r in rows if r.source_id != sid])
        out += [(r, predict_tps(params, r)) for r in rows if r.source_id == sid]
    return out


def ape(pred: float, measured: float) -> float:
    return abs(pred - measured) / measured * 100.0


@dataclass(frozen=True)
class PrefillRow:
    label: str
    model: str
    generation: int
    chip: str
    gpu_cores: int
    active_params_b: float
    is_float: bool
    moe: bool
    attn_flops: float
    measured_tps: float
    split: str
    source: str
    mlx: bool = False
    prompt_tokens: int = 512
    expert_share: float | None = None

    def implied_tflops_per_core(
        self, pm_attn: float, mlx_fixed: tuple[float, float] = (0.0, 0.0), mlx_factor: float = 1.0
    ) -> float:
        """Effective rate per core; MLX rows first lose the start-up time (M1-M4, M5) and the MLX factor."""
        tps = self.measured_tps
        if self.mlx:
            n = self.prompt_tokens
            fixed = mlx_fixed[1] if self.generation >= 5 else mlx_fixed[0]
            tps = n / max(n / tps - fixed, 0.25 * n / tps) / mlx_factor
        flops = 2 * self.active_params_b * 1e9 + pm_attn * self.attn_flops
        return tps * flops / (self.gpu_cores * 1e12)


def prefill_rows(split: str) -> list[PrefillRow]:
    """Trusted prompt-processing rows of one split (plus the four older anchors, always 'fit')."""
    out: list[PrefillRow] = []
    for r in load_2026():
        if r.prefill_tps is None or r.trust != "high" or r.split != split:
            continue
        out.append(
            PrefillRow(
                label=f"{r.chip} {r.model_tag} {r.quant.quant} {r.engine} p{r.context_tokens}",
                model=r.model_tag,
                generation=r.bin.generation,
                chip=r.chip,
                gpu_cores=r.gpu_cores,
                active_params_b=r.active_params_b,
                is_float=prefill_light(r.quant),
                moe=r.moe,
                attn_flops=attention_flops_per_prompt_token(r.arch, max(r.context_tokens, 512)),
                measured_tps=r.prefill_tps,
                split=r.split,
                source=r.source_url,
                mlx=r.quant.engine == "mlx",
                prompt_tokens=max(r.context_tokens, 512),
                expert_share=expert_share(resolve_model(r.model_tag, None, None).catalog_entry, r.arch),
            )
        )
    if split == "fit":
        arch = catalog()["llama3.1:8b"].architecture()
        for a in prefill_anchors():
            if _anchor_is_held_out(a.chip, a.prefill_tps):
                continue
            out.append(
                PrefillRow(
                    label=f"{a.chip} llama3.1:8b Q4_K_M llama.cpp p512",
                    model="llama3.1:8b",
                    generation=a.generation,
                    chip=a.chip,
                    gpu_cores=a.gpu_cores,
                    active_params_b=a.params_b,
                    is_float=False,
                    moe=False,
                    attn_flops=attention_flops_per_prompt_token(arch, 512),
                    measured_tps=a.prefill_tps,
                    split="fit",
                    source=a.source,
                )
            )
    return out


def _anchor_is_held_out(chip: str, pp: float) -> bool:
    """An anchor that is the same measurement as a held-out row (the M2 Ultra XiongjieDai pp512, row xd6) is
    not fitted: the holdout split must stay unseen by every fit."""
    return any(
        r.split == "holdout"
        and r.chip == chip
        and r.prefill_tps is not None
        and abs(r.prefill_tps - pp) < 0.01
        for r in load_2026()
    )


def fit_prefill(rows: list[PrefillRow]) -> dict[str, object]:
    """Robust (median) fit, for each candidate attention factor and MLX start-up time (kept: the pair with the
    lowest median error on these rows):

    * per generation, the median per-core rate of dense rows with Q4-class weights;
    * the MLX factor as the median of dense MLX rows' rates over their generation's llama.cpp/Ollama rate;
    * the F16/Q8_0 factor from paired rows (same chip, model and prompt length, light vs Q4-class weights);
    * the MoE factor as the median of MoE rows' rates over their generation's rate.
    """
    best: dict[str, object] | None = None
    best_err = math.inf
    fixed = mlx_startup(rows)
    for k in (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0):
        fitted = _fit_prefill_at(rows, k, fixed)
        pm = prefill_model(fitted)
        err = statistics.median(ape(predict_prefill(pm, r), r.measured_tps) for r in rows)
        if err < best_err:
            best, best_err = fitted, err
    assert best is not None
    return best


def mlx_startup(rows: list[PrefillRow]) -> tuple[float, float]:
    """(M1-M4, M5) MLX start-up seconds: median over MLX pairs (same chip, cores, model at two prompt lengths)
    of the intercept of time = start-up + prompt / rate through the two points (negative -> 0)."""
    by: dict[tuple[str, int, str], list[PrefillRow]] = {}
    for r in rows:
        if r.mlx:
            by.setdefault((r.chip, r.gpu_cores, r.model), []).append(r)
    out: dict[bool, list[float]] = {False: [], True: []}
    for grp in by.values():
        pts = sorted({(r.prompt_tokens, r.prompt_tokens / r.measured_tps) for r in grp})
        if len(pts) < 2:
            continue
        (n1, t1), (n2, t2) = pts[0], pts[-1]
        if n2 == n1:
            continue
        slope = (t2 - t1) / (n2 - n1)
        out[grp[0].generation >= 5].append(max(0.0, t1 - slope * n1))
    return (
        statistics.median(out[False]) if out[False] else 0.0,
        statistics.median(out[True]) if out[True] else 0.0,
    )


# Candidate tokens-per-expert at half matmul efficiency (0 = one flat MoE factor), tried by _fit_prefill_at.
MOE_HALF_BATCH_CANDIDATES = (0.0, 4.0, 8.0, 16.0, 24.0, 32.0, 48.0, 64.0, 96.0)


def _gen_rates(
    rows: list[PrefillRow], k: float, fixed: tuple[float, float], factor: float
) -> dict[int, float]:
    # Median within each (generation, model) first, then across models: every model counts once, so one model
    # measured at many prompt lengths/engines (or one outlier model) does not set a generation's rate.
    per_model: dict[tuple[int, str], list[float]] = {}
    for r in rows:
        per_model.setdefault((r.generation, r.model), []).append(r.implied_tflops_per_core(k, fixed, factor))
    per_gen: dict[int, list[float]] = {}
    for (g, _m), v in per_model.items():
        per_gen.setdefault(g, []).append(statistics.median(v))
    return {g: statistics.median(v) for g, v in per_gen.items()}


def _fit_prefill_at(
    rows: list[PrefillRow], k: float, fixed: tuple[float, float] = (0.0, 0.0)
) -> dict[str, object]:
    heavy = [r for r in rows if not r.moe and not r.is_float]
    gguf_rate = _gen_rates([r for r in heavy if not r.mlx], k, fixed, 1.0)
    mlx_ratios = [
        r.implied_tflops_per_core(k, fixed) / gguf_rate[r.generation]
        for r in heavy
        if r.mlx and r.generation in gguf_rate
    ]
    mlx_factor = statistics.median(mlx_ratios) if mlx_ratios else 1.0
    # A generation's rate is llama.cpp's (see PrefillModel): MLX rows set the MLX factor above and stand in
    # only for a generation without llama.cpp rows. (They used to enter every rate too, divided by the factor
    # they had just set; two odd 8k-prompt MLX rows then pulled M2 to 0.18 TFLOPS/core, llama.cpp: 0.22.)
    rate = {**_gen_rates(heavy, k, fixed, mlx_factor), **gguf_rate}

    def implied(r: PrefillRow) -> float:
        return r.implied_tflops_per_core(k, fixed, mlx_factor)

    pairs_by_gen = _float_pairs(rows, implied)
    pairs = [x for v in pairs_by_gen.values() for x in v]
    fl = pairs or [implied(r) / rate[r.generation] for r in rows if r.is_float and r.generation in rate]
    # How much faster light weights run than Q4-class ones is a property of the GPU generation (dequantisation
    # ALU work vs matrix throughput): per generation where it has >= 2 pairs, else the median of all pairs.
    float_by_gen = {g: statistics.median(v) for g, v in pairs_by_gen.items() if len(v) >= 2}
    moe_rows = [r for r in rows if r.moe and r.generation in rate]
    half, moe_f = _moe_fit(moe_rows, [implied(r) / rate[r.generation] for r in moe_rows], k)
    return {
        "rate": rate,
        "sources": _rate_sources(rate, heavy, gguf_rate),
        "float_factor": statistics.median(fl) if fl else 1.0,
        "float_factor_by_gen": float_by_gen,
        "moe_factor": moe_f,
        "moe_half_batch": half,
        "attn_factor": k,
        "mlx_fixed_seconds": fixed,
        "mlx_factor": mlx_factor,
        "n_mlx": len(mlx_ratios),
        "n_pairs": len(pairs),
    }


def _float_pairs(rows: list[PrefillRow], implied: Callable[[PrefillRow], float]) -> dict[int, list[float]]:
    """Per generation: light (F16/Q8_0) over Q4-class rate of dense rows measured in pairs (same chip, model,
    prompt and engine)."""
    by_key: dict[tuple[int, str, str, float, bool], dict[bool, float]] = {}
    for r in rows:
        if r.moe:
            continue
        key = (r.generation, f"{r.chip} {r.gpu_cores}", r.model, r.attn_flops, r.mlx)
        by_key.setdefault(key, {})[r.is_float] = implied(r)
    pairs_by_gen: dict[int, list[float]] = {}
    for key, v in by_key.items():
        if True in v and False in v:
            pairs_by_gen.setdefault(key[0], []).append(v[True] / v[False])
    return pairs_by_gen


def _moe_fit(moe_rows: list[PrefillRow], mo: list[float], k: float) -> tuple[float, float]:
    """(half batch, MoE factor) from the MoE rows' rates over their generation's rate (``mo``).

    MoE: flat factor x batch efficiency b / (b + h), h (tokens per expert at half efficiency) chosen by the
    median log error over the MoE rows; h = 0 keeps one flat factor.
    """
    half, moe_f, best = 0.0, statistics.median(mo) if mo else 1.0, math.inf
    if not mo:
        return half, moe_f
    for h in MOE_HALF_BATCH_CANDIDATES:
        pm_h = PrefillModel({}, {}, 1.0, 1.0, k, 0.0, 1.0, 1.0, moe_half_batch=h)
        eff = [pm_h.moe_efficiency(r.expert_share) for r in moe_rows]
        f0 = statistics.median(m / e for m, e in zip(mo, eff, strict=True))
        err = statistics.median(abs(math.log(m / (f0 * e))) for m, e in zip(mo, eff, strict=True))
        if err < best - 1e-9:
            half, moe_f, best = h, f0, err
    return half, moe_f


def _rate_sources(
    rate: dict[int, float], heavy: list[PrefillRow], gguf_rate: dict[int, float]
) -> dict[int, str]:
    """Which rows set each generation's rate, for the fit report."""
    srcs: dict[int, str] = {}
    for g in sorted(rate):
        used = sorted({r.label for r in heavy if r.generation == g and (g not in gguf_rate or not r.mlx)})
        srcs[g] = (
            f"median over models of {len(used)} dense quantised (not F16/Q8_0) "
            + ("llama.cpp/Ollama" if g in gguf_rate else "MLX (over the MLX factor)")
            + " rows: "
            + "; ".join(used[:4])
            + (" ..." if len(used) > 4 else "")
        )
    return srcs


def prefill_model(fitted: dict[str, object]) -> PrefillModel:
    rate: dict[int, float] = fitted["rate"]  # type: ignore[assignment]
    return PrefillModel(
        tflops_per_core=dict(rate),
        sources=dict(fitted["sources"]),  # type: ignore[call-overload]
        float_factor=float(fitted["float_factor"]),  # type: ignore[arg-type]
        float_factor_by_gen=dict(fitted.get("float_factor_by_gen", {})),  # type: ignore[call-overload]
        moe_factor=float(fitted["moe_factor"]),  # type: ignore[arg-type]
        attn_factor=float(fitted["attn_factor"]),  # type: ignore[arg-type]
        no_accelerator_tflops_per_core=rate.get(4, min(rate.values())),
        range_low=1.0,
        range_high=1.0,
        mlx_fixed_seconds=fitted["mlx_fixed_seconds"][0],  # type: ignore[index]
        mlx_fixed_seconds_m5=fitted["mlx_fixed_seconds"][1],  # type: ignore[index]
        mlx_factor=float(fitted.get("mlx_factor", 1.0)),  # type: ignore[arg-type]
        moe_half_batch=float(fitted.get("moe_half_batch", 0.0)),  # type: ignore[arg-type]
    )


def predict_prefill(pm: PrefillModel, r: PrefillRow) -> float:
    tps, _ = pm.tokens_per_second(
        r.generation,
        r.gpu_cores,
        r.active_params_b,
        r.is_float,
        r.moe,
        r.attn_flops,
        r.mlx,
        r.prompt_tokens,
        r.expert_share,
    )
    return tps


def prefill_leave_one_source_out(rows: list[PrefillRow]) -> list[tuple[PrefillRow, float]]:
    """(row, predicted tok/s), each source repository's rows predicted by a prefill fit without them."""
    out: list[tuple[PrefillRow, float]] = []
    for repo in sorted({source_repository(r.source) for r in rows}):
        pm = prefill_model(fit_prefill([r for r in rows if source_repository(r.source) != repo]))
        out += [(r, predict_prefill(pm, r)) for r in rows if source_repository(r.source) == repo]
    return out


def prefill_table() -> dict[str, object]:
    rows = prefill_rows("fit")
    fitted = fit_prefill(rows)
    # The band from held-out predictions, as for decode: the in-sample band held 69 % (24 of 35) of the
    # held-out split's prefill measurements (bench/estimator_accuracy.py, 'stated ranges').
    ratios = [r.measured_tps / p for r, p in prefill_leave_one_source_out(rows)]
    lo, hi = float(np.quantile(ratios, 0.1)), float(np.quantile(ratios, 0.9))
    rate: dict[int, float] = fitted["rate"]  # type: ignore[assignment]
    srcs: dict[int, str] = fitted["sources"]  # type: ignore[assignment]
    return {
        "per_generation": {
            g: {"tflops_per_core": round(rate[g], 4), "source": srcs[g]} for g in sorted(rate)
        },
        "float_factor": round(float(fitted["float_factor"]), 4),  # type: ignore[arg-type]
        "float_factor_by_generation": {
            g: round(v, 4)
            for g, v in sorted(fitted["float_factor_by_gen"].items())  # type: ignore[attr-defined]
        },
        "moe_factor": round(float(fitted["moe_factor"]), 4),  # type: ignore[arg-type]
        "moe_half_batch": float(fitted["moe_half_batch"]),  # type: ignore[arg-type]
        "moe_note": (
            "MoE prefill x moe_factor x b / (b + moe_half_batch), b = 512 x active/total experts (tokens "
            "per expert in a 512-token micro-batch); half-batch chosen by median log error over the MoE rows"
        ),
        "attn_factor": float(fitted["attn_factor"]),  # type: ignore[arg-type]
        "mlx_fixed_seconds": round(fitted["mlx_fixed_seconds"][0], 4),  # type: ignore[index]
        "mlx_fixed_seconds_m5": round(fitted["mlx_fixed_seconds"][1], 4),  # type: ignore[index]
        "mlx_factor": round(float(fitted["mlx_factor"]), 4),  # type: ignore[arg-type]
        "mlx_note": (
            "MLX quants: time to first token = start-up + prompt / (mlx_factor x rate); start-up (M1-M4, "
            "M5) = median intercept of MLX rows measured at two prompt lengths (same chip and model); "
            f"factor = median of {fitted['n_mlx']} dense MLX rows over their generation's llama.cpp rate"
        ),
        "float_factor_note": (
            f"F16/BF16/Q8_0 over Q4-class weights, median of {fitted['n_pairs']} paired rows (same chip, "
            "model, prompt); float_factor_by_generation: the same per GPU generation with >= 2 pairs"
        ),
        "m5_without_tensor_api_tflops_per_core": round(rate.get(4, min(rate.values())), 4),
        "m5_without_tensor_api_source": (
            "M4 per-core rate: llama.cpp PR #16634 keeps pre-M5 performance; LM Studio bug #2040 measured "
            "2-3x less prefill on an M5 Max with the tensor API disabled"
        ),
        "range": {
            "low_ratio": round(lo, 4),
            "high_ratio": round(hi, 4),
            "note": "10th/90th percentile of measured/predicted, each source repository's rows predicted "
            "by a prefill fit without them",
        },
        "data": (
            "tools/data/calibration_2026.csv split=fit trust=high (prefill_tps) + tools/data/"
            f"{PREFILL_ANCHORS_FILE} anchors that are not held-out rows"
        ),
        "n_rows": len(rows),
    }


def main(path: Path | None = None) -> None:
    rows = calibration_rows()
    params = fit(rows)
    apes = [ape(predict_tps(params, r), r.measured_tps) for r in rows]
    # The band comes from held-out predictions: in-sample residuals understate the error on a new source's
    # measurements (the in-sample 10th-90th band held only 60 % (6 of 10) of the held-out split's decode
    # measurements; bench/estimator_accuracy.py, 'stated ranges').
    held_out = leave_one_source_out(rows)
    ratios = [r.measured_tps / p for r, p in held_out]
    lo = float(np.quantile(ratios, 0.1))
    hi = float(np.quantile(ratios, 0.9))
    moe_ratios = [r.measured_tps / p for r, p in held_out if r.moe_layers]
    moe_lo = float(np.quantile(moe_ratios, 0.1)) if moe_ratios else lo
    doc = {
        "fit": {
            "method": (
                "Weighted non-negative least squares of seconds/token on relative error (rows scaled by "
                "1/measured), ridge 1e-3 on column-scaled parameters; python -m tools.calibration"
            ),
            "data": (
                f"tools/data/{CALIBRATION_FILE} + tools/data/{CALIBRATION_2026} split=fit trust=high "
                f"({len(rows)} Apple rows used; exclusions listed there; the holdout split is never fitted)"
            ),
            "fitted_on": _dt.date.today().isoformat(),
            "in_sample_median_ape_pct": round(statistics.median(apes), 2),
            "in_sample_mean_ape_pct": round(statistics.fmean(apes), 2),
            "units": "a, d_* and g_m1: inverse efficiency (1 = marketed bandwidth); t0_*: seconds/token; "
            "c_attn: multiplier on MHA-equivalent K/V bytes / bandwidth, on top of the known KV read "
            "(KV / bandwidth, not fitted)",
        },
        "params": {k: float(f"{v:.6g}") for k, v in params.items()},
        "range": {
            "low_ratio": round(lo, 4),
            "high_ratio": round(hi, 4),
            "moe_low_ratio": round(min(moe_lo, lo), 4),
            "note": (
                "10th/90th percentile of measured/predicted over the calibration rows, each predicted by a "
                "leave-one-source-out refit (MoE: MoE rows)"
            ),
        },
        "prefill": prefill_table(),
    }
    target = path or (DATA_DIR / "speed_model.yaml")
    header = (
        "# Decode-speed model parameters, fitted by `uv run python -m tools.calibration` (do not "
        "hand-edit).\n"
        "# T = (W/BW)*(a+d[quant]+g_m1+g_m1_big+m_w+e[tier]) + t0[tier] + t0_mlx + c_attn*A(ctx)/BW"
        " + MoE routing + KV(ctx)/BW  -- see tools/speed.py.\n"
    )
    target.write_text(header + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    print(yaml.safe_dump(doc, sort_keys=False))


if __name__ == "__main__":
    main()
