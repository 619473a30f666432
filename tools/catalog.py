"""Data loading and forgiving name resolution (chips, models, quantisations).

Resolution is forgiving about spelling ("m4 pro", "Apple M3 Max 40-core", "qwen2.5:14b-instruct-q4_K_M") but
never guesses silently: anything it had to assume is returned as a note for the tool's ``assumptions``, and
anything it cannot resolve raises ToolError naming the field and the closest accepted values.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tools.registry import ToolError
from tools.schemas import ModelArchitecture

DATA_DIR = Path(__file__).resolve().parent / "data"
GIB = 2**30
GB = 1e9


@cache
def load_yaml(name: str) -> dict[str, Any]:
    with (DATA_DIR / name).open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), name
    return data


def load_csv(name: str) -> list[dict[str, str]]:
    """CSV with leading ``#`` comment lines (they name the sources)."""
    text = (DATA_DIR / name).read_text(encoding="utf-8")
    body = "".join(line for line in io.StringIO(text) if not line.startswith("#"))
    return list(csv.DictReader(io.StringIO(body)))


def _closest(word: str, options: list[str], n: int = 3) -> list[str]:
    lowered = {o.lower(): o for o in options}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.4)
    return [lowered[h] for h in hits]


# ---------------------------------------------------------------------------------------------------------
# Chips
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChipBin:
    chip: str
    tier: str
    generation: int
    gpu_cores: tuple[int, ...]
    bandwidth_gbps: float
    memory_gb: tuple[int, ...]
    verified: str
    source: str
    cpu_cores: tuple[tuple[int, tuple[int, ...]], ...] = ()
    note: str | None = None

    @property
    def label(self) -> str:
        cores = "/".join(str(c) for c in self.gpu_cores)
        return f"{self.chip} ({cores}-core GPU, {self.bandwidth_gbps:g} GB/s)"


@cache
def chip_bins() -> tuple[ChipBin, ...]:
    out = []
    for row in load_yaml("chips.yaml")["chips"]:
        out.append(
            ChipBin(
                chip=row["chip"],
                tier=row["tier"],
                generation=int(row["generation"]),
                gpu_cores=tuple(int(c) for c in row["gpu_cores"]),
                bandwidth_gbps=float(row["bandwidth_gbps"]),
                memory_gb=tuple(int(m) for m in row["memory_gb"]),
                verified=str(row["verified"]),
                source=str(row["source"]),
                cpu_cores=tuple(
                    (int(k), tuple(int(g) for g in v)) for k, v in (row.get("cpu_cores") or {}).items()
                ),
                note=row.get("note"),
            )
        )
    return tuple(out)


def chip_names() -> list[str]:
    seen: list[str] = []
    for b in chip_bins():
        if b.chip not in seen:
            seen.append(b.chip)
    return seen


_CHIP_RE = re.compile(r"(?<![a-z0-9])m\s*([1-9])(?:[\s_\-]*(pro|max|ultra))?(?![a-z0-9])")
_CORES_RE = re.compile(
    r"(\d{1,3})\s*-?\s*(?:core|cores|c)\b(?:\s*(cpu|gpu))?|\b(cpu|gpu)\s*:?\s*(\d{1,3})(?:\s*-?\s*(?:core|cores|c)\b)?"
)
_PRODUCT_RE = re.compile(
    r"mac\s*book\s*pro|mac\s*book\s*air|mac\s*book\s*neo|mac\s*studio|mac\s*mini|mac\s*pro|\bimac\b"
)
_PRODUCT_NAMES = {
    "macbookpro": "MacBook Pro",
    "macbookair": "MacBook Air",
    "macbookneo": "MacBook Neo",
    "macstudio": "Mac Studio",
    "macmini": "Mac mini",
    "macpro": "Mac Pro",
    "imac": "iMac",
}


@dataclass
class ParsedChip:
    """What a free-text machine name says: chip, core counts, product, and what had to be read into it."""

    chip: str
    gpu_cores: int | None
    cpu_cores: int | None = None
    product: str | None = None
    notes: list[str] = field(default_factory=list)
    memory_gb: int | None = None


def _clean(text: str) -> str:
    # Control and invisible characters (NUL, escapes, BOM, bidi marks) count as spaces: "M4\x00 Pro" must read
    # as M4 Pro, not silently as M4 with the rest ignored.
    # Apple's pages use non-breaking hyphens ("14\u2011core"): read every dash as "-".
    text = re.sub("[\u2010-\u2015\u2212]", "-", text)
    return "".join(ch if ch.isprintable() else " " for ch in text).strip()


