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
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tools.recommend as recommend  # noqa: E402 - after the path set-up above
from tests.test_tools_recommend_paths import recommend_cases  # noqa: E402
from tools.fit import check_memory_fit, memory_fit_verdict  # noqa: E402
from tools.schemas import RecommendMachineInput  # noqa: E402


def cases() -> list[RecommendMachineInput]:
    """The spread tests/test_tools_recommend_paths.py compares on (192 cases)."""
    return [RecommendMachineInput.model_validate(args) for args in recommend_cases()]


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
