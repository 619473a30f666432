"""Normalise /work/shared/data/2026/calibration_2026.csv (and the older prefill columns of the shared CSVs)
into tools/data/calibration_2026.csv: catalog tag, quant and context for every row we can express.

Run once when the shared data changes: uv run python bench/normalise_2026.py /work/shared/data
The mapping below is the judgement call (which row is which catalog model, how far to trust it); it is kept
here so it can be reviewed. Split rule (documented in the CSV header): a (chip, model, engine) group is held
out when md5 of "chip|model|engine" is divisible by 3, so every context bucket of one run lands on the same
side and the held-out third is never used for fitting.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tools" / "data" / "calibration_2026.csv"

# model column prefix -> (tag or tag-derived name, trust note)
MODELS: list[tuple[str, str]] = [
    ("gpt-oss-20b", "gpt-oss:20b"),
    ("gpt-oss-120b (original", "gpt-oss:120b"),
    ("Qwen3.6-35B-A3B-tq3", "qwen3.6:35b-a3b"),
    ("Qwen3.6-35B-A3B", "qwen3.6:35b-a3b"),
    ("Qwen3.5-35B-A3B", "qwen3.5:35b-a3b"),
    ("Gemma 4 26B", "gemma4:26b-a4b"),
    ("Gemma 4 31B", "gemma4:31b"),
    ("Gemma 4 12B", "gemma4:12b"),
    ("LFM2.5-8B-A1B", "lfm2.5:8b-a1b"),
    ("qwen3moe 30B.A3B", "qwen3:30b-a3b"),
    ("Qwen3-30B-A3B", "qwen3:30b-a3b"),
    ("DeepSeek-V4-Flash", "deepseek-v4-flash:284b-a13b"),
    ("Qwen3-Coder-Next", "qwen3-coder-next:80b-a3b"),
    ("Gemma 3 27B", "gemma3:27b"),
    ("Gemma 3 12B", "gemma3:12b"),
    ("Qwen2.5-14B", "qwen2.5:14b"),
    ("Llama-3.1-8B", "llama3.1:8b"),
    ("Llama 3.1 8B", "llama3.1:8b"),
    ("Qwen3-8B", "qwen3:8b"),
    ("Qwen3 8B", "qwen3:8b"),
    ("Qwen3.5-9B", "qwen3.5:9b"),
    ("Qwen3.6-27B", "qwen3.6:27b"),
    ("Qwen3-4B", "qwen3:4b"),
    ("Qwen3.5-4B", "qwen3.5:4b"),
    ("qwen2 7B", "qwen2.5-coder:7b"),
    ("Mistral 7B", "mistral:7b"),
    ("Phi-4", "phi4:14b"),
    ("Qwen3.5-122B-A10B", "qwen3.5:122b-a10b"),
]


def _quant(raw: str) -> str | None:
    r = raw.upper()
    if r.startswith("MXFP4-Q8"):
        return "MXFP4-Q8"
    if r.startswith("MXFP4"):
        return "MXFP4"
    if "TURBOQUANT 3" in r:
        return "MLX-3bit"
    if r.startswith("MXFP8") or "8-BIT MXFP8" in r:
        return "MLX-8bit"
    if r.startswith("MLX-4") or r.startswith("MLX 4") or r.startswith("MLX Q4"):
        return "MLX-4bit"
    if r.startswith("MLX-8"):
        return "MLX-8bit"
    if r.startswith("Q8_0"):
        return "Q8_0"
    if r.startswith("Q4_K_M"):
        return "Q4_K_M"
    if r.startswith("IQ2_XXS"):
        return "IQ2_XXS"
    if r.startswith("OQ8"):
        return "MLX-8bit"
    return None


def _engine(raw: str) -> str:
    r = raw.lower()
    if r.startswith("ollama") and "mlx" in r:
        return "mlx"
    if r.startswith("ollama"):
        return "ollama"
    if r.startswith("llama.cpp"):
        return "llama.cpp"
    if "lm studio" in r:
        return "mlx" if "mlx" in r else "lmstudio"
    if r.startswith("mlx") or "mlx_lm" in r or r.startswith("mlx_vlm"):
        return "mlx"
    return "other-mlx" if "mlx" in r else "other"


LOW_TRUST_MARKERS = (
    "approximate",
    "roughly",
    "around",
    "eval-apple-models",
    "banandre",
    "first days",
    "memory-pressured",
    "unrealistic",
    "params not stated",
    "swap",
)


def _trust(row: dict[str, str], engine: str) -> str:
    note = (row["note"] + " " + row["source_url"] + " " + row["test"]).lower()
    if any(m in note for m in LOW_TRUST_MARKERS):
        return "low"
    if "ollama api run 2025-08" in note or "32k context setting" in note:
        return "low"  # early gpt-oss support / num_ctx setting, not tokens in context
    if engine in ("other", "other-mlx") and "rapid-mlx" not in note:
        return "low"  # engines far from llama.cpp/Ollama/MLX (ds4, turboquant, mlx-swift, oMLX)
    return "high"


def _context(row: dict[str, str]) -> int:
    if row["context_tokens"]:
        return int(float(row["context_tokens"]))
    return 100  # "short prompt" / "chat, negligible context"


def _split(chip: str, model: str, engine: str) -> str:
    h = int(hashlib.md5(f"{chip}|{model}|{engine}".encode()).hexdigest(), 16)
    return "holdout" if h % 3 == 0 else "fit"


def main(shared: Path) -> None:
    src = shared / "2026" / "calibration_2026.csv"
    out_rows: list[dict[str, object]] = []
    with src.open(encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh), start=2):
            if row["category"] == "cluster":
                continue  # clusters: scored by bench/estimator_accuracy.py (CLUSTER_ROWS)
            tag = next((t for prefix, t in MODELS if row["model"].startswith(prefix)), None)
            quant = _quant(row["quant"])
            if tag is None or quant is None:
                continue
            engine = _engine(row["engine"])
            if engine == "mlx" and quant in ("Q8_0", "Q4_K_M"):
                quant = "MLX-8bit" if quant == "Q8_0" else "MLX-4bit"
            decode = row["decode_tps"]
            if row["test"].startswith("pp"):
                decode = ""  # llama-bench pp rows: prefill only
            out_rows.append(
                {
                    "row": i,
                    "split": _split(row["chip"], row["model"], row["engine"]),
                    "trust": _trust(row, engine),
                    "category": row["category"],
                    "chip": row["chip"],
                    "gpu_cores": row["gpu_cores"],
                    "memory_gb": row["memory_gb"],
                    "engine": engine,
                    "model_tag": tag,
                    "quant": quant,
                    "context_tokens": _context(row),
                    "decode_tps": decode,
                    "prefill_tps": row["prefill_tps"],
                    "test": row["test"],
                    "source_url": row["source_url"],
                }
            )
    # Older llama.cpp prefill measurements (XiongjieDai pp512/pp1024/pp4096, LLaMA2 mean PP): prefill only.
    xd = {"Llama-3-8B": "llama3:8b", "Llama-3-70B": "llama3:70b", "Llama-2-7B": "llama2:7b",
          "Llama-2-13B": "llama2:13b", "Llama-2-70B": "llama2:70b"}  # fmt: skip
    lines = [
        ln for ln in (shared / "xiongjiedai_gpu_benchmarks.csv").read_text().splitlines() if ln[:1] != "#"
    ]
    for j, row in enumerate(csv.DictReader(lines), start=2):
        if (
            row["vendor"] != "Apple"
            or row["model"] not in xd
            or row["quant"] not in ("Q4_K_M", "Q4_0", "F16")
        ):
            continue
        if "memory-pressured" in row["notes"] or row["mem_gb"] == "8":
            continue
        tests = [("pp512", 512), ("pp4096", 4096)] if row["pp512"] else []
        for col, n in tests:
            if not row[col]:
                continue
            out_rows.append(
                {
                    "row": f"xd{j}",
                    "split": _split(row["chip"], row["model"], "llama.cpp"),
                    "trust": "high",
                    "category": "prefill-older",
                    "chip": row["chip"],
                    "gpu_cores": row["gpu_cores"],
                    "memory_gb": row["mem_gb"],
                    "engine": "llama.cpp",
                    "model_tag": xd[row["model"]],
                    "quant": row["quant"],
                    "context_tokens": n,
                    "decode_tps": "",
                    "prefill_tps": row[col],
                    "test": col,
                    "source_url": "XiongjieDai/GPU-Benchmarks-on-LLM-Inference README (shared/data)",
                }
            )
    header = (
        "# Public measurements from shared/data/2026/calibration_2026.csv (row = its line number) and older\n"
        "# XiongjieDai prefill columns (row xdN), normalised by bench/normalise_2026.py to catalog tags.\n"
        "# split: holdout when md5('chip|model|engine') % 3 == 0 -- never used for fitting\n"
        "# trust: low = second-hand/approximate/non-standard engine/num_ctx-only rows (SOURCES.md doubts);\n"
        "#   low rows are neither fitted nor in the headline figures, only listed by the benchmark.\n"
        "# Tags not in the catalog (e.g. lfm2.5:8b-a1b) exercise tag-derived sizing.\n"
    )
    with OUT.open("w", encoding="utf-8", newline="") as fh:
        fh.write(header)
        w = csv.DictWriter(fh, fieldnames=list(out_rows[0]))
        w.writeheader()
        w.writerows(out_rows)
    print(f"{len(out_rows)} rows -> {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"))