def parse_machine_text(text: str, *, field_name: str = "chip") -> ParsedChip:
    """'MacBook Pro 16 M4 Max', 'M4 Pro 14-core CPU 20-core GPU', 'M3-Max' -> chip, cores and product.

    Never guesses silently: two different chips in one name, or a product name without a chip, are errors that
    list what the product shipped with; a chip the product never had is kept but stated as a note.
    """
    raw = _clean(text)
    low = raw.lower().replace("apple", " ").replace("_", " ")
    low = re.sub(r"\b(m[1-9])(pro|max|ultra)\b", r"\1 \2", low)
    names = chip_names()
    prods = [_PRODUCT_NAMES[re.sub(r"\s", "", m.group(0))] for m in _PRODUCT_RE.finditer(low)]
    # "MacBook Pro" contains the word "pro": blank product names out before looking for the chip's tier.
    chip_text = _PRODUCT_RE.sub(" ", low)
    found = list(_CHIP_RE.finditer(chip_text))
    chips = list(
        dict.fromkeys(f"M{m.group(1)}" + (f" {m.group(2).capitalize()}" if m.group(2) else "") for m in found)
    )
    product = prods[0] if prods else None
    if not chips:
        if product is not None:
            shipped = [c for c in products().get(product, {}).get("chips", []) if c in names]
            raise ToolError(
                f"{field_name}: {raw!r} names a {product} but not its chip; the {product} came with "
                f'{", ".join(shipped) or "no Apple M-series chip"}. Say which (e.g. "{product} '
                f'{shipped[-1] if shipped else "M4"}").',
                fields=[field_name],
            )
        close = _closest(raw, names)
        hint = f" Closest: {', '.join(close)}." if close else ""
        raise ToolError(
            f"{field_name}: unknown chip {raw!r}.{hint} Accepted: {', '.join(names)}.", fields=[field_name]
        )
    if len(chips) > 1:
        raise ToolError(
            f"{field_name}: {raw!r} names more than one chip ({' and '.join(chips)}); pass one.",
            fields=[field_name],
        )
    name = chips[0]
    if name not in names:
        close = _closest(name, names)
        raise ToolError(
            f"{field_name}: {name!r} is not an Apple Silicon chip we know (from {raw!r}). "
            f"Closest: {', '.join(close) or 'none'}. Accepted: {', '.join(names)}.",
            fields=[field_name],
        )
    notes: list[str] = []
    if product is not None:
        shipped = products().get(product, {}).get("chips", [])
        if name not in shipped:
            notes.append(
                f"Apple never sold a {product} with the {name} (it came with "
                f"{', '.join(shipped) or 'none'}); the {name}'s own specs are used."
            )
    rest = chip_text
    for m in reversed(found):
        rest = rest[: m.start()] + " " + rest[m.end() :]
    mem_m = re.search(r"\b(\d{1,3})\s*gb\b", rest)
    mem = int(mem_m.group(1)) if mem_m else None
    if mem_m:
        rest = rest[: mem_m.start()] + " " + rest[mem_m.end() :]
    gpu: int | None = None
    cpu: int | None = None
    unlabelled: list[int] = []
    for m in _CORES_RE.finditer(rest):
        n = int(m.group(1) or m.group(4))
        kind = m.group(2) or m.group(3)
        if kind == "cpu":
            cpu = n
        elif kind == "gpu":
            gpu = n
        else:
            unlabelled.append(n)
    if gpu is None and unlabelled:
        bins = [b for b in chip_bins() if b.chip == name]
        gpu_ok = {c for b in bins for c in b.gpu_cores}
        cpu_ok = {c for b in bins for c, _ in b.cpu_cores}
        n = unlabelled[-1]
        if n not in gpu_ok and n in cpu_ok and cpu is None:
            cpu = n
            notes.append(
                f"Read '{n}-core' in {raw!r} as the CPU core count (the {name} has no {n}-core GPU)."
            )
        else:
            gpu = n
    return ParsedChip(name, gpu, cpu, product, notes, mem)


def parse_chip(text: str) -> tuple[str, int | None]:
    """'Apple M3 Max 40-core GPU' -> ('M3 Max', 40). Raises ToolError for anything not an M-series chip."""
    parsed = parse_machine_text(text)
    return parsed.chip, parsed.gpu_cores


@dataclass
class MachineSpec:
    chip: str | None
    bin: ChipBin | None
    gpu_cores: int | None
    memory_gb: float | None
    bandwidth_gbps: float
    assumptions: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @property
    def label(self) -> str | None:
        if self.bin is None:
            return None
        cores = self.gpu_cores if self.gpu_cores else "/".join(str(c) for c in self.bin.gpu_cores)
        return f"{self.bin.chip} {cores}-core GPU"

    @property
    def tier(self) -> str | None:
        return self.bin.tier if self.bin else None


