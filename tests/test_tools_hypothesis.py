"""Throw arbitrary inputs at every tool's run(): the only exception allowed out is ToolError."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools import REGISTRY, ToolError

NAMES = REGISTRY.names()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        [
            "M3 Max",
            "m4 pro",
            "M1",
            "llama3.3:70b",
            "qwen3:30b-a3b",
            "Q4_K_M",
            "q8_0",
            "70b",
            "flux",
            "f16",
            "llm",
            "image",
            "research",
            "any",
            "gemma3:27b",
            "M5 Ultra",
            "-1",
            "1e400",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _field_names(name: str) -> list[str]:
    return list(REGISTRY.get(name).input_model.model_fields)


@st.composite
def plausible_args(draw: st.DrawFn, name: str) -> dict:
    """Mostly real field names with arbitrary values, sometimes an unknown key."""
    keys = _field_names(name)
    chosen = draw(st.lists(st.sampled_from(keys), max_size=len(keys), unique=True))
    out = {k: draw(values) for k in chosen}
    if draw(st.booleans()):
        out[draw(st.text(max_size=10))] = draw(values)
    return out


@st.composite
def typed_args(draw: st.DrawFn, name: str) -> dict:
    """Well-typed values over realistic domains, to reach the domain logic rather than the validators."""
    out: dict = {}
    opt = lambda s: st.one_of(st.none(), s)  # noqa: E731
    out["chip"] = draw(
        opt(
            st.sampled_from(
                [
                    "M1",
                    "M1 Max",
                    "M2 Ultra",
                    "M3 Pro",
                    "M3 Max",
                    "M4 Max",
                    "M5",
                    "M5 Ultra",
                    "m4pro",
                    "M9",
                    "Apple M3 Max 40-core",
                ]
            )
        )
    )
    if name in ("estimate_speed", "check_memory_fit"):
        out["gpu_cores"] = draw(opt(st.integers(1, 256)))
        out["memory_gb"] = draw(opt(st.sampled_from([8, 16, 18, 24, 36, 48, 64, 96, 128, 192, 512, 33.3])))
        out["model"] = draw(
            opt(
                st.sampled_from(
                    [
                        "llama3.3:70b",
                        "qwen2.5:14b-instruct-q4_K_M",
                        "gemma3:27b",
                        "gpt-oss:20b",
                        "mixtral:8x7b",
                        "phi3:mini",
                        "nope:1b",
                    ]
                )
            )
        )
        out["params_billion"] = draw(opt(st.floats(0.01, 3000)))
        out["quant"] = draw(
            opt(
                st.sampled_from(
                    ["Q4_K_M", "Q2_K", "IQ3_XXS", "Q8_0", "F16", "MLX-4bit", "MXFP4", "q6", "bad"]
                )
            )
        )
        out["context_tokens"] = draw(st.integers(1, 300_000))
        if name == "estimate_speed":
            out["bandwidth_gbps"] = draw(opt(st.floats(1, 20000)))
        else:
            out["kv_cache_type"] = draw(st.sampled_from(["f16", "q8_0", "q4_0"]))
            out["parallel"] = draw(st.integers(1, 16))
            out["gpu_memory_limit_gb"] = draw(opt(st.floats(1, 600)))
    elif name == "lookup_benchmarks":
        out = {
            "query": draw(opt(st.text(max_size=60))),
            "kind": draw(st.sampled_from(["llm", "image", "any"])),
        }
    else:
        out = {
            "budget_usd": draw(opt(st.floats(1, 1_000_000))),
            "workload": draw(st.sampled_from(["llm", "image", "research"])),
            "target_model": draw(opt(st.sampled_from(["llama3.3:70b", "qwen3:235b-a22b", "x"]))),
            "target_params_billion": draw(opt(st.floats(0.1, 3000))),
            "context_tokens": draw(st.integers(1, 1_048_576)),
            "portable": draw(opt(st.booleans())),
        }
    return {k: v for k, v in out.items() if v is not None}


@st.composite
def valid_args(draw: st.DrawFn, name: str) -> dict:
    """Inputs every tool must answer (a real chip bin, a catalog model, a context it was trained for)."""
    from tools.chips import chip_bins
    from tools.models import catalog

    chip_bin = draw(st.sampled_from(chip_bins()))
    tag = draw(st.sampled_from(sorted(catalog())))
    native = catalog()[tag].native_ctx
    quants = catalog()[tag].allowed_quants or ("Q4_K_M", "Q4_0", "Q5_K_M", "Q6_K", "Q8_0", "F16", "Q3_K_M")
    quant = draw(st.sampled_from(quants))  # gpt-oss exists only as MXFP4: other quants are not valid input
    common = {"chip": chip_bin.chip, "model": tag, "quant": quant}
    if name == "estimate_speed":
        return common | {
            "gpu_cores": draw(st.sampled_from(chip_bin.gpu_cores)),
            "context_tokens": draw(st.integers(0, native)),
        }
    if name == "check_memory_fit":
        return common | {
            "memory_gb": draw(st.sampled_from(chip_bin.memory_gb)),
            "context_tokens": draw(st.integers(1, native)),
            "kv_cache_type": draw(st.sampled_from(["f16", "q8_0", "q4_0"])),
            "parallel": draw(st.integers(1, 4)),
        }
    if name == "lookup_benchmarks":
        return {
            "query": draw(
                st.one_of(st.none(), st.sampled_from(["m3 max", "70b", "mac mini", "flux", "qwen"]))
            ),
            "kind": draw(st.sampled_from(["llm", "image", "any"])),
        }
    return {
        "budget_usd": draw(st.floats(300, 20_000)),
        "workload": draw(st.sampled_from(["llm", "image", "research"])),
        "context_tokens": draw(st.integers(1024, 32768)),
    }


def _only_tool_errors(name: str, args: object) -> None:
    try:
        result = REGISTRY.get(name).run(args)  # type: ignore[arg-type]
    except ToolError as err:
        assert str(err).strip()
        return
    assert isinstance(result, REGISTRY.get(name).output_model)
    json.dumps(result.model_dump(mode="json"))


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(data=st.data())
def test_arbitrary_dicts(name: str, data: st.DataObject) -> None:
    _only_tool_errors(name, data.draw(plausible_args(name)))


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(data=st.data())
def test_typed_inputs_reach_domain_logic(name: str, data: st.DataObject) -> None:
    _only_tool_errors(name, data.draw(typed_args(name)))


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(data=st.data())
def test_valid_inputs_are_answered(name: str, data: st.DataObject) -> None:
    """The tests above would pass if every call raised ToolError; valid questions must get an answer."""
    args = data.draw(valid_args(name))
    result = REGISTRY.get(name).run(args)  # a ToolError here fails the test
    assert isinstance(result, REGISTRY.get(name).output_model)
    dumped = result.model_dump(mode="json")
    assert dumped["sources"], "every answer names its sources"
    if name in ("estimate_speed", "check_memory_fit"):
        assert result.model == args["model"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(data=st.data())
def test_json_strings_and_junk(name: str, data: st.DataObject) -> None:
    payload = data.draw(
        st.one_of(
            st.text(max_size=80),
            plausible_args(name).map(json.dumps),
            values.map(lambda v: json.dumps(v, allow_nan=True)),
            st.binary(max_size=40),
        )
    )
    _only_tool_errors(name, payload)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("payload", [[], 0, 3.5, True, object(), ["chip"], {"chip": float("nan")}, "{}" * 3])
def test_non_mapping_payloads(name: str, payload: object) -> None:
    _only_tool_errors(name, payload)


# ---- issue 15: MoE, tag-derived sizing and prefill keep the physical invariants ---------------------------
_CHIPS = [
    "M1",
    "M1 Max",
    "M2 Ultra",
    "M3 Max",
    "M3 Ultra",
    "M4",
    "M4 Pro",
    "M4 Max",
    "M5",
    "M5 Max",
    "M5 Ultra",
]
_MODELS = [
    "gpt-oss:20b",
    "gpt-oss:120b",
    "qwen3:30b-a3b",
    "qwen3:235b-a22b",
    "deepseek-r1:671b",
    "mixtral:8x7b",
    "qwen3.6:35b-a3b",
    "gemma4:26b-a4b",
    "llama4:scout",
    "llama3.3:70b",
    "qwen2.5:72b",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chip=st.sampled_from(_CHIPS),
    model=st.one_of(
        st.sampled_from(_MODELS),
        st.builds(lambda t, a: f"newmodel:{t}b-a{a}b", st.integers(2, 1000), st.integers(1, 60)).filter(
            lambda s: int(s.split(":")[1].split("b-a")[1][:-1]) <= int(s.split(":")[1].split("b-")[0])
        ),
        st.builds(lambda n, s: f"newmix:{n}x{s}b", st.integers(2, 16), st.integers(1, 30)),
        st.builds(lambda s: f"newdense:{s}b", st.integers(1, 700)),
    ),
    ctx=st.integers(0, 32768),
)
def test_estimate_keeps_expected_below_ceiling_and_moe_below_dense(chip: str, model: str, ctx: int) -> None:
    out = REGISTRY.get("estimate_speed").run({"chip": chip, "model": model, "context_tokens": ctx})
    assert 0 < out.expected_tokens_per_second <= out.ceiling_tokens_per_second  # type: ignore[attr-defined]
    low, high = out.expected_range  # type: ignore[attr-defined]
    assert low <= out.expected_tokens_per_second <= high <= out.ceiling_tokens_per_second  # type: ignore[attr-defined]
    assert out.active_weights_gb <= out.weights_gb  # type: ignore[attr-defined]
    if out.active_params_billion < out.params_billion:  # type: ignore[attr-defined]
        assert out.active_weights_gb < out.weights_gb  # type: ignore[attr-defined] # never read as dense
    assert out.prefill_tokens_per_second and out.prefill_tokens_per_second > 0  # type: ignore[attr-defined]
