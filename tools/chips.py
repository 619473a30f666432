"""Apple Silicon chips: the chip table, forgiving machine-name parsing and picking a chip bin.

Resolution is forgiving about spelling ("m4 pro", "Apple M3 Max 40-core") but never guesses
silently: anything it had to assume is returned as a note for the tool's ``assumptions``, and anything
it cannot resolve raises ToolError naming the field and the closest accepted values.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from tools.data_files import GB, GIB, closest, load_yaml
from tools.registry import ToolError


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
    # Full-width letters and digits (Japanese / Chinese input methods): "Ｍ３ Ｍａｘ" is "M3 Max".
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch if ch.isprintable() else " " for ch in text).strip()


def parse_machine_text(text: str, *, field_name: str = "chip") -> ParsedChip:
    """'MacBook Pro 16 M4 Max', 'M4 Pro 14-core CPU 20-core GPU', 'M3-Max' -> chip, cores and product.

    Never guesses silently: two different chips in one name, or a product name without a chip, are errors that
    list what the product shipped with; a chip the product never had is kept but stated as a note.
    """
    raw = _clean(text)
    low = raw.lower().replace("apple", " ").replace("_", " ")
    _refuse_several_macs(raw, low, field_name)
    low = re.sub(r"\b(m[1-9])(pro|max|ultra)\b", r"\1 \2", low)
    prods = [_PRODUCT_NAMES[re.sub(r"\s", "", m.group(0))] for m in _PRODUCT_RE.finditer(low)]
    product = prods[0] if prods else None
    # "MacBook Pro" contains the word "pro": blank product names out before looking for the chip's tier.
    chip_text = _PRODUCT_RE.sub(" ", low)
    found = list(_CHIP_RE.finditer(chip_text))
    name = _one_chip(raw, found, product, field_name)
    notes: list[str] = []
    if product is not None:
        shipped = products().get(product, {}).get("chips", [])
        if name not in shipped:
            notes.append(
                f"Apple never sold a {product} with the {name} (it came with "
                f"{', '.join(shipped) or 'none'}); the {name}'s own specs are used."
            )
    _refuse_unknown_tier_word(raw, name, chip_text, found, field_name)
    rest = chip_text
    for m in reversed(found):
        rest = _cut(rest, m)
    _refuse_stray_tier(raw, name, rest, field_name)
    bw_gpus, rest = _bandwidth_in_name(raw, name, rest, field_name)
    mem, rest = _memory_in_name(raw, name, rest, notes, field_name)
    # "16-core Neural Engine" (Apple's spec line) counts neither CPU nor GPU cores.
    rest = re.sub(r"\b\d{1,3}\s*-?\s*(?:cores?|c)?\s*(?:neural\s*engine|npu|ane)\b", " ", rest)
    # "32 GPU cores", "32GPU", "14CPU" -> "32-core gpu", "14-core cpu".
    rest = re.sub(r"\b(\d{1,3})\s*-?\s*(gpu|cpu)s?(?:\s*-?\s*cores?)?\b", r" \1-core \2 ", rest)
    cpu, gpu, rest = _core_pair(raw, name, rest, notes, field_name)
    cpu, gpu = _core_counts(raw, name, rest, cpu, gpu, notes, field_name)
    gpu = _binned(raw, name, rest, gpu, notes)
    gpu = _gpu_for_bandwidth(raw, name, bw_gpus, gpu, notes, field_name)
    return ParsedChip(name, gpu, cpu, product, notes, mem)


_SEVERAL_RE = re.compile(
    r"(?<![a-z0-9./])(?:[2-9]\s*[x\u00d7*]|[x\u00d7*]\s*[2-9])(?![a-z0-9])|\b(?:dual|twin|two|three|four|pair\s+of|"
    r"cluster\s+of)\b"
    # 'dual monitor', 'two displays', 'dual 4K', 'three Thunderbolt ports': accessories, not several Macs
    r"(?!\s*-?\s*(?:monitors?|displays?|screens?|external|[4-8]k|usb|thunderbolt|tb[345]|ports?|fans?|band))"
    r"|\b\d+\s*(?:macs|mac\s*studios|mac\s*minis|nodes)\b"
)


def _refuse_several_macs(raw: str, low: str, field_name: str) -> None:
    """'2x Mac Studio M3 Ultra': several Macs are a cluster; answering for one would drop the count."""
    m = _SEVERAL_RE.search(low)
    if m:
        raise ToolError(
            f"{field_name}: {raw!r} describes several Macs ({m.group(0).strip()!r}); {field_name} names one "
            'machine. Pass the count as cluster, e.g. cluster: {"count": 2, "link": "thunderbolt5"}, and one '
            "Mac as chip.",
            fields=[field_name, "cluster"],
        )


# Words people put where a tier goes that are no Apple tier: refused rather than read as the base chip.
_NOT_TIERS = ("extreme", "plus", "lite", "super", "turbo", "hyper", "duo", "quad", "extra", "ultimate", "xl")
_TIER_WORDS = ("pro", "max", "ultra")


def _refuse_unknown_tier_word(
    raw: str, name: str, chip_text: str, found: list[re.Match[str]], field_name: str
) -> None:
    """'M2 Utra', 'M4 Mx', 'M3 Extreme': the word right after the chip looks like a tier but is none; reading
    it as the base chip would silently cost 2-8x the bandwidth."""
    for m in found:
        nxt = re.match(r"[\s(\[,\-]*([a-z]+)", chip_text[m.end() :])
        if not nxt:
            continue
        word = nxt.group(1)
        # A real tier word set apart ("M4 (Max)") is left to _refuse_stray_tier, which says so.
        misspelt = (
            m.group(2) is None
            and word not in _TIER_WORDS
            and difflib.get_close_matches(word, _TIER_WORDS, n=1, cutoff=0.7)
        )
        if word in _NOT_TIERS or misspelt:
            raise ToolError(
                f"{field_name}: {raw!r} is ambiguous: read the chip as {name}, but {word!r} right after it "
                "is not an Apple chip tier (Pro, Max, Ultra). Say which chip, e.g. "
                f"{', '.join(_tiers_of(name))}.",
                fields=[field_name],
            )


def _sibling(field_name: str, other: str) -> str:
    """The field next to this chip field: 'memory_gb' for 'chip', 'b_memory_gb' for 'b_chip'."""
    return field_name.removesuffix("chip") + other


def _tiers_of(name: str) -> list[str]:
    gen = name.split()[0]
    names = chip_names()
    return [gen] + [f"{gen} {t}" for t in ("Pro", "Max", "Ultra") if f"{gen} {t}" in names]


_MEM_RE = re.compile(
    r"\b(\d{1,4}(?:\.\d+)?)\s*(gb|gib|g|tb)\b(?:\s*(?:of\s*)?(ssd|storage|disk|drive|flash|hd|ram|memory|"
    r"unified(?:\s*memory)?))?"
)


def _memory_in_name(
    raw: str, name: str, rest: str, notes: list[str], field_name: str
) -> tuple[int | None, str]:
    """The memory size in a name ('Mac mini M4 Pro 64GB'); storage ('512GB SSD', '1TB') is not memory.

    Two bare sizes are told apart only when one of them is a size this chip was sold with; else refused.
    """
    sized: list[tuple[int, str | None]] = []
    for m in reversed(list(_MEM_RE.finditer(rest))):
        rest = _cut(rest, m)
        label = m.group(3)
        if m.group(2) == "tb" or label in ("ssd", "storage", "disk", "drive", "flash", "hd"):
            continue  # storage
        sized.insert(0, (int(float(m.group(1))), label))
    labelled = [n for n, label in sized if label]
    sizes = list(dict.fromkeys(labelled or [n for n, _ in sized]))
    if len(sizes) <= 1:
        return (sizes[0] if sizes else None), rest
    sold = {m for b in chip_bins() if b.chip == name for m in b.memory_gb}
    valid = [n for n in sizes if n in sold]
    if len(valid) == 1:
        others = ", ".join(f"{n} GB" for n in sizes if n != valid[0])
        notes.append(
            f"Read {valid[0]} GB in {raw!r} as the memory (the {name} was never sold with {others} of "
            "memory: taken as storage)."
        )
        return valid[0], rest
    raise ToolError(
        f"{field_name}: {raw!r} has more than one memory size ({', '.join(f'{n} GB' for n in sizes)}); pass "
        f"memory_gb, or label the storage (e.g. '512GB SSD').",
        fields=[field_name, _sibling(field_name, "memory_gb")],
    )


_BW_RE = re.compile(r"\b(\d{1,4}(?:\.\d+)?)\s*(gb|tb)\s*(?:/\s*s(?:ec)?\b|ps\b|per\s*s(?:ec(?:ond)?)?\b)")


def _bandwidth_in_name(raw: str, name: str, rest: str, field_name: str) -> tuple[list[int] | None, str]:
    """'M4 Max 410 GB/s': the GPU counts of the bins with that bandwidth (None when every bin has it).

    A bandwidth the chip never had is refused (pass bandwidth_gbps for another figure).
    """
    m = _BW_RE.search(rest)
    if m is None:
        return None, rest
    value = float(m.group(1)) * (1000 if m.group(2) == "tb" else 1)
    bins = [b for b in chip_bins() if b.chip == name]
    hit = [b for b in bins if abs(b.bandwidth_gbps - value) <= max(2.0, 0.02 * value)]
    if not hit:
        listed = _fmt_list([f"{v:g}" for v in sorted({b.bandwidth_gbps for b in bins})])
        raise ToolError(
            f"{field_name}: {raw!r}: the {name} has {listed} GB/s, not {value:g}; pass bandwidth_gbps "
            "(estimate_speed) to use another figure.",
            fields=[field_name],
        )
    rest = _cut(rest, m)
    if len(hit) == len(bins):
        return None, rest
    return sorted({c for b in hit for c in b.gpu_cores}), rest


def _gpu_for_bandwidth(
    raw: str, name: str, bw_gpus: list[int] | None, gpu: int | None, notes: list[str], field_name: str
) -> int | None:
    if bw_gpus is None:
        return gpu
    if gpu is not None and gpu not in bw_gpus:
        raise ToolError(
            f"{field_name}: {raw!r}: the bandwidth given is the {_fmt_list(bw_gpus)}-core {name}'s, not the "
            f"{gpu}-core's.",
            fields=[field_name],
        )
    if gpu is None and len(bw_gpus) == 1:
        notes.append(f"The bandwidth in {raw!r} identifies the {bw_gpus[0]}-core {name} bin.")
        return bw_gpus[0]
    return gpu


def _binned(raw: str, name: str, rest: str, gpu: int | None, notes: list[str]) -> int | None:
    """'binned' = the chip's lower GPU bin, 'unbinned' = its full one (when no GPU count was given)."""
    m = re.search(r"\b(un|non-?)?binned\b|\b(full|top|lower|base|cut[\s-]*down)[\s-]*bin\b", rest)
    if m is None or gpu is not None:
        return gpu
    counts = sorted({c for b in chip_bins() if b.chip == name for c in b.gpu_cores})
    if len(counts) < 2:
        notes.append(f"Ignored {m.group(0)!r} in {raw!r}: the {name} came with one GPU configuration.")
        return gpu
    full = bool(m.group(1)) or m.group(2) in ("full", "top")
    chosen = counts[-1] if full else counts[0]
    notes.append(
        f"Read {m.group(0)!r} in {raw!r} as the {'full' if full else 'lower'} GPU bin: the {chosen}-core "
        f"{name} (it came with {_fmt_list(counts)} GPU cores)."
    )
    return chosen