def resolve_machine(
    chip: str | None,
    gpu_cores: int | None,
    memory_gb: float | None,
    bandwidth_gbps: float | None = None,
    *,
    need_memory: bool = False,
    field_prefix: str = "",
) -> MachineSpec:
    """Pick the chip bin. gpu_cores beats memory_gb beats "the top bin, stated in assumptions"."""
    f_chip, f_cores, f_mem = (field_prefix + x for x in ("chip", "gpu_cores", "memory_gb"))
    if chip is None:
        if bandwidth_gbps is not None and not need_memory:
            return MachineSpec(
                chip=None,
                bin=None,
                gpu_cores=gpu_cores,
                memory_gb=memory_gb,
                bandwidth_gbps=float(bandwidth_gbps),
                assumptions=[
                    f"Raw bandwidth {bandwidth_gbps:g} GB/s given; no chip tier, so tier effects use "
                    "the average of the calibration data."
                ],
            )
        from tools.this_mac import detect

        mac = detect()
        if mac is None or mac.chip is None:
            raise ToolError(
                f"{f_chip}: not given and this is not a Mac (or the chip could not be read), so there is no "
                f'default machine. Pass {f_chip} (e.g. "M3 Max", "M4 Pro")'
                + (" or bandwidth_gbps." if not need_memory else f" and {f_mem}."),
                fields=[f_chip],
            )
        spec = resolve_machine(
            mac.chip,
            gpu_cores if gpu_cores is not None else mac.gpu_cores,
            memory_gb if memory_gb is not None else mac.memory_gb,
            bandwidth_gbps,
            need_memory=need_memory,
            field_prefix=field_prefix,
        )
        spec.assumptions.insert(0, f"Machine defaults read from this Mac: {mac.describe()}.")
        spec.sources.append("this Mac: sysctl hw.memsize / machdep.cpu.brand_string, system_profiler")
        return spec

    parsed = parse_machine_text(chip, field_name=f_chip)
    name, cores_in_text = parsed.chip, parsed.gpu_cores
    if cores_in_text is not None and gpu_cores is not None and cores_in_text != gpu_cores:
        raise ToolError(
            f"{f_cores}: {gpu_cores} contradicts the {cores_in_text}-core count in {f_chip}={chip!r}.",
            fields=[f_cores, f_chip],
        )
    cores = gpu_cores if gpu_cores is not None else cores_in_text
    bins = [b for b in chip_bins() if b.chip == name]
    notes: list[str] = list(parsed.notes)
    if parsed.memory_gb is not None:
        if memory_gb is not None and abs(memory_gb - parsed.memory_gb) > 0.51:
            raise ToolError(
                f"{f_mem}: {memory_gb:g} contradicts the {parsed.memory_gb} GB in {f_chip}={chip!r}.",
                fields=[f_mem, f_chip],
            )
        if memory_gb is None:
            memory_gb = float(parsed.memory_gb)
            notes.append(f"Memory read from {f_chip}: {parsed.memory_gb} GB.")
    if parsed.cpu_cores is not None:
        cpu_map: dict[int, set[int]] = {}
        for b in bins:
            for c, gpus in b.cpu_cores:
                cpu_map.setdefault(c, set()).update(gpus)
        if cpu_map and parsed.cpu_cores not in cpu_map:
            raise ToolError(
                f"{f_chip}: the {name} never had a {parsed.cpu_cores}-core CPU; it came with "
                f"{_fmt_list(sorted(cpu_map))} CPU cores.",
                fields=[f_chip],
            )
        gpus_for_cpu = sorted(cpu_map.get(parsed.cpu_cores, set()))
        if cores is not None and gpus_for_cpu and cores not in gpus_for_cpu:
            raise ToolError(
                f"{f_cores}: the {parsed.cpu_cores}-core-CPU {name} came with {_fmt_list(gpus_for_cpu)} GPU "
                f"cores, not {cores}.",
                fields=[f_cores, f_chip],
            )
        if cores is None and len(gpus_for_cpu) == 1:
            cores = gpus_for_cpu[0]
            notes.append(f"The {parsed.cpu_cores}-core-CPU {name} has a {cores}-core GPU.")
    all_cores = sorted({c for b in bins for c in b.gpu_cores})
    all_mem = sorted({m for b in bins for m in b.memory_gb})
    if cores is not None:
        cand = [b for b in bins if cores in b.gpu_cores]
        if not cand:
            raise ToolError(
                f"{f_cores}: the {name} never had a {cores}-core GPU; it came with "
                f"{' or '.join(str(c) for c in all_cores)} GPU cores.",
                fields=[f_cores],
            )
        chosen = cand[0]
        if memory_gb is not None and not _memory_ok(chosen, memory_gb):
            raise ToolError(
                f"{f_mem}: the {cores}-core {name} was sold with "
                f"{_fmt_list(chosen.memory_gb)} GB, not {memory_gb:g} GB.",
                fields=[f_mem, f_cores],
            )
    elif memory_gb is not None:
        cand = [b for b in bins if _memory_ok(b, memory_gb)]
        if not cand:
            raise ToolError(
                f"{f_mem}: the {name} was sold with {_fmt_list(all_mem)} GB, not {memory_gb:g} GB.",
                fields=[f_mem],
            )
        chosen = max(cand, key=lambda b: (b.bandwidth_gbps, max(b.gpu_cores)))
        if len(bins) > 1 and len(cand) == 1:
            notes.append(
                f"{memory_gb:g} GB identifies the {_fmt_list(chosen.gpu_cores)}-core {name} bin "
                f"({chosen.bandwidth_gbps:g} GB/s)."
            )
        elif len(cand) > 1 and len({b.bandwidth_gbps for b in cand}) > 1:
            notes.append(
                f"Assumed the faster {name} bin ({chosen.bandwidth_gbps:g} GB/s); pass gpu_cores to pick."
            )
        elif len(cand) > 1:
            notes.append(
                f"Assumed the {_fmt_list(chosen.gpu_cores)}-core {name} (every {memory_gb:g} GB {name} bin "
                f"has {chosen.bandwidth_gbps:g} GB/s; GPU cores matter only for prefill); pass gpu_cores to "
                "pick."
            )
    else:
        chosen = max(bins, key=lambda b: (b.bandwidth_gbps, max(b.gpu_cores)))
        if len(bins) > 1:
            others = ", ".join(
                f"{_fmt_list(b.gpu_cores)}-core = {b.bandwidth_gbps:g} GB/s" for b in bins if b is not chosen
            )
            notes.append(
                f"Assumed the {_fmt_list(chosen.gpu_cores)}-core {name} ({chosen.bandwidth_gbps:g} GB/s); "
                f"other bin: {others}. Pass gpu_cores or memory_gb to pick."
            )
    if need_memory and memory_gb is None:
        raise ToolError(
            f"{f_mem}: needed for a fit check; the {name} was sold with {_fmt_list(all_mem)} GB.",
            fields=[f_mem],
        )
    if cores is None and len(chosen.gpu_cores) > 1:
        notes.append(
            f"GPU cores not given: this {name} bin came with {_fmt_list(chosen.gpu_cores)} GPU cores (same "
            f"{chosen.bandwidth_gbps:g} GB/s, so decode is unaffected); core-dependent figures (prefill) "
            f"assume {max(chosen.gpu_cores)}."
        )
    if chosen.note:
        notes.append(f"Secondary or conflicting figure: {chosen.note}.")
    elif chosen.verified == "K":
        notes.append(
            f"{name} specs are from secondary sources, not verified against Apple ({chosen.source})."
        )
    bw = chosen.bandwidth_gbps
    if bandwidth_gbps is not None and abs(bandwidth_gbps - bw) > 0.5:
        notes.append(
            f"Using the given bandwidth {bandwidth_gbps:g} GB/s instead of the {name}'s {bw:g} GB/s."
        )
        bw = float(bandwidth_gbps)
    return MachineSpec(
        chip=name,
        bin=chosen,
        gpu_cores=cores,
        memory_gb=memory_gb,
        bandwidth_gbps=bw,
        assumptions=notes,
        sources=[f"chip {name}: {chosen.source}"],
    )


