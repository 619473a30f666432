"""recommend_machine asks only for the fit verdict of each candidate (tools.fit.memory_fit_verdict), not the
full check_memory_fit report: the verdicts, and so the recommendations, must be the ones the full check gives.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import tools.recommend as recommend
from tools import REGISTRY
from tools.fit import check_memory_fit, memory_fit_verdict
from tools.recommend import candidates
from tools.registry import ToolError
from tools.schemas import CheckMemoryFitInput

TARGETS: list[dict[str, Any]] = [
    {},
    {"target_model": "llama3.3:70b"},
    {"target_model": "qwen2.5:7b"},
    {"target_model": "deepseek-r1:671b"},
    {"target_params_billion": 32},
    {"target_model": "foo:30b-a3b"},
    {"target_model": "gpt-oss:120b", "context_tokens": 131072},
    {"target_model": "qwen2.5:32b", "quant": "Q8_0"},
]
BUDGETS: list[float | None] = [None, 700, 1500, 3000, 6000, 12000]
WORKLOADS = ["llm", "both", "research", "image"]
EXTRAS: list[dict[str, Any]] = [
    {},
    {"context_tokens": 32768},
    {"runtime": "mlx"},
    {"runtime": "llama.cpp", "portable": True},
    {"portable": False, "image_model": "sdxl"},
]


def recommend_cases() -> list[dict[str, Any]]:
    """Every target x budget x workload, the extras cycling through them (bench/recommend_speed.py too)."""
    out = []
    for i, (target, budget, workload) in enumerate(itertools.product(TARGETS, BUDGETS, WORKLOADS)):
        args: dict[str, Any] = {**target, "workload": workload, **EXTRAS[i % len(EXTRAS)]}
        if budget is not None:
            args["budget_usd"] = budget
        out.append(args)
    return out


def _recommend_all(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tool = REGISTRY.get("recommend_machine")
    return [tool.run(args).model_dump(mode="json") for args in cases]


def test_recommendations_are_those_of_the_full_fit_check(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = recommend_cases()
    verdict_only = _recommend_all(cases)
    # The path before: the full check_memory_fit report for every candidate (it has the same verdict fields).
    monkeypatch.setattr(recommend, "memory_fit_verdict", check_memory_fit)
    full_check = _recommend_all(cases)
    assert len(cases) == 192
    for args, new, old in zip(cases, verdict_only, full_check, strict=True):
        assert new == old, args
    # the spread covers picks, no-picks, every verdict and cluster options (else it would prove little)
    picks = [o["recommendation"] for o in verdict_only if o.get("recommendation")]
    assert 0 < len(picks) < len(cases)
    verdicts = {a["fit_verdict"] for o in verdict_only for a in o["alternatives"]}
    assert {"fits", "tight", "does_not_fit"} <= verdicts
    assert any(o.get("cluster_option") for o in verdict_only)


_MODELS: list[dict[str, Any]] = [
    {"model": "llama3.3:70b"},
    {"model": "qwen2.5:7b", "context_tokens": 32768},
    {"model": "deepseek-r1:671b"},
    {"params_billion": 32},
    {"model": "gpt-oss:120b", "context_tokens": 131072},
    {"model": "gemma3:27b", "kv_cache_type": "q8_0"},
    {"model": "qwen2.5:32b", "parallel": 4},
]
_VARIANTS: list[dict[str, Any]] = [
    {},
    {"runtime": "mlx"},
    {"runtime": "llama.cpp"},
    {"gpu_memory_limit_gb": 20},
    {"cluster": {"count": 2, "link": "thunderbolt5"}},
    {"cluster": {"count": 3, "link": "thunderbolt5"}, "runtime": "llama.cpp"},
]


def test_verdict_only_check_agrees_with_check_memory_fit_on_every_candidate() -> None:
    compared = errors = 0
    for c, model, variant in itertools.product(candidates(), _MODELS, _VARIANTS):
        args = {"chip": c.chip, "gpu_cores": c.gpu_cores, "memory_gb": c.memory_gb, **model, **variant}
        p = CheckMemoryFitInput.model_validate(args)
        try:
            full = check_memory_fit(p)
        except ToolError as err:  # an input the full check refuses is refused alike, with the same message
            with pytest.raises(ToolError) as same:
                memory_fit_verdict(p)
            assert str(same.value) == str(err), args
            errors += 1
            continue
        quick = memory_fit_verdict(p)
        assert (quick.verdict, quick.fits_on_gpu) == (full.verdict, full.fits_on_gpu), args
        compared += 1
    assert compared > 500 and errors > 0