def _cut(text: str, m: re.Match[str]) -> str:
    return text[: m.start()] + " " + text[m.end() :]


def _one_chip(raw: str, found: list[re.Match[str]], product: str | None, field_name: str) -> str:
    """The one chip a name says, or ToolError: none (product named or not), several, or not a known chip."""
    names = chip_names()
    chips = list(
        dict.fromkeys(f"M{m.group(1)}" + (f" {m.group(2).capitalize()}" if m.group(2) else "") for m in found)
    )
    if not chips:
        if product is not None:
            _refuse_product_without_chip(raw, product, field_name)
        close = closest(raw, names)
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
        close = closest(name, names)
        raise ToolError(
            f"{field_name}: {name!r} is not an Apple Silicon chip we know (from {raw!r}). "
            f"Closest: {', '.join(close) or 'none'}. Accepted: {', '.join(names)}.",
            fields=[field_name],
        )
    return name


def _refuse_product_without_chip(raw: str, product: str, field_name: str) -> None:
    names = chip_names()
    shipped = [c for c in products().get(product, {}).get("chips", []) if c in names]
    if not shipped:
        why = products().get(product, {}).get("source", "not an M-series Mac")
        raise ToolError(
            f"{field_name}: {raw!r} names a {product}, which has no Apple M-series chip ({why}); "
            f"these tools cover M-series Macs only: {', '.join(names)}.",
            fields=[field_name],
        )
    raise ToolError(
        f"{field_name}: {raw!r} names a {product} but not its chip; the {product} came with "
        f'{", ".join(shipped) or "no Apple M-series chip"}. Say which (e.g. "{product} '
        f'{shipped[-1] if shipped else "M4"}").',
        fields=[field_name],
    )