def _memory_ok(b: ChipBin, memory_gb: float) -> bool:
    return any(abs(memory_gb - m) < 0.51 for m in b.memory_gb)


def _fmt_list(values: tuple[int, ...] | list[int]) -> str:
    v = [str(x) for x in values]
    return v[0] if len(v) == 1 else ", ".join(v[:-1]) + " or " + v[-1]


def products() -> dict[str, dict[str, Any]]:
    return dict(load_yaml("chips.yaml")["products"])


# ---------------------------------------------------------------------------------------------------------
# Quantisations
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuantSpec:
    quant: str
    engine: str
    family: str
    nominal_bpw: float
    bpw_8b: float
    bpw_70b: float
    source: str

    def bpw(self, params_b: float) -> float:
        """Whole-model bpw, log-interpolated between the measured 8B and 70B values (clamped outside)."""
        lo, hi = math.log(8.03), math.log(70.55)
        x = min(max(math.log(max(params_b, 1e-3)), lo), hi)
        return self.bpw_8b + (self.bpw_70b - self.bpw_8b) * (x - lo) / (hi - lo)


@cache
def quants() -> dict[str, QuantSpec]:
    out: dict[str, QuantSpec] = {}
    for row in load_yaml("quants.yaml")["quants"]:
        q = QuantSpec(
            quant=str(row["quant"]),
            engine=str(row["engine"]),
            family=str(row["family"]),
            nominal_bpw=float(row["nominal_bpw"]),
            bpw_8b=float(row["bpw_8b"]),
            bpw_70b=float(row["bpw_70b"]),
            source=str(row["source"]),
        )
        out[q.quant] = q
    return out


_QUANT_SYNONYMS = {
    "FP16": "F16",
    "FLOAT16": "F16",
    "HALF": "F16",
    "16BIT": "F16",
    "16-BIT": "F16",
    "Q4": "Q4_K_M",
    "Q4_K": "Q4_K_M",
    "Q5": "Q5_K_M",
    "Q5_K": "Q5_K_M",
    "Q3": "Q3_K_M",
    "Q3_K": "Q3_K_M",
    "Q6": "Q6_K",
    "Q8": "Q8_0",
    "Q2": "Q2_K",
    "INT8": "Q8_0",
    "8BIT": "Q8_0",
    "8-BIT": "Q8_0",
    "INT4": "Q4_K_M",
    "4BIT": "Q4_K_M",
    "4-BIT": "Q4_K_M",
}


