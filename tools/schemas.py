"""Pydantic input/output models of the public tools.

These field names are public API (MCP tool schemas, the agent's tool list, the CLI flags): a change to them is
an API change (README, MCP clients). Validation here catches shape and range problems; domain problems (an
unknown chip, a GPU-core count a chip never had) are raised by the tools as ToolError with closest matches.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

Verdict = Literal["fits", "tight", "partial_offload", "does_not_fit"]


def _spelled(aliases: dict[str, str]) -> BeforeValidator:
    """Accept the spellings people type for an enum value ('MLX', 'llama-cpp', 'TB5'); the schema keeps the
    canonical values, and anything else still fails validation with the list of accepted values."""

    def norm(value: object) -> object:
        if isinstance(value, str):
            return aliases.get(re.sub(r"[\s_\-.]", "", value.lower()), value)
        return value

    return BeforeValidator(norm)


KvCacheType = Annotated[
    Literal["f16", "q8_0", "q4_0"],
    _spelled({"f16": "f16", "fp16": "f16", "q80": "q8_0", "q8": "q8_0", "q40": "q4_0", "q4": "q4_0"}),
]
Workload = Annotated[
    Literal["llm", "image", "research", "both"],
    _spelled(
        {
            "llm": "llm",
            "image": "image",
            "images": "image",
            "imagegeneration": "image",
            "research": "research",
        }
        | {"both": "both", "llmandimage": "both"}
    ),
]
Runtime = Annotated[
    Literal["ollama", "llama.cpp", "mlx"],
    _spelled(
        {"ollama": "ollama", "llamacpp": "llama.cpp", "llamaserver": "llama.cpp", "mlx": "mlx"}
        | {"mlxlm": "mlx"}
    ),
]

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True)

RuntimeField = Annotated[
    Runtime,
    Field(
        description="Runtime the verdict is for: ollama (default), llama.cpp or mlx (they place memory "
        "differently; mlx cannot offload layers to the CPU).",
    ),
]


class ModelArchitecture(BaseModel):
    """Hyper-parameters needed for weights and KV-cache maths; for any model not in our catalog."""

    model_config = ConfigDict(extra="forbid")

    params_billion: float = Field(gt=0, le=3000, description="Total parameters in billions (memory).")
    n_layers: int = Field(ge=1, le=1000, description="Transformer blocks (GGUF <arch>.block_count).")
    n_kv_heads: int = Field(ge=1, le=1024, description="KV heads (GQA), GGUF attention.head_count_kv.")
    head_dim: int = Field(ge=1, le=4096, description="Per-head dim, GGUF attention.key_length.")
    native_context: int = Field(ge=1, le=16_777_216, description="Trained context length in tokens.")
    active_params_billion: float | None = Field(
        default=None, gt=0, le=3000, description="MoE: parameters read per token, in billions."
    )
    sliding_window: int | None = Field(default=None, ge=1, le=16_777_216, description="SWA window (tokens).")
    global_layer_every: int | None = Field(
        default=None, ge=1, le=1000, description="With SWA: every Nth layer is global (full context)."
    )
    family: str | None = Field(
        default=None,
        max_length=100,
        description='Model family, e.g. "llama", "qwen2" (GGUF general.architecture); informational only.',
    )
    n_heads: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="Query heads (attention.head_count); optional, refines the long-context slow-down.",
    )
    # Facts about one installed file (Ollama /api/show), used by estimate_speed for models not in the catalog.
    n_experts: int | None = Field(default=None, ge=1, le=4096, description="MoE: expert_count.")
    n_experts_active: int | None = Field(
        default=None, ge=1, le=4096, description="MoE: experts used per token (expert_used_count)."
    )
    weights_gb: float | None = Field(
        default=None, gt=0, le=10000, description="Size of the weights file in GB (1e9 bytes)."
    )
    active_weights_gb: float | None = Field(
        default=None,
        gt=0,
        le=10000,
        description="Weight bytes read per generated token in GB, from the per-tensor layout (MoE).",
    )

    @model_validator(mode="after")
    def _active_le_total(self) -> ModelArchitecture:
        if self.active_params_billion is not None and self.active_params_billion > self.params_billion:
            raise ValueError("active_params_billion cannot exceed params_billion")
        if self.n_heads is not None and self.n_heads < self.n_kv_heads:
            raise ValueError("n_heads (query heads) cannot be fewer than n_kv_heads")
        if (self.sliding_window is None) != (self.global_layer_every is None):
            raise ValueError("sliding_window and global_layer_every go together (SWA models need both)")
        if self.n_experts and self.n_experts_active and self.n_experts_active > self.n_experts:
            raise ValueError("n_experts_active cannot exceed n_experts")
        return self


# Shared field types: Annotated aliases so each tool declares the same public field identically.
Chip = Annotated[
    str | None,
    Field(
        max_length=160,
        description='Apple Silicon chip, e.g. "M3 Max", "m4 pro". Omit on a Mac to use this Mac.',
    ),
]


def _unit_number(unit: str) -> BeforeValidator:
    """'48GB' / '48 GB' / '40-core' -> the number, so a value typed with its unit is not refused."""

    def norm(value: object) -> object:
        if isinstance(value, str):
            m = re.fullmatch(rf"\s*(\d+(?:\.\d+)?)\s*-?\s*(?:{unit})?\s*", value, re.IGNORECASE)
            if m:
                return m.group(1)
        return value

    return BeforeValidator(norm)


def _dollars(value: object) -> object:
    """'$1,500' / '1,500 USD' / '5k' / '$2.5K' -> the number: budgets as people (and models) write them."""
    if isinstance(value, str):
        m = re.fullmatch(
            r"\s*(?:us)?\$?\s*(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*(k)?\s*(?:usd|dollars?)?\s*",
            value,
            re.IGNORECASE,
        )
        if m:
            amount = float(m.group(1).replace(",", "") + (m.group(2) or ""))
            return amount * 1000 if m.group(3) else amount
    return value


GpuCores = Annotated[
    int | None,
    Field(ge=1, le=256, description="GPU core count; picks the bandwidth bin."),
    _unit_number("core|cores|c|core gpu|gpu cores"),
]
MemoryGb = Annotated[
    float | None,
    Field(gt=0, le=4096, description="Unified memory in GB (e.g. 48)."),
    _unit_number("gb|gib|g"),
]


def _blank_as_none(value: object) -> object:
    """'', '  ', ':' -> None: models fill optional fields with blanks, which name no model."""
    return None if isinstance(value, str) and not value.strip(" :/\t\n") else value


ModelTag = Annotated[
    str | None,
    Field(
        max_length=200,
        description='Ollama tag, e.g. "llama3.3:70b", "qwen2.5:14b-instruct-q4_K_M".',
    ),
    BeforeValidator(_blank_as_none),
]
ParamsBillion = Annotated[
    float | None,
    Field(gt=0, le=3000, description="Model size in billions, if no tag is given."),
]
Quant = Annotated[
    str | None,
    Field(
        max_length=40,
        description='Quantisation, e.g. "Q4_K_M" (default), "Q8_0", "F16", "MLX-4bit". '
        "A quant inside the tag is used when this is omitted.",
    ),
]


ExplicitArchitecture = Annotated[
    ModelArchitecture | None, Field(description="Explicit architecture for a model not in the catalog.")
]


class _OmitNoneObjects(BaseModel):
    """Drops the listed optional object fields from dumps when they are None (the schema is unchanged and the
    fields are not required), so a consumer that reads nullable objects as plain objects never sees null."""

    _omit_if_none: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _drop_none_objects(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        # No return annotation on purpose: pydantic then keeps the model's own serialization schema.
        data = handler(self)
        if isinstance(data, dict):
            for key in self._omit_if_none:
                if data.get(key) is None:
                    data.pop(key, None)
        return data


ClusterLink = Annotated[
    Literal["thunderbolt5", "thunderbolt4", "10gbe"],
    _spelled(
        {
            "thunderbolt5": "thunderbolt5",
            "tb5": "thunderbolt5",
            "thunderbolt4": "thunderbolt4",
            "tb4": "thunderbolt4",
        }
        | {"10gbe": "10gbe", "10gigabitethernet": "10gbe", "10gethernet": "10gbe", "10gbit": "10gbe"}
    ),
]


ClusterSplit = Annotated[
    Literal["tensor", "pipeline"],
    _spelled(
        {"tensor": "tensor", "tensorparallel": "tensor", "tp": "tensor"}
        | {"pipeline": "pipeline", "pipelineparallel": "pipeline", "pp": "pipeline"}
    ),
]


class ClusterSpec(BaseModel):
    """Several identical Macs running one model (exo, MLX distributed, llama.cpp RPC)."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(
        ge=2, le=8, description="How many identical Macs; chip/gpu_cores/memory_gb describe one."
    )
    link: ClusterLink = Field(default="thunderbolt5", description="thunderbolt5 | thunderbolt4 | 10gbe.")
    split: ClusterSplit | None = Field(
        default=None,
        description="tensor (Thunderbolt 5 RDMA only) or pipeline; default: tensor on thunderbolt5, "
        "else pipeline.",
    )