def _refuse_stray_tier(raw: str, name: str, rest: str, field_name: str) -> None:
    # A tier word the chip pattern did not take ("M4 Prox", "Max M4", "M4 (Pro)", "M4 Pro Max") would
    # otherwise be dropped and the name read as another tier (4-8x less bandwidth for a base chip): refuse.
    stray = re.search(r"[a-z]*(pro|max|ultra)[a-z]*", rest)
    if stray:
        names = chip_names()
        gen = name.split()[0]
        tiers = [gen] + [f"{gen} {t}" for t in ("Pro", "Max", "Ultra") if f"{gen} {t}" in names]
        raise ToolError(
            f"{field_name}: {raw!r} is ambiguous: read the chip as {name}, but {stray.group(0)!r} is also in "
            f"the name and was not understood. Say which chip, e.g. {', '.join(tiers)}.",
            fields=[field_name],
        )


def _core_pair(
    raw: str, name: str, rest: str, notes: list[str], field_name: str
) -> tuple[int | None, int | None, str]:
    """Apple's shorthand "M3 Max 14/30" = 14-core CPU / 30-core GPU (when both counts are this chip's)."""
    pair = re.search(
        r"(?<![\d/])(\d{1,3})\s*/\s*(\d{1,4})(?![\d/])(?!\s*-?\s*(?:core|cores|c|inch|in|\"|\u201d|'')(?![a-z]))",
        rest,
    )
    if not pair:
        return None, None, rest
    bins = [b for b in chip_bins() if b.chip == name]
    c_n, g_n = int(pair.group(1)), int(pair.group(2))
    if any(c == c_n and g_n in gs for b in bins for c, gs in b.cpu_cores):
        notes.append(f"Read '{pair.group(0).strip()}' in {raw!r} as a {c_n}-core CPU / {g_n}-core GPU.")
        return c_n, g_n, _cut(rest, pair)
    cpu_map: dict[int, set[int]] = {}
    for b in bins:
        for c, gs in b.cpu_cores:
            cpu_map.setdefault(c, set()).update(gs)
    combos = "; ".join(f"{c}-core CPU: {_fmt_list(sorted(gs))}-core GPU" for c, gs in sorted(cpu_map.items()))
    if c_n in cpu_map and any(g_n in b.gpu_cores for b in bins):
        raise ToolError(
            f"{field_name}: {raw!r}: the {name} never had a {c_n}-core CPU with a {g_n}-core GPU ({combos}).",
            fields=[field_name],
        )
    # Not a pair this chip had: never dropped silently (it may be cores, or memory/storage like '24/512').
    sold = sorted({m for b in bins for m in b.memory_gb})
    mem_eg = c_n if c_n in sold else sold[-1]
    raise ToolError(
        f"{field_name}: {raw!r}: '{pair.group(0).strip()}' is not a CPU/GPU core pair the {name} had "
        f"({combos}); write memory as e.g. '{mem_eg}GB' and cores as e.g. "
        f"'{max(bins[-1].gpu_cores)}-core GPU'.",
        fields=[field_name],
    )


