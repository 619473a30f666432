"""Pure, typed domain tools for local AI on Apple Silicon, and the registry that publishes them.

``REGISTRY`` is the single source of the tool list for the agent, the MCP server, the CLI and schema export.
Each description's first sentence says what the tool is for in a user's words: the system prompt lists it.
This package imports nothing else of ours (dependencies point assistant -> tools only).
"""

from tools.benchmarks import lookup_benchmarks
from tools.estimate import estimate_speed
from tools.fit import check_memory_fit
from tools.recommend import recommend_machine
from tools.registry import Registry, Tool, ToolError, ToolErrorKind
from tools.schemas import (
    CheckMemoryFitInput,
    CheckMemoryFitOutput,
    EstimateSpeedInput,
    EstimateSpeedOutput,
    ImageBenchmarkRow,
    LlmBenchmarkRow,
    LookupBenchmarksInput,
    LookupBenchmarksOutput,
    MachineOption,
    MemoryBreakdown,
    ModelArchitecture,
    RecommendMachineInput,
    RecommendMachineOutput,
)

REGISTRY = Registry(
    [
        Tool(
            name="estimate_speed",
            description=(
                "How fast (tokens/s) a local LLM generates on an Apple Silicon Mac: use for any 'how fast / "
                "tok/s' question. Give the machine as chip (e.g. 'M3 Max', optionally gpu_cores or memory_gb "
                "to pick the bandwidth bin) or raw bandwidth_gbps, and the model as an Ollama tag (e.g. "
                "'llama3.3:70b') or params_billion, with quant (default Q4_K_M) and context_tokens. Returns "
                "the hard bandwidth ceiling, the expected tokens/s with a (low, high) range calibrated on "
                "public measurements, weights and KV-cache sizes, a rough prefill speed, assumptions and "
                "sources. Optional cluster (count of identical Macs, link) scales one Mac's estimate by "
                "measured multi-Mac factors."
            ),
            input_model=EstimateSpeedInput,
            output_model=EstimateSpeedOutput,
            func=estimate_speed,
        ),
        Tool(
            name="check_memory_fit",
            description=(
                "Whether a model and its context fit in a Mac's GPU memory, with the largest context and "
                "smaller quants that fit: use for any 'will it fit / run / how much RAM' question. Counts "
                "weights + KV cache (GQA-aware, kv_cache_type f16|q8_0|q4_0, parallel slots) + compute "
                "buffer + margin against the Metal working-set limit (about 2/3 of RAM up to 36 GB, 3/4 "
                "above, or gpu_memory_limit_gb if iogpu.wired_limit_mb was raised). No argument is required "
                "by the schema because on a Mac chip and memory_gb default to this Mac; elsewhere pass "
                "memory_gb (with chip, the configuration is checked to exist). "
                "Give the model as an Ollama tag, params_billion or an explicit architecture. Returns "
                "verdict (fits | tight | partial_offload | does_not_fit), a GB breakdown, the largest "
                "context that fits and concrete suggestions. runtime (ollama default | llama.cpp | mlx) "
                "says which runtime the verdict is for; optional cluster splits the model over several Macs."
            ),
            input_model=CheckMemoryFitInput,
            output_model=CheckMemoryFitOutput,
            func=check_memory_fit,
        ),
        Tool(
            name="lookup_benchmarks",
            description=(
                "The article's measured numbers (LLM tokens/s, image-generation seconds) by Mac and model: "
                "use when the user asks what was measured or tested. The article is 'Apple Silicon AI "
                "Workstation 2026' (2026-04-14), the one this advisor is built on: LLM tokens/s (M4 Pro "
                "mini, M3 Max, M2 Ultra with Llama 3.1 8B, Qwen 2.5 14B, '34B', Llama 3.3 70B) and "
                "image-generation seconds (Flux, SDXL, SD 1.5 in Draw Things). Forgiving free-text query "
                "such as 'm4 pro 70b', 'flux studio', 'mac mini'. Every row has its source; LLM rows carry "
                "the bandwidth ceiling and flags for numbers above it and for machines or models that never "
                "existed."
            ),
            input_model=LookupBenchmarksInput,
            output_model=LookupBenchmarksOutput,
            func=lookup_benchmarks,
        ),
        Tool(
            name="recommend_machine",
            description=(
                "Which Mac to buy for a budget, model size and workload. Follows the decision framework of "
                "the article 'Apple Silicon AI Workstation 2026' (2026-04-14) over Apple's November 2026 "
                "line-up plus the article's refurbished picks, from budget_usd, workload (llm | image | "
                "research | both), an optional target model (Ollama tag or target_params_billion) and "
                "context. Each option is checked with check_memory_fit and estimate_speed; returns the pick "
                "with expected tokens/s, alternatives, machines to avoid, reasons and trade-offs."
            ),
            input_model=RecommendMachineInput,
            output_model=RecommendMachineOutput,
            func=recommend_machine,
        ),
    ]
)

__all__ = [
    "REGISTRY",
    "CheckMemoryFitInput",
    "CheckMemoryFitOutput",
    "EstimateSpeedInput",
    "EstimateSpeedOutput",
    "ImageBenchmarkRow",
    "LlmBenchmarkRow",
    "LookupBenchmarksInput",
    "LookupBenchmarksOutput",
    "MachineOption",
    "MemoryBreakdown",
    "ModelArchitecture",
    "RecommendMachineInput",
    "RecommendMachineOutput",
    "Registry",
    "Tool",
    "ToolError",
    "ToolErrorKind",
    "check_memory_fit",
    "estimate_speed",
    "lookup_benchmarks",
    "recommend_machine",
]
