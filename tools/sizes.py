"""Sizes in memory and per token: weights (dense and MoE layouts), KV cache, attention work."""

from __future__ import annotations

from dataclasses import dataclass

from tools.data_files import GB
from tools.models import CatalogModel, MoeLayout
from tools.quants import QuantSpec, quants
from tools.schemas import ModelArchitecture

KV_BYTES_PER_ELEM = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}


def weights_bytes(
    params_b: float, q: QuantSpec, entry: CatalogModel | None = None
) -> tuple[float, str | None]:
    if entry is not None and q.quant in entry.file_gb:
        return entry.file_gb[q.quant] * GB, f"Weights from the published {entry.tag} {q.quant} file size."
    return params_b * 1e9 * q.bpw(params_b) / 8, None


def weights_in_memory(
    arch: ModelArchitecture, q: QuantSpec, entry: CatalogModel | None = None
) -> tuple[float, list[str]]:
    """Bytes the weights occupy, and how they were sized: the installed file's size when the architecture
    carries it (``weights_gb``, from Ollama's /api/show), else parameters x bits per weight. Both tools size
    weights here, so the memory verdict and the speed estimate never disagree on them."""
    total, wnote = weights_bytes(arch.params_billion, q, entry)
    notes = [wnote] if wnote else []
    if arch.weights_gb is not None:
        total = arch.weights_gb * GB
        notes.append(f"Weights {arch.weights_gb:g} GB as reported for the installed model.")
    return total, notes


@dataclass
class WeightsRead:
    """Weights in memory and weights streamed per generated token (MoE: shared parts + the routed experts)."""

    total_bytes: float
    active_bytes: float
    moe: bool
    moe_layers: int  # MoE layers x routed experts per token / 8 (0 for dense): drives the routing cost
    notes: list[str]


def weights_read(arch: ModelArchitecture, q: QuantSpec, entry: CatalogModel | None = None) -> WeightsRead:
    """Bytes in memory and bytes read per token, from the real per-tensor layout when we know it.

    Precedence: facts measured on the installed file (``architecture.weights_gb`` / ``active_weights_gb``,
    filled from Ollama's /api/show by the assistant), then the catalog's MoE layout, then active params x bits
    per weight. A known MoE is never treated as dense.
    """
    total_p = arch.params_billion
    total, notes = weights_in_memory(arch, q, entry)
    layout = entry.moe if entry is not None else None
    active_p = arch.active_params_billion
    is_moe = layout is not None or (active_p is not None and active_p < total_p) or bool(arch.n_experts)
    k_active = (layout.active_experts if layout else None) or arch.n_experts_active or 8
    moe_layers = round(arch.n_layers * k_active / 8) if is_moe else 0
    if arch.active_weights_gb is not None:
        active = min(arch.active_weights_gb * GB, total)
        notes.append(
            f"Bytes read per token: {arch.active_weights_gb:g} GB, from the installed model's per-tensor "
            "layout (shared tensors + the routed share of the expert tensors)."
        )
        return WeightsRead(total, active, is_moe, moe_layers, notes)
    if not is_moe:
        read_b = entry.params_read_b if entry is not None else None
        if read_b is not None and arch.weights_gb is None:
            active = min(total, read_b * 1e9 * q.bpw(read_b) / 8)
            notes.append(_streamed_note(read_b, active, total))
            return WeightsRead(total, active, False, 0, notes)
        return WeightsRead(total, total, False, 0, notes)
    if entry is not None and layout is not None and layout.expert_params_b is not None:
        total, active = _moe_layout_read(arch, q, entry, layout, total, notes)
        return WeightsRead(total, active, True, moe_layers, notes)
    if active_p is None and arch.n_experts and arch.n_experts_active:
        active_p = total_p * arch.n_experts_active / arch.n_experts
        notes.append(
            f"MoE active parameters not given: assumed {arch.n_experts_active}/{arch.n_experts} of all "
            "weights are read per token (underestimates the always-read attention and shared tensors)."
        )
    active_p = active_p or total_p
    active = total * active_p / total_p
    notes.append(
        f"MoE: {active_p:g}B of {total_p:g}B parameters read per token, assuming every tensor has the same "
        "precision (no per-tensor layout known for this model)."
    )
    return WeightsRead(total, active, True, moe_layers, notes)


def _streamed_note(read_b: float, active: float, total: float) -> str:
    return (
        f"Bytes read per token: the {read_b:g}B parameters decode streams ({active / GB:.2f} GB), not the "
        f"whole {total / GB:.1f} GB file (per-layer embedding tables are read one row per token; vision and "
        "audio encoders not at all). No Mac measurement of such a model is in our data, and the per-layer "
        "embedding work costs time too: treat the speed as an upper estimate."
    )


