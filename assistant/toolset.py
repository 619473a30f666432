"""The toolset the agent and the MCP server offer: the pure tools plus the ones that need our runtime.

`tools.REGISTRY` knows nothing about Ollama or the knowledge base (dependencies point one way). Here we add
`search_knowledge` (the knowledge base) and `measure_speed` (a real generation on this Mac's Ollama), and wrap
`estimate_speed` / `check_memory_fit` so that a model the user has installed but our catalog does not know
(a fine-tune, a new release) is resolved through Ollama's /api/show into an explicit architecture instead of
failing with "unknown model".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from tools import REGISTRY, ModelArchitecture, Registry, Tool, ToolError, ToolErrorKind
from tools.models import is_catalog_model, is_cloud_tag
from tools.quants import resolve_quant
from tools.schemas import EstimateSpeedOutput

if TYPE_CHECKING:
    from assistant.ollama import OllamaLayer
    from knowledge.search import KnowledgeBase

log = logging.getLogger(__name__)

__all__ = [
    "MeasureSpeedInput",
    "MeasureSpeedOutput",
    "ToolOutcome",
    "build_toolset",
    "resolve_installed_architecture",
    "run_tool",
]

_RESOLVABLE = ("estimate_speed", "check_memory_fit")


def build_toolset(
    knowledge: KnowledgeBase | None,
    ollama: OllamaLayer | None,
    *,
    num_ctx: int | Callable[[str], int] | None = None,
) -> Registry:
    """tools.REGISTRY + search_knowledge (with a knowledge base) + measure_speed (with Ollama).

    ``num_ctx`` is the context window the chat uses (Settings.num_ctx): measure_speed runs the model with the
    same one, so the measurement neither reloads the model nor measures a different KV cache. With num_ctx
    "auto" the window depends on the model: pass a function of the model name (`ContextWindows.num_ctx`).

    Returns a new registry; the shared `tools.REGISTRY` is never modified, so several runtimes (tests, the UI
    and the MCP server in one process) do not see each other's tools.
    """
    tools: list[Tool] = []
    for tool in REGISTRY:
        if ollama is not None and tool.name in _RESOLVABLE:
            tools.append(_with_installed_models(tool, ollama))
        else:
            tools.append(tool)
    registry = Registry(tools)
    extra: list[Tool] = []
    if knowledge is not None:
        extra.append(_search_knowledge_tool(knowledge))
    if ollama is not None:
        extra.append(_measure_speed_tool(ollama, registry, num_ctx))
    return registry.extended(*extra)


# running a tool ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolOutcome:
    """What running a tool gave: its result, or an error message written for the caller (model or person)."""

    name: str
    result: BaseModel | None = None
    error: str | None = None


def run_tool(registry: Registry, name: str, arguments: Mapping[str, Any] | str | None) -> ToolOutcome:
    """Look up and run one tool; never raises. The one place a tool call becomes a result or an error.

    Used by the agent loop, the MCP server and the Tools tab. An unknown name, bad arguments or a domain
    error come back as the registry's ToolError message (it names the field and the accepted values); a bug
    in a tool is logged with its traceback and comes back as one sentence, never as the traceback.
    """
    try:
        return ToolOutcome(name, result=registry.get(name).run(arguments))
    except ToolError as exc:
        return ToolOutcome(name, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises": a tool bug is reported, not raised
        log.exception("tool %s failed", name)
        return ToolOutcome(name, error=f"{name} failed internally ({exc.__class__.__name__}: {exc})")


# search_knowledge -------------------------------------------------------------------------------------------


def _search_knowledge_tool(knowledge: KnowledgeBase) -> Tool:
    from knowledge.schemas import SearchKnowledgeInput, SearchKnowledgeOutput

    def search_knowledge(params: SearchKnowledgeInput) -> SearchKnowledgeOutput:
        return knowledge.search(params.query, params.k)

    return Tool(
        name="search_knowledge",
        description=(
            "Search the knowledge base for more passages (explanations, settings, caveats) to cite as "
            "[p:ID]. It holds guides on Apple Silicon memory, bandwidth, quantisation and Ollama settings, "
            "the findings of the article 'Apple Silicon AI Workstation 2026' (2026-04-14), notes on what "
            "changed since (M5 neural accelerators, M5/M6 bandwidth, mixture-of-experts models, clustering "
            "Macs, the November-2026 line-up and prices, each with its public sources) and the user's own "
            "documents, and returns the best passages with their ids. Use it for explanations and "
            "settings, not for numbers a calculator tool gives."
        ),
        input_model=SearchKnowledgeInput,
        output_model=SearchKnowledgeOutput,
        func=search_knowledge,
    )


# installed models -> architecture ---------------------------------------------------------------------------


class _InstalledButUnreadable(ToolError):
    """The model is installed, but its /api/show facts lack what the maths needs (it is not missing)."""


def resolve_installed_architecture(ollama: OllamaLayer, model: str) -> tuple[ModelArchitecture, str | None]:
    """Architecture (and quantisation, if Ollama reports one we know) of an installed model, from /api/show.

    Raises ToolError with a presentable message when the model is not installed or its metadata lacks what the
    memory/KV maths needs.
    """
    arch, quant, _ = _installed_architecture(ollama, model)
    return arch, quant


def _installed_architecture(
    ollama: OllamaLayer, model: str
) -> tuple[ModelArchitecture, str | None, list[str]]:
    """resolve_installed_architecture, plus the assumptions made reading the facts."""
    try:
        facts = ollama.model_facts(model, verbose=True)  # the per-tensor layout (MoE, mixed quants)
    except ToolError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot resolve", said clearly below
        raise ToolError(
            f"model: {model!r} is not in our catalog and Ollama could not describe it ({exc}).",
            fields=["model"],
        ) from exc
    try:
        arch = ModelArchitecture.model_validate(facts.architecture())
    except Exception as exc:  # noqa: BLE001 - what /api/show lacks or gives out of range: said clearly below
        raise _InstalledButUnreadable(
            f"model: {model!r} is installed but its /api/show metadata lacks the layer/head counts needed "
            f"({exc}). Pass params_billion or an explicit architecture.",
            fields=["model"],
        ) from exc
    notes: list[str] = []
    quant = facts.quantization or None
    if quant is not None:
        try:
            resolve_quant(quant)
        except ToolError:
            notes.append(
                f"Ollama reports the quantisation as {quant!r}, which we do not size: the weights are the "
                "installed file's own tensor sizes where /api/show lists them, else Q4_K_M is assumed."
            )
            quant = None
    if facts.expert_count and not facts.expert_used_count:
        notes.append(
            f"/api/show gives {facts.expert_count} experts but not how many are used per token: every weight "
            "is counted as read per token, so decode is likely faster than estimated."
        )
    if not facts.context_length:
        notes.append("/api/show gives no trained context length: no context is refused on that account.")
    if facts.kv_lora_rank:
        notes.append(
            f"KV cache of multi-head latent attention (MLA): {facts.kv_lora_rank} + "
            f"{facts.rope_dimension_count or 64} values per layer and token, as llama.cpp caches it."
        )
    if facts.kv_layer_every and arch.sliding_window == 1:
        notes.append(
            f"Hybrid layers: only every {arch.global_layer_every}th layer has attention and a KV cache "
            "(the others are recurrent), as /api/show lists them."
        )
    elif arch.sliding_window and arch.global_layer_every:
        notes.append(
            f"Sliding window {arch.sliding_window} tokens on all but every {arch.global_layer_every}th layer "
            f"(the {facts.family} layer pattern)."
        )
    elif facts.sliding_window:
        notes.append(
            f"/api/show gives a sliding window of {facts.sliding_window} tokens but not which layers use it: "
            "every layer is counted as caching the full context (the KV cache may be overstated)."
        )
    return arch, quant, notes


def _with_installed_models(tool: Tool, ollama: OllamaLayer) -> Tool:
    """Same public name and schema; falls back to /api/show when the catalog does not know the model."""
    original = tool.func

    def func(params: Any) -> BaseModel:
        model = getattr(params, "model", None)
        if (
            not model
            or getattr(params, "architecture", None) is not None
            or is_catalog_model(model)
            or is_cloud_tag(model)  # even when pulled, nothing of it runs on this Mac: the tool says so
        ):
            return original(params)
        # Not in the catalog: the installed file's own facts (/api/show) beat sizing from the tag.
        try:
            arch, quant, read_notes = _installed_architecture(ollama, model)
        except ToolError as show_err:
            try:
                result = original(params)  # sized from the tag, or the catalog's "unknown model" error
            except ToolError as err:
                if err.kind is ToolErrorKind.UNKNOWN_MODEL and "model" in err.fields:
                    where = (
                        "It is installed, but Ollama does not describe it fully"
                        if isinstance(show_err, _InstalledButUnreadable)
                        else "It is not installed in Ollama either"
                    )
                    raise ToolError(f"{err} {where} ({show_err})", fields=err.fields, kind=err.kind) from None
                raise
            if hasattr(result, "assumptions"):
                result.assumptions.append(f"Not read from Ollama: {show_err}")
            return result
        update: dict[str, Any] = {"architecture": arch}
        if params.params_billion is not None:
            update["params_billion"] = None  # the architecture carries the size; avoid a contradiction
        if quant and "quant" not in params.model_fields_set:
            update["quant"] = quant
        result = original(params.model_copy(update=update))
        layout = " (bytes read per token counted tensor by tensor)" if arch.active_weights_gb else ""
        note = (
            f"{model} is not in our catalog: architecture read from Ollama's /api/show for the installed "
            f"model{layout}."
        )
        if hasattr(result, "assumptions"):
            result.assumptions[:0] = [note, *read_notes]
        if hasattr(result, "sources"):
            result.sources.append(f"Ollama /api/show {model}")
        return result

    return Tool(
        name=tool.name,
        description=tool.description
        + " Any model installed in Ollama can be named, even if not in the catalog.",
        input_model=tool.input_model,
        output_model=tool.output_model,
        func=func,
    )


# measure_speed ----------------------------------------------------------------------------------------------


class MeasureSpeedInput(BaseModel):
    """Measure a real generation on this Mac's Ollama."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    model: str = Field(
        min_length=1, max_length=200, description='An installed Ollama model, e.g. "qwen2.5:7b".'
    )