def _core_counts(
    raw: str, name: str, rest: str, cpu: int | None, gpu: int | None, notes: list[str], field_name: str
) -> tuple[int | None, int | None]:
    """Labelled counts ('20-core GPU', 'cpu 14'); an unlabelled one is the GPU unless only CPUs have it."""
    unlabelled: list[int] = []
    gpus = [gpu] if gpu is not None else []
    for m in _CORES_RE.finditer(rest):
        n = int(m.group(1) or m.group(4))
        kind = m.group(2) or m.group(3)
        if kind == "cpu":
            cpu = n
        elif kind == "gpu":
            gpu = n
            gpus.append(n)
        else:
            unlabelled.append(n)
    bins = [b for b in chip_bins() if b.chip == name]
    gpu_ok = {c for b in bins for c in b.gpu_cores}
    if gpu is None:
        gpus = [n for n in unlabelled if n in gpu_ok]
    if len(set(gpus)) > 1:
        raise ToolError(
            f"{field_name}: {raw!r} has more than one GPU core count "
            f"({' and '.join(str(n) for n in dict.fromkeys(gpus))}); pass one (gpu_cores).",
            fields=[field_name, _sibling(field_name, "gpu_cores")],
        )
    if gpu is None and unlabelled:
        cpu_ok = {c for b in bins for c, _ in b.cpu_cores}
        n = unlabelled[-1]
        if n not in gpu_ok and n in cpu_ok and cpu is None:
            notes.append(
                f"Read '{n}-core' in {raw!r} as the CPU core count (the {name} has no {n}-core GPU)."
            )
            return n, gpu
        gpu = n
    return cpu, gpu


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