def resolve_quant(text: str | None, *, field_name: str = "quant") -> tuple[QuantSpec, list[str]]:
    table = quants()
    if text is None:
        return table["Q4_K_M"], [
            "Quantisation not given: assumed Q4_K_M (Ollama's default for library tags)."
        ]
    raw = text.strip()
    key = raw.upper().replace(" ", "-")
    notes: list[str] = []
    mlx = "MLX" in key
    if mlx:
        core = key.replace("MLX", "").strip("-_ ")
        m = re.search(r"(\d+)", core)
        if "BF16" in core or "F16" in core or (m and m.group(1) == "16"):
            name = "MLX-BF16"
        elif m:
            name = f"MLX-{m.group(1)}bit"
        else:
            name = "MLX-4bit"
            notes.append("MLX quant without bit count: assumed MLX-4bit.")
        if name in table:
            return table[name], notes
    by_upper = {k.upper(): k for k in table}
    if key in by_upper:
        return table[by_upper[key]], notes
    if key in _QUANT_SYNONYMS:
        name = _QUANT_SYNONYMS[key]
        if name != key:
            notes.append(f"{field_name} {raw!r} read as {name}.")
        return table[name], notes
    close = _closest(raw, list(table))
    raise ToolError(
        f"{field_name}: unknown quantisation {raw!r}. Closest: {', '.join(close) or 'none'}. "
        f"Accepted: {', '.join(table)}.",
        fields=[field_name],
    )


# ---------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MoeLayout:
    """Where a mixture-of-experts model's parameters live, so bytes read per token follow the real layout.

    Why: "file size x active/total params" is wrong when experts and the rest are stored at different
    precision
    (gpt-oss: MXFP4 experts, BF16 attention/embeddings/head) and when the input embedding (never read whole)
    is a sizeable share of the active count.
    """

    experts: int
    active_experts: int
    expert_params_b: float | None  # routed experts only (shared experts count as "other": always read)
    embed_params_b: float  # input embedding table: one row per token, not read per token
    layout: dict[str, str]  # native tensor types: {"expert": "MXFP4", "other": "BF16"}
    src: str


@dataclass(frozen=True)
class CatalogModel:
    tag: str
    name: str
    hf: str
    params_b: float
    active_params_b: float | None
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    native_ctx: int
    sliding_window: int | None
    global_layer_every: int | None
    family: str
    latest: bool
    default_quant: str | None
    file_gb: dict[str, float]
    src: str
    moe: MoeLayout | None = None
    allowed_quants: tuple[str, ...] | None = None
    size_src: str | None = None
    as_of: str | None = None

    def architecture(self) -> ModelArchitecture:
        return ModelArchitecture(
            params_billion=self.params_b,
            n_layers=self.n_layers,
            n_kv_heads=self.n_kv_heads,
            head_dim=self.head_dim,
            native_context=self.native_ctx,
            active_params_billion=self.active_params_b,
            sliding_window=self.sliding_window,
            global_layer_every=self.global_layer_every,
            family=self.family,
            n_heads=self.n_heads,
        )

    @property
    def source(self) -> str:
        return f"{self.tag}: HF config https://huggingface.co/{self.hf} ({self.src})"


@cache
def catalog() -> dict[str, CatalogModel]:
    out: dict[str, CatalogModel] = {}
    for r in load_yaml("models.yaml")["models"]:
        m = CatalogModel(
            tag=r["tag"],
            name=r["name"],
            hf=r["hf"],
            params_b=float(r["params_b"]),
            active_params_b=float(r["active_params_b"]) if r.get("active_params_b") else None,
            n_layers=int(r["n_layers"]),
            n_heads=int(r["n_heads"]),
            n_kv_heads=int(r["n_kv_heads"]),
            head_dim=int(r["head_dim"]),
            native_ctx=int(r["native_ctx"]),
            sliding_window=r.get("sliding_window"),
            global_layer_every=r.get("global_layer_every"),
            family=str(r["family"]),
            latest=bool(r.get("latest", False)),
            default_quant=r.get("default_quant"),
            file_gb={str(k): float(v) for k, v in (r.get("file_gb") or {}).items()},
            src=str(r["src"]),
            moe=_moe_layout(r.get("moe")),
            allowed_quants=tuple(str(q) for q in r["quants"]) if r.get("quants") else None,
            size_src=r.get("size_src"),
            as_of=str(r["as_of"]) if r.get("as_of") else None,
        )
        out[m.tag] = m
    return out