class MeasureSpeedOutput(BaseModel):
    model: str
    measured_tokens_per_second: float = Field(description="Decode speed: eval_count / eval_duration.")
    prompt_tokens_per_second: float | None = Field(default=None, description="Prefill speed, if reported.")
    eval_count: int | None = None
    load_seconds: float | None = Field(default=None, description="Model load time of this run, if any.")
    estimated_tokens_per_second: float | None = Field(
        default=None, description="estimate_speed's prediction for this Mac, when this Mac is known."
    )
    estimated_range: tuple[float, float] | None = None
    ceiling_tokens_per_second: float | None = None
    measured_vs_estimate: float | None = Field(default=None, description="measured / estimated.")
    assumptions: list[str]
    sources: list[str]


def _compared_with_estimate(estimate: Tool, model: str, tps: float, assumptions: list[str]) -> dict[str, Any]:
    """estimate_speed's prediction for this Mac next to the measured speed (notes go to `assumptions`)."""
    try:
        predicted = estimate.run({"model": model})
    except ToolError as exc:
        assumptions.append(f"No estimate for comparison: {exc}")
        return {}
    assert isinstance(predicted, EstimateSpeedOutput)
    expected = float(predicted.expected_tokens_per_second)
    assumptions.extend(predicted.assumptions)
    return {
        "estimated_tokens_per_second": expected,
        "estimated_range": tuple(predicted.expected_range),
        "ceiling_tokens_per_second": predicted.ceiling_tokens_per_second,
        "measured_vs_estimate": round(tps / expected, 3) if expected > 0 else None,
    }