class ClusterResult(BaseModel):
    nodes: int
    link: str
    split: str
    runtime: str = Field(
        description="Engine the cluster answer is for (exo / MLX distributed, llama.cpp RPC)."
    )
    total_memory_gb: float | None = None
    per_node_need_gb: float | None = Field(default=None, description="GPU memory each node needs, GB.")
    per_node_budget_gb: float | None = Field(default=None, description="Each node's GPU budget, GB.")
    single_node_tokens_per_second: float | None = Field(
        default=None, description="Decode on one such Mac if the model fitted (the base the cluster scales)."
    )
    decode_factor_vs_one_node: float | None = None
    notes: list[str] = Field(default_factory=list)


class _MachineInput(BaseModel):
    """The machine fields every per-Mac question starts with."""

    model_config = _STRICT

    chip: Chip = None
    gpu_cores: GpuCores = None
    memory_gb: MemoryGb = None


class EstimateSpeedInput(_MachineInput):
    """Decode speed question: which machine, which model, how much context."""

    bandwidth_gbps: float | None = Field(
        default=None, gt=0, le=20000, description="Raw memory bandwidth in GB/s instead of a chip."
    )
    model: ModelTag = None
    params_billion: ParamsBillion = None
    architecture: ExplicitArchitecture = None
    quant: Quant = None
    context_tokens: int = Field(
        default=2048,
        ge=0,
        le=16_777_216,
        description="Tokens already in the context while generating (prompt + output so far).",
    )
    runtime: RuntimeField = "ollama"
    cluster: ClusterSpec | None = Field(default=None, description="Several identical Macs running one model.")


