"""Model names people type that are not catalog tags: read through the real tools (as the agent and MCP call
them), each assumption stated, never a silent borrowed shape when the catalog knows the family and size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tests.test_mcp import (  # noqa: F401 - fixtures are found by name
    portal,
    standin_url,
    stdio_client_session,
)
from tools import REGISTRY, ToolError
from tools.schemas import CheckMemoryFitOutput, EstimateSpeedOutput


def est(arguments: Mapping[str, Any]) -> EstimateSpeedOutput:
    out = REGISTRY.get("estimate_speed").run(arguments)
    assert isinstance(out, EstimateSpeedOutput)
    return out


def fit(arguments: Mapping[str, Any]) -> CheckMemoryFitOutput:
    out = REGISTRY.get("check_memory_fit").run(arguments)
    assert isinstance(out, CheckMemoryFitOutput)
    return out


# ---- a family without a version: the one catalog shape of that family and size ---------------------------
@pytest.mark.parametrize("name", ["LLaMA 7B", "llama-7b", "llama:7b", "Llama 7B chat"])
def test_family_and_size_without_version_reads_as_the_one_catalog_model(name: str) -> None:
    # The catalog's only llama of 7B is llama2:7b (6.74B, MHA: 32 KV heads). Borrowing mistral:7b's GQA shape
    # (8 KV heads) made the KV cache 4x too small.
    known = est({"chip": "M2", "model": "llama2:7b", "quant": "Q4_K_M", "context_tokens": 4096})
    out = est({"chip": "M2", "model": name, "context_tokens": 4096})
    assert out.params_billion == 6.74
    assert out.kv_cache_gb == pytest.approx(known.kv_cache_gb, rel=1e-6)
    assert out.weights_gb == pytest.approx(known.weights_gb, rel=1e-6)
    assert any("read as llama2:7b: same family and size" in a for a in out.assumptions), out.assumptions
    assert not any("mistral" in a for a in out.assumptions)


def test_same_family_and_size_with_one_shape_reads_as_that_shape() -> None:
    # llama3:8b and llama3.1:8b share one shape and parameter count: either is the same answer.
    out = est({"chip": "M2", "model": "llama 8b", "context_tokens": 4096})
    known = est({"chip": "M2", "model": "llama3.1:8b", "context_tokens": 4096})
    assert out.params_billion == 8.03 and out.kv_cache_gb == pytest.approx(known.kv_cache_gb, rel=1e-6)
    note = next(a for a in out.assumptions if "same family and size" in a)
    assert "llama3.1:8b" in note and "llama3:8b" in note
    # llama2:13b (MHA, 40 KV heads) is the only 13B llama.
    assert est({"chip": "M2", "model": "llama-13b"}).params_billion == 13.02


def test_same_family_and_size_with_different_shapes_is_not_guessed() -> None:
    # gemma2:27b and gemma3:27b differ in layers: the name does not say which, so the size-only fallback stays
    # and both candidates are named.
    out = est({"chip": "M3 Max", "model": "gemma 27b"})
    assert out.params_billion == 27.0
    note = next(a for a in out.assumptions if "not in our catalog" in a)
    assert "gemma2:27b" in note and "gemma3:27b" in note and "different shapes" in note
    assert "read as" not in note


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("qwen3-abliterated:8b", "qwen3:8b"),
        ("huihui-ai/Qwen3-8B-abliterated", "qwen3:8b"),
        ("llama3-gradient:8b", "llama3:8b"),
    ],
)
def test_a_variant_of_a_catalog_model_with_its_version_and_size_reads_as_it(name: str, tag: str) -> None:
    # A fine-tune named after its base (family, version, size): the base's shape, not a neighbour's.
    out = est({"chip": "M2", "model": name})
    assert any(f"read as {tag}: same family and size" in a for a in out.assumptions), out.assumptions


@pytest.mark.parametrize(
    "name", ["codellama 7b", "tinyllama 1.1b", "llama3 7b", "qwen4 7b", "qwen3.5-x:8b", "qwen3.6:8b"]
)
def test_no_match_across_families_or_versions(name: str) -> None:
    # codellama/tinyllama are other families; a version the catalog lacks (llama3 7b, qwen4) is a new model.
    out = est({"chip": "M2", "model": name})
    assert not any("same family and size" in a for a in out.assumptions), out.assumptions
    assert any("assumed dense" in a for a in out.assumptions)


# ---- a quant written inside the name ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("LLaMA 7B Q4_0", "Q4_0"),
        ("llama 7b q4_0", "Q4_0"),
        ("Llama-2-7B-Q8_0", "Q8_0"),
        ("mistral 7b fp16", "F16"),
        ("llama3.1 8b q8_0", "Q8_0"),
        ("newmodel 12b Q5_K_M", "Q5_K_M"),
    ],
)
def test_quant_written_in_the_name_is_honoured(name: str, quant: str) -> None:
    assert est({"chip": "M3 Max", "model": name}).quant == quant
    assert fit({"chip": "M3 Max", "memory_gb": 36, "model": name}).quant == quant


def test_quant_in_the_name_still_refused_when_the_model_has_no_such_weights() -> None:
    with pytest.raises(ToolError, match="not available as Q4_K_M"):
        est({"chip": "M3 Max", "model": "gpt-oss 20b q4_k_m"})


# ---- names people paste: Hugging Face repo ids without hf.co/ ---------------------------------------------
@pytest.mark.parametrize(
    ("name", "tag", "quant"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", "llama3.1:8b", "Q4_K_M"),
        ("bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", "llama3.1:8b", "Q4_K_M"),
        ("unsloth/gpt-oss-20b-GGUF", "gpt-oss:20b", "MXFP4"),
        ("mlx-community/Qwen3-30B-A3B-4bit", "qwen3:30b-a3b", "MLX-4bit"),
        ("mlx-community/Llama-3.3-70B-Instruct-8bit", "llama3.3:70b", "MLX-8bit"),
        ("bartowski/Qwen2.5-14B-Instruct-GGUF:Q5_K_M", "qwen2.5:14b", "Q5_K_M"),
        ("https://huggingface.co/Qwen/Qwen3-235B-A22B", "qwen3:235b-a22b", "Q4_K_M"),
    ],
)
def test_hugging_face_repo_ids_resolve_to_the_catalog_model(name: str, tag: str, quant: str) -> None:
    # unsloth/gpt-oss-20b-GGUF was read as a dense 20B (3.6B are active); the mlx-community 4bit repo as a
    # Q4_K_M GGUF of a dense-shaped 30B.
    out = est({"chip": "M4 Max", "model": name})
    assert (out.model, out.quant) == (tag, quant)
    assert any("Hugging Face repo" in a and f"read as {tag}" in a for a in out.assumptions), out.assumptions


def test_unknown_hugging_face_repo_is_sized_from_its_name_with_its_mlx_quant() -> None:
    out = est({"chip": "M4 Max", "model": "mlx-community/Brandnew-32B-Instruct-4bit"})
    assert out.params_billion == 32.0 and out.quant == "MLX-4bit"
    assert any("not in our catalog" in a for a in out.assumptions)


# ---- absurd names: a clear error or a stated assumption, never a traceback --------------------------------
@pytest.mark.parametrize("blank", ["", "   ", ":", "/", " : "])
def test_a_blank_model_is_not_given(blank: str) -> None:
    # Models fill optional fields with "": with params_billion that is a params-only question.
    out = est({"chip": "M3 Max", "model": blank, "params_billion": 7})
    assert out.model is None and out.params_billion == 7
    with pytest.raises(ToolError, match=r"^model: give a model as an Ollama tag"):
        est({"chip": "M3 Max", "model": blank})


@pytest.mark.parametrize(
    ("name", "size"), [("x:100000b", "100000B"), ("x:0b", "0B"), ("x:0.0001b", "0.0001B")]
)
def test_a_size_no_model_has_is_refused_saying_so(name: str, size: str) -> None:
    with pytest.raises(ToolError, match=f"{size} parameters is not a model size") as err:
        fit({"chip": "M3 Max", "memory_gb": 64, "model": name})
    assert err.value.fields == ["model"] and len(str(err.value)) < 300


# ---- the same names over MCP (stdio server, the stand-in as its Ollama: /api/show knows none of them) ---
MCP_NAMES_ANSWERED = {
    "LLaMA 7B": 6.74,
    "llama 7b q4_0": 6.74,
    "unsloth/gpt-oss-20b-GGUF": 20.91,
    "mlx-community/Qwen3-30B-A3B-4bit": 30.53,
    "qwen4:32b": 32.0,
    "llama5:400b-a17b": 400.0,
}
MCP_NAMES_REFUSED = {
    "x:100000b": "is not a model size",
    "": "give a model as an Ollama tag",
    "llama3:abc": "unknown model",
    "gpt-oss 20b q4_k_m": "not available as Q4_K_M",
}


@pytest.fixture(scope="module")
def mcp(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("stdio_client_session")


def test_model_names_over_mcp_are_answers_or_short_clear_errors(mcp: Any) -> None:
    session = mcp
    for name, params in MCP_NAMES_ANSWERED.items():
        result = session.call("check_memory_fit", {"chip": "M3 Ultra", "memory_gb": 512, "model": name})
        assert not result.is_error, (name, result.content)
        assert result.structured_content["params_billion"] == params, name
    for name, message in MCP_NAMES_REFUSED.items():
        result = session.call("estimate_speed", {"chip": "M3 Max", "model": name})
        text = result.content[0].text
        assert result.is_error and message in text and "Traceback" not in text, (name, text)
