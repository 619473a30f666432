"""Cluster decode estimates against the public multi-Mac measurements, next to two baselines computed in the
same run from the same single-machine estimate.

    uv run bench/cluster_accuracy.py [--json bench/out/cluster_accuracy.json]

Rows: the cluster rows of /work/shared/data/2026/calibration_2026.csv that name a model our catalog knows and
machines of one kind (the heterogeneous 2x512 + 2x256 GB M3 Ultra cluster is sized by its smaller nodes).
Baselines: "one node" (a cluster decodes like one Mac) and "scales like memory" (n Macs decode n times
faster).
Reported: estimate / measured per row and the median absolute error of each method. The single-machine
estimate itself is a source of error (its own accuracy is in bench/estimator_accuracy.py); the ratio of our
cluster factor to the baselines is what this bench isolates.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.estimate import estimate_speed  # noqa: E402
from tools.schemas import EstimateSpeedInput  # noqa: E402

# Where the source also measured one node: exo #2070 gives ~80-89 tok/s standalone (midpoint used).
MEASURED_SINGLE = {"https://github.com/exo-explore/exo/issues/2070": 84.5}

# (label, estimate_speed arguments, measured decode tok/s, source)
ROWS: list[tuple[str, dict[str, object], float, str]] = [
    (
        "2x MBP M5 Max 128GB, TB5 TCP/IP pipeline (exo 1.0.71), gpt-oss-120b",
        {
            "chip": "M5 Max",
            "memory_gb": 128,
            "model": "gpt-oss:120b",
            "runtime": "mlx",
            "cluster": {"count": 2, "split": "pipeline"},
        },
        68.0,
        "https://github.com/exo-explore/exo/issues/2070",
    ),
    (
        "M4 Max + M5 Max 128GB, TB5 RDMA tensor (MLX distributed), gpt-oss-120b",
        {
            "chip": "M5 Max",
            "memory_gb": 128,
            "model": "gpt-oss:120b",
            "runtime": "mlx",
            "cluster": {"count": 2},
        },
        98.0,
        "https://github.com/exo-explore/exo/issues/2070",
    ),
    (
        "4x M3 Ultra (2x512 + 2x256 GB), TB5 RDMA tensor (exo 1.0), DeepSeek V3.1 671B 8-bit",
        {
            "chip": "M3 Ultra",
            "gpu_cores": 80,
            "memory_gb": 256,
            "model": "deepseek-v3:671b",
            "quant": "MLX-8bit",
            "runtime": "mlx",
            "cluster": {"count": 4},
        },
        32.5,
        "snackonai.com quoting Jeff Geerling (secondary)",
    ),
    (
        "4x M3 Ultra (2x512 + 2x256 GB), TB5 RDMA tensor (exo 1.0), Qwen3-235B-A22B 8-bit",
        {
            "chip": "M3 Ultra",
            "gpu_cores": 80,
            "memory_gb": 256,
            "model": "qwen3:235b-a22b",
            "quant": "MLX-8bit",
            "runtime": "mlx",
            "cluster": {"count": 4},
        },
        31.9,
        "snackonai.com quoting Jeff Geerling (secondary)",
    ),
]


def run() -> dict[str, object]:
    rows = []
    for label, args, measured, source in ROWS:
        out = estimate_speed(EstimateSpeedInput.model_validate(args))
        assert out.cluster is not None and out.cluster.single_node_tokens_per_second is not None
        single = out.cluster.single_node_tokens_per_second
        n = out.cluster.nodes
        rows.append(
            {
                "row": label,
                "source": source,
                "measured": measured,
                "ours": out.expected_tokens_per_second,
                "one_node": single,
                "scales_like_memory": single * n,
                "ours_ratio": round(out.expected_tokens_per_second / measured, 3),
                "one_node_ratio": round(single / measured, 3),
                "scales_like_memory_ratio": round(single * n / measured, 3),
                # cluster factor alone, where the source measured one node too: ours vs measured
                "factor_ours": out.cluster.decode_factor_vs_one_node,
                "factor_measured": round(measured / MEASURED_SINGLE[source], 3)
                if source in MEASURED_SINGLE
                else None,
            }
        )

    def mae(key: str) -> float:
        return round(statistics.median(abs(r[key] / r["measured"] - 1) for r in rows), 3)  # type: ignore[operator]

    summary = {
        "median_abs_error": {k: mae(k) for k in ("ours", "one_node", "scales_like_memory")},
        "ours_vs_scales_like_memory": round(mae("ours") / max(mae("scales_like_memory"), 1e-9), 3),
    }
    return {"rows": rows, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", type=Path, default=None)
    ns = ap.parse_args(argv)
    result = run()
    for r in result["rows"]:  # type: ignore[attr-defined]
        print(
            f"{r['row']}\n  measured {r['measured']:g}  ours {r['ours']:g} ({r['ours_ratio']:.2f})  "
            f"one node {r['one_node']:g} ({r['one_node_ratio']:.2f})  "
            f"scales like memory {r['scales_like_memory']:g} ({r['scales_like_memory_ratio']:.2f})"
            + (
                f"\n  cluster factor: ours {r['factor_ours']:g}, measured {r['factor_measured']:g}"
                if r["factor_measured"] is not None
                else ""
            )
        )
    print("median |estimate/measured - 1|:", result["summary"]["median_abs_error"])  # type: ignore[index]
    if ns.json:
        ns.json.parent.mkdir(parents=True, exist_ok=True)
        ns.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