class EstimateSpeedOutput(_OmitNoneObjects):
    _omit_if_none: ClassVar[tuple[str, ...]] = ("cluster",)

    chip: str | None = Field(description="Resolved chip label with bin, or None for raw bandwidth.")
    gpu_cores: int | None
    bandwidth_gbps: float
    model: str | None = Field(description="Resolved catalog model, or None for a params-only model.")
    params_billion: float
    active_params_billion: float = Field(description="Parameters read per token (MoE: active only).")
    quant: str
    bits_per_weight: float
    weights_gb: float = Field(description="All weights in GB (1e9 bytes).")
    active_weights_gb: float = Field(description="Weight bytes read per generated token, GB.")
    kv_cache_gb: float = Field(description="KV cache read per token at context_tokens, GB.")
    context_tokens: int
    ceiling_tokens_per_second: float = Field(description="bandwidth / bytes per token: a hard upper bound.")
    expected_tokens_per_second: float
    expected_range: tuple[float, float] = Field(
        description="(low, high): 10th-90th percentile band of held-out calibration residuals."
    )
    efficiency: float = Field(description="expected / ceiling.")
    prefill_tokens_per_second: float | None = Field(
        default=None, description="Rough prompt-processing speed, if modelled for this chip."
    )
    runtime: str = Field(default="ollama", description="Runtime the memory verdict is for.")
    fits_on_gpu: bool | None = Field(
        default=None,
        description="Same verdict as check_memory_fit at this context and runtime. Without memory_gb: True "
        "if every memory configuration of the chip fits, False if none does, else None (the assumptions say "
        "which fit).",
    )
    cluster: ClusterResult | None = None
    assumptions: list[str]
    sources: list[str]