def _moe_layout(raw: dict[str, Any] | None) -> MoeLayout | None:
    if not raw:
        return None
    return MoeLayout(
        experts=int(raw["experts"]),
        active_experts=int(raw["active_experts"]),
        expert_params_b=float(raw["expert_params_b"]) if raw.get("expert_params_b") else None,
        embed_params_b=float(raw.get("embed_params_b") or 0.0),
        layout={str(k): str(v) for k, v in (raw.get("layout") or {}).items()},
        src=str(raw["src"]),
    )


@cache
def _aliases() -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in load_yaml("models.yaml")["aliases"].items()}


def _norm_key(text: str) -> str:
    t = text.lower()
    for word in ("instruct", "chat", "-it", "latest", "text", "hf"):
        t = t.replace(word, "")
    return re.sub(r"[^a-z0-9]", "", t)


@cache
def _keyed() -> dict[str, str]:
    keyed: dict[str, str] = {}
    for m in catalog().values():
        for label in (m.tag, m.name, m.hf.split("/")[-1], m.hf):
            keyed.setdefault(_norm_key(label), m.tag)
    for a, tag in _aliases().items():
        keyed.setdefault(_norm_key(a), tag)
    return keyed


_TAG_QUANT_RE = re.compile(
    r"[-_](?P<q>(?:i?q\d[a-z0-9_]*)|fp16|f16|bf16|mxfp4|(?:mlx[-_]?)?\d+bit)$", re.IGNORECASE
)


@dataclass
class ResolvedModel:
    tag: str | None
    label: str
    arch: ModelArchitecture
    quant_from_tag: str | None
    assumptions: list[str]
    sources: list[str]
    catalog_entry: CatalogModel | None = None


def resolve_model_tag(text: str, *, field_name: str = "model") -> tuple[CatalogModel, str | None, list[str]]:
    """Ollama tag (or a human name) -> catalog entry, plus a quant embedded in the tag."""
    raw = text.strip()
    t = raw.lower()
    t = re.sub(r"^(ollama\s+(run|pull)\s+|hf\.co/|registry\.ollama\.ai/library/|library/)", "", t)
    notes: list[str] = []
    quant: str | None = None
    qm = _TAG_QUANT_RE.search(t)
    if qm and (":" in t or "-" in t):
        quant = qm.group("q")
        t = t[: qm.start()]
    t = t.removesuffix(":latest")
    cat = catalog()
    aliases = _aliases()
    name, _, variant = t.partition(":")
    variant = re.sub(r"-(instruct|chat|it|text)(-.*)?$", "", variant)
    candidates = [f"{name}:{variant}" if variant else name]
    parts = variant.split("-")
    # "14b-qwen-distill", "70b-instruct-fp16": try shorter variants, longest first.
    candidates += [f"{name}:{'-'.join(parts[:i])}" for i in range(len(parts) - 1, 0, -1)]
    for c in candidates:
        if c in cat:
            return cat[c], quant, notes
        if c in aliases:
            return cat[aliases[c]], quant, notes
    if not variant:
        family = [m for m in cat.values() if m.tag.split(":")[0] == name]
        latest = [m for m in family if m.latest]
        if latest:
            notes.append(f"{field_name} {raw!r} has no size: Ollama's default tag is {latest[0].tag}.")
            return latest[0], quant, notes
        if family:
            sizes = ", ".join(m.tag for m in family)
            raise ToolError(f"{field_name}: {raw!r} needs a size; one of {sizes}.", fields=[field_name])
    key = _norm_key(t)
    keyed = _keyed()
    if key in keyed:
        return cat[keyed[key]], quant, notes
    options = sorted(set(cat) | set(aliases))
    close = difflib.get_close_matches(t, options, n=4, cutoff=0.5)
    if not close:
        close = [keyed[k] for k in difflib.get_close_matches(key, list(keyed), n=4, cutoff=0.5)]
    hint = f" Closest: {', '.join(dict.fromkeys(close))}." if close else ""
    raise ToolError(
        f"{field_name}: unknown model {raw!r}.{hint} For a model not in our catalog pass params_billion "
        f"(and architecture for KV-cache maths). Known tags: {', '.join(cat)}.",
        fields=[field_name],
    )


_MOE_TAG_RE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)b-a(\d+(?:\.\d+)?)b\b")
_EXPERTS_TAG_RE = re.compile(r"(?<![a-z0-9.])(\d{1,3})x(\d+(?:\.\d+)?)b\b")
_SIZE_TAG_RE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)([bm])\b")


