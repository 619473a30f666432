"""recommend_machine: the verdict-only fit check per candidate vs the full check_memory_fit, in one run.

    uv run python bench/recommend_speed.py [--reps 7]

recommend_machine needs only the fit verdict of each candidate Mac (and of each cluster it tries); the full
check_memory_fit also searches the largest context that fits and writes suggestions and a report. The old
path (the full check for every candidate) is rebuilt here by pointing recommend at check_memory_fit, whose
output has the same `verdict` / `fits_on_gpu` as the verdict-only path. The bench first checks that both
paths give identical recommendations for every case (exit 1 otherwise), then alternates the two paths over
the same cases and reports the median time per call and the ratio old / new.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tools.recommend as recommend  # noqa: E402 - after the path set-up above
from tools.fit import check_memory_fit, memory_fit_verdict  # noqa: E402
from tools.schemas import RecommendMachineInput  # noqa: E402

TARGETS: list[dict[str, Any]] = [
    {},
    {"target_model": "llama3.3:70b"},
    {"target_model": "qwen2.5:7b"},
    {"target_model": "deepseek-r1:671b"},
    {"target_params_billion": 32},
    {"target_model": "foo:30b-a3b"},
    {"target_model": "gpt-oss:120b"},
    {"target_model": "qwen2.5:32b", "quant": "Q8_0"},
    {"target_model": "llama3.1:8b", "context_tokens": 131072},
]
BUDGETS: list[float | None] = [None, 700, 1500, 3000, 6000, 12000]
WORKLOADS = ["llm", "image", "research", "both"]
EXTRAS: list[dict[str, Any]] = [
    {},
    {"context_tokens": 32768},
    {"runtime": "mlx"},
    {"runtime": "llama.cpp", "portable": True},
    {"portable": False, "image_model": "sdxl"},
]


def cases() -> list[RecommendMachineInput]:
    """Every target x budget x workload; the extra settings cycle through them (216 cases)."""
    out = []
    for i, (target, budget, workload) in enumerate(itertools.product(TARGETS, BUDGETS, WORKLOADS)):
        args: dict[str, Any] = {**target, "workload": workload, **EXTRAS[i % len(EXTRAS)]}
        if budget is not None:
            args["budget_usd"] = budget
        out.append(RecommendMachineInput.model_validate(args))
    return out


def with_fit_path(fit: Callable[..., Any]) -> None:
    setattr(recommend, "memory_fit_verdict", fit)  # noqa: B010 - the old path returns the full report


def outputs(inputs: list[RecommendMachineInput]) -> list[dict[str, Any]]:
    return [recommend.recommend_machine(p).model_dump(mode="json") for p in inputs]


def timed(inputs: list[RecommendMachineInput]) -> float:
    start = time.perf_counter()
    for p in inputs:
        recommend.recommend_machine(p)
    return (time.perf_counter() - start) / len(inputs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    inputs = cases()
    with_fit_path(check_memory_fit)
    old_out = outputs(inputs)
    with_fit_path(memory_fit_verdict)
    new_out = outputs(inputs)
    differ = [i for i, (a, b) in enumerate(zip(old_out, new_out, strict=True)) if a != b]
    print(f"cases: {len(inputs)}; outputs identical on both paths: {len(inputs) - len(differ)}/{len(inputs)}")
    if differ:
        for i in differ[:5]:
            print(f"  differs: {inputs[i].model_dump(exclude_defaults=True)}")
        return 1
    old_t: list[float] = []
    new_t: list[float] = []
    for _ in range(args.reps):  # alternate, so both paths see the same machine load
        with_fit_path(check_memory_fit)
        old_t.append(timed(inputs))
        with_fit_path(memory_fit_verdict)
        new_t.append(timed(inputs))
    old_ms, new_ms = statistics.median(old_t) * 1e3, statistics.median(new_t) * 1e3
    print(f"full check_memory_fit per candidate (old): {old_ms:.2f} ms per recommend_machine call (median)")
    print(f"verdict-only fit per candidate (new):      {new_ms:.2f} ms per recommend_machine call (median)")
    print(f"speed-up old / new: {old_ms / new_ms:.2f}x over {args.reps} alternating reps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