class CheckMemoryFitInput(_MachineInput):
    """Will a model with this context load on this Mac's GPU?"""

    gpu_memory_limit_gb: float | None = Field(
        default=None,
        gt=0,
        le=4096,
        description="GPU budget override in GB, as set by `sudo sysctl iogpu.wired_limit_mb=N`.",
    )
    model: ModelTag = None
    params_billion: ParamsBillion = None
    architecture: ExplicitArchitecture = None
    quant: Quant = None
    context_tokens: int = Field(
        default=4096, ge=1, le=16_777_216, description="Context window to allocate (num_ctx)."
    )
    kv_cache_type: KvCacheType = Field(default="f16", description="KV cache element type.")
    parallel: int = Field(default=1, ge=1, le=256, description="Parallel slots (OLLAMA_NUM_PARALLEL).")
    runtime: RuntimeField = "ollama"
    cluster: ClusterSpec | None = Field(default=None, description="Several identical Macs running one model.")


class MemoryBreakdown(BaseModel):
    weights_gb: float
    kv_cache_gb: float
    overhead_gb: float = Field(description="Compute buffer + runtime margin.")
    total_gb: float
    gpu_budget_gb: float = Field(description="Metal working-set budget (recommendedMaxWorkingSetSize).")
    headroom_gb: float = Field(description="gpu_budget_gb - total_gb (negative = does not fit).")
    ram_gb: float = Field(description="Installed unified memory.")
    os_headroom_gb: float = Field(description="Memory reserved for macOS and apps in the RAM check.")


class CheckMemoryFitOutput(_OmitNoneObjects):
    _omit_if_none: ClassVar[tuple[str, ...]] = ("cluster",)

    verdict: Verdict
    fits_on_gpu: bool
    runtime: str = Field(default="ollama", description="Runtime the verdict is for.")
    chip: str | None
    memory_gb: float
    model: str | None
    params_billion: float
    quant: str
    bits_per_weight: float
    context_tokens: int
    kv_cache_type: KvCacheType
    parallel: int
    breakdown: MemoryBreakdown
    max_context_tokens: int = Field(
        description="Largest context (per slot) that fits the GPU budget; 0 if the weights alone do not."
    )
    suggestions: list[str]
    cluster: ClusterResult | None = None
    assumptions: list[str]
    sources: list[str]


class LookupBenchmarksInput(BaseModel):
    """Search the measured tables of the article 'Apple Silicon AI Workstation 2026'; every filter is \
forgiving and optional."""

    model_config = _STRICT

    query: str | None = Field(
        default=None,
        max_length=300,
        description='Free text, e.g. "m4 pro 70b", "flux studio". Split into machine/model words.',
    )
    machine: str | None = Field(default=None, max_length=100, description='e.g. "m3 max", "mac mini".')
    model: str | None = Field(default=None, max_length=100, description='e.g. "70b", "qwen", "sdxl".')
    kind: Literal["llm", "image", "any"] = Field(default="any", description="Which table(s) to search.")
    limit: int = Field(default=50, ge=1, le=500, description="Most rows to return per table (LLM, image).")