def _measure_speed_tool(
    ollama: OllamaLayer, registry: Registry, num_ctx: int | Callable[[str], int] | None = None
) -> Tool:
    from assistant.ollama import DEFAULT_NUM_CTX

    estimate = registry.get("estimate_speed")

    def measure_speed(params: MeasureSpeedInput) -> MeasureSpeedOutput:
        # A function of the model (num_ctx "auto"), a number, or nothing / "auto" passed as is: the fallback.
        context = num_ctx(params.model) if callable(num_ctx) else num_ctx
        context = context if isinstance(context, int) else DEFAULT_NUM_CTX
        try:
            measured = ollama.measure_speed(params.model, num_ctx=context)
        except ToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - Ollama down / model missing: the message says which
            raise ToolError(
                f"measure_speed: could not run {params.model!r} on Ollama: {exc}", fields=["model"]
            ) from exc
        tps = measured.tokens_per_second
        assumptions = [
            "Measured with one short generation on this machine's Ollama right now; other load on the Mac, "
            "thermal state and context length change the figure.",
            f"Run with num_ctx = {context}, the context window the chat uses (no model reload).",
        ]
        out: dict[str, Any] = {
            "model": params.model,
            "measured_tokens_per_second": round(float(tps), 2),
            "prompt_tokens_per_second": measured.prompt_tokens_per_second,
            "eval_count": measured.eval_count,
            "load_seconds": measured.load_s,
        }
        out.update(_compared_with_estimate(estimate, params.model, float(tps), assumptions))
        return MeasureSpeedOutput(
            **out,
            assumptions=assumptions,
            sources=["Ollama /api/chat eval_count / eval_duration (this Mac)"],
        )

    return Tool(
        name="measure_speed",
        description=(
            "Run a short generation on this Mac's Ollama and measure real tokens/s for an installed model. "
            "Compares the measured decode speed with estimate_speed's prediction for this Mac. Takes a few "
            "seconds to a minute; use it only when the user asks to measure or test their own machine."
        ),
        input_model=MeasureSpeedInput,
        output_model=MeasureSpeedOutput,
        func=measure_speed,
    )