def size_from_tag(text: str) -> tuple[float, float | None, str] | None:
    """Parameters from a tag people type for a model we do not know: '27b', '30b-a3b', '8x7b', '270m'.

    Returns (total B, active B or None, how it was read) or None when the tag carries no size.
    """
    t = text.strip().lower()
    m = _MOE_TAG_RE.search(t)
    if m:
        total, active = float(m.group(1)), float(m.group(2))
        if 0 < active <= total:
            return total, active, f"'{m.group(0)}' = {total:g}B total, {active:g}B active per token (MoE)"
    m = _EXPERTS_TAG_RE.search(t)
    if m:
        n, each = int(m.group(1)), float(m.group(2))
        if n >= 2 and each > 0:
            # Mixtral convention: experts share attention and embeddings, so total < n x size (8x7b = 46.7B),
            # and 2 experts are routed per token (12.9B active).
            total = round(n * each * 0.834, 1)
            active = round(min(total, 2 * each * 0.92), 1)
            return (
                total,
                active,
                f"'{m.group(0)}' read as a Mixtral-style MoE: ~{total:g}B total (attention shared across "
                f"experts), 2 experts routed = ~{active:g}B active",
            )
    m = _SIZE_TAG_RE.search(t.partition(":")[2] or t)
    if m:
        size = float(m.group(1)) / (1000.0 if m.group(2) == "m" else 1.0)
        if 0 < size <= 3000:
            return size, None, f"'{m.group(0)}' = {size:g}B parameters, assumed dense"
    return None


def quant_allowed(entry: CatalogModel | None, quant: str) -> bool:
    """Whether a model exists in this quantisation (gpt-oss: MXFP4 experts only, so no IQ3_XXS/Q4_K_M).

    For memory-fit suggestions: offer a smaller quant only when this returns True.
    """
    return entry is None or entry.allowed_quants is None or quant in entry.allowed_quants


def is_catalog_model(text: str) -> bool:
    """True when ``text`` names a catalog model (no /api/show round trip needed for it)."""
    try:
        resolve_model_tag(text)
    except ToolError:
        return False
    return True


def generic_architecture(params_b: float, active_b: float | None = None) -> tuple[ModelArchitecture, str]:
    """Architecture for a params-only model: borrow the shape of the nearest dense catalog model by size.

    Why: KV cache and attention cost need layers/heads. Modern dense models of similar size share similar
    shapes (GQA with 8 KV heads, head_dim 128), so the nearest neighbour is a better guess than a formula.
    """
    dense = [m for m in catalog().values() if m.active_params_b is None and m.sliding_window is None]
    dense = [m for m in dense if m.n_kv_heads < m.n_heads] or dense
    best = min(dense, key=lambda m: abs(math.log(m.params_b) - math.log(params_b)))
    arch = ModelArchitecture(
        params_billion=params_b,
        n_layers=best.n_layers,
        n_kv_heads=best.n_kv_heads,
        head_dim=best.head_dim,
        native_context=best.native_ctx,
        active_params_billion=active_b,
        family=None,
        n_heads=best.n_heads,
    )
    return arch, best.tag


def resolve_model(
    model: str | None,
    params_billion: float | None,
    architecture: ModelArchitecture | None,
) -> ResolvedModel:
    notes: list[str] = []
    if architecture is not None:
        arch = architecture
        if (
            params_billion is not None
            and abs(params_billion - arch.params_billion) > 0.05 * arch.params_billion
        ):
            raise ToolError(
                f"params_billion: {params_billion:g} contradicts architecture.params_billion "
                f"{arch.params_billion:g}.",
                fields=["params_billion", "architecture.params_billion"],
            )
        quant_from_tag = None
        label = model or f"{arch.params_billion:g}B model"
        if model is not None:
            try:
                entry, quant_from_tag, _ = resolve_model_tag(model)
                label = entry.tag
            except ToolError:
                pass
        notes.append("Architecture given explicitly; catalog not consulted for its shape.")
        return ResolvedModel(None if model is None else label, label, arch, quant_from_tag, notes, [])
    if model is not None:
        try:
            entry, quant_from_tag, n2 = resolve_model_tag(model)
        except ToolError:
            sized = size_from_tag(model)
            if sized is None:
                raise
            total_b, active_b, how = sized
            if params_billion is not None and abs(params_billion - total_b) > 0.1 * total_b:
                total_b, active_b, how = params_billion, None, f"params_billion={params_billion:g} given"
            arch, like = generic_architecture(total_b, active_b)
            # Trained context unknown: do not refuse long contexts on a borrowed model's limit.
            arch = arch.model_copy(update={"native_context": max(arch.native_context, 1_048_576)})
            qm = _TAG_QUANT_RE.search(model.strip().lower())
            label = model.strip()
            close = difflib.get_close_matches(label.lower(), sorted(catalog()), n=3, cutoff=0.6)
            hint = f" Closest catalog tags: {', '.join(close)} (if that is what you meant)." if close else ""
            notes.append(
                f"{label} is not in our catalog: size read from the tag ({how}); layers/heads borrowed from "
                f"{like} for KV-cache maths. Pass architecture (or install it in Ollama) for exact numbers."
                + hint
            )
            return ResolvedModel(label, label, arch, qm.group("q") if qm else None, notes, [])
        notes += n2
        if params_billion is not None and abs(params_billion - entry.params_b) > 0.1 * entry.params_b:
            raise ToolError(
                f"params_billion: {params_billion:g} contradicts model {entry.tag} ({entry.params_b:g}B). "
                "Pass one of them.",
                fields=["params_billion", "model"],
            )
        return ResolvedModel(
            entry.tag, entry.tag, entry.architecture(), quant_from_tag, notes, [entry.source], entry
        )
    if params_billion is not None:
        arch, like = generic_architecture(params_billion)
        notes.append(
            f"Only params_billion given: layers/heads borrowed from the nearest catalog model ({like}) for "
            "KV-cache maths; pass architecture for exact numbers."
        )
        return ResolvedModel(None, f"{params_billion:g}B dense model", arch, None, notes, [])
    raise ToolError(
        'model: give a model as an Ollama tag (model="llama3.3:70b") or its size (params_billion=70).',
        fields=["model", "params_billion"],
    )