class LlmBenchmarkRow(BaseModel):
    machine: str
    chip: str
    gpu_cores: int | None
    memory_gb: float
    bandwidth_gbps: float
    model: str
    params_billion: float | None
    quant: str
    tokens_per_second: float | None = Field(description="None where the article printed OOM.")
    result: str = Field(description="As printed, e.g. '42 tok/s', '~95 tok/s', 'OOM'.")
    ceiling_tokens_per_second: float | None
    physically_impossible: bool = Field(description="Measured above the bandwidth ceiling.")
    suspicious: bool = Field(
        default=False,
        description="Above ~90% of the bandwidth ceiling (real decode efficiency is 55-80%), or impossible.",
    )
    efficiency: float | None = Field(default=None, description="tokens_per_second / ceiling.")
    flags: list[str]
    source: str


class ImageBenchmarkRow(BaseModel):
    machine: str
    chip: str
    gpu_cores: int | None
    memory_gb: float
    model: str
    seconds: float
    setting: str
    flags: list[str]
    source: str


class LookupBenchmarksOutput(BaseModel):
    llm_rows: list[LlmBenchmarkRow]
    image_rows: list[ImageBenchmarkRow]
    matched_on: list[str] = Field(description="How the query was interpreted.")
    assumptions: list[str]
    sources: list[str]


class RecommendMachineInput(BaseModel):
    """Buying question: budget, what to run, what for."""

    model_config = _STRICT

    budget_usd: Annotated[
        float | None,
        Field(gt=0, le=1_000_000, description='Budget in US dollars (1500, "$1,500", "1.5k" alike).'),
        BeforeValidator(_dollars),
    ] = None
    workload: Workload = Field(
        default="llm",
        description="llm | image | research | both (an LLM and an image model loaded together).",
    )
    target_model: Annotated[str | None, BeforeValidator(_blank_as_none)] = Field(
        default=None, max_length=200, description='Largest model you want to run, e.g. "llama3.3:70b".'
    )
    target_params_billion: float | None = Field(
        default=None, gt=0, le=3000, description="Or its size in billions."
    )
    quant: Quant = None
    context_tokens: int = Field(
        default=8192,
        ge=1,
        le=131_072,
        description="Context you want to use, in tokens. At most the target model's trained context (up to "
        '131072 for models trained on it, e.g. "llama3.3:70b"); 32768 without a target (the reference '
        "qwen2.5:14b); any value up to 131072 with only target_params_billion.",
    )
    portable: bool | None = Field(default=None, description="Need a laptop? None = no preference.")
    image_model: Annotated[str | None, BeforeValidator(_blank_as_none)] = Field(
        default=None,
        max_length=100,
        description='Image model for workload image/both: "flux" (default), "sdxl", "sd1.5".',
    )
    runtime: RuntimeField = "ollama"


class MachineOption(BaseModel):
    machine: str
    chip: str
    gpu_cores: int
    memory_gb: float
    bandwidth_gbps: float
    approx_price_usd: float | None
    price_note: str
    price_as_of: str | None = Field(default=None, description="Date the price applies to.")
    status: str | None = Field(default=None, description="current | discontinued (refurbished/used).")
    fit_verdict: str | None = None
    expected_tokens_per_second: float | None = None
    expected_range: tuple[float, float] | None = None
    why: str


class ClusterOption(BaseModel):
    machine: str = Field(description="One node of the cluster.")
    count: int
    link: str
    split: str
    total_price_usd: float
    total_memory_gb: float
    fit_verdict: str
    expected_tokens_per_second: float | None = None
    why: str


class RecommendMachineOutput(_OmitNoneObjects):
    _omit_if_none: ClassVar[tuple[str, ...]] = ("cluster_option",)

    recommendation: MachineOption | None = Field(
        description="None when the article's advice is to wait (budget too small for useful local LLM work)."
    )
    summary: str
    alternatives: list[MachineOption]
    cluster_option: ClusterOption | None = Field(
        default=None, description="Several Macs together, when that beats one machine within the budget."
    )
    avoid: list[str]
    reasons: list[str]
    trade_offs: list[str]
    assumptions: list[str]
    sources: list[str]

    @field_validator("reasons")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("a recommendation needs at least one reason")
        return v
