"""lookup_benchmarks: the article's measured tables with forgiving matching and physics checks.

Every LLM row carries the bandwidth ceiling for its machine and model; a number above the ceiling cannot have
been measured and is flagged, as are rows naming machines or models that never existed.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from tools.chips import ChipBin, products
from tools.chips import chip_bins as _bins
from tools.data_files import GB, load_yaml
from tools.models import catalog
from tools.models import generic_architecture as _generic
from tools.quants import resolve_quant
from tools.schemas import ImageBenchmarkRow, LlmBenchmarkRow, LookupBenchmarksInput, LookupBenchmarksOutput
from tools.sizes import kv_cache_bytes

ARTICLE = (
    "the article 'Apple Silicon AI Workstation 2026: M4 Pro vs M3 Max for Local LLM & Image Gen' (2026-04-14)"
)
ARTICLE_CTX = 600  # ~500-token prompt + half of 200 generated tokens
STOP = {
    "the",
    "a",
    "an",
    "on",
    "for",
    "of",
    "in",
    "with",
    "and",
    "what",
    "did",
    "does",
    "how",
    "fast",
    "is",
    "at",
    "article",
    "measure",
    "measured",
    "benchmark",
    "benchmarks",
    "speed",
    "tok",
    "tok/s",
    "tokens",
    "per",
    "second",
    "s",
    "image",
    "images",
    "gen",
    "generation",
    "llm",
    "run",
    "runs",
    "numbers",
    "show",
    "me",
    "table",
    "results",
    "time",
    "times",
    "seconds",
    "vs",
    "versus",
    "to",
    "from",
    "by",
    # asking for everything: no filter
    "all",
    "every",
    "everything",
    "row",
    "rows",
    "list",
}


# Words that name a table: with kind "any", a query that says "image" (or "tok/s") searches only that table.
_IMAGE_WORDS = {"image", "images", "img"}
_LLM_WORDS = {"llm", "llms", "tok", "tok/s", "tokens"}

_SPECIFIC = re.compile(r"\d+(?:\.\d+)?b|m[1-9]|\d+gb|\d+core|a\d+b|\d+x\d+b")


def _norm(text: str) -> str:
    t = text.lower()
    t = (
        t.replace("macbook pro", "mbp macbook")
        .replace("mac mini", "mini mac")
        .replace("mac studio", "studio mac")
    )
    t = re.sub(r"\bm([1-9])\s*(pro|max|ultra)\b", r"m\1 \2", t)
    t = re.sub(r"\bm([1-9])(pro|max|ultra)\b", r"m\1 \2", t)
    t = re.sub(r"(\d+)\s*-?\s*core", r"\1core", t)
    t = re.sub(r"(\d+)\s*gb\b", r"\1gb", t)
    t = re.sub(r"\bsd[\s_-]*1\.?5\b", "sd15", t)
    t = re.sub(r"\bsd[\s_-]*xl\b", "sdxl", t)
    return t.replace("stable diffusion xl", "sdxl").replace("stable diffusion 1.5", "sd15")


def _tokens(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9.]+", _norm(text)) if w and w.strip(".")]


def _row_tokens(*texts: str) -> set[str]:
    out: set[str] = set()
    for t in texts:
        for w in _tokens(t):
            out.add(w.strip("."))
            out.update(p for p in w.split(".") if p)
            m = re.fullmatch(r"(\d+)gb", w)
            if m:
                out.add(m.group(1))
    return out


def _match(token: str, row: set[str]) -> bool:
    if token in row:
        return True
    return len(token) >= 3 and any(w.startswith(token) for w in row)


def _oom_check(machine: dict[str, object], tag: str | None, quant: str) -> str:
    """Cross-check a printed OOM against our own fit model at the article's settings (num_ctx 2048)."""
    from tools.fit import check_memory_fit
    from tools.schemas import CheckMemoryFitInput

    if tag is None:
        return "Printed as OOM (did not run)."
    res = check_memory_fit(
        CheckMemoryFitInput(
            chip=str(machine["chip"]),
            gpu_cores=machine.get("gpu_cores"),  # type: ignore[arg-type]
            memory_gb=float(machine["memory_gb"]),  # type: ignore[arg-type]
            model=tag,
            quant=quant,
            context_tokens=2048,
        )
    )
    agree = "agrees" if not res.fits_on_gpu else "DISAGREES"
    return (
        f"Printed as OOM (did not run); check_memory_fit {agree}: verdict {res.verdict}, needs "
        f"{res.breakdown.total_gb} GB vs a {res.breakdown.gpu_budget_gb} GB GPU budget."
    )


def _form_flag(m: dict[str, Any], prods: dict[str, dict[str, Any]]) -> list[str]:
    """A machine the article names in a product Apple never shipped with that chip."""
    form = m.get("form")
    if form in prods and m["chip"] not in prods[form]["chips"]:
        return [
            f"Machine does not exist: Apple never shipped a {form} with the {m['chip']} "
            f"({form} chips: {', '.join(prods[form]['chips'])})."
        ]
    return []