def _moe_layout_read(
    arch: ModelArchitecture,
    q: QuantSpec,
    entry: CatalogModel,
    layout: MoeLayout,
    total: float,
    notes: list[str],
) -> tuple[float, float]:
    """(bytes in memory, bytes read per token) of a catalog MoE from its per-tensor layout."""
    assert layout.expert_params_b is not None
    total_p = arch.params_billion
    qt = quants()
    experts = layout.expert_params_b
    embed = layout.embed_params_b
    other = max(total_p - experts - embed, 0.0)
    expert_t, other_t = layout.layout.get("expert"), layout.layout.get("other")
    if expert_t and q.quant == f"{expert_t}-Q8":
        other_t = "Q8_0"  # same experts, 8-bit non-expert tensors (ggml-org / mlx-community builds)
    native = bool(expert_t) and q.quant.startswith(str(expert_t)) and other_t in qt
    if native:
        bpw_e = qt[str(expert_t)].nominal_bpw
        bpw_o = qt[str(other_t)].nominal_bpw
    else:
        bpw_e = bpw_o = q.bpw(total_p)
    modelled = (experts * bpw_e + (other + embed) * bpw_o) * 1e9 / 8
    published = q.quant in entry.file_gb and arch.weights_gb is None
    if published or arch.weights_gb is not None:
        scale = total / modelled if modelled > 0 else 1.0  # mixed K-quant tensors, metadata, vision
    else:
        scale, total = 1.0, modelled
    share = layout.active_experts / layout.experts
    other_b = other * bpw_o * 1e9 / 8 * scale
    expert_b = experts * share * bpw_e * 1e9 / 8 * scale
    active = other_b + expert_b
    kind = f"{other_t} non-expert tensors, {expert_t} experts" if native else f"{q.quant} throughout"
    notes.append(
        f"MoE bytes per token from the tensor layout ({kind}): {other_b / GB:.2f} GB of attention, "
        f"shared and output tensors read every token + {layout.active_experts}/{layout.experts} of "
        f"{experts * bpw_e * 1e9 / 8 * scale / GB:.1f} GB routed experts = {active / GB:.2f} GB "
        "(the input embedding table is not read per token)."
    )
    return total, active


def kv_cache_bytes(arch: ModelArchitecture, ctx: int, kv_type: str = "f16", parallel: int = 1) -> float:
    """2 (K,V) x layers x kv_heads x head_dim x cached tokens x bytes/elem; SWA layers cache only a window."""
    per_tok_layer = 2 * arch.n_kv_heads * arch.head_dim * KV_BYTES_PER_ELEM[kv_type]
    tokens = ctx * parallel
    if arch.sliding_window and arch.global_layer_every:
        n_global = max(1, arch.n_layers // arch.global_layer_every)
        n_local = arch.n_layers - n_global
        local_tokens = min(ctx, arch.sliding_window) * parallel
        return per_tok_layer * (n_global * tokens + n_local * local_tokens)
    return per_tok_layer * arch.n_layers * tokens


def attention_flops_per_prompt_token(arch: ModelArchitecture, prompt_tokens: int) -> float:
    """Attention FLOPs per prompt token, averaged over a prompt of ``prompt_tokens`` (QK^T, AV: 4*d*ctx/2):
    half the MHA-equivalent bytes a generated token reads over the same context."""
    return attention_read_bytes(arch, max(prompt_tokens, 1)) / 2


def query_heads(arch: ModelArchitecture) -> int:
    """Query heads; when not given, the usual GQA ratio of 4 query heads per KV head is assumed."""
    return arch.n_heads or arch.n_kv_heads * 4


def attention_read_bytes(arch: ModelArchitecture, ctx: int) -> float:
    """Attention work per generated token, as MHA-equivalent f16 K/V bytes over the context.

    Why: measured decode slow-down with context (XiongjieDai tg512..tg8192) scales with query heads x layers x
    context, not with the (GQA-reduced) KV bytes; the calibrated coefficient turns this into seconds.
    """
    heads = query_heads(arch)
    if arch.sliding_window and arch.global_layer_every:
        n_global = max(1, arch.n_layers // arch.global_layer_every)
        eff_layers = n_global + (arch.n_layers - n_global) * min(ctx, arch.sliding_window) / max(ctx, 1)
    else:
        eff_layers = arch.n_layers
    return 2 * eff_layers * heads * arch.head_dim * 2 * ctx