@dataclass(frozen=True)
class _Fields:
    """Field names in messages: "chip" or, for the second machine in a comparison, "b_chip"."""

    chip: str
    cores: str
    mem: str

    @classmethod
    def of(cls, prefix: str) -> _Fields:
        return cls(prefix + "chip", prefix + "gpu_cores", prefix + "memory_gb")


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
    f = _Fields.of(field_prefix)
    if chip is None:
        return _machine_without_chip(gpu_cores, memory_gb, bandwidth_gbps, need_memory, field_prefix)
    parsed = parse_machine_text(chip, field_name=f.chip)
    name, cores_in_text = parsed.chip, parsed.gpu_cores
    if cores_in_text is not None and gpu_cores is not None and cores_in_text != gpu_cores:
        raise ToolError(
            f"{f.cores}: {gpu_cores} contradicts the {cores_in_text}-core count in {f.chip}={chip!r}.",
            fields=[f.cores, f.chip],
        )
    cores = gpu_cores if gpu_cores is not None else cores_in_text
    bins = [b for b in chip_bins() if b.chip == name]
    notes: list[str] = list(parsed.notes)
    memory_gb = _memory_given_or_named(chip, parsed, memory_gb, notes, f)
    if memory_gb is not None:
        memory_gb = _snap_memory(bins, memory_gb, notes, f)
    if parsed.cpu_cores is not None:
        cores = _cores_for_cpu(name, bins, parsed.cpu_cores, cores, notes, f)
    chosen = _choose_bin(name, bins, cores, memory_gb, notes, f)
    if need_memory and memory_gb is None and cores is not None and len(chosen.memory_gb) == 1:
        # The GPU cores name a bin sold with one memory size (the 32-core M4 Max: 36 GB): that is the answer.
        memory_gb = float(chosen.memory_gb[0])
        notes.append(
            f"The {cores}-core {name} was sold with {chosen.memory_gb[0]} GB only: {f.mem} taken as "
            f"{chosen.memory_gb[0]}."
        )
    if need_memory and memory_gb is None:
        sold = (
            chosen.memory_gb if cores is not None else tuple(sorted({m for b in bins for m in b.memory_gb}))
        )
        which = f"the {cores}-core {name}" if cores is not None else f"the {name}"
        raise ToolError(
            f"{f.mem}: needed for a fit check; {which} was sold with {_fmt_list(sold)} GB.",
            fields=[f.mem],
        )
    notes += _bin_notes(name, chosen, cores)
    bw = chosen.bandwidth_gbps
    if bandwidth_gbps is not None and abs(bandwidth_gbps - bw) > 0.5:
        notes.append(
            f"Using the given bandwidth {bandwidth_gbps:g} GB/s instead of the {name}'s {bw:g} GB/s."
        )
        bw = float(bandwidth_gbps)
    # In MachineSpec's field order: chip, bin, gpu_cores, memory_gb, bandwidth_gbps, assumptions, sources.
    return MachineSpec(name, chosen, cores, memory_gb, bw, notes, [f"chip {name}: {chosen.source}"])


