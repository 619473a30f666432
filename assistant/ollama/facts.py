"""What Ollama says about its models: installed (/api/tags), loaded (/api/ps), and each one's facts
(/api/show, verbose: architecture numbers and the per-tensor layout the memory and speed maths need)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import ollama
from pydantic import BaseModel, Field

from tools.models import full_tag, swa_global_layer_every

UNKNOWN_CONTEXT = 1_048_576
"""native_context used when /api/show gives no context length: long contexts are not refused on a guess."""

__all__ = [
    "GGML_BITS",
    "InstalledModel",
    "LoadedModel",
    "ModelFacts",
    "canonical_model_name",
    "installed_models",
    "loaded_models",
    "model_facts",
    "tensor_layout",
]


class InstalledModel(BaseModel):
    name: str = Field(description='Full tag as Ollama lists it, e.g. "nomic-embed-text:latest".')
    size_bytes: int | None = None
    digest: str | None = None
    family: str | None = None
    parameter_size: str | None = None
    quantization: str | None = None
    modified_at: datetime | None = None


class LoadedModel(BaseModel):
    name: str
    size_bytes: int | None = Field(default=None, description="Memory the loaded model takes in total.")
    size_vram_bytes: int | None = Field(
        default=None, description="Part of it in GPU memory: the ground truth for memory-fit on this Mac."
    )
    context_length: int | None = None
    expires_at: datetime | None = None

    @property
    def gpu_fraction(self) -> float | None:
        """1.0 = fully on the GPU; less means Ollama offloaded layers to the CPU (much slower)."""
        if not self.size_bytes or self.size_vram_bytes is None:
            return None
        return min(1.0, self.size_vram_bytes / self.size_bytes)


# Bits per weight of GGUF tensor types (ggml block sizes): what a tensor of n elements occupies.
GGML_BITS = {
    "F32": 32.0, "F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q8_1": 9.0, "Q4_0": 4.5, "Q4_1": 5.0,
    "Q5_0": 5.5, "Q5_1": 6.0, "Q2_K": 2.625, "Q3_K": 3.4375, "Q4_K": 4.5, "Q5_K": 5.5, "Q6_K": 6.5625,
    "Q8_K": 9.125, "IQ1_S": 1.5625, "IQ1_M": 1.75, "IQ2_XXS": 2.0625, "IQ2_XS": 2.3125, "IQ2_S": 2.5,
    "IQ3_XXS": 3.0625, "IQ3_S": 3.4375, "IQ4_NL": 4.5, "IQ4_XS": 4.25, "MXFP4": 4.25, "TQ1_0": 1.6875,
    "TQ2_0": 2.0625,
}  # fmt: skip


def tensor_layout(
    tensors: Sequence[Mapping[str, Any]], expert_count: int | None, expert_used: int | None
) -> dict[str, int]:
    """Weights in the file and weights read per token, from /api/show's tensor list.

    Routed-expert tensors (``*_exps``) are read in the proportion expert_used/expert_count; shared experts
    (``*_shexp``), attention, norms and the output head every token; the input embedding table
    (``token_embd``) only one row per token, unless the output head is tied to it (no ``output.weight``).
    Unknown tensor types make the layout unusable: nothing is returned rather than a guess.
    """
    if not tensors:
        return {}
    names = {str(t.get("name", "")) for t in tensors}
    tied = "output.weight" not in names
    share = (expert_used / expert_count) if expert_count and expert_used else 1.0
    total_b = active_b = 0.0
    total_n = active_n = 0
    for t in tensors:
        bits = GGML_BITS.get(str(t.get("type", "")).upper())
        shape = t.get("shape") or []
        if bits is None or not shape:
            return {}
        n = 1
        for d in shape:
            n *= int(d)
        size = n * bits / 8
        total_b += size
        total_n += n
        name = str(t.get("name", ""))
        if name.startswith("token_embd") and not tied:
            continue
        frac = share if "_exps" in name else 1.0
        active_b += size * frac
        active_n += int(n * frac)
    return {
        "weights_bytes": int(total_b),
        "active_weights_bytes": int(active_b),
        "active_parameter_count": active_n,
        "tensor_parameter_count": total_n,
    }


class ModelFacts(BaseModel):
    """What /api/show tells about an installed model, normalised across architectures."""

    name: str
    family: str | None = Field(default=None, description="general.architecture, e.g. llama, qwen2, gemma2.")
    parameter_count: int | None = None
    parameter_size: str | None = None
    quantization: str | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    key_length: int | None = None
    value_length: int | None = None
    embedding_length: int | None = None
    context_length: int | None = None
    sliding_window: int | None = None
    sliding_window_pattern: int | None = Field(
        default=None, description="Every Nth layer is global (full context), when the GGUF says so."
    )
    kv_lora_rank: int | None = Field(default=None, description="MLA (deepseek2): compressed KV width.")
    kv_layer_every: int | None = Field(
        default=None,
        description="Hybrid models (Mamba or DeltaNet layers between attention layers): every Nth layer "
        "holds a KV cache, from a per-layer head_count_kv with zeros or <arch>.full_attention_interval.",
    )
    rope_dimension_count: int | None = None
    expert_count: int | None = None
    expert_used_count: int | None = None
    weights_bytes: int | None = Field(default=None, description="Sum of all tensor sizes (verbose show).")
    active_weights_bytes: int | None = Field(
        default=None, description="Tensor bytes read per generated token (MoE: routed share of experts)."
    )
    active_parameter_count: int | None = None
    tensor_parameter_count: int | None = Field(
        default=None, description="Parameters counted over the tensor list (verbose show)."
    )
    capabilities: list[str] | None = Field(
        default=None, description="None when this Ollama does not report capabilities."
    )

    @property
    def supports_tools(self) -> bool:
        return self.capabilities is not None and "tools" in self.capabilities

    @property
    def params_billion(self) -> float | None:
        if self.parameter_count:
            return self.parameter_count / 1e9
        parsed = _parse_parameter_size(self.parameter_size)
        if parsed is None and self.tensor_parameter_count:
            return self.tensor_parameter_count / 1e9
        return parsed

    @property
    def head_dim(self) -> int | None:
        if self.key_length:
            return self.key_length
        if self.embedding_length and self.n_heads:
            return self.embedding_length // self.n_heads
        return None

    def architecture(self) -> dict[str, Any]:
        """Fields of the tools package's ``ModelArchitecture`` (KV-cache and speed maths need them all).

        Raises ValueError naming what /api/show did not provide, rather than guessing a layer count.
        """
        values: dict[str, Any] = {
            "params_billion": self.params_billion,
            "n_layers": self.n_layers,
            "n_kv_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
        }
        missing = [key for key, value in values.items() if not value]
        if missing:
            raise ValueError(
                f"Ollama's /api/show for {self.name} does not give {', '.join(missing)} "
                f"(architecture {self.family or 'unknown'})."
            )
        # Trained context not reported: do not refuse long contexts on a guess (the caller says so).
        values["native_context"] = self.context_length or UNKNOWN_CONTEXT
        values["params_billion"] = round(float(values["params_billion"]), 3)
        values["family"] = self.family
        if self.kv_lora_rank:
            # MLA (DeepSeek V2/V3, GLM-4.7-Flash: GGUF architecture deepseek2): the cache holds the compressed
            # latent (kv_lora_rank) plus the rope part of K per layer and token, not per-head K and V. Written
            # as one KV "head" of half that width, as the catalog's DeepSeek rows (K+V = 2 x head_dim).
            latent = self.kv_lora_rank + (self.rope_dimension_count or 64)
            values["n_kv_heads"], values["head_dim"] = 1, -(-latent // 2)
        if self.n_heads and self.n_heads >= values["n_kv_heads"]:
            values["n_heads"] = self.n_heads
        if self.sliding_window and self.sliding_window_pattern and self.sliding_window_pattern > 1:
            values["sliding_window"] = self.sliding_window
            values["global_layer_every"] = self.sliding_window_pattern
        elif self.kv_layer_every and self.kv_layer_every > 1:
            # Only attention layers cache tokens: a "window" of 1 on the others (as the catalog hybrid rows)
            values["sliding_window"], values["global_layer_every"] = 1, self.kv_layer_every
        if self.expert_count and self.expert_used_count:
            values["n_experts"] = self.expert_count
            values["n_experts_active"] = self.expert_used_count
        if self.weights_bytes:
            values["weights_gb"] = round(self.weights_bytes / 1e9, 3)
        # MoE only: the dense decode model is calibrated on whole-file sizes.
        moe = bool(self.expert_count and self.expert_used_count)
        active_b, total_b = self.active_weights_bytes, self.weights_bytes
        if moe and active_b and total_b and active_b < total_b:
            values["active_weights_gb"] = round(active_b / 1e9, 3)
        active_n, total_n = self.active_parameter_count, self.parameter_count
        if moe and active_n and total_n and active_n < total_n:
            values["active_params_billion"] = round(active_n / 1e9, 3)
        return values


def installed_models(client: ollama.Client) -> list[InstalledModel]:
    """The models Ollama has (/api/tags); raw client errors pass through (the layer translates them)."""
    listed = client.list()
    models = []
    for m in listed.models:
        details = m.details
        models.append(
            InstalledModel(
                name=str(m.model),
                size_bytes=int(m.size) if m.size is not None else None,
                digest=m.digest,
                family=details.family if details else None,
                parameter_size=details.parameter_size if details else None,
                quantization=details.quantization_level if details else None,
                modified_at=m.modified_at,
            )
        )
    return models


def model_facts(client: ollama.Client, name: str, *, verbose: bool = False) -> ModelFacts:
    """/api/show: architecture numbers and capabilities. `verbose` also lists every tensor's type and shape
    (the per-tensor layout the speed and memory maths read); that reply is much larger, so only callers that
    need the layout ask for it.

    The ollama client's show() has no verbose flag, so a verbose request goes through its raw request method
    (same transport, same error types) and the reply is read with the client's own ShowResponse model.
    """
    if verbose:
        # ollama-python's show() has no verbose flag: the one private call here (see also OllamaLayer's host
        # and version).
        body = client._request_raw("POST", "/api/show", json={"model": name, "verbose": True}).json()
        shown = ollama.ShowResponse.model_validate(body)
    else:
        shown = client.show(name)
        body = {}
    info: Mapping[str, Any] = shown.modelinfo or {}
    arch = info.get("general.architecture")
    details = shown.details

    def key(suffix: str) -> int | None:
        return _as_int(info.get(f"{arch}.{suffix}")) if arch else None

    return ModelFacts(
        name=name,
        family=str(arch) if arch else (details.family if details else None),
        parameter_count=_as_int(info.get("general.parameter_count")),
        parameter_size=details.parameter_size if details else None,
        quantization=details.quantization_level if details else None,
        n_layers=key("block_count"),
        n_heads=key("attention.head_count"),
        n_kv_heads=key("attention.head_count_kv") or key("attention.head_count"),
        key_length=key("attention.key_length"),
        value_length=key("attention.value_length"),
        embedding_length=key("embedding_length"),
        context_length=key("context_length"),
        sliding_window=key("attention.sliding_window"),
        sliding_window_pattern=_swa_pattern(info.get(f"{arch}.attention.sliding_window_pattern"), arch),
        kv_lora_rank=key("attention.kv_lora_rank"),
        kv_layer_every=_kv_layer_every(info, arch),
        rope_dimension_count=key("rope.dimension_count"),
        expert_count=key("expert_count"),
        expert_used_count=key("expert_used_count"),
        capabilities=list(shown.capabilities) if shown.capabilities is not None else None,
        **tensor_layout(body.get("tensors") or [], key("expert_count"), key("expert_used_count")),
    )


def loaded_models(client: ollama.Client) -> list[LoadedModel]:
    """The models loaded right now (/api/ps)."""
    running = client.ps()
    return [
        LoadedModel(
            name=str(m.model or m.name),
            size_bytes=int(m.size) if m.size is not None else None,
            size_vram_bytes=int(m.size_vram) if m.size_vram is not None else None,
            context_length=m.context_length,
            expires_at=m.expires_at,
        )
        for m in running.models
    ]


canonical_model_name = full_tag
"""``nomic-embed-text`` and ``nomic-embed-text:latest`` are the same model to Ollama (the tools' one rule)."""


def _kv_layer_every(info: Mapping[str, Any], arch: Any) -> int | None:
    """Hybrid models: how often a layer has attention (and a KV cache). Per-layer head_count_kv lists carry
    0 for the Mamba/linear-attention layers (nemotron_h, granitehybrid); qwen3next-style GGUFs say
    full_attention_interval."""
    if not arch:
        return None
    interval = _as_int(info.get(f"{arch}.full_attention_interval"))
    if interval and interval > 1:
        return interval
    per_layer = info.get(f"{arch}.attention.head_count_kv")
    if isinstance(per_layer, list) and per_layer and all(isinstance(v, int | float) for v in per_layer):
        with_kv = sum(1 for v in per_layer if v)
        if 0 < with_kv < len(per_layer):
            return max(2, round(len(per_layer) / with_kv))
    return None


def _swa_pattern(value: Any, arch: Any) -> int | None:
    """Every Nth layer global: from the GGUF's sliding_window_pattern (an int N, or per-layer booleans with
    True = sliding) or, when the file does not say, the pattern the catalog's rows of this architecture have
    (gemma3: 1 in 6, gemma2 and gpt-oss: 1 in 2); None when neither knows."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, list) and value and all(isinstance(v, bool) for v in value):
        n_global = sum(1 for v in value if not v)
        return round(len(value) / n_global) if n_global else None
    return swa_global_layer_every(str(arch)) if arch else None


def _parse_parameter_size(text: str | None) -> float | None:
    """ "7.6B" -> 7.6, "137M" -> 0.137 (the /api/tags form, when model_info lacks the exact count)."""
    if not text:
        return None
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMBT])\s*", text.upper())
    if match is None:
        return None
    scale = {"K": 1e-6, "M": 1e-3, "B": 1.0, "T": 1e3}[match.group(2)]
    return float(match.group(1)) * scale


def _as_int(value: Any) -> int | None:
    """model_info numbers; per-layer lists (e.g. head_count_kv of some models) collapse to their maximum."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
        return int(max(value))
    return None