def _machine_tokens(m: dict[str, Any]) -> list[str]:
    cores = m.get("gpu_cores")
    return [
        m["label"],
        m["chip"],
        m.get("form") or "",
        f"{m['memory_gb']}gb",
        f"{cores}core" if cores else "",
    ]


def _article_bin(m: dict[str, Any], flags: list[str]) -> ChipBin:
    """The chip bin of an article machine; flags a GPU-core count read from memory and a memory never sold."""
    bins = [b for b in _bins() if b.chip == m["chip"]]
    cores = m.get("gpu_cores")
    if cores:
        bin_ = next((b for b in bins if cores in b.gpu_cores), bins[0])
    else:
        bin_ = next((b for b in bins if int(m["memory_gb"]) in b.memory_gb), bins[0])
        flags.append(
            f"GPU cores not printed; {m['memory_gb']} GB implies the {bin_.gpu_cores[0]}-core "
            f"{m['chip']} ({bin_.bandwidth_gbps:g} GB/s)."
        )
    if m.get("gpu_cores_note"):
        flags.append(m["gpu_cores_note"])
    if int(m["memory_gb"]) not in bin_.memory_gb:
        flags.append(
            f"Machine does not exist: Apple sold the {'/'.join(map(str, bin_.gpu_cores))}-core {m['chip']} "
            f"only with {' or '.join(map(str, bin_.memory_gb))} GB, not {m['memory_gb']} GB."
        )
    return bin_


def _ceiling(mod: dict[str, Any], quant: str, bandwidth_gbps: float) -> tuple[float, float]:
    """(tok/s ceiling, bytes read per token): bandwidth over weights + KV cache at the article's context."""
    qs, _ = resolve_quant(quant)
    tag = mod.get("model_tag")
    arch = catalog()[tag].architecture() if tag else _generic(float(mod["params_b"]))[0]
    w = float(mod["params_b"]) * 1e9 * qs.bpw(float(mod["params_b"])) / 8
    read = w + kv_cache_bytes(arch, ARTICLE_CTX)
    return bandwidth_gbps * GB / read, read


def _speed_flags(
    tps: float | None, ceiling: float, read: float, bw: float, frac: float
) -> tuple[bool, bool, list[str]]:
    """(impossible, suspicious, flags) for a printed tok/s against the bandwidth ceiling."""
    impossible = tps is not None and tps > ceiling
    suspicious = tps is not None and tps > frac * ceiling
    if tps is not None and impossible:
        return (
            impossible,
            suspicious,
            [
                f"Physically impossible: {tps:g} tok/s exceeds the bandwidth ceiling {ceiling:.2f} tok/s "
                f"({bw:g} GB/s / {read / GB:.1f} GB read per token)."
            ],
        )
    if tps is not None and suspicious:
        return (
            impossible,
            suspicious,
            [
                f"Suspicious: {tps:g} tok/s is {tps / ceiling:.0%} of the bandwidth ceiling "
                f"({ceiling:.2f} tok/s); measured decode on Apple Silicon reaches 55-80% of it."
            ],
        )
    return impossible, suspicious, []


def _llm_row(data: dict[str, Any], r: dict[str, Any]) -> tuple[LlmBenchmarkRow, set[str]]:
    m = data["machines"][r["machine"]]
    mod = data["llm_models"][r["model"]]
    flags: list[str] = []
    bin_ = _article_bin(m, flags)
    flags += _form_flag(m, products())
    if mod.get("does_not_exist"):
        flags.append(
            f"Model does not exist: {mod['does_not_exist']}. Ceiling assumes a {mod['params_b']}B model."
        )
    quant = r.get("quant", "Q4_K_M")
    ceiling, read = _ceiling(mod, quant, bin_.bandwidth_gbps)
    tps = float(r["tps"]) if r.get("tps") is not None else None
    frac = float(data["suspicious_above_ceiling_fraction"])
    impossible, suspicious, speed_flags = _speed_flags(tps, ceiling, read, bin_.bandwidth_gbps, frac)
    flags += speed_flags
    if r.get("hearsay"):
        flags.append("Hearsay: the article labels this row as not its own measurement.")
    if r.get("from_prose"):
        flags.append(f"From the article's prose ({r.get('engine', '')}), not its table.")
    if tps is None:
        flags.append(_oom_check(m, mod.get("model_tag"), quant))
    row = LlmBenchmarkRow(
        machine=m["label"],
        chip=m["chip"],
        gpu_cores=m.get("gpu_cores"),
        memory_gb=float(m["memory_gb"]),
        bandwidth_gbps=bin_.bandwidth_gbps,
        model=mod["label"],
        params_billion=float(mod["params_b"]),
        quant=quant,
        tokens_per_second=tps,
        result=str(r["result"]),
        ceiling_tokens_per_second=round(ceiling, 2),
        physically_impossible=impossible,
        suspicious=suspicious,
        efficiency=round(tps / ceiling, 3) if tps is not None else None,
        flags=flags,
        source=f"{ARTICLE}, section 'Measured Tokens/Sec on Real Models'"
        + (" (prose, 'MLX vs llama.cpp')" if r.get("from_prose") else ""),
    )
    # The table was run with Ollama (the prose rows name their engine); a printed OOM is findable as such.
    toks = _row_tokens(
        *_machine_tokens(m),
        mod["label"],
        mod.get("model_tag") or "",
        quant,
        r.get("engine", "ollama"),
        "mac",
        "oom" if tps is None else "",
    )
    return row, toks


