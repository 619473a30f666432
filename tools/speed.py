"""Decode-speed model: bandwidth ceiling plus a calibrated time-per-token model.

Time per generated token (seconds)::

    T = (W_active / BW) * (a + d[quant] + g_m1 + g_m1_big + m_w + e[tier]) + t0[tier] + t0_mlx
        + c_attn * A(ctx) / BW + (m_l + m_l_pre5) * L_moe + KV(ctx) / BW

* ``W_active / BW`` is the time to stream the weights once at the marketed bandwidth; ``a + d`` is its inverse
  efficiency, which grows as the quantisation gets lower (dequantisation compute) and differs by chip tier.
* ``t0`` is a fixed per-token cost (kernel launches, sampling, synchronisation) that dominates small models on
  fast chips -- why a single efficiency constant cannot fit both 1B and 70B models; MLX quants add ``t0_mlx``.
* ``g_m1`` (all M1 chips) and ``g_m1_big`` (M1 Max/Ultra on top) are M1-only inverse efficiencies;
  ``m_l_pre5`` is the MoE routing cost's extra on M1-M4 (see PARAM_NAMES below).
* ``A(ctx)`` is the attention work over the context, expressed as MHA-equivalent K/V bytes (see
  ``sizes.attention_read_bytes``); it models the 15-30 % slow-down at 8k context.
* ``KV(ctx) / BW`` reads the KV cache once per token: known, not fitted (``kv_read_seconds``).

The parameters are fitted offline by ``python -m tools.calibration`` (weighted least squares on relative error
over ``data/calibration_decode.csv``) and stored with their fit report in ``data/speed_model.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from tools.data_files import load_yaml
from tools.models import CatalogModel
from tools.quants import QuantSpec
from tools.schemas import ModelArchitecture

TIERS = ("base", "pro", "max", "ultra")
QUANT_ANCHORS = ("q4", "q8", "mlx4", "mlx8")
# Parameter set chosen by leave-one-source-out error (bench/estimator_accuracy.py): one bandwidth efficiency
# for all chips, per-quant extra cost, an M1-generation penalty, per-tier fixed cost, attention factor.
# Per-generation efficiencies fitted the calibration rows better but generalised worse; per-tier ones (Max,
# Ultra) generalise since the legacy-attention rows carry their known cost (e_max/e_ultra below).
PARAM_NAMES: tuple[str, ...] = (
    "a",
    *(f"d_{q}" for q in QUANT_ANCHORS),
    "g_m1",
    *(f"t0_{t}" for t in TIERS),
    "c_attn",
    "m_w",
    "m_l",
    "m_l_pre5",
    "t0_mlx",
    "g_m1_big",
    "e_max",
    "e_ultra",
)
# e_max, e_ultra: extra inverse efficiency of the Max and Ultra tiers (domain notes 1.3: efficiency falls
# as the tier rises, base ~ Pro > Max >> Ultra; an Ultra is two dies). Once rows from builds before flash
# attention carry their known attention cost (calibration.LEGACY_ATTENTION_SOURCES), these generalise:
# leave-one-source-out dense M1-M4 error 9.8/11.1 % -> 6.9/8.5 % median/mean (with a >= 1, calibration.fit).
# m_w: extra inverse efficiency on the bytes a mixture-of-experts model reads per token (scattered experts);
# m_l: seconds per MoE layer per token at 8 routed experts, scaled by the experts used (router, top-k,
# one matmul dispatch per routed expert); sizes.weights_read gives layers x experts_used / 8.
# m_l_pre5: the same routing cost's extra on M1-M4 GPUs: fitted MoE rows on older chips run 10-35 % below
# an M5-calibrated routing cost (leave-one-group-out MoE error 15.5 % -> 7.1 % with it; see the bench).
# Why older GPUs pay more per routed expert is not established (dispatch latency, clocks): a fitted fact.
# g_m1 applies to every M1 chip, g_m1_big on top to the large M1 dies (M1 Max/Ultra): M1 Pro rows
# (itsmostafa) run between later chips and M1 Max, while M1 Max rows of every source run well below later
# chips; one M1 penalty mixed the two (leave-one-source-out dense M1-M4 11.9/16.4 % -> 11.1/13.2 %
# median/mean with t0_mlx below).
# t0_mlx: MLX's extra fixed cost per generated token (Python-level generate loop, one lazy graph evaluated
# per token) over llama.cpp's; visible as MLX 1B/3B rows running 25-35 % below an llama.cpp-calibrated fixed
# cost (AlexsJones/llmfit M4 Pro), while MLX and llama.cpp agree on 7B-27B models.


def tier_from_bandwidth(bw_gbps: float) -> str:
    """Tier implied by a raw bandwidth figure (used only when no chip is given)."""
    if bw_gbps <= 160:
        return "base"
    if bw_gbps <= 320:
        return "pro"
    if bw_gbps <= 650:
        return "max"
    return "ultra"


def quant_weights(q: QuantSpec) -> tuple[dict[str, float], str | None]:
    """Map a quant onto the fitted anchors; 16-bit floats are the reference (no extra cost).

    Anchors are the quantisations the calibration data actually contains (Q4_K_M/Q4_0, Q8_0, F16, MLX
    4/8-bit); each anchor's parameter is the extra inverse efficiency (dequantisation work per byte) over F16,
    so the fit can keep it non-negative. Quants in between are linearly interpolated by nominal bpw; quants
    below 4.5 bpw and i-quants reuse the Q4 anchor, which the returned note flags as uncalibrated.
    """
    bpw = q.nominal_bpw
    note: str | None = None
    if q.family == "float":
        return {}, None
    lo, hi = ("mlx4", "mlx8") if q.engine == "mlx" else ("q4", "q8")
    if q.quant.startswith("MXFP4"):
        return {lo: 1.0}, None  # gpt-oss rows (MXFP4 experts) are in the calibration through the 4-bit anchor
    if bpw <= 4.5:
        if bpw < 4.5 or q.family == "iq":
            note = (
                f"{q.quant}: efficiency not calibrated (no measurements below 4 bits / for i-quants); the "
                "4-bit value is used. i-quants and 2-3 bit K-quants are usually somewhat slower per byte on "
                "Metal."
            )
        return {lo: 1.0}, note
    if bpw <= 8.5:
        f = (bpw - 4.5) / 4.0
        return {lo: 1 - f, hi: f}, None
    return {hi: 1 - (bpw - 8.5) / 7.5}, None


@dataclass(frozen=True)
class TokenWork:
    """What one generated token reads on one machine: the inputs of the decode-time model.

    ``generation`` 1 adds an extra inverse efficiency, more on a Max/Ultra tier: M1 GPUs reach a smaller
    share of their marketed bandwidth than later chips, M1 Max/Ultra visibly less than M1 Pro (XiongjieDai,
    normiebench, itsmostafa rows). None (raw bandwidth) means "not M1".
    """

    weights_bytes: float  # weight bytes streamed per token (MoE: the active ones)
    bw_gbps: float
    tier: str
    q: QuantSpec
    attn_bytes: float  # MHA-equivalent K/V bytes (sizes.attention_read_bytes)
    generation: int | None = None
    moe_layers: int = 0
    kv_bytes: float = 0.0  # KV cache read once per token: a known cost, not a feature (kv_read_seconds)


def feature_vector(w: TokenWork) -> list[float]:
    """Design-matrix row; T = features . params (linear in the parameters, hence a direct LS fit)."""
    generation, moe_layers, tier, q = w.generation, w.moe_layers, w.tier, w.q
    bw = w.bw_gbps * 1e9
    wt = w.weights_bytes / bw
    qw, _ = quant_weights(q)
    row = [wt]
    row += [wt * qw.get(a, 0.0) for a in QUANT_ANCHORS]
    row += [wt if generation == 1 else 0.0]
    row += [1.0 if tier == t else 0.0 for t in TIERS]
    row += [w.attn_bytes / bw]
    row += [wt if moe_layers else 0.0, float(moe_layers) * 1e-4]
    row += [float(moe_layers) * 1e-4 if generation is None or generation < 5 else 0.0]
    row += [1.0 if q.engine == "mlx" else 0.0]
    row += [wt if generation == 1 and tier in ("max", "ultra") else 0.0]
    row += [wt if tier == "max" else 0.0, wt if tier == "ultra" else 0.0]
    return row


def kv_read_seconds(kv_bytes: float, bw_gbps: float) -> float:
    """Reading the KV cache once per token at the marketed bandwidth: a known cost, added to the fitted time
    (domain notes 1.1). With it, the fitted attention factor c_attn is what attention costs beyond its
    reads."""
    return kv_bytes / (bw_gbps * 1e9)


def prefill_light(q: QuantSpec) -> bool:
    """Weights whose dequantisation is nearly free in matrix kernels (F16/BF16, Q8_0): faster prefill."""
    return q.family == "float" or q.quant == "Q8_0"


def expert_share(entry: CatalogModel | None, arch: ModelArchitecture) -> float | None:
    """Active / total routed experts of a MoE model (None if unknown or dense)."""
    if entry is not None and entry.moe is not None and entry.moe.experts:
        return entry.moe.active_experts / entry.moe.experts
    if arch.n_experts and arch.n_experts_active:
        return arch.n_experts_active / arch.n_experts
    return None


MOE_MICRO_BATCH = 512  # llama.cpp's default ubatch; the batch the MoE fit rows' efficiency refers to
DEFAULT_EXPERT_SHARE = 8 / 128


@dataclass(frozen=True)
class PrefillModel:
    """Prompt processing is compute-bound: tokens/s = effective FLOPS / FLOPs per token.

    ``tflops_per_core[gen]`` is the effective rate per GPU core of a generation for quantised weights in
    llama.cpp/Ollama (M5: with the GPU neural accelerators, i.e. a Metal-4 tensor-API build); float weights,
    MoE routing and long prompts (attention FLOPs grow with the prompt) scale it by fitted factors.
    """

    tflops_per_core: dict[int, float]
    sources: dict[int, str]
    float_factor: float
    moe_factor: float
    attn_factor: float
    no_accelerator_tflops_per_core: float  # M5 on a runtime without the tensor API (e.g. LM Studio GGUF)
    range_low: float
    range_high: float
    # MLX: time to first token = start-up + prompt / (mlx_factor x the llama.cpp-calibrated rate).
    # llama.cpp's llama-bench pp N excludes fixed costs and splits any prompt into 512-token micro-batches;
    # MLX harnesses time the whole prompt incl. a fixed start-up, so their tok/s rises with the prompt
    # (defai-digital/ax-engine M5 Max: 1600 tok/s at 512 tokens, 3513 at 2048, same model). The start-up is
    # measured per GPU class: M5 (neural accelerators) pays several times more than M1-M4 in the data.
    mlx_fixed_seconds: float = 0.0
    mlx_fixed_seconds_m5: float = 0.0
    mlx_factor: float = 1.0
    # float_factor per GPU generation where the fit rows pair light and Q4-class weights (else float_factor).
    float_factor_by_gen: dict[int, float] = field(default_factory=dict)
    # MoE: a 512-token micro-batch gives each expert only 512 x active/total experts tokens, and small matrix
    # batches run below peak: efficiency b / (b + moe_half_batch). 0 = one flat moe_factor. (Taking MLX's
    # batch as the whole prompt up to 2048 fitted the MoE rows worse: median 6.3 % -> 16.2 %.)
    moe_half_batch: float = 0.0

    def moe_efficiency(self, expert_share: float | None) -> float:
        """Matmul efficiency of MoE expert batches; unknown share: 8 of 128 experts (qwen3, gemma4)."""
        if self.moe_half_batch <= 0:
            return 1.0
        b = MOE_MICRO_BATCH * (expert_share if expert_share else DEFAULT_EXPERT_SHARE)
        return b / (b + self.moe_half_batch)

    def mlx_startup(self, generation: int) -> float:
        return self.mlx_fixed_seconds_m5 if generation >= 5 else self.mlx_fixed_seconds

    def rate(self, generation: int) -> tuple[float, int, str | None]:
        """(TFLOPS per core, generation used, note when a neighbouring generation stands in)."""
        if generation in self.tflops_per_core:
            return self.tflops_per_core[generation], generation, None
        known = sorted(self.tflops_per_core)
        lower = [g for g in known if g < generation]
        use = lower[-1] if lower else known[0]
        return (
            self.tflops_per_core[use],
            use,
            f"No prompt-processing measurement for M{generation}: the M{use} per-core rate is used "
            "(unverified; whether newer GPU cores keep or improve the neural accelerators is not measured).",
        )

    def tokens_per_second(
        self,
        generation: int,
        gpu_cores: int,
        active_params_b: float,
        is_float: bool,
        moe: bool,
        attn_flops_per_token: float,
        mlx: bool = False,
        prompt_tokens: int = 512,
        expert_share: float | None = None,
    ) -> tuple[float, list[str]]:
        tpc, used, note = self.rate(generation)
        flops = 2 * active_params_b * 1e9 + self.attn_factor * attn_flops_per_token
        tps = tpc * gpu_cores * 1e12 / flops
        if is_float:
            tps *= self.float_factor_by_gen.get(generation, self.float_factor)
        if moe:
            tps *= self.moe_factor * self.moe_efficiency(expert_share)
        if mlx:
            tps *= self.mlx_factor
            n = max(prompt_tokens, 1)
            tps = n / (self.mlx_startup(generation) + n / tps)
        return tps, [note] if note else []


@dataclass(frozen=True)
class SpeedModel:
    params: dict[str, float]
    range_low: float
    range_high: float
    moe_range_low: float
    prefill: PrefillModel
    fit_note: str

    def seconds_per_token(self, w: TokenWork) -> float:
        """Seconds per generated token (see the module docstring)."""
        x = feature_vector(w)
        fitted = sum(xi * self.params[n] for xi, n in zip(x, PARAM_NAMES, strict=True))
        return fitted + kv_read_seconds(w.kv_bytes, w.bw_gbps)


@cache
def speed_model() -> SpeedModel:
    data: dict[str, Any] = load_yaml("speed_model.yaml")
    return SpeedModel(
        params={k: float(v) for k, v in data["params"].items()},
        range_low=float(data["range"]["low_ratio"]),
        range_high=float(data["range"]["high_ratio"]),
        moe_range_low=float(data["range"].get("moe_low_ratio", data["range"]["low_ratio"])),
        prefill=prefill_model_from(data["prefill"]),
        fit_note=str(data["fit"]["method"]),
    )


def prefill_model_from(pre: dict[str, Any]) -> PrefillModel:
    per_gen = pre["per_generation"]
    return PrefillModel(
        tflops_per_core={int(k): float(v["tflops_per_core"]) for k, v in per_gen.items()},
        sources={int(k): str(v["source"]) for k, v in per_gen.items()},
        float_factor=float(pre["float_factor"]),
        moe_factor=float(pre["moe_factor"]),
        attn_factor=float(pre["attn_factor"]),
        no_accelerator_tflops_per_core=float(pre["m5_without_tensor_api_tflops_per_core"]),
        range_low=float(pre["range"]["low_ratio"]),
        range_high=float(pre["range"]["high_ratio"]),
        mlx_fixed_seconds=float(pre.get("mlx_fixed_seconds", 0.0)),
        mlx_fixed_seconds_m5=float(pre.get("mlx_fixed_seconds_m5", 0.0)),
        mlx_factor=float(pre.get("mlx_factor", 1.0)),
        moe_half_batch=float(pre.get("moe_half_batch", 0.0)),
        float_factor_by_gen={int(k): float(v) for k, v in pre.get("float_factor_by_generation", {}).items()},
    )
