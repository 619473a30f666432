"""Offline fit of the decode-speed model (``python -m tools.calibration`` rewrites data/speed_model.yaml).

Kept in the package (not in bench/) so the benchmark's leave-one-source-out check refits with exactly the
code that produced the shipped parameters.
"""

from __future__ import annotations

import datetime as _dt
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from tools.catalog import (
    DATA_DIR,
    QuantSpec,
    attention_read_bytes,
    catalog,
    chip_bins,
    generic_architecture,
    kv_cache_bytes,
    load_csv,
    resolve_quant,
    weights_bytes,
)
from tools.speed import PARAM_NAMES, feature_vector

CALIBRATION_FILE = "calibration_decode.csv"

# Prompt-processing (prefill) anchors: llama.cpp pp512 for Llama-3-8B-class Q4 models (16.1 GFLOP per token).
# effective TFLOPS = pp512 tok/s * 2 * params; divided by GPU cores gives a per-core rate per generation.
PREFILL_ROWS: list[tuple[int, str, int, float, float, str]] = [
    (1, "M1 Max", 32, 499.58, 8.03, "brand-o/normiebench issue #40 (llama.cpp pp512, llama 3.1 8B Q4_K_M)"),
    (
        2,
        "M2 Ultra",
        76,
        994.04,
        8.03,
        "XiongjieDai/GPU-Benchmarks-on-LLM-Inference (pp512, Llama-3-8B Q4_K_M)",
    ),
    (3, "M3 Max", 40, 693.32, 8.03, "XiongjieDai/GPU-Benchmarks-on-LLM-Inference (pp512, Llama-3-8B Q4_K_M)"),
    (4, "M4", 10, 224.81, 8.03, "brand-o/normiebench issue #3 (llama.cpp pp512, llama 3.1 8B Q4_K_M)"),
]


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
    exclude_reason: str

    @property
    def ceiling_tps(self) -> float:
        return self.bandwidth_gbps * 1e9 / (self.weights_bytes + self.kv_bytes)

    def features(self) -> list[float]:
        return feature_vector(
            self.weights_bytes, self.bandwidth_gbps, self.tier, self.quant, self.attn_bytes, self.generation
        )


def _tier_of(chip: str) -> tuple[str, int]:
    for b in chip_bins():
        if b.chip == chip:
            return b.tier, b.generation
    raise ValueError(f"calibration row names unknown chip {chip!r}")


def calibration_rows(include_excluded: bool = False) -> list[CalibrationRow]:
    out: list[CalibrationRow] = []
    cat = catalog()
    for r in load_csv(CALIBRATION_FILE):
        if r["exclude_reason"] and not include_excluded:
            continue
        tag = r["model_tag"] or None
        params = float(r["params_b"])
        q, _ = resolve_quant(r["quant"])
        entry = cat.get(tag) if tag else None
        if entry is not None:
            arch = entry.architecture()
            active = entry.active_params_b or entry.params_b
        else:
            arch, _ = generic_architecture(params)
            active = params
        # MoE rows read only the active experts per token; dense rows read everything.
        w, _ = weights_bytes(active, q, None) if active < params else weights_bytes(params, q, entry)
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
                weights_bytes=w,
                kv_bytes=kv_cache_bytes(arch, ctx),
                attn_bytes=attention_read_bytes(arch, ctx),
                exclude_reason=r["exclude_reason"],
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
    b = np.ones(len(rows))
    scale = np.maximum(np.abs(a).max(axis=0), 1e-12)
    a_s = a / scale
    a_aug = np.vstack([a_s, math.sqrt(ridge) * np.eye(a_s.shape[1])])
    b_aug = np.concatenate([b, np.zeros(a_s.shape[1])])
    theta = _nnls(a_aug, b_aug) / scale
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
    t = sum(f * params[n] for f, n in zip(row.features(), PARAM_NAMES, strict=True))
    return min(1.0 / t, row.ceiling_tps) if t > 0 else row.ceiling_tps


def ape(pred: float, measured: float) -> float:
    return abs(pred - measured) / measured * 100.0


def prefill_table() -> dict[int, dict[str, object]]:
    out: dict[int, dict[str, object]] = {}
    for gen, chip, cores, pp, params_b, src in PREFILL_ROWS:
        tflops = pp * 2 * params_b * 1e9 / 1e12
        out[gen] = {
            "tflops_per_core": round(tflops / cores, 4),
            "source": f"{src}: {chip} {cores}-core, pp512 {pp} tok/s -> {tflops:.2f} effective TFLOPS",
        }
    return out


def main(path: Path | None = None) -> None:
    rows = calibration_rows()
    params = fit(rows)
    preds = [predict_tps(params, r) for r in rows]
    ratios = sorted(r.measured_tps / p for r, p in zip(rows, preds, strict=True))
    apes = [ape(p, r.measured_tps) for r, p in zip(rows, preds, strict=True)]
    lo = float(np.quantile(ratios, 0.1))
    hi = float(np.quantile(ratios, 0.9))
    doc = {
        "fit": {
            "method": (
                "Weighted non-negative least squares of seconds/token on relative error (rows scaled by "
                "1/measured), ridge 1e-3 on column-scaled parameters; python -m tools.calibration"
            ),
            "data": f"tools/data/{CALIBRATION_FILE} ({len(rows)} Apple rows used; exclusions listed there)",
            "fitted_on": _dt.date.today().isoformat(),
            "in_sample_median_ape_pct": round(statistics.median(apes), 2),
            "in_sample_mean_ape_pct": round(statistics.fmean(apes), 2),
            "units": "a, d_* and g_m1: inverse efficiency (1 = marketed bandwidth); t0_*: seconds/token; "
            "c_attn: multiplier on MHA-equivalent K/V bytes / bandwidth",
        },
        "params": {k: float(f"{v:.6g}") for k, v in params.items()},
        "range": {
            "low_ratio": round(lo, 4),
            "high_ratio": round(hi, 4),
            "note": "10th/90th percentile of measured/predicted over the calibration rows",
        },
        "prefill": prefill_table(),
    }
    target = path or (DATA_DIR / "speed_model.yaml")
    header = (
        "# Decode-speed model parameters, fitted by `uv run python -m tools.calibration` (do not "
        "hand-edit).\n"
        "# T = (W/BW)*(a[tier]+d[quant]) + t0[tier] + c_attn*A(ctx)/BW   -- see tools/speed.py.\n"
    )
    target.write_text(header + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    print(yaml.safe_dump(doc, sort_keys=False))


if __name__ == "__main__":
    main()