@cache
def _llm_rows() -> list[tuple[LlmBenchmarkRow, set[str]]]:
    data = load_yaml("article_benchmarks.yaml")
    return [_llm_row(data, r) for r in data["llm_rows"]]


@cache
def _image_rows() -> list[tuple[ImageBenchmarkRow, set[str]]]:
    data = load_yaml("article_benchmarks.yaml")
    out = []
    for r in data["image_rows"]:
        m = data["image_machines"][r["machine"]]
        mod = data["image_models"][r["model"]]
        row = ImageBenchmarkRow(
            machine=m["label"],
            chip=m["chip"],
            gpu_cores=m.get("gpu_cores"),
            memory_gb=float(m["memory_gb"]),
            model=mod["label"],
            seconds=float(r["seconds"]),
            setting=str(data["image_setting"]),
            flags=_form_flag(m, products()),
            source=f"{ARTICLE}, section 'Image Generation: Draw Things Still Beats ComfyUI on Mac'",
        )
        toks = _row_tokens(*_machine_tokens(m), mod["label"], " ".join(mod["aliases"]), "mac draw things")
        out.append((row, toks))
    return out


def lookup_benchmarks(p: LookupBenchmarksInput) -> LookupBenchmarksOutput:
    words = [w for w in _tokens(" ".join(x for x in (p.query, p.machine, p.model) if x)) if w not in STOP]
    llm = _llm_rows()
    img = _image_rows()
    vocab_llm = set().union(*(t for _, t in llm))
    vocab_img = set().union(*(t for _, t in img))
    used = [w for w in words if any(_match(w, v) for v in (vocab_llm, vocab_img))]
    ignored = [w for w in words if w not in used]
    # A query whose words match nothing (or that names a size, chip, memory or core count no row has) matches
    # nothing: say so instead of returning every row.
    specific = [w for w in ignored if _SPECIFIC.fullmatch(w)]
    nothing = bool(words) and (not used or bool(specific))
    kind = p.kind
    if kind == "any" and used:
        img_only = [w for w in used if not any(_match(w, t) for _, t in llm)]
        llm_only = [w for w in used if not any(_match(w, t) for _, t in img)]
        if img_only and not llm_only:
            kind = "image"
        elif llm_only and not img_only:
            kind = "llm"
    said = set(_tokens(" ".join(x for x in (p.query, p.machine, p.model) if x)))
    if kind == "any" and bool(said & _IMAGE_WORDS) != bool(said & _LLM_WORDS):
        # the terms fit both tables (a machine, a memory size): a word that names one table decides
        kind = "image" if said & _IMAGE_WORDS else "llm"
    llm_hits = [r for r, t in llm if all(_match(w, t) for w in used)] if kind in ("llm", "any") else []
    img_hits = [r for r, t in img if all(_match(w, t) for w in used)] if kind in ("image", "any") else []
    if nothing:
        llm_hits, img_hits = [], []
    matched = [f"kind={kind}", f"terms: {', '.join(used) if used else '(none: all rows)'}"]
    if nothing:
        matched[1] = f"terms: {', '.join(used) or '(none)'}"
        matched.append(
            f"nothing in the article's tables matches {', '.join(specific or ignored)!s}: no rows returned "
            "(the article measured only the machines and models listed below; for others, estimate_speed "
            "gives a modelled figure)."
        )
    elif ignored:
        matched.append(f"ignored (match no row): {', '.join(ignored)}")
    if not llm_hits and not img_hits:
        machines = sorted({r.machine for r, _ in llm} | {r.machine for r, _ in img})
        models = sorted({r.model for r, _ in llm} | {r.model for r, _ in img})
        matched.append(
            f"no row matches all terms. Machines: {'; '.join(machines)}. Models: {', '.join(models)}"
        )
    return LookupBenchmarksOutput(
        llm_rows=llm_hits[: p.limit],
        image_rows=img_hits[: p.limit],
        matched_on=matched,
        assumptions=[
            "LLM rows: Ollama 0.4.x defaults (num_ctx 2048), Q4_K_M unless stated, ~500-token prompt, 200 "
            f"tokens generated; ceiling computed at ~{ARTICLE_CTX} tokens of context with measured "
            f"Q4_K_M bpw.",
            "Image rows: Draw Things, 1024x1024, steps not stated by the article.",
        ],
        sources=[ARTICLE, "tools/data/article_benchmarks.yaml", "tools/data/chips.yaml"],
    )
