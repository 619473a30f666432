"""recommend_machine: the article's buying framework, applied to the current line-up and checked against
our own fit and speed models.

Machines, prices (with source and date), the avoid-list and the rules live in tools/data (machines.yaml,
recommend_rules.yaml, image_models.yaml). Each candidate gets check_memory_fit's verdict (only the verdict:
tools.fit.memory_fit_verdict skips the largest-context search and the suggestions) and estimate_speed for the
target model; a machine the avoid-list names is never recommended, and a budget nothing fits gets a typed
answer that says so instead of a pick beyond the budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from tools.chips import chip_bins
from tools.data_files import GB, from_row, load_yaml
from tools.estimate import estimate_speed
from tools.fit import gpu_budget, memory_fit_verdict
from tools.models import resolve_model, resolve_model_tag
from tools.quants import resolve_quant
from tools.registry import ToolError
from tools.schemas import (
    CheckMemoryFitInput,
    ClusterOption,
    EstimateSpeedInput,
    MachineOption,
    RecommendMachineInput,
    RecommendMachineOutput,
)

ARTICLE = (
    "the article 'Apple Silicon AI Workstation 2026' (2026-04-14), sections 'The Decision Framework' and "
    "'The Honest Bottom Line'"
)
SOURCES = [
    ARTICLE,
    "tools/data/machines.yaml (Apple's line-up, each price with its source and date)",
    "tools/data/recommend_rules.yaml, tools/data/image_models.yaml",
    "check_memory_fit and estimate_speed (this package)",
]
_BASIS = {
    "list": "Apple US list price",
    "launch": "Apple US list price at launch (later price not read)",
    "article": "the article's price (refurbished/used)",
    "list-K": "approximate launch list price (general knowledge, not verified)",
}


@cache
def rules() -> dict[str, Any]:
    return load_yaml("recommend_rules.yaml")


@dataclass(frozen=True)
class Candidate:
    id: str
    label: str
    chip: str
    gpu_cores: int
    memory_gb: float
    form: str
    portable: bool
    price_usd: float
    price_basis: str
    price_as_of: str
    price_source: str
    status: str
    why: str

    @property
    def price_note(self) -> str:
        basis = _BASIS.get(self.price_basis, self.price_basis)
        return f"{basis}, as of {self.price_as_of}; {self.price_source}."


@cache
def candidates() -> tuple[Candidate, ...]:
    return tuple(from_row(Candidate, m) for m in load_yaml("machines.yaml")["machines"])


def avoid_reason(c: Candidate, workload: str) -> str | None:
    """The avoid-list entry that names this machine for this workload, if any."""
    for rule in load_yaml("machines.yaml")["avoid"]:
        chips, forms = rule.get("chips"), rule.get("forms")
        if chips is None and forms is None and rule.get("max_memory_gb") is None:
            continue  # Intel Macs, MacBook Neo: not in the candidate list at all
        if chips is not None and c.chip not in chips:
            continue
        if forms is not None and c.form not in forms:
            continue
        if rule.get("max_memory_gb") is not None and c.memory_gb > float(rule["max_memory_gb"]):
            continue
        if rule.get("workloads") is not None and workload not in rule["workloads"]:
            continue
        return str(rule["text"])
    return None


def image_model_need(name: str | None) -> tuple[float, str, str]:
    """(GB on the GPU, label, source) for an image model name; ToolError listing the known ones otherwise."""
    table: dict[str, Any] = load_yaml("image_models.yaml")["image_models"]
    key = (name or rules()["default_image_model"]).strip().lower()
    norm = re.sub(r"[^a-z0-9.]", "", key)
    for mid, m in table.items():
        names = [mid, *m.get("aliases", [])]
        if key in names or norm in {re.sub(r"[^a-z0-9.]", "", a) for a in names}:
            gb = float(m["params_b"]) * float(m["bytes_per_param"]) + float(m["activations_gb"])
            return gb, str(m["label"]), f"image model {mid}: {m['source']}"
    raise ToolError(
        f"image_model: unknown image model {name!r}. Known: {', '.join(table)}.", fields=["image_model"]
    )


def image_cores(c: Candidate) -> float:
    """GPU cores as image generation counts them: an M5-family core (Neural Accelerator) as several older ones
    (recommend_rules.yaml image_core_factor)."""
    f = rules()["image_core_factor"]
    return c.gpu_cores * (float(f["factor"]) if c.chip in f["chips"] else 1.0)


def image_core_note() -> str:
    f = rules()["image_core_factor"]
    return (
        f"Image speed: an M5-generation GPU core ({', '.join(f['chips'])}) counts as {f['factor']:g} older "
        "cores, for its Neural Accelerator (compute-bound prompt processing measured 2.5-4x an M4's; no "
        "Flux/SDXL measurement on an M5 was read, and only apps using the Metal 4 tensor API or MLX get it); "
        "other chips by GPU cores alone, as the article measured."
    )


def _bandwidth(c: Candidate) -> float:
    return next(b.bandwidth_gbps for b in chip_bins() if b.chip == c.chip and c.gpu_cores in b.gpu_cores)


def _evaluate(
    c: Candidate, model_args: dict[str, Any] | None, ctx: int, runtime: str, image_gb: float
) -> tuple[MachineOption, float | None]:
    """check_memory_fit's verdict and estimate_speed's decode on one machine, and the GPU memory (GB) the
    target needs on it (None when the fit check does not say)."""
    verdict: str | None = None
    tps: float | None = None
    rng: tuple[float, float] | None = None
    need_gb: float | None = image_gb if model_args is None else None
    budget, _ = gpu_budget(c.memory_gb)
    if image_gb > 0 and image_gb * GB >= budget:
        verdict = "does_not_fit"
    elif model_args is None:
        verdict = "fits" if image_gb * GB <= float(rules()["image_only_tight_above"]) * budget else "tight"
    else:
        limit = (budget - image_gb * GB) / GB if image_gb > 0 else None
        fit = memory_fit_verdict(
            CheckMemoryFitInput(
                chip=c.chip,
                gpu_cores=c.gpu_cores,
                memory_gb=c.memory_gb,
                context_tokens=ctx,
                runtime=runtime,  # type: ignore[arg-type]
                gpu_memory_limit_gb=limit,
                **model_args,
            )
        )
        verdict = fit.verdict
        need_gb = _gpu_need_gb(fit) + image_gb
        if fit.fits_on_gpu:
            speed = estimate_speed(
                EstimateSpeedInput(
                    chip=c.chip,
                    gpu_cores=c.gpu_cores,
                    memory_gb=c.memory_gb,
                    context_tokens=min(ctx, int(rules()["speed_context_tokens"])),
                    runtime=runtime,  # type: ignore[arg-type]
                    **model_args,
                )
            )
            tps, rng = speed.expected_tokens_per_second, speed.expected_range
    opt = MachineOption(
        machine=c.label,
        chip=c.chip,
        gpu_cores=c.gpu_cores,
        memory_gb=c.memory_gb,
        bandwidth_gbps=_bandwidth(c),
        approx_price_usd=c.price_usd,
        price_note=c.price_note,
        price_as_of=c.price_as_of,
        status=c.status,
        fit_verdict=verdict,
        expected_tokens_per_second=tps,
        expected_range=rng,
        why=c.why,
    )
    return opt, need_gb


def _gpu_need_gb(fit: Any) -> float:
    """GB the target needs on the GPU, as check_memory_fit's breakdown.total_gb reports it (rounded alike):
    from the verdict (need) or from the full report (breakdown), so either gives the same recommendation.
    0 when neither says (then only the min_gb floor of useful_memory_gb applies)."""
    need = getattr(fit, "need", None)
    if need is not None:
        return round(float(need.gpu_total) / GB, 2)
    breakdown = getattr(fit, "breakdown", None)
    return float(breakdown.total_gb) if breakdown is not None else 0.0


def useful_memory_gb(need_gb: float | None) -> float:
    """The most memory that still counts in the memory-per-dollar term: room to grow (a bigger model, longer
    context) is worth paying for, memory the target will never use is not (recommend_rules.yaml)."""
    h = rules()["memory_headroom"]
    return max(float(h["factor"]) * (need_gb or 0.0), float(h["min_gb"]))


def _score(pool: list[Candidate], ev: dict[str, MachineOption], need_gb: float | None) -> dict[str, float]:
    """Weighted speed + memory per dollar, each relative to the best in the pool (recommend_rules.yaml).
    Memory counts only up to useful_memory_gb: 512 GB is no better than 96 GB for a 14B model."""
    w = rules()["score_weights"]
    cap = useful_memory_gb(need_gb)
    mpd = {c.id: min(c.memory_gb, cap) / c.price_usd for c in pool}
    best_tps = max((ev[c.id].expected_tokens_per_second or 0.0) for c in pool) or 1.0
    best_mpd = max(mpd.values())
    return {
        c.id: float(w["speed"]) * (ev[c.id].expected_tokens_per_second or 0.0) / best_tps
        + float(w["memory_per_dollar"]) * mpd[c.id] / best_mpd
        for c in pool
    }


@dataclass
class _ClusterEval:
    c: Candidate
    count: int
    verdict: str
    tps: float | None

    @property
    def price(self) -> float:
        return self.c.price_usd * self.count


def _clusters(
    pool: list[Candidate], model_args: dict[str, Any], ctx: int, runtime: str, image_gb: float = 0.0
) -> list[_ClusterEval]:
    """Clusters of 2..max_nodes identical Macs over Thunderbolt 5 (tensor parallel) that hold the target.

    workload both: the image model is not split; one node must hold it next to its share of the LLM.
    """
    from tools.cluster import data as cluster_data

    cd = cluster_data()
    out: list[_ClusterEval] = []
    for c in pool:
        if c.chip not in cd["thunderbolt5_chips"]:
            continue
        for k in range(2, int(cd["recommend"]["max_nodes"]) + 1):
            spec = {"count": k, "link": "thunderbolt5"}
            args = {"chip": c.chip, "gpu_cores": c.gpu_cores, "memory_gb": c.memory_gb, "runtime": runtime}
            fit = memory_fit_verdict(
                CheckMemoryFitInput.model_validate(
                    {**args, **model_args, "context_tokens": ctx, "cluster": spec}
                )
            )
            if not fit.fits_on_gpu:
                continue
            if not _fits_with_image(c.memory_gb, fit, image_gb):
                continue  # per node: the node that also runs the image model
            speed = estimate_speed(
                EstimateSpeedInput.model_validate(
                    {
                        **args,
                        **model_args,
                        "context_tokens": min(ctx, int(rules()["speed_context_tokens"])),
                        "cluster": spec,
                    }
                )
            )
            out.append(_ClusterEval(c, k, fit.verdict, speed.expected_tokens_per_second))
            break  # the smallest cluster of this machine that holds the model
    return out


@dataclass
class _Target:
    """What to size for: the model arguments for the fit/speed tools (None: image only), size and label."""

    model_args: dict[str, Any] | None
    params_b: float
    label: str
    quant_note: str | None = None  # the assumption when no quant was given (none when one was)


def _quant_said(explicit: str | None, default: str | None, label: str) -> tuple[str, str | None]:
    """(label naming a given quant, assumption naming the default one): what is sized for is what is said."""
    if explicit is not None:
        return f"{label} at {resolve_quant(explicit)[0].quant}", None
    if default is not None and resolve_quant(default)[0].quant != "Q4_K_M":
        return label, f"Quantisation: {resolve_quant(default)[0].quant} (the model's default in Ollama)."
    return label, "Quantisation: Q4_K_M (Ollama's default), as in the article's tests."


def _target_model_error(name: str, message: str) -> str:
    """estimate_speed's unknown-model message in recommend_machine's terms (its fields, image models)."""
    msg = message.replace("model:", "target_model:", 1).replace(
        "pass params_billion (and architecture for KV-cache maths)", "give target_params_billion instead"
    )
    try:
        _, label, _ = image_model_need(name)
    except ToolError:
        return msg
    return (
        f'target_model: {name!r} is an image model ({label}), not an LLM: use workload "image" with '
        f'image_model "{name}" (or workload "both" with an LLM in target_model).'
    )


def _target(p: RecommendMachineInput, assumptions: list[str]) -> _Target:
    r = rules()
    q = p.quant
    if p.target_model is not None:
        try:
            entry, q_tag, notes = resolve_model_tag(p.target_model, field_name="target_model")
        except ToolError:
            # A tag newer than the catalog ('qwen3:4b', 'foo:30b-a3b') gets the same answer as in
            # estimate_speed / check_memory_fit: sized from the tag, with the assumption stated.
            try:
                resolved = resolve_model(p.target_model, None, None)
            except ToolError as e:
                raise ToolError(
                    _target_model_error(p.target_model, str(e)), fields=["target_model"], kind=e.kind
                ) from e
            assumptions += resolved.assumptions
            args = {"model": p.target_model, "quant": q or resolved.quant_from_tag}
            label, note = _quant_said(args["quant"], None, resolved.label)
            return _Target(args, resolved.arch.params_billion, label, note)
        assumptions += notes
        if p.target_params_billion is not None:
            assumptions.append(
                f"target_params_billion ({p.target_params_billion:g}) is ignored: target_model {entry.tag} "
                f"({entry.params_b:g}B) sets the size."
            )
        label, note = _quant_said(q or q_tag, entry.default_quant, entry.tag)
        return _Target({"model": entry.tag, "quant": q or q_tag}, entry.params_b, label, note)
    if p.target_params_billion is not None:
        b = p.target_params_billion
        label, note = _quant_said(q, None, f"a {b:g}B model")
        return _Target({"params_billion": b, "quant": q}, b, label, note)
    label = str(r["reference_model"])
    reference, _, _ = resolve_model_tag(label)
    if p.workload != "image" and p.context_tokens > reference.native_ctx:
        raise ToolError(
            f"context_tokens: {p.context_tokens} is more than the {reference.native_ctx}-token trained "
            f"context of {label}, the model sized for when no target is given. Name the model you "
            'want to run in target_model (e.g. "llama3.3:70b", trained on 131072) or give '
            "target_params_billion, or lower context_tokens.",
            fields=["context_tokens"],
        )
    if p.workload != "image":
        assumptions.append(
            f"No target model given: speeds shown for {label} (a typical 'serious' local model)."
        )
    shown, note = _quant_said(q, reference.default_quant, label)
    return _Target({"model": label, "quant": q}, float(r["reference_params_b"]), shown, note)


def _image_need(
    p: RecommendMachineInput, target: _Target, assumptions: list[str], sources: list[str]
) -> float:
    """GB the image model takes on the GPU (0 when none is loaded); image-only drops the LLM target."""
    wl = p.workload
    image_gb = 0.0
    if wl in ("image", "both"):
        image_gb, image_label, image_src = image_model_need(p.image_model)
        sources.append(image_src)
        assumptions.append(
            f"Image model: {image_label}, ~{image_gb:.1f} GB on the GPU (parameters x bytes + activations; "
            "parameter counts from the model cards, not re-verified)."
        )
    elif p.image_model is not None:
        assumptions.append("image_model is used only with workload image or both; ignored.")
    if wl == "image":
        if p.target_model is not None or p.target_params_billion is not None:
            assumptions.append(
                f"Workload image: the LLM target ({target.label}) is not weighed; use workload both to size "
                "for the image model and the LLM together."
            )
        target.model_args = None
    return image_gb


@dataclass
class _Pool:
    """The candidates, their evaluations, and the subsets the pick is made from."""

    ev: dict[str, MachineOption]
    allowed: list[Candidate]
    fitting: list[Candidate]
    pool: list[Candidate]
    budget: float | None
    need_gb: float | None = None  # GPU memory the target needs (the largest any candidate's check reports)
    image_gb: float = 0.0  # of which the image model (workload both)

    def in_budget_price(self, price: float) -> bool:
        return self.budget is None or price <= self.budget * float(rules()["budget_tolerance"])

    def in_budget(self, c: Candidate) -> bool:
        return self.in_budget_price(c.price_usd)


def _pool(p: RecommendMachineInput, target: _Target, image_gb: float, assumptions: list[str]) -> _Pool:
    cands = list(candidates())
    if p.portable is True:
        cands = [c for c in cands if c.portable]
        assumptions.append("Portable required: only laptops considered.")
    elif p.portable is False:
        cands = [c for c in cands if not c.portable]
    both = {c.id: _evaluate(c, target.model_args, p.context_tokens, p.runtime, image_gb) for c in cands}
    ev = {k: v[0] for k, v in both.items()}
    needs = [n for _, n in both.values() if n is not None]
    allowed = [c for c in cands if avoid_reason(c, p.workload) is None]
    fitting = [c for c in allowed if ev[c.id].fit_verdict in ("fits", "tight")]
    comfortable = [c for c in fitting if ev[c.id].fit_verdict == "fits"]
    out = _Pool(ev, allowed, fitting, [], p.budget_usd, max(needs) if needs else None, image_gb)
    out.pool = [c for c in (comfortable or fitting) if out.in_budget(c)] or [
        c for c in fitting if out.in_budget(c)
    ]
    return out


def _unpriced_reasons(p: RecommendMachineInput, pl: _Pool, target: _Target, what: str) -> list[str]:
    """Current configurations without a published price that would hold the target, when no current priced
    machine in budget does (machines.yaml unpriced_configs): named, not weighed."""
    if target.model_args is None or any(c.status == "current" for c in pl.pool):
        return []
    out: list[str] = []
    for u in load_yaml("machines.yaml").get("unpriced_configs", []):
        if p.portable is not None and bool(u["portable"]) != p.portable:
            continue
        try:
            fit = memory_fit_verdict(
                CheckMemoryFitInput.model_validate(
                    {
                        "chip": u["chip"],
                        "gpu_cores": u["gpu_cores"],
                        "memory_gb": u["memory_gb"],
                        "context_tokens": p.context_tokens,
                        "runtime": p.runtime,
                        **target.model_args,
                    }
                )
            )
        except ToolError:
            continue  # a configuration the chip table does not (or no longer) know: nothing to say
        if fit.fits_on_gpu and (
            p.workload != "both" or _fits_with_image(float(u["memory_gb"]), fit, pl.image_gb)
        ):
            out.append(
                f"A current Mac also holds {what}: the {u['label']} ({u['note']}). It is not weighed here "
                "because its price is not published; ask Apple for it before buying a discontinued machine."
            )
    return out


def _fits_with_image(memory_gb: float, fit: Any, image_gb: float | None) -> bool:
    """workload both: the image model fits next to the LLM (its share, on a cluster node) in this memory's
    GPU budget. True when there is no image model."""
    if not image_gb:
        return True
    return (_gpu_need_gb(fit) + image_gb) * GB <= gpu_budget(memory_gb)[0]


def _no_pick_reasons(p: RecommendMachineInput, pl: _Pool, what: str, cluster_named: bool) -> list[str]:
    r, budget, ctx = rules(), pl.budget, p.context_tokens
    reasons: list[str] = []
    at = "" if p.workload == "image" else f" at {ctx} tokens"  # an image model has no context
    if budget is not None and budget < float(r["wait_below_usd"]):
        reasons.append(str(r["reasons"]["wait"]).replace("{budget}", f"{budget:,.0f}"))
    if not pl.fitting and p.portable is True:
        reasons.append(
            f"No laptop in our list runs {what}{at and at + ' of context'} on the GPU; ask without portable "
            "for desktops and clusters, or consider a smaller quantisation or model (see check_memory_fit)."
        )
    elif not pl.fitting:
        from tools.cluster import data as cluster_data

        nodes = cluster_data()["recommend"]["max_nodes"]
        reasons.append(
            f"No single machine in our list runs {what}{at and at + ' of context'} on the GPU; "
            "consider a smaller quantisation or model (see check_memory_fit)"
            + (
                ", or a cluster of Macs."
                if cluster_named or p.workload == "image"
                else f"; no cluster of up to {nodes} Macs in our list holds it either (check_memory_fit "
                "with cluster for other links or node counts)."
            )
        )
    elif budget is not None:
        cheapest = min(pl.fitting, key=lambda c: c.price_usd)
        reasons.append(
            f"Nothing within ${budget:,.0f} that the avoid-list allows runs {what}{at} on "
            f"the GPU; the cheapest that does is the {cheapest.label} (~${cheapest.price_usd:,.0f})."
        )
    return reasons


def _pick(p: RecommendMachineInput, pl: _Pool, target: _Target, reasons: list[str]) -> Candidate:
    """The machine to recommend from a non-empty pool, by workload (rules in recommend_rules.yaml)."""
    r, pool, ev = rules(), pl.pool, pl.ev
    if p.workload == "image":
        if pl.budget is None:
            ip = r["image_pick"]
            studios = [
                c
                for c in pool
                if c.form == ip["form"]
                and image_cores(c) >= ip["min_gpu_cores"]
                and c.price_usd < ip["max_price_usd"]
            ]
            pick = min(studios or pool, key=lambda c: (c.price_usd, -image_cores(c)))
        else:
            pick = max(pool, key=lambda c: (image_cores(c), c.form == r["image_pick"]["form"], -c.price_usd))
        reasons += list(r["reasons"]["image"])
        return pick
    if p.workload == "research":
        rp = r["research_pick"]
        laptops = [c for c in pool if c.portable == rp["portable"] and c.memory_gb >= rp["min_memory_gb"]]
        reasons += list(r["reasons"]["research"])
        if not laptops:
            kind = "laptop" if rp["portable"] else "desktop"
            fits = [
                c for c in pl.fitting if c.portable == rp["portable"] and c.memory_gb >= rp["min_memory_gb"]
            ]
            cheapest = min(fits, key=lambda c: c.price_usd) if fits else None
            within = f" within ${pl.budget:,.0f}" if pl.budget is not None else ""
            reasons.append(
                f"No {kind} with at least {rp['min_memory_gb']} GB runs {_what(p, target)}{within}"
                + (
                    f" (the cheapest that does, the {cheapest.label}, costs ~${cheapest.price_usd:,.0f})"
                    if cheapest
                    else ""
                )
                + ": recommended instead is the cheapest machine in budget that runs it."
            )
        return min(laptops or pool, key=lambda c: c.price_usd)
    if pl.budget is None:
        pick = min(pool, key=lambda c: (c.price_usd, -(ev[c.id].expected_tokens_per_second or 0)))
        reasons.append("No budget given: the cheapest machine that runs the target comfortably.")
    else:
        score = _score(pool, ev, pl.need_gb)
        pick = max(pool, key=lambda c: (round(score[c.id], 6), -c.price_usd))
        reasons.append(str(r["reasons"]["ranking"]))
    reasons.append(str(r["reasons"]["bandwidth"]))
    if p.workload == "both":
        reasons.append(str(r["reasons"]["both"]))
    # the article's 70B advice for 70B-class targets only (a 235B or 671B one is beyond its framework)
    if float(r["big_model_b"]) <= target.params_b < float(r["big_model_max_b"]):
        reasons.append(str(r["reasons"]["big"]))
    elif target.params_b < float(r["big_model_b"]) and pick.chip in r["small_model_chip_reasons"]:
        reasons.append(str(r["reasons"][r["small_model_chip_reasons"][pick.chip]]))
    if pick.chip in r["chip_reasons"]:
        reasons.append(str(r["reasons"][r["chip_reasons"][pick.chip]]))
    return pick


def _cluster_mention(found: list[_ClusterEval], pl: _Pool, target: _Target, what: str) -> list[str]:
    """No cluster beats one Mac in budget: name the cheapest that holds the target (said when over budget)."""
    from tools.cluster import data as cluster_data

    crules = cluster_data()["recommend"]
    e = min(found, key=lambda e: (e.price, -(e.tps or 0)))
    # A model below the cluster threshold that one Mac at any price holds for less gets no cluster
    # mention (two $1,500 minis are no answer when one $1,299 Mac runs a 14B model).
    single = min((c.price_usd for c in pl.fitting), default=None)
    if target.params_b < float(crules["consider_above_b"]) and single is not None and single <= e.price:
        return []
    over = ""
    if pl.budget is not None and not pl.in_budget_price(e.price):
        over = f", over your ${pl.budget:,.0f} budget"
    return [
        f"Clusters also run {what}: e.g. {e.count} x {e.c.label} over Thunderbolt 5 (~${e.price:,.0f} in "
        f"all{over}, ~{e.tps:g} tok/s); {rules()['cluster_public_runs']}"
    ]


def _cluster_option(
    p: RecommendMachineInput, pl: _Pool, target: _Target, pick: Candidate | None, what: str
) -> tuple[ClusterOption | None, list[str]]:
    """A cluster of identical Macs when no single one in budget runs the target or it is big; with reasons."""
    from tools.cluster import data as cluster_data

    crules = cluster_data()["recommend"]
    if p.portable is True:
        return None, []  # a cluster of laptops cabled together is no answer for someone who needs a laptop
    if target.model_args is None or (
        pick is not None and target.params_b < float(crules["consider_above_b"])
    ):
        return None, []
    found = _clusters(pl.allowed, target.model_args, p.context_tokens, p.runtime, pl.image_gb or 0.0)
    if not found:
        return None, []
    affordable = [e for e in found if pl.in_budget_price(e.price)]
    # as for one Mac: a cluster that holds the target comfortably before a tight one
    affordable = [e for e in affordable if e.verdict == "fits"] or affordable
    # A cluster must beat every single Mac in budget that runs the target, not just the pick (which also
    # weighs memory per dollar): two $3,099 Studios at 84 tok/s are no answer when one $5,499 one does 90.
    single_tps = (
        max((pl.ev[c.id].expected_tokens_per_second or 0.0) for c in pl.pool) if pick is not None else None
    )
    best = max(affordable, key=lambda e: (e.tps or 0, -e.price)) if affordable else None
    if best is None or (
        single_tps is not None and (best.tps or 0) <= float(crules["beat_factor"]) * single_tps
    ):
        return None, _cluster_mention(found, pl, target, what)
    # llama.cpp RPC can only split by layers (tools.cluster.plan picks pipeline for it).
    split = "pipeline" if p.runtime == "llama.cpp" else "tensor"
    engine = "llama.cpp RPC, pipeline" if split == "pipeline" else "exo / MLX distributed, tensor"
    opt = ClusterOption(
        machine=best.c.label,
        count=best.count,
        link="thunderbolt5",
        split=split,
        total_price_usd=best.price,
        total_memory_gb=best.count * best.c.memory_gb,
        fit_verdict=best.verdict,
        expected_tokens_per_second=best.tps,
        why=(
            f"{best.count} x {best.c.label} over Thunderbolt 5 ({engine} parallel): holds {what} "
            + ("where no single Mac in budget does." if pick is None else "and decodes faster.")
        ),
    )
    why = (
        f"A cluster beats one machine here: {opt.why} ~{best.tps:g} tok/s for ~${best.price:,.0f} "
        "(see cluster_option)."
    )
    return opt, [why]


def _alternatives(pl: _Pool, pick: Candidate | None, ranked: bool) -> list[MachineOption]:
    """Up to max_alternatives other machines; one over budget is shown for comparison, and says so.
    ranked (a budget pick by score): the runners-up by the same score first, not the cheapest machines (at
    $10k the alternatives to a $5,499 M5 Ultra were four $1,200-2,300 minis and laptops)."""
    ev, budget = pl.ev, pl.budget
    options = pl.fitting or pl.allowed
    score: dict[str, float] = {}
    if ranked:
        within = [c for c in options if pl.in_budget(c)]
        score = _score(within, ev, pl.need_gb) if within else {}
    alts = [
        ev[c.id]
        if pl.in_budget(c) or budget is None
        else ev[c.id].model_copy(
            update={"why": f"Over the ${budget:,.0f} budget (~${c.price_usd:,.0f}). {ev[c.id].why}"}
        )
        for c in sorted(
            options, key=lambda c: (not pl.in_budget(c), -round(score.get(c.id, 0.0), 6), c.price_usd)
        )
        if pick is None or c.id != pick.id
    ]
    return alts[: int(rules()["max_alternatives"])]


def _trade_offs(pick: Candidate | None) -> list[str]:
    r = rules()
    trade: list[str] = []
    if pick is not None and pick.chip in r["chip_trade_offs"]:
        trade.append(str(r["trade_offs"][r["chip_trade_offs"][pick.chip]]))
    if pick is not None and pick.status == "discontinued":
        trade.append(
            f"The {pick.label} is discontinued: buy refurbished or used; the price shown is "
            f"{_BASIS.get(pick.price_basis, pick.price_basis)} ({pick.price_as_of})."
        )
    return trade + list(r["trade_offs"]["always"])


def _summary(
    p: RecommendMachineInput,
    rec: MachineOption | None,
    pick: Candidate | None,
    cluster_opt: ClusterOption | None,
    target: _Target,
    first_reason: str,
) -> str:
    if rec is not None and pick is not None and p.workload == "image":
        gpu = f"{pick.gpu_cores}-core GPU" + (
            " with a Neural Accelerator in every core" if image_cores(pick) > pick.gpu_cores else ""
        )
        return (
            f"{rec.machine} (~${pick.price_usd:,.0f}): a {gpu}, and image generation is "
            f"compute-bound (its speed follows GPU cores); holds {_what(p, target)} with room to spare."
            if rec.fit_verdict == "fits"
            else f"{rec.machine} (~${pick.price_usd:,.0f}): a {gpu}; the image model is "
            "tight in its GPU memory."
        )
    if rec is not None and pick is not None:
        speed = (
            f"; ~{rec.expected_tokens_per_second:g} tok/s on {target.label}"
            if rec.expected_tokens_per_second is not None and p.workload != "image"
            else ""
        )
        return f"{rec.machine} (~${pick.price_usd:,.0f}){speed}. {pick.why}"
    if cluster_opt is not None:
        what = _what(p, target)
        return (
            f"No single Mac in budget runs {what}; {cluster_opt.count} x {cluster_opt.machine} "
            f"(~${cluster_opt.total_price_usd:,.0f}) do together (see cluster_option). " + first_reason
        )
    return "No purchase recommended: " + first_reason


def _what(p: RecommendMachineInput, target: _Target) -> str:
    return {"both": "both models", "image": "the image model"}.get(p.workload, target.label)


def _prices_note() -> str:
    machines = load_yaml("machines.yaml")
    return (
        f"Prices: US prices with their source and date (line-up as of {machines['as_of']}); "
        "discontinued machines at their last list or the article's refurbished price. Not priced in any "
        "source, so not considered: " + "; ".join(machines["unpriced"]) + "."
    )


def recommend_machine(p: RecommendMachineInput) -> RecommendMachineOutput:
    assumptions: list[str] = []
    reasons: list[str] = []
    sources = list(SOURCES)
    target = _target(p, assumptions)
    if target.quant_note is not None and p.workload != "image":
        assumptions.append(target.quant_note)
    image_gb = _image_need(p, target, assumptions, sources)
    if p.workload == "image":
        assumptions.append(image_core_note())
    pl = _pool(p, target, image_gb, assumptions)
    what = _what(p, target)
    pick = _pick(p, pl, target, reasons) if pl.pool else None
    cluster_opt, cluster_reasons = _cluster_option(p, pl, target, pick, what)
    if pick is None:
        reasons += _no_pick_reasons(p, pl, what, cluster_named=bool(cluster_reasons))
    reasons += _unpriced_reasons(p, pl, target, what)
    reasons += cluster_reasons
    if cluster_reasons:
        sources.append("tools/data/clusters.yaml (public Mac-cluster measurements)")
    rec = pl.ev[pick.id] if pick is not None else None
    if rec is not None and rec.expected_tokens_per_second is not None and rec.expected_range is not None:
        k = int(rules()["speed_context_tokens"]) // 1024
        reasons.append(
            f"Expected for {target.label} on it: ~{rec.expected_tokens_per_second:g} tok/s "
            f"(range {rec.expected_range[0]:g}-{rec.expected_range[1]:g}) at up to {k}k context; "
            f"memory fit at {p.context_tokens} tokens: {rec.fit_verdict}."
        )
    assumptions.append(_prices_note())
    if not reasons:
        raise ToolError("recommend_machine: could not form a recommendation for these inputs.")
    return RecommendMachineOutput(
        recommendation=rec,
        summary=_summary(p, rec, pick, cluster_opt, target, reasons[0]),
        alternatives=_alternatives(
            pl, pick, ranked=pick is not None and pl.budget is not None and p.workload in ("llm", "both")
        ),
        cluster_option=cluster_opt,
        avoid=[str(a["text"]) for a in load_yaml("machines.yaml")["avoid"]],
        reasons=reasons,
        trade_offs=_trade_offs(pick),
        assumptions=assumptions,
        sources=sources,
    )
