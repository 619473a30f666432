"""Estimator accuracy vs public Apple Silicon decode measurements (run: uv run python
bench/estimator_accuracy.py).

Scores, on the same rows in the same run:
  * expected_tokens_per_second of the estimate_speed tool (called through the registry, as the agent does)
  * the bare bandwidth ceiling BW / (W + KV)
  * llmfit's rule  0.55 x BW / W
  * gpu_poor's rule  BW / (1.5 x (W + KV))  = 0.67 x ceiling
Then leave-one-source-out: refit the model without each source and score that source's rows, so the headline
number is not just in-sample fit. Exit status 1 if the tool's median APE exceeds 10 % or it does not beat the
baselines.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import REGISTRY  # noqa: E402
from tools.calibration import ape, calibration_rows, fit, predict_tps  # noqa: E402

TARGET_MEDIAN_APE = 10.0


def _summ(errors: list[float]) -> tuple[float, float]:
    return statistics.median(errors), statistics.fmean(errors)


def main() -> int:
    rows = calibration_rows()
    tool = REGISTRY.get("estimate_speed")
    ours: list[float] = []
    ceil_e: list[float] = []
    f055: list[float] = []
    f067: list[float] = []
    for r in rows:
        args: dict[str, object] = {
            "chip": r.chip,
            "bandwidth_gbps": r.bandwidth_gbps,
            "quant": r.quant.quant,
            "context_tokens": r.context_tokens,
        }
        if r.model_tag:
            args["model"] = r.model_tag
        else:
            args["params_billion"] = r.params_b
        out = tool.run(args)
        expected = out.expected_tokens_per_second  # type: ignore[attr-defined]
        ours.append(ape(expected, r.measured_tps))
        ceiling = r.ceiling_tps
        ceil_e.append(ape(ceiling, r.measured_tps))
        f055.append(ape(0.55 * r.bandwidth_gbps * 1e9 / r.weights_bytes, r.measured_tps))
        f067.append(ape(ceiling / 1.5, r.measured_tps))

    # Leave-one-source-out
    loso: list[float] = []
    per_source: list[tuple[str, int, float, float, float]] = []
    for sid in sorted({r.source_id for r in rows}):
        train = [r for r in rows if r.source_id != sid]
        test = [r for r in rows if r.source_id == sid]
        params = fit(train)
        errs = [ape(predict_tps(params, r), r.measured_tps) for r in test]
        loso += errs
        base = [ape(r.ceiling_tps / 1.5, r.measured_tps) for r in test]
        per_source.append(
            (sid, len(test), statistics.median(errs), statistics.fmean(errs), statistics.median(base))
        )

    n = len(rows)
    print(
        f"Decode-speed estimator accuracy on {n} Apple Silicon measurements "
        f"(tools/data/calibration_decode.csv; {len({r.source_id for r in rows})} sources)\n"
    )
    print(f"{'method':<52} {'median APE %':>12} {'mean APE %':>11}")
    print("-" * 77)
    table = [
        ("estimate_speed expected (in-sample fit)", ours),
        ("estimate_speed model, leave-one-source-out refit", loso),
        ("bare bandwidth ceiling BW/(W+KV)", ceil_e),
        ("fixed 0.55 x BW/W (llmfit)", f055),
        ("fixed 0.67 x ceiling (gpu_poor extraFactor 1.5)", f067),
    ]
    for label, errs in table:
        med_t, mean_t = _summ(errs)
        print(f"{label:<52} {med_t:>12.1f} {mean_t:>11.1f}")
    print("\nLeave-one-source-out by held-out source (baseline = fixed 0.67 on the same rows):")
    print(f"{'source':<36} {'n':>4} {'median %':>9} {'mean %':>8} {'0.67 median %':>14}")
    for sid, cnt, med_s, mean_s, base_s in per_source:
        print(f"{sid:<36} {cnt:>4} {med_s:>9.1f} {mean_s:>8.1f} {base_s:>14.1f}")

    moe = [r for r in calibration_rows(include_excluded=True) if r.exclude_reason.startswith("MoE")]
    if moe:
        print("\nMoE rows (not in the fit; informational):")
        for r in moe:
            out = tool.run(
                {
                    "chip": r.chip,
                    "bandwidth_gbps": r.bandwidth_gbps,
                    "model": r.model_tag,
                    "quant": r.quant.quant,
                    "context_tokens": r.context_tokens,
                }
            )
            exp = out.expected_tokens_per_second  # type: ignore[attr-defined]
            print(
                f"  {r.model_label[:44]:<44} {r.quant.quant:<9} measured {r.measured_tps:6.1f}  "
                f"expected {exp:6.1f}  ({ape(exp, r.measured_tps):5.1f}% off)"
            )

    med_ours = statistics.median(ours)
    ok = med_ours <= TARGET_MEDIAN_APE and all(
        med_ours < statistics.median(e) and statistics.fmean(ours) < statistics.fmean(e)
        for e in (ceil_e, f055, f067)
    )
    print(
        f"\nTarget median APE <= {TARGET_MEDIAN_APE:g}% and better than every baseline: "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