def resolve_model_and_quant(
    model: str | None,
    params_billion: float | None,
    architecture: ModelArchitecture | None,
    quant: str | None,
    context_tokens: int,
) -> tuple[ResolvedModel, QuantSpec, list[str], list[str]]:
    """The model, its quantisation and the context, resolved the same way for the speed and fit tools.

    Quant precedence: what the caller passed, then the tag's own suffix, then the catalog default. A context
    beyond the trained one is refused rather than silently capped, since Ollama caps num_ctx there.
    Returns (model, quant, assumptions, sources).
    """
    resolved = resolve_model(model, params_billion, architecture)
    assumptions = list(resolved.assumptions)
    sources = list(resolved.sources)
    entry = resolved.catalog_entry
    q, qnotes = resolve_quant(quant or resolved.quant_from_tag or (entry.default_quant if entry else None))
    assumptions += qnotes
    if entry is not None and not quant_allowed(entry, q.quant):
        raise ToolError(
            f"quant: {entry.tag} is not available as {q.quant}: its published weights keep the experts in "
            f"{entry.moe.layout.get('expert') if entry.moe else entry.default_quant}, which do not "
            "requantise. "
            f"Available: {', '.join(entry.allowed_quants or ())}.",
            fields=["quant"],
        )
    sources.append(f"quant {q.quant}: {q.source}")
    if context_tokens > resolved.arch.native_context:
        raise ToolError(
            f"context_tokens: {context_tokens} exceeds the model's trained context of "
            f"{resolved.arch.native_context} tokens; Ollama caps num_ctx there.",
            fields=["context_tokens"],
        )
    return resolved, q, assumptions, sources


# ---------------------------------------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------------------------------------
KV_BYTES_PER_ELEM = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}


def weights_bytes(
    params_b: float, q: QuantSpec, entry: CatalogModel | None = None
) -> tuple[float, str | None]:
    if entry is not None and q.quant in entry.file_gb:
        return entry.file_gb[q.quant] * GB, f"Weights from the published {entry.tag} {q.quant} file size."
    return params_b * 1e9 * q.bpw(params_b) / 8, None


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
    filled
    from Ollama's /api/show by the assistant), then the catalog's MoE layout, then active params x bits per
    weight. A known MoE is never treated as dense.
    """
    notes: list[str] = []
    total_p = arch.params_billion
    total, wnote = weights_bytes(total_p, q, entry)
    if wnote:
        notes.append(wnote)
    if arch.weights_gb is not None:
        total = arch.weights_gb * GB
        notes.append(f"Weights {arch.weights_gb:g} GB as reported for the installed model.")
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
        return WeightsRead(total, total, False, 0, notes)
    if layout is not None and layout.expert_params_b is not None:
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
        published = entry is not None and q.quant in entry.file_gb and arch.weights_gb is None
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
    """Attention FLOPs per prompt token, averaged over a prompt of ``prompt_tokens`` (QK^T, AV: 4*d*ctx/2)."""
    heads = arch.n_heads or arch.n_kv_heads * 4
    ctx = max(prompt_tokens, 1)
    if arch.sliding_window and arch.global_layer_every:
        n_global = max(1, arch.n_layers // arch.global_layer_every)
        eff_layers = n_global + (arch.n_layers - n_global) * min(ctx, arch.sliding_window) / ctx
    else:
        eff_layers = arch.n_layers
    return 4 * eff_layers * heads * arch.head_dim * ctx / 2


def attention_read_bytes(arch: ModelArchitecture, ctx: int) -> float:
    """Attention work per generated token, as MHA-equivalent f16 K/V bytes over the context.

    Why: measured decode slow-down with context (XiongjieDai tg512..tg8192) scales with query heads x layers x
    context, not with the (GQA-reduced) KV bytes; the calibrated coefficient turns this into seconds.
    """
    heads = arch.n_heads or arch.n_kv_heads * 4
    if arch.sliding_window and arch.global_layer_every:
        n_global = max(1, arch.n_layers // arch.global_layer_every)
        eff_layers = n_global + (arch.n_layers - n_global) * min(ctx, arch.sliding_window) / max(ctx, 1)
    else:
        eff_layers = arch.n_layers
    return 2 * eff_layers * heads * arch.head_dim * 2 * ctx
