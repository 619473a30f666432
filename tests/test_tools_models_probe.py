"""Model names people type that are not catalog tags: read through the real tools (as the agent and MCP call
them), each assumption stated, never a silent borrowed shape when the catalog knows the family and size."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from assistant.ollama import OllamaLayer
from assistant.toolset import build_toolset
from tests.ollama_standin import MYSTERY_CODER_13B, OllamaStandIn
from tests.ollama_standin.models import ModelSpec
from tests.test_mcp import (  # noqa: F401 - fixtures are found by name
    portal,
    standin_url,
    stdio_client_session,
)
from tools import REGISTRY, Registry, ToolError
from tools.models import catalog, quant_allowed
from tools.quants import quants
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


@pytest.mark.parametrize(
    ("name", "tag", "active"),
    [
        ("qwen 30b", "qwen3:30b-a3b", 3.34),
        ("deepseek 671b", "deepseek-r1:671b", 37.6),
        ("gemma 26b", "gemma4:26b-a4b", 3.8),
    ],
)
def test_family_and_size_of_a_catalog_moe_reads_as_that_moe(name: str, tag: str, active: float) -> None:
    # "qwen 30b" (= qwen3:30b, the 30b-a3b MoE) was read as a dense 30B: ~10x too slow.
    out = est({"chip": "M3 Ultra", "memory_gb": 512, "model": name})
    assert out.active_params_billion == active
    assert any(f"read as {tag}: same family and size" in a for a in out.assumptions), out.assumptions


@pytest.mark.parametrize(
    ("name", "later"), [("qwen:7b", "qwen2.5:7b"), ("qwen:72b", "qwen2.5:72b"), ("Qwen 72B", "qwen2.5:72b")]
)
def test_a_first_generation_library_model_is_not_read_as_a_later_version(name: str, later: str) -> None:
    # Ollama's versionless "qwen" is Qwen 1.5 (multi-head attention: 32 KV heads at 7B, 64 at 72B); qwen2.5
    # has 4 / 8. Read as qwen2.5 "same family and size", its KV cache came out 8x too small and a 72B at 32k
    # context "fit" a 96 GB Mac.
    out = est({"chip": "M2 Max", "memory_gb": 96, "model": name, "context_tokens": 32768})
    assert not any("same family and size" in a for a in out.assumptions), out.assumptions
    assert any("not in our catalog" in a and "borrowed" in a for a in out.assumptions), out.assumptions
    assert out.params_billion == float(name.lower().split(":")[-1].split()[-1].rstrip("b"))
    # Versioned names keep reading as the catalog model.
    assert est({"chip": "M2", "model": later.replace(":", " ")}).model == later


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("huihui_ai/gpt-oss-abliterated:20b", "gpt-oss:20b"),
        ("gpt-oss-abliterated:120b", "gpt-oss:120b"),
        ("Qwen3-30B-A3B-abliterated", "qwen3:30b-a3b"),
    ],
)
def test_a_model_read_as_a_catalog_moe_is_sized_with_its_tensor_layout(name: str, tag: str) -> None:
    # Read as gpt-oss:20b (same shape, size and MXFP4 quant), the fine-tune lost gpt-oss's BF16 attention and
    # embeddings: 11.1 GB and 95 tok/s against gpt-oss:20b's own 14 GB and 59 tok/s on the same Mac.
    kw = {"chip": "M3 Max", "memory_gb": 128, "context_tokens": 8192}
    read, known = est({**kw, "model": name}), est({**kw, "model": tag})
    assert any(f"read as {tag}: same family and size" in a for a in read.assumptions), read.assumptions
    assert (read.quant, read.weights_gb, read.active_weights_gb) == (
        known.quant,
        known.weights_gb,
        known.active_weights_gb,
    )
    assert read.expected_tokens_per_second == known.expected_tokens_per_second
    small = {"chip": "M4", "memory_gb": 16, "context_tokens": 8192}
    assert fit({**small, "model": name}).breakdown == fit({**small, "model": tag}).breakdown


def test_a_moe_release_named_with_total_and_active_size_reads_as_the_catalog_moe() -> None:
    # A fine-tune of Qwen3-235B-A22B (same architecture): was a generic MoE borrowing llama3.1:405b's layers.
    out = est({"chip": "M3 Ultra", "memory_gb": 512, "model": "huihui-ai/Qwen3-235B-A22B-abliterated"})
    assert (out.params_billion, out.active_params_billion) == (235.09, 22.0)
    assert any("read as qwen3:235b-a22b: same family and size" in a for a in out.assumptions)
    tune = est({"chip": "M3 Ultra", "memory_gb": 512, "model": "Qwen3-30B-A3B-abliterated"})
    assert tune.active_params_billion == 3.34
    # A different active size is another model: sized from its tag.
    other = est({"chip": "M3 Ultra", "memory_gb": 512, "model": "qwen3:235b-a30b"})
    assert other.active_params_billion == 30.0 and not any("read as" in a for a in other.assumptions)


@pytest.mark.parametrize(
    "name",
    [
        "qwen3:30b-a3b-instruct-2507",
        "qwen3:30b-a3b-instruct-2507-q4_K_M",
        "qwen3:235b-a22b-thinking-2507",
        "Qwen/Qwen3-30B-A3B-Instruct-2507",
    ],
)
def test_the_2507_refresh_has_its_own_longer_context(name: str) -> None:
    # The July 2025 Qwen3 MoE refresh is trained on 262144 tokens; read as qwen3:30b-a3b (40960) a 128k
    # context was refused.
    out = fit({"chip": "M3 Ultra", "memory_gb": 512, "model": name, "context_tokens": 131072})
    assert out.model is not None and out.model.endswith("-2507") and out.context_tokens == 131072


def test_a_family_written_with_a_space_gets_its_default_tag() -> None:
    out = est({"chip": "M4 Max", "model": "Mistral Nemo"})
    assert out.model == "mistral-nemo:12b"
    assert any("Ollama's default tag is mistral-nemo:12b" in a for a in out.assumptions)


def test_a_name_read_as_gpt_oss_has_only_the_quants_gpt_oss_exists_in() -> None:
    # "gpt 20b" is read as gpt-oss:20b; its MXFP4 experts do not requantise, so Q4_K_M (the generic default)
    # or IQ3_XXS cannot be it.
    assert est({"chip": "M4 Max", "model": "gpt 20b"}).quant == "MXFP4"
    for quant in ("Q4_K_M", "IQ3_XXS"):
        with pytest.raises(ToolError, match=f"gpt-oss:20b is not available as {quant}"):
            fit({"chip": "M4 Max", "memory_gb": 36, "model": "gpt 20b", "quant": quant})


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
        ("dolphin-llama3:70b", "llama3:70b"),
        ("dolphin-mixtral:8x7b", "mixtral:8x7b"),
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


def test_a_quant_argument_that_contradicts_the_name_is_used_and_said() -> None:
    out = est({"chip": "M3 Max", "model": "llama3.1:8b-instruct-q8_0", "quant": "Q4_K_M"})
    assert out.quant == "Q4_K_M"
    assert any("name says Q8_0 but quant='Q4_K_M' was given" in a for a in out.assumptions), out.assumptions
    same = est({"chip": "M3 Max", "model": "llama3.1:8b-instruct-q8_0", "quant": "q8_0"})
    assert not any("name says" in a for a in same.assumptions)


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
        ("lmstudio-community/Qwen3-30B-A3B-MLX-4bit", "qwen3:30b-a3b", "MLX-4bit"),
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


@pytest.mark.parametrize(
    ("name", "tag"),
    [("Meta-Llama-3-8B-Instruct", "llama3:8b"), ("Meta-Llama-3.1-70B-Instruct", "llama3.1:70b")],
)
def test_meta_names_resolve(name: str, tag: str) -> None:
    assert est({"chip": "M4 Max", "model": name}).model == tag


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


# ---- installed models the catalog does not know: /api/show facts (stand-in Ollama) ----------------------
def _show_tools(standin: OllamaStandIn, *specs: ModelSpec) -> Registry:
    for spec in specs:
        standin.add_model(spec)
    return build_toolset(None, OllamaLayer(standin.url))


def _fit_installed(tools: Registry, model: str, ctx: int) -> CheckMemoryFitOutput:
    out = tools.get("check_memory_fit").run(
        {"chip": "M3 Ultra", "memory_gb": 512, "model": model, "context_tokens": ctx}
    )
    assert isinstance(out, CheckMemoryFitOutput)
    return out


def test_installed_sliding_window_model_caches_only_the_window_on_local_layers(
    standin: OllamaStandIn,
) -> None:
    # A gemma3 fine-tune: /api/show gives gemma3.attention.sliding_window; gemma3 has one global layer in 6
    # (as the catalog's gemma3 rows). Every layer was counted as global: the KV cache ~5x too large.
    tune = ModelSpec(
        name="gemma3-tune:12b",
        architecture="gemma3",
        parameter_count=12_187_000_000,
        block_count=48,
        context_length=131072,
        embedding_length=3840,
        head_count=16,
        head_count_kv=8,
        key_length=256,
        value_length=256,
        extra_model_info={"gemma3.attention.sliding_window": 1024},
    )
    tools = _show_tools(standin, tune)
    out = _fit_installed(tools, "gemma3-tune:12b", 131072)
    known = fit({"chip": "M3 Ultra", "memory_gb": 512, "model": "gemma3:12b", "context_tokens": 131072})
    assert out.breakdown.kv_cache_gb == pytest.approx(known.breakdown.kv_cache_gb, rel=0.01)
    assert any("sliding window" in a.lower() for a in out.assumptions), out.assumptions


@pytest.mark.parametrize(
    "mla_info",
    [
        # older GGUF conversions: per-head K/V sizes plus the compressed KV rank
        {"head_count_kv": 20, "key_length": 256, "value_length": 256, "kv_lora_rank": 512},
        # newer ones (MLA absorbed): one KV "head" of the 576-wide latent
        {"head_count_kv": 1, "key_length": 576, "value_length": 512, "kv_lora_rank": 512},
    ],
)
def test_installed_mla_model_caches_the_compressed_latent(
    standin: OllamaStandIn, mla_info: dict[str, int]
) -> None:
    # glm-4.7-flash is a deepseek2 (MLA) model: its cache holds kv_lora_rank + rope dims = 576 values per
    # layer and token, like the catalog's DeepSeek rows; read as 20 full heads it was ~18x too large.
    glm = ModelSpec(
        name="glm-4.7-flash:latest",
        architecture="deepseek2",
        parameter_count=29_900_000_000,
        block_count=47,
        context_length=202752,
        embedding_length=2048,
        head_count=20,
        head_count_kv=mla_info["head_count_kv"],
        key_length=mla_info["key_length"],
        value_length=mla_info["value_length"],
        extra_model_info={
            "deepseek2.attention.kv_lora_rank": mla_info["kv_lora_rank"],
            "deepseek2.rope.dimension_count": 64,
            "deepseek2.expert_count": 64,
            "deepseek2.expert_used_count": 4,
        },
    )
    tools = _show_tools(standin, glm)
    out = _fit_installed(tools, "glm-4.7-flash", 131072)
    assert out.breakdown.kv_cache_gb == pytest.approx(576 * 2 * 47 * 131072 / 1e9, rel=0.01)


@pytest.mark.parametrize("reported", ["unknown", "TQ1_0", "F32", ""])
def test_installed_model_with_a_quant_we_do_not_know_is_still_answered(
    standin: OllamaStandIn, reported: str
) -> None:
    # The user named no quant; Ollama's quantization_level is not one of ours. That was a "quant: unknown
    # quantisation" error about a field the user never gave.
    odd = dataclasses.replace(MYSTERY_CODER_13B, name="oddquant:13b", quantization=reported)
    out = _fit_installed(_show_tools(standin, odd), "oddquant:13b", 4096)
    assert out.params_billion == pytest.approx(13.016, abs=0.01)
    if reported == "F32":
        assert out.quant == "F32" and out.breakdown.weights_gb == pytest.approx(13.016 * 4, rel=0.01)
    elif reported:
        assert any(repr(reported) in a for a in out.assumptions), out.assumptions


def test_installed_model_without_a_context_length_uses_its_own_shape(standin: OllamaStandIn) -> None:
    # /api/show gave layers and heads but no context_length: the installed shape still beats one borrowed
    # from the catalog by the tag's size.
    noctx = dataclasses.replace(MYSTERY_CODER_13B, name="noctx:13b", context_length=0)
    out = _fit_installed(_show_tools(standin, noctx), "noctx:13b", 4096)
    assert out.params_billion == pytest.approx(13.016, abs=0.01)
    assert any("/api/show" in a for a in out.assumptions) and any("context" in a for a in out.assumptions)
    assert not any("borrowed" in a for a in out.assumptions), out.assumptions


def test_installed_model_show_cannot_size_is_not_called_missing(standin: OllamaStandIn) -> None:
    # Installed, but /api/show lacks what the maths needs: the error must not say it is not installed.
    bare = dataclasses.replace(MYSTERY_CODER_13B, name="nocount:latest", parameter_count=0, parameter_size="")
    with pytest.raises(ToolError) as err:
        _fit_installed(_show_tools(standin, bare), "nocount", 4096)
    assert "not installed" not in str(err.value) and "installed" in str(err.value)


def test_installed_model_without_a_parameter_count_is_sized_from_its_tensors(standin: OllamaStandIn) -> None:
    # Neither general.parameter_count nor a parameter_size: the verbose tensor list still counts them.
    tensors = (
        ("token_embd.weight", "Q4_K", (5120, 32000)),
        ("output.weight", "Q6_K", (5120, 32000)),
        *((f"blk.{i}.ffn_up.weight", "Q4_K", (5120, 13824)) for i in range(40)),
    )
    counted = 2 * 5120 * 32000 + 40 * 5120 * 13824
    bare = dataclasses.replace(
        MYSTERY_CODER_13B, name="nocount:latest", parameter_count=0, parameter_size="", tensors=tensors
    )
    out = _fit_installed(_show_tools(standin, bare), "nocount", 4096)
    assert out.params_billion == pytest.approx(counted / 1e9, abs=0.001)


# ---- the 2026 Ollama library (shared/data/2026/ollama_models_2026.csv) -------------------------------------
@pytest.mark.parametrize(
    ("name", "tag", "active", "weights_gb"),
    [
        # tags that were "unknown model", or sized from the tag alone (dense where the library says MoE)
        ("qwen3.5:0.8b", "qwen3.5:0.8b", 0.8, 1.0),
        ("qwen3.5:2b", "qwen3.5:2b", 2.0, 2.7),
        ("qwen3-coder-next", "qwen3-coder-next:latest", 3.0, 48.0),
        ("glm-4.7-flash", "glm-4.7-flash:latest", 3.0, None),
        ("nemotron-3-nano", "nemotron-3-nano:30b", 3.5, 24.0),
        ("nemotron-3-super:120b", "nemotron-3-super:120b", 12.0, 87.0),
        ("nemotron-3-super:120b-a12b-q4_K_M", "nemotron-3-super:120b", 12.0, 87.0),
        ("nemotron-3.5-lightning:30b", "nemotron-3.5-lightning:30b", 3.0, 25.0),
        ("smollm2:1.7b", "smollm2:1.7b", 1.71, 1.8),
    ],
)
def test_current_ollama_library_tags_resolve_with_their_sizes(
    name: str, tag: str, active: float, weights_gb: float | None
) -> None:
    out = est({"chip": "M3 Ultra", "memory_gb": 512, "model": name})
    assert (out.model, out.active_params_billion) == (tag, active)
    if weights_gb is not None:
        assert out.weights_gb == weights_gb
    assert not any("not in our catalog" in a for a in out.assumptions), out.assumptions
    entry = catalog()[tag]
    assert entry.src and entry.size_src and entry.as_of


def test_hybrid_rows_cache_only_their_attention_layers() -> None:
    # qwen3.5:0.8b: 6 of 24 layers hold a KV cache (Gated DeltaNet elsewhere), like qwen3.5:9b.
    out = est({"chip": "M4 Max", "model": "qwen3.5:0.8b", "context_tokens": 32768})
    assert out.kv_cache_gb == pytest.approx(2 * 6 * 2 * 256 * 2 * 32768 / 1e9, rel=0.01)


def test_gemma4_default_tag_is_e4b_and_its_per_layer_embeddings_are_not_streamed() -> None:
    # `ollama pull gemma4` is gemma4:e4b (9.6 GB); "gemma4" was refused as needing a size among 12b/26b/31b.
    out = est({"chip": "M4 Pro", "model": "gemma4"})
    assert (out.model, out.weights_gb) == ("gemma4:e4b", 9.6)
    # Decode streams the 4.5B effective parameters, not the 9.6 GB file (per-layer tables, audio/vision).
    assert out.active_weights_gb == pytest.approx(4.5 * 4.89 / 8, rel=0.03)
    assert any("upper estimate" in a for a in out.assumptions)
    small = fit({"chip": "M2", "memory_gb": 8, "model": "gemma4:e2b"})
    assert small.breakdown.weights_gb == 7.2  # memory: the whole file


@pytest.mark.parametrize(
    "name", ["qwen3.5:397b-cloud", "qwen3-coder:480b-cloud", "glm-5.1:cloud", "kimi-k2.6:cloud"]
)
def test_cloud_tags_are_refused_as_not_running_on_the_mac(name: str) -> None:
    # qwen3.5:397b-cloud was estimated as a dense 397B on the Mac; nothing of it is loaded locally.
    for tool in (est, fit):
        with pytest.raises(ToolError, match="is an Ollama cloud model") as err:
            tool({"chip": "M3 Ultra", "memory_gb": 512, "model": name})
        assert err.value.fields == ["model"]
    with pytest.raises(ToolError, match="cloud model"):
        REGISTRY.get("recommend_machine").run({"budget_usd": 5000, "workload": "llm", "target_model": name})


# ---- quant spellings ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spelling", "quant"),
    [
        ("Q4-K-M", "Q4_K_M"),
        ("q4km", "Q4_K_M"),
        ("iq4xs", "IQ4_XS"),
        ("mxfp4_q8", "MXFP4-Q8"),
        ("fp32", "F32"),
        ("6bit", "Q6_K"),
        ("5bit", "Q5_K_M"),
        ("3bit", "Q3_K_M"),
        ("2bit", "Q2_K"),
        ("fp8", "Q8_0"),
        ("nvfp4", "NVFP4"),
        ("MLX-5bit", "MLX-5bit"),
    ],
)
def test_quant_spellings_people_use_resolve(spelling: str, quant: str) -> None:
    assert est({"chip": "M4 Max", "model": "qwen2.5:14b", "quant": spelling}).quant == quant


@pytest.mark.parametrize(
    ("tag", "quant"),
    [("qwen3.8:27b-nvfp4", "NVFP4"), ("qwen3.8:27b-mlx", "MLX-4bit"), ("qwen3.5:27b-q8_0", "Q8_0")],
)
def test_ollama_format_tags_carry_their_format(tag: str, quant: str) -> None:
    # Ollama ships -nvfp4 and -mlx tags next to the GGUF ones (2026 library table): 27b-nvfp4 is not Q4_K_M.
    out = est({"chip": "M5 Max", "model": tag})
    assert (out.model, out.quant) == (tag.rsplit("-", 1)[0], quant)


def test_every_catalog_row_says_where_its_size_comes_from_and_when() -> None:
    for entry in catalog().values():
        assert entry.src and entry.size_src and entry.as_of, entry.tag
        # the default quant is one the model exists in, and a published size is for a quant it exists in
        assert entry.default_quant is None or quant_allowed(entry, entry.default_quant), entry.tag
        assert all(quant_allowed(entry, q) and q in quants() for q in entry.file_gb), entry.tag


@pytest.mark.parametrize(
    "hybrid_info",
    [
        # nemotron_h-style: per-layer KV head counts, 0 on the Mamba layers (6 attention layers of 48)
        {"nemotron_h.attention.head_count_kv": [2 if i % 8 == 7 else 0 for i in range(48)]},
        # qwen3next-style: one full-attention layer in 8
        {"nemotron_h.attention.head_count_kv": 2, "nemotron_h.full_attention_interval": 8},
    ],
)
def test_installed_hybrid_model_caches_only_its_attention_layers(
    standin: OllamaStandIn, hybrid_info: dict[str, Any]
) -> None:
    # Read as 48 attention layers (the per-layer list collapsed to its maximum): KV cache 8x too large.
    hybrid = ModelSpec(
        name="hybrid-tune:30b",
        architecture="nemotron_h",
        parameter_count=30_000_000_000,
        block_count=48,
        context_length=262144,
        embedding_length=2688,
        head_count=32,
        head_count_kv=None,
        key_length=128,
        value_length=128,
        extra_model_info=hybrid_info,
    )
    out = _fit_installed(_show_tools(standin, hybrid), "hybrid-tune:30b", 131072)
    assert out.breakdown.kv_cache_gb == pytest.approx(2 * 6 * 2 * 128 * 2 * 131072 / 1e9, rel=0.02)
    assert any("only every 8th layer has attention" in a for a in out.assumptions), out.assumptions


def test_a_pulled_cloud_model_is_not_sized_from_its_show_facts(standin: OllamaStandIn) -> None:
    # `ollama pull glm-5.1:cloud` installs a stub whose /api/show may describe the remote model: still
    # nothing of it runs on this Mac.
    stub = dataclasses.replace(MYSTERY_CODER_13B, name="glm-5.1:cloud")
    with pytest.raises(ToolError, match="is an Ollama cloud model"):
        _fit_installed(_show_tools(standin, stub), "glm-5.1:cloud", 4096)
    assert not standin.requests_to("/api/show")


def test_an_installed_model_named_like_a_repo_is_described_by_its_own_show_facts(
    standin: OllamaStandIn,
) -> None:
    # 'someone/qwen2.5-7b-instruct' may be an Ollama namespace import of a fine-tune: installed, its own
    # /api/show facts win over the catalog row its name resembles.
    imported = dataclasses.replace(MYSTERY_CODER_13B, name="someone/qwen2.5-7b-instruct:latest")
    out = _fit_installed(_show_tools(standin, imported), "someone/qwen2.5-7b-instruct", 4096)
    assert out.params_billion == pytest.approx(13.016, abs=0.01)
    assert any("/api/show" in a for a in out.assumptions)


def test_installed_moe_without_experts_used_says_it_is_read_as_dense(standin: OllamaStandIn) -> None:
    odd = dataclasses.replace(
        MYSTERY_CODER_13B, name="halfmoe:13b", extra_model_info={"llama.expert_count": 8}
    )
    out = _fit_installed(_show_tools(standin, odd), "halfmoe:13b", 4096)
    assert any("8 experts but not how many are used" in a for a in out.assumptions), out.assumptions


def test_params_only_does_not_inherit_the_borrowed_models_trained_context() -> None:
    # params_billion=14 borrows phi3:medium's shape; its 4096-token trained context refused 16k ("exceeds the
    # model's trained context") although no model was named.
    out = fit({"chip": "M4 Pro", "memory_gb": 48, "params_billion": 14, "context_tokens": 16384})
    assert out.verdict == "fits" and out.context_tokens == 16384
    assert any("trained context, which is unknown" in a for a in out.assumptions)


def test_a_size_in_trillions_is_read() -> None:
    # 'kimi-k2:1t' was an unknown model: '1t' was not read as a size.
    out = est({"chip": "M3 Ultra", "memory_gb": 512, "model": "kimi-k2:1t"})
    assert out.params_billion == 1000
    assert any("'1t' = 1000B" in a for a in out.assumptions)
    assert any("mixture-of-experts" in a for a in out.assumptions), (
        "a 1T dense reading must carry the MoE caveat"
    )
    with pytest.raises(ToolError, match="not a model size"):
        est({"chip": "M3 Ultra", "memory_gb": 512, "model": "x:4t"})


@pytest.mark.parametrize("blank", ["", "  ", ":"])
def test_a_blank_target_model_or_image_model_is_no_target(blank: str) -> None:
    # recommend_machine read target_model "" as the default image model (FLUX) and refused the question.
    tool = REGISTRY.get("recommend_machine")
    assert tool.run({"budget_usd": 2000, "target_model": blank}) == tool.run({"budget_usd": 2000})
    both = {"budget_usd": 3000, "workload": "both", "target_model": "qwen3:14b"}
    assert tool.run({**both, "image_model": blank}) == tool.run(both)


def test_an_mlx_quant_under_ollama_is_its_mlx_engine_and_under_llama_cpp_is_not_loadable() -> None:
    # Ollama's 2026 library ships -nvfp4 / -mlx tags (run by its MLX engine): "ollama loads GGUF files" was
    # wrong.
    base = {"chip": "M4 Max", "memory_gb": 64, "model": "qwen3.6:27b", "quant": "NVFP4"}
    ollama = fit(base)
    assert any("Ollama runs it with its MLX engine" in a for a in ollama.assumptions)
    assert not any("loads GGUF files" in a for a in ollama.assumptions)
    llama_cpp = fit({**base, "runtime": "llama.cpp"})
    assert any("llama.cpp loads GGUF files" in a for a in llama_cpp.assumptions)


@pytest.mark.parametrize(
    ("repo", "tag", "quant"),
    [
        ("mlx-community/Qwen3-30B-A3B-4bit-DWQ", "qwen3:30b-a3b", "MLX-4bit"),
        ("mlx-community/Qwen3-14B-4bit-AWQ", "qwen3:14b", "MLX-4bit"),
        ("mlx-community/gpt-oss-120b-MXFP4-Q4", "gpt-oss:120b", "MXFP4-Q8"),
    ],
)
def test_mlx_repos_with_a_method_or_mixed_suffix_keep_their_mlx_quant(
    repo: str, tag: str, quant: str
) -> None:
    # '-4bit-DWQ' was sized as a GGUF Q4_K_M of an unknown 30B; '-MXFP4-Q4' was refused as Q4_K_M for gpt-oss.
    out = est({"chip": "M4 Max", "memory_gb": 128, "model": repo})
    assert (out.model, out.quant) == (tag, quant)