def _memory_given_or_named(
    chip: str, parsed: ParsedChip, memory_gb: float | None, notes: list[str], f: _Fields
) -> float | None:
    """memory_gb as given, else the size written in the chip name ('M4 Pro 48GB'); the two must agree."""
    if parsed.memory_gb is None:
        return memory_gb
    if memory_gb is not None and abs(memory_gb - parsed.memory_gb) > 0.51:
        raise ToolError(
            f"{f.mem}: {memory_gb:g} contradicts the {parsed.memory_gb} GB in {f.chip}={chip!r}.",
            fields=[f.mem, f.chip],
        )
    if memory_gb is None:
        notes.append(f"Memory read from {f.chip}: {parsed.memory_gb} GB.")
        return float(parsed.memory_gb)
    return memory_gb


def _machine_without_chip(
    gpu_cores: int | None,
    memory_gb: float | None,
    bandwidth_gbps: float | None,
    need_memory: bool,
    field_prefix: str,
) -> MachineSpec:
    """No chip given: a raw bandwidth (speed only), else this Mac's own chip, else ToolError."""
    f = _Fields.of(field_prefix)
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
    if (mac is None or mac.chip is None) and need_memory and memory_gb is not None and memory_gb > 0:
        # "Will a 70B fit in 64 GB?": the fit rule depends on the memory size only (and the runtime), so
        # answer for any Mac of that size rather than refuse for want of a chip name.
        return MachineSpec(
            chip=None,
            bin=None,
            gpu_cores=gpu_cores,
            memory_gb=float(memory_gb),
            bandwidth_gbps=float(bandwidth_gbps) if bandwidth_gbps is not None else 0.0,
            assumptions=[
                f"No chip given: the verdict is for any Mac with {memory_gb:g} GB (the fit depends on memory "
                "size and runtime only; the chip is not checked to have been sold with it)."
            ],
        )
    if mac is None or mac.chip is None:
        raise ToolError(
            f"{f.chip}: not given and this is not a Mac (or the chip could not be read), so there is no "
            f'default machine. Pass {f.chip} (e.g. "M3 Max", "M4 Pro")'
            + (" or bandwidth_gbps." if not need_memory else f" and {f.mem}."),
            fields=[f.chip],
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


def _cores_for_cpu(
    name: str, bins: list[ChipBin], cpu_cores: int, cores: int | None, notes: list[str], f: _Fields
) -> int | None:
    """GPU cores implied or contradicted by a CPU core count in the name ('M4 Pro 12-core CPU')."""
    cpu_map: dict[int, set[int]] = {}
    for b in bins:
        for c, gpus in b.cpu_cores:
            cpu_map.setdefault(c, set()).update(gpus)
    if cpu_map and cpu_cores not in cpu_map:
        raise ToolError(
            f"{f.chip}: the {name} never had a {cpu_cores}-core CPU; it came with "
            f"{_fmt_list(sorted(cpu_map))} CPU cores.",
            fields=[f.chip],
        )
    gpus_for_cpu = sorted(cpu_map.get(cpu_cores, set()))
    if cores is not None and gpus_for_cpu and cores not in gpus_for_cpu:
        raise ToolError(
            f"{f.cores}: the {cpu_cores}-core-CPU {name} came with {_fmt_list(gpus_for_cpu)} GPU "
            f"cores, not {cores}.",
            fields=[f.cores, f.chip],
        )
    if cores is None and len(gpus_for_cpu) == 1:
        cores = gpus_for_cpu[0]
        notes.append(f"The {cpu_cores}-core-CPU {name} has a {cores}-core GPU.")
    return cores


def _choose_bin(
    name: str, bins: list[ChipBin], cores: int | None, memory_gb: float | None, notes: list[str], f: _Fields
) -> ChipBin:
    """The bin with these GPU cores, else the (fastest) one sold with this memory, else the fastest."""
    if cores is not None:
        cand = [b for b in bins if cores in b.gpu_cores]
        if not cand:
            all_cores = sorted({c for b in bins for c in b.gpu_cores})
            raise ToolError(
                f"{f.cores}: the {name} never had a {cores}-core GPU; it came with "
                f"{' or '.join(str(c) for c in all_cores)} GPU cores.",
                fields=[f.cores],
            )
        if memory_gb is not None and not _memory_ok(cand[0], memory_gb):
            raise ToolError(
                f"{f.mem}: the {cores}-core {name} was sold with "
                f"{_fmt_list(cand[0].memory_gb)} GB, not {memory_gb:g} GB.",
                fields=[f.mem, f.cores],
            )
        return cand[0]
    if memory_gb is not None:
        return _bin_by_memory(name, bins, memory_gb, notes, f)
    chosen = max(bins, key=lambda b: (b.bandwidth_gbps, max(b.gpu_cores)))
    if len(bins) > 1:
        others = ", ".join(
            f"{_fmt_list(b.gpu_cores)}-core = {b.bandwidth_gbps:g} GB/s" for b in bins if b is not chosen
        )
        notes.append(
            f"Assumed the {_fmt_list(chosen.gpu_cores)}-core {name} ({chosen.bandwidth_gbps:g} GB/s); "
            f"other bin: {others}. Pass gpu_cores or memory_gb to pick."
        )
    return chosen


def _bin_by_memory(name: str, bins: list[ChipBin], memory_gb: float, notes: list[str], f: _Fields) -> ChipBin:
    cand = [b for b in bins if _memory_ok(b, memory_gb)]
    if not cand:
        all_mem = sorted({m for b in bins for m in b.memory_gb})
        raise ToolError(
            f"{f.mem}: the {name} was sold with {_fmt_list(all_mem)} GB, not {memory_gb:g} GB.",
            fields=[f.mem],
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
    return chosen


def _bin_notes(name: str, chosen: ChipBin, cores: int | None) -> list[str]:
    notes: list[str] = []
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
    return notes


def _snap_memory(bins: list[ChipBin], memory_gb: float, notes: list[str], f: _Fields) -> float:
    """A size this chip was sold with: 48.4 -> 48 (stated); 51.5 -> 48 (48 GiB written in 1e9-byte GB)."""
    sold = sorted({m for b in bins for m in b.memory_gb})
    if memory_gb in sold:
        return memory_gb
    for m in sold:
        if abs(memory_gb - m) < 0.51:
            notes.append(f"{f.mem} {memory_gb:g} read as the {m} GB configuration.")
            return float(m)
    for m in sold:
        if abs(memory_gb - m * GIB / GB) < 0.5:
            notes.append(
                f"{f.mem} {memory_gb:g} read as the {m} GB configuration ({m} GiB = {m * GIB / GB:.2f} GB; "
                "Apple's memory sizes are GiB)."
            )
            return float(m)
    return memory_gb


def _memory_ok(b: ChipBin, memory_gb: float) -> bool:
    return any(abs(memory_gb - m) < 0.51 for m in b.memory_gb)


def _fmt_list(values: Sequence[object]) -> str:
    v = [str(x) for x in values]
    return v[0] if len(v) == 1 else ", ".join(v[:-1]) + " or " + v[-1]


def products() -> dict[str, dict[str, Any]]:
    return dict(load_yaml("chips.yaml")["products"])
