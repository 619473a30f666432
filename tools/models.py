"""Models: the model catalog, forgiving Ollama-tag resolution, and sizing models the catalog does not know.

Resolution is forgiving about spelling ("qwen2.5:14b-instruct-q4_K_M", "hf.co/.../...-GGUF:Q4_K_M") but never
guesses silently: anything it had to assume is returned as a note for the tool's ``assumptions``, and anything
it cannot resolve raises ToolError naming the field and the closest accepted values.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from tools.data_files import load_yaml
from tools.quants import QuantSpec, resolve_quant
from tools.registry import ToolError, ToolErrorKind
from tools.schemas import ModelArchitecture


@dataclass(frozen=True)
class MoeLayout:
    """Where a mixture-of-experts model's parameters live, so bytes read per token follow the real layout.

    Why: "file size x active/total params" is wrong when experts and the rest are stored at different
    precision (gpt-oss: MXFP4 experts, BF16 attention/embeddings/head) and when the input embedding (never
    read whole) is a sizeable share of the active count.
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
    # Dense models whose file holds much that decode does not read (Gemma's per-layer embedding tables, one
    # row per token; vision/audio encoders): the parameters a generated token streams.
    params_read_b: float | None = None

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
            params_read_b=float(r["params_read_b"]) if r.get("params_read_b") else None,
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


@cache
def _versionless_models() -> dict[str, set[float]]:
    """Family -> sizes of the Ollama library's versionless first-generation models ('qwen:7b' = Qwen 1.5)."""
    raw = load_yaml("models.yaml")["versionless_models"]
    return {str(k): {float(s) for s in v["sizes_b"]} for k, v in raw.items()}


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
    r"[-_\s](?P<q>(?:i?q\d[a-z0-9_]*)|fp16|f16|bf16|mxfp4|nvfp4|(?:mlx[-_]?)?\d+bit|mlx)$", re.IGNORECASE
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
    # A catalog model this one is read as (same family and size): whose quantisations it can have (gpt-oss)
    # and, at the same parameter count, whose tensor layout and file sizes size it (sizing_entry).
    read_as: CatalogModel | None = None

    @property
    def sizing_entry(self) -> CatalogModel | None:
        """The catalog row whose tensor layout and published file sizes size the weights: the model's own, or
        the one it is read as with that row's parameter count (a fine-tune of gpt-oss:20b keeps its BF16
        attention and MXFP4 experts; sized as plain active x bits it came out 20% smaller and 60% faster)."""
        if self.catalog_entry is not None:
            return self.catalog_entry
        same = self.read_as is not None and self.read_as.params_b == self.arch.params_billion
        return self.read_as if same else None


_HF_TAG_RE = re.compile(
    r"^(?:https?://)?(?:hf\.co|huggingface\.co)/[^/\s]+/([^:\s/]+)(?::(\S+))?$", re.IGNORECASE
)


def hf_repo_and_quant(text: str) -> tuple[str, str | None] | None:
    """'hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M' -> ('Qwen2.5-7B-Instruct', 'Q4_K_M'); else None.

    Ollama pulls GGUF repos from Hugging Face by this form: the repo names the model, the tag the quant.
    """
    m = _HF_TAG_RE.match(text.strip())
    if not m:
        return None
    repo = re.sub(r"[-_.]gguf$", "", m.group(1), flags=re.IGNORECASE)
    quant = m.group(2) if m.group(2) and m.group(2).lower() != "latest" else None
    return repo, quant


_BARE_REPO_RE = re.compile(
    r"^(?P<owner>[a-z0-9][\w.-]*)/(?P<repo>[\w.-]+?)(?::(?P<q>[\w.-]+))?$", re.IGNORECASE
)
_REPO_QUANT_RE = re.compile(
    r"[-_.](?P<q>mxfp4[-_]q[48]|(?:i?q\d[a-z0-9_]*)|fp16|f16|bf16|mxfp4|\d+[-_]?bit)"
    r"(?:[-_](?:dwq|awq|gptq))?$",  # a quantisation method after the bits (mlx-community's '-4bit-DWQ')
    re.IGNORECASE,
)


def _repo_quant(quant: str | None, mlx: bool) -> str | None:
    """A quant from a repo name in our spelling: mlx-community's '4bit' is MLX-4bit, not a GGUF Q4_K_M."""
    if quant is None or quant.lower() == "latest":
        return None
    q = quant.replace("_", "-").lower() if quant.lower().startswith("mxfp4") else quant
    if q == "mxfp4-q4":
        # MLX gpt-oss with its non-expert tensors at 4 bits: sized as the 8-bit variant we know (the experts,
        # nearly all of the file, are MXFP4 either way; the estimate is a little high).
        q = "mxfp4-q8"
    if mlx and re.fullmatch(r"(\d+[-_]?bit|bf16|fp16|f16)", q, re.IGNORECASE):
        return f"mlx-{q}"
    return q.upper() if q.lower() == "mxfp4-q8" else q


def hf_repo_of(text: str) -> tuple[str, str | None] | None:
    """A Hugging Face repo, with or without hf.co/, -> (model part of the repo name, quant it names).

    'hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M' -> ('Qwen2.5-7B-Instruct', 'Q4_K_M');
    'mlx-community/Qwen3-30B-A3B-4bit' -> ('Qwen3-30B-A3B', 'mlx-4bit'); 'unsloth/gpt-oss-20b-GGUF' ->
    ('gpt-oss-20b', None). An Ollama namespace tag ('user/model:8b': a size, not a quant, after the colon)
    is not a repo.
    """
    hf = hf_repo_and_quant(text)
    raw = text.strip()
    if hf is not None:
        owner = raw.split("/")[-2]
        repo, quant = hf
    else:
        m = _BARE_REPO_RE.match(raw)
        if m is None or (m.group("q") and _TAG_QUANT_RE.search("-" + m.group("q")) is None):
            return None
        owner, repo, quant = m.group("owner"), m.group("repo"), m.group("q")
    repo = re.sub(r"[-_.]gguf$", "", repo, flags=re.IGNORECASE)
    mlx = "mlx" in owner.lower() or bool(re.search(r"[-_.]mlx\b", repo, re.IGNORECASE))
    qm = _REPO_QUANT_RE.search(repo)
    if qm is not None:
        repo, quant = repo[: qm.start()], quant or qm.group("q")
    repo = re.sub(r"[-_.]mlx$", "", repo, flags=re.IGNORECASE)  # lmstudio-community/...-MLX-4bit
    return repo, _repo_quant(quant, mlx)


def _catalog_repo(repo: str) -> CatalogModel | None:
    key = _norm_key(repo)
    for k in (key, key.removeprefix("meta")):
        if k in _keyed():
            return catalog()[_keyed()[k]]
    return None


def _resolve_hf_repo(
    raw: str, repo: str, hf_quant: str | None, field_name: str
) -> tuple[CatalogModel, str | None, list[str]]:
    entry = _catalog_repo(repo)
    if entry is not None:
        note = f"{field_name} {raw!r}: Hugging Face repo {repo} read as {entry.tag}."
        return entry, hf_quant, [note]
    raise ToolError(
        f"{field_name}: unknown model {raw!r} (Hugging Face repo {repo!r} is not in our catalog). Pass "
        "params_billion (and architecture for KV-cache maths), or a repo name with its size (e.g. -7B-).",
        fields=[field_name],
        kind=ToolErrorKind.UNKNOWN_MODEL,
    )


_CLOUD_RE = re.compile(r"^(?P<name>[^:\s]+):(?:(?P<size>[\w.]+?)-)?cloud$")


def is_cloud_tag(text: str) -> bool:
    """'qwen3.5:397b-cloud', 'glm-5.1:cloud': a model Ollama runs on its servers (nothing to size locally)."""
    return _CLOUD_RE.match(text.strip().lower()) is not None


def _refuse_cloud(t: str, raw: str, field_name: str) -> None:
    """'qwen3.5:397b-cloud', 'glm-5.1:cloud': Ollama runs these on its servers; nothing loads on the Mac."""
    m = _CLOUD_RE.match(t)
    if m is None:
        return
    local = f"{m.group('name')}:{m.group('size')}" if m.group("size") else m.group("name")
    raise ToolError(
        f"{field_name}: {raw!r} is an Ollama cloud model: it runs on Ollama's servers and nothing is loaded "
        "on this Mac, so there is no local speed or memory to estimate. For the open weights run locally, "
        f"name a local tag (e.g. {local!r}, with '-a<N>b' for a mixture-of-experts' active size) or "
        "params_billion.",
        fields=[field_name],
    )


def full_tag(name: str) -> str:
    """The tag as Ollama lists it: ``nomic-embed-text`` and ``nomic-embed-text:latest`` are the same model.

    Only the last path part can carry the tag (``hf.co/user/Repo-GGUF``, ``host:5000/ns/model`` have none).
    """
    name = name.strip()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _same_active(entry: CatalogModel, active_b: float) -> bool:
    """A tag's rounded active size ('a3b') is this MoE's (3.34B)."""
    return entry.active_params_b is not None and abs(entry.active_params_b - active_b) <= max(
        0.5, 0.15 * active_b
    )


def _resolve_repo_name(raw: str, field_name: str) -> tuple[CatalogModel, str | None, list[str]] | None:
    """hf.co/<user>/<repo>[:quant] (an error if the repo is unknown), or a repo id pasted from Hugging Face
    ('unsloth/gpt-oss-20b-GGUF', 'mlx-community/...-4bit': None if the catalog does not know it)."""
    repo = hf_repo_of(raw)
    if repo is None:
        return None
    if hf_repo_and_quant(raw) is not None:
        return _resolve_hf_repo(raw, repo[0], repo[1], field_name)
    entry = _catalog_repo(repo[0])
    if entry is None:
        return None
    return entry, repo[1], [f"{field_name} {raw!r}: Hugging Face repo {repo[0]} read as {entry.tag}."]


def resolve_model_tag(text: str, *, field_name: str = "model") -> tuple[CatalogModel, str | None, list[str]]:
    """Ollama tag (or a human name) -> catalog entry, plus a quant embedded in the tag."""
    raw = text.strip()
    from_repo = _resolve_repo_name(raw, field_name)
    if from_repo is not None:
        return from_repo
    t = raw.lower()
    t = re.sub(r"^(ollama\s+(run|pull)\s+|hf\.co/|registry\.ollama\.ai/library/|library/)", "", t)
    _refuse_cloud(t, raw, field_name)
    notes: list[str] = []
    quant: str | None = None
    qm = _TAG_QUANT_RE.search(t)
    if qm and (":" in t or "-" in t or " " in t):
        quant = qm.group("q")
        t = t[: qm.start()]
    t = t.removesuffix(":latest")
    cat = catalog()
    aliases = _aliases()
    name, _, variant = t.partition(":")
    if t in cat:  # "qwen3:30b-a3b-instruct-2507" is its own row (another context than qwen3:30b-a3b)
        return cat[t], quant, notes
    variant = re.sub(r"-(instruct|chat|it|text)(-.*)?$", "", variant)
    candidates = [f"{name}:{variant}" if variant else name]
    parts = variant.split("-")
    # "14b-qwen-distill", "70b-instruct-fp16": try shorter variants, longest first.
    candidates += [f"{name}:{'-'.join(parts[:i])}" for i in range(len(parts) - 1, 0, -1)]
    active = re.search(r"(?:^|-)a(\d+(?:\.\d+)?)b(?:-|$)", variant)
    for c in candidates:
        entry = cat.get(c) or (cat[aliases[c]] if c in aliases else None)
        # "qwen3:235b-a30b" names another active size than qwen3:235b(-a22b): not that model
        if entry is not None and (c == candidates[0] or not active or _same_active(entry, float(active[1]))):
            return entry, quant, notes
    if not variant:
        # "mistral-nemo", and as people write it, "Mistral Nemo": the family's default tag
        family = [m for m in cat.values() if _norm_key(m.tag.split(":")[0]) == _norm_key(name)]
        latest = [m for m in family if m.latest]
        if latest:
            if not latest[0].tag.endswith(":latest"):
                notes.append(f"{field_name} {raw!r} has no size: Ollama's default tag is {latest[0].tag}.")
            return latest[0], quant, notes
        if family:
            sizes = ", ".join(m.tag for m in family)
            raise ToolError(f"{field_name}: {raw!r} needs a size; one of {sizes}.", fields=[field_name])
    key = _norm_key(t)
    keyed = _keyed()
    if key in keyed or key.removeprefix("meta") in keyed:  # "Meta-Llama-3-8B-Instruct", as Meta names it
        return cat[keyed.get(key) or keyed[key.removeprefix("meta")]], quant, notes
    options = sorted(set(cat) | set(aliases))
    close = difflib.get_close_matches(t, options, n=4, cutoff=0.5)
    if not close:
        close = [keyed[k] for k in difflib.get_close_matches(key, list(keyed), n=4, cutoff=0.5)]
    hint = f" Closest: {', '.join(dict.fromkeys(close))}." if close else ""
    raise ToolError(
        f"{field_name}: unknown model {raw!r}.{hint} For a model not in our catalog pass params_billion "
        f"(and architecture for KV-cache maths). Known tags: {', '.join(cat)}.",
        fields=[field_name],
        kind=ToolErrorKind.UNKNOWN_MODEL,
    )


_MIN_SIZE_B, _MAX_SIZE_B = 0.01, 3000.0  # 10M (tiny embedders) to 3T parameters: what a tag size can be
_MOE_TAG_RE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)b-a(\d+(?:\.\d+)?)b\b")
_EXPERTS_TAG_RE = re.compile(r"(?<![a-z0-9.])(\d{1,3})x(\d+(?:\.\d+)?)b\b")
_SIZE_TAG_RE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)([bmt])\b")


def _size_b(m: re.Match[str]) -> float:
    """A size token in billions: '270m' = 0.27, '27b' = 27, '1t' = 1000 (kimi-k2:1t)."""
    return float(m.group(1)) * {"m": 0.001, "b": 1.0, "t": 1000.0}[m.group(2)]


def _tag_text(text: str) -> str:
    """The part of a name that carries its size, lower-cased (a repo's model name as 'x:<name>')."""
    hf = hf_repo_of(text)
    return (f"x:{hf[0]}" if hf else text.strip()).lower()


def _plain_size(t: str) -> tuple[float, str] | None:
    """A plain size token ('27b', '270m', '1t') of _tag_text's output: (billions, the token)."""
    m = _SIZE_TAG_RE.search(t.partition(":")[2] or t)
    return (_size_b(m), m.group(0)) if m else None


def size_from_tag(text: str) -> tuple[float, float | None, str] | None:
    """Parameters from a tag people type for a model we do not know: '27b', '30b-a3b', '8x7b', '270m'.

    Returns (total B, active B or None, how it was read) or None when the tag carries no size.
    """
    t = _tag_text(text)
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
    plain = _plain_size(t)
    if plain is not None and _MIN_SIZE_B <= plain[0] <= _MAX_SIZE_B:
        size, token = plain
        return size, None, f"'{token}' = {size:g}B parameters, assumed dense"
    return None


def _refuse_impossible_size(model: str) -> None:
    """'x:100000b', 'x:0b': a size token no model has is said as such, not as an unknown model."""
    plain = _plain_size(_tag_text(model))
    if plain is None:
        return
    size = plain[0]
    if not _MIN_SIZE_B <= size <= _MAX_SIZE_B:
        raise ToolError(
            f"model: {model.strip()!r}: {size:g}B parameters is not a model size (we read "
            f"{_MIN_SIZE_B * 1000:g}M to {_MAX_SIZE_B:g}B). Check the tag, or pass params_billion.",
            fields=["model"],
        )


def quant_allowed(entry: CatalogModel | None, quant: str) -> bool:
    """Whether a model exists in this quantisation (gpt-oss: MXFP4 experts only, so no IQ3_XXS/Q4_K_M).

    For memory-fit suggestions: offer a smaller quant only when this returns True.
    """
    return entry is None or entry.allowed_quants is None or quant in entry.allowed_quants


def is_catalog_model(text: str) -> bool:
    """True when ``text`` names a catalog model (no /api/show round trip needed for it).

    A Hugging Face GGUF (hf.co/..., or a 'user/Repo' name, which may also be an Ollama namespace import)
    may be a fine-tune or another tensor layout of a catalog model: when it is installed, its own /api/show
    facts are better than the catalog row, so it is not counted here.
    """
    if hf_repo_of(text) is not None:  # also 'user/Repo' without hf.co/: an Ollama namespace import may be one
        return False
    try:
        resolve_model_tag(text)
    except ToolError:
        return False
    return True


def swa_global_layer_every(family: str) -> int | None:
    """How often a layer is global in the catalog's sliding-window models of a GGUF architecture (gemma3:
    every 6th, gemma2/gptoss: every 2nd), when all its rows agree; None otherwise.

    Why: /api/show gives the window size but llama.cpp hard-codes which layers use it per architecture.
    Hybrid rows (qwen35: window 1 = layers without a KV cache) are not sliding windows and do not count.
    """
    every = {
        m.global_layer_every
        for m in catalog().values()
        if m.family == family and m.sliding_window and m.sliding_window > 1
    }
    return every.pop() if len(every) == 1 else None


def generic_architecture(params_b: float, active_b: float | None = None) -> tuple[ModelArchitecture, str]:
    """Architecture for a params-only model: borrow the shape of the nearest dense catalog model by size.

    Why: KV cache and attention cost need layers/heads. Modern dense models of similar size share similar
    shapes (GQA with 8 KV heads, head_dim 128), so the nearest neighbour is a better guess than a formula.
    """
    dense = [m for m in catalog().values() if m.active_params_b is None and m.sliding_window is None]
    dense = [m for m in dense if m.n_kv_heads < m.n_heads] or dense
    best = min(dense, key=lambda m: abs(math.log(m.params_b) - math.log(params_b)))
    # The neighbour's shape (layers, heads, context; no sliding window: dense only), this model's size.
    arch = best.architecture().model_copy(
        update={"params_billion": params_b, "active_params_billion": active_b, "family": None}
    )
    return arch, best.tag


def _moe_sibling(tag: str, total_b: float) -> CatalogModel | None:
    """A catalog MoE of the same family (leading name, e.g. 'deepseek') and the same total size, if any."""
    hf = hf_repo_of(tag)
    name = (hf[0] if hf else tag.strip().partition(":")[0]).lower()
    stem = re.match(r"[a-z]+", name.rsplit("/", 1)[-1])
    if stem is None:
        return None

    def same_family(other: str) -> bool:
        # The shared prefix must reach the version digit: deepseek-v3.2 ~ deepseek-v3, qwen3-coder ~ qwen3,
        # but not llama3.1 ~ llama4 or deepseek-v3.1 ~ deepseek-r1.
        common = os.path.commonprefix([name.rsplit("/", 1)[-1], other])
        return re.match(r"[a-z]+[-_.]?[a-z]?\d", common) is not None

    same = [
        m
        for m in catalog().values()
        if m.active_params_b is not None
        and abs(m.params_b - total_b) <= 0.03 * total_b
        and same_family(m.tag.partition(":")[0])
    ]
    if not same:
        return None
    return max(same, key=lambda m: difflib.SequenceMatcher(None, name, m.tag.partition(":")[0]).ratio())


_FAMILY_SIZE_RE = re.compile(r"(?<![a-z0-9.])(?P<size>(?:\d{1,3}x)?\d+(?:\.\d+)?)(?P<unit>[bm])(?![a-z0-9.])")
_SIZE_LABEL_RE = re.compile(r"((?:\d{1,3}x)?\d+(?:\.\d+)?)([bm])")


def _label_size(number: str, unit: str) -> float | str:
    """'7', 'b' -> 7.0; '270', 'm' -> 0.27; an experts label ('8x7') compares as written."""
    if "x" in number:
        return number + unit
    return float(number) / (1000.0 if unit == "m" else 1.0)


def _family_size_matches(model: str) -> list[CatalogModel]:
    """Catalog models with exactly the family and size label of a name the catalog does not know.

    "LLaMA 7B", "llama-13b", "llama:7b" -> llama2:7b / llama2:13b: the name says the family ("llama") and the
    size but no version; the leading letters of a catalog tag are its family and must equal the name's
    exactly (tinyllama and codellama are not llama). A name with a version matches only a catalog tag whose
    name it extends with '-' ("qwen3-abliterated:8b", "Qwen3-8B-abliterated" -> qwen3:8b, "dolphin-mixtral:
    8x7b" -> mixtral:8x7b); "llama3 7b",
    "qwen3.5-x:8b" or "qwen4:32b" name another model and match nothing. A size label of a MoE counts too
    ("qwen 30b" -> qwen3:30b = qwen3:30b-a3b): read as dense it would be ~10x too slow.
    """
    hf = hf_repo_of(model)
    text = (hf[0] if hf else model).strip().lower()
    text = re.sub(r"^ollama\s+(run|pull)\s+", "", text).rsplit("/", 1)[-1]
    text = re.sub(r"^meta[-_\s]+", "", text)
    m = _FAMILY_SIZE_RE.search(text)
    if m is None:
        return []
    size = _label_size(m.group("size"), m.group("unit"))
    before = text[: m.start("size")].rstrip(" -_:")
    name = text.partition(":")[0] if ":" in text[: m.start("size")] else before
    versionless = re.fullmatch(r"[a-z]+", name) is not None
    if versionless and size in _versionless_models().get(name, set()):
        return []  # "qwen:7b" is Qwen 1.5 itself (another shape), not qwen2.5:7b
    cat = catalog()
    found: dict[str, CatalogModel] = {}
    for label, tag in [(t, t) for t in cat] + list(_aliases().items()):
        entry = cat[tag]
        stem, _, variant = label.partition(":")
        lead = re.match(r"[a-z]+", stem)
        sized = _SIZE_LABEL_RE.fullmatch(variant)
        if lead is None or sized is None:
            continue
        # "llama2-uncensored", "dolphin-mixtral": a catalog name with a word before or after it
        same = (
            lead.group() == name
            if versionless
            else (name == stem or name.startswith(stem + "-") or name.endswith("-" + stem))
        )
        if same and _label_size(sized.group(1), sized.group(2)) == size:
            found.setdefault(entry.tag, entry)
    # The plainest name first (qwen3:30b-a3b before qwen3-coder:30b): the one the note says it is read as.
    return sorted(found.values(), key=lambda e: len(e.tag.partition(":")[0]))


def _shape(m: CatalogModel) -> tuple[object, ...]:
    return (
        m.n_layers,
        m.n_heads,
        m.n_kv_heads,
        m.head_dim,
        m.sliding_window,
        m.global_layer_every,
        m.active_params_b,
        m.moe.experts if m.moe else None,
    )


def _model_from_architecture(
    model: str | None, params_billion: float | None, arch: ModelArchitecture
) -> ResolvedModel:
    """An explicit architecture: the catalog is consulted only for a quant in the tag and the label."""
    notes: list[str] = []
    if params_billion is not None and abs(params_billion - arch.params_billion) > 0.05 * arch.params_billion:
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


def _quant_in_name(model: str) -> str | None:
    """'llama 7b q4_0' -> 'q4_0'; a Hugging Face repo's quant tag or suffix ('mlx-community/...-4bit')."""
    hf = hf_repo_of(model)
    qm = _TAG_QUANT_RE.search(model.strip().lower())
    return hf[1] if hf else (qm.group("q") if qm else None)


def _with_experts(m: CatalogModel) -> ModelArchitecture:
    """A catalog model's shape with its expert counts, for a model read as it (no catalog row of its own)."""
    return m.architecture().model_copy(
        update={
            "n_experts": m.moe.experts if m.moe else None,
            "n_experts_active": m.moe.active_experts if m.moe else None,
        }
    )


def _read_as(label: str, siblings: list[CatalogModel], total_b: float) -> tuple[ModelArchitecture, str]:
    """The shape and parameter count of the one catalog model (or several of one shape) with this family and
    size ("LLaMA 7B" -> llama2:7b): better than a generic neighbour's (mistral:7b's GQA made llama2's MHA
    cache 4x too small). The note says what it was read as."""
    read_as = siblings[0]
    counts = [m.params_b for m in siblings]
    same_count = max(counts) - min(counts) <= 0.01 * max(counts)
    others = [m.tag for m in siblings[1:]]
    also = f" (the same shape as {', '.join(others)})" if others else ""
    each = ", ".join(f"{m.tag} {m.params_b:g}B" for m in siblings)
    count = f"its {read_as.params_b:g}B parameters" if same_count else f"{total_b:g}B parameters ({each})"
    arch = _with_experts(read_as).model_copy(
        update={"params_billion": read_as.params_b if same_count else total_b}
    )
    if read_as.active_params_b is not None:
        count += f" ({read_as.active_params_b:g}B active per token: a mixture-of-experts)"
    note = (
        f"{label} is not in our catalog: read as {read_as.tag}: same family and size{also}; its layers/"
        f"heads and {count} are used. Pass a catalog tag (or architecture, or install it in Ollama) for "
        "exact numbers."
    )
    return arch, note


def _model_sized_from_tag(model: str, params_billion: float | None) -> ResolvedModel | None:
    """A tag not in the catalog: size from the tag, shape borrowed from a catalog model (stated as such).

    None when the tag carries no size.
    """
    notes: list[str] = []
    sized = size_from_tag(model)
    if sized is None:
        return None
    total_b, active_b, how = sized
    if params_billion is not None and abs(params_billion - total_b) > 0.1 * total_b:
        total_b, active_b, how = params_billion, None, f"params_billion={params_billion:g} given"
    arch, like = generic_architecture(total_b, active_b)
    sibling = _moe_sibling(model, total_b) if active_b is None else None
    if sibling is not None:
        # "deepseek-v3.1:671b": a new tag of a known MoE family at the same size. Read as dense it
        # would be ~10x too slow; the sibling's shape (experts, active params, MLA) is a better guess.
        arch, like = _with_experts(sibling), sibling.tag
        how = (
            f"'{total_b:g}b' with the family and size of the catalog MoE {sibling.tag}: its shape is "
            f"used ({sibling.active_params_b:g}B of {sibling.params_b:g}B active per token)"
        )
    siblings = _family_size_matches(model) if sibling is None else []
    if active_b is not None:
        # "Qwen3-235B-A22B-Instruct-2507": a MoE tag matches a catalog MoE of the same total and active size
        siblings = [m for m in siblings if _same_active(m, active_b)]
    if params_billion is not None and how.startswith("params_billion"):
        siblings = []  # the caller's size contradicts the name's: nothing to read the name as
    shapes = {_shape(m) for m in siblings}
    read_as = siblings[0] if len(shapes) == 1 else None
    sources: list[str] = []
    tag_quant, label = _quant_in_name(model), model.strip()
    if read_as is not None:
        arch, note = _read_as(label, siblings, total_b)
        notes.append(note)
        sources.append(read_as.source)
    else:
        close = difflib.get_close_matches(label.lower(), sorted(catalog()), n=3, cutoff=0.6)
        hint = f" Closest catalog tags: {', '.join(close)} (if that is what you meant)." if close else ""
        if len(shapes) > 1:
            hint = (
                f" Catalog models of this family and size have different shapes "
                f"({', '.join(m.tag for m in siblings)}): name the version for exact numbers."
            )
        notes.append(
            f"{label} is not in our catalog: size read from the tag ({how}); layers/heads borrowed from "
            f"{like} for KV-cache maths. Pass architecture (or install it in Ollama) for exact numbers."
            + hint
        )
    # Trained context unknown: do not refuse long contexts on a borrowed model's limit.
    arch = arch.model_copy(update={"native_context": max(arch.native_context, 1_048_576)})
    if arch.active_params_billion is None and total_b >= 150:
        notes.append(
            f"Most open models of {total_b:g}B are mixture-of-experts; if this one is, decode is "
            "several times faster than this dense estimate (tag sizes like '235b-a22b' or an "
            "installed model's /api/show facts say so)."
        )
    return ResolvedModel(label, label, arch, tag_quant, notes, sources, read_as=read_as or sibling)


def resolve_model(
    model: str | None,
    params_billion: float | None,
    architecture: ModelArchitecture | None,
) -> ResolvedModel:
    notes: list[str] = []
    if architecture is not None:
        return _model_from_architecture(model, params_billion, architecture)
    if model is not None:
        try:
            entry, quant_from_tag, n2 = resolve_model_tag(model)
        except ToolError as err:
            if err.kind is not ToolErrorKind.UNKNOWN_MODEL:
                raise  # a cloud model, a family without a size: not a new model to size from its tag
            sized = _model_sized_from_tag(model, params_billion)
            if sized is None:
                _refuse_impossible_size(model)
                raise
            return sized
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
        # Trained context unknown: the neighbour's (phi3:medium: 4096) is no limit of this model.
        arch = arch.model_copy(update={"native_context": max(arch.native_context, 1_048_576)})
        notes.append(
            f"Only params_billion given: layers/heads borrowed from the nearest catalog model ({like}) for "
            "KV-cache maths (not its trained context, which is unknown); pass architecture for exact numbers."
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
    # Weights that exist in one format only (gpt-oss: MXFP4 experts) bind a model read as them, too.
    rule = entry or (resolved.read_as if resolved.read_as and resolved.read_as.allowed_quants else None)
    q, qnotes = resolve_quant(quant or resolved.quant_from_tag or (rule.default_quant if rule else None))
    assumptions += qnotes
    if quant and resolved.quant_from_tag:
        named = resolve_quant(resolved.quant_from_tag)[0].quant
        if named != q.quant:
            assumptions.append(
                f"The model name says {named} but quant={quant!r} was given: sized as {q.quant}, as asked."
            )
    if rule is not None and not quant_allowed(rule, q.quant):
        raise ToolError(
            f"quant: {rule.tag} is not available as {q.quant}: its published weights keep the experts in "
            f"{rule.moe.layout.get('expert') if rule.moe else rule.default_quant}, which do not "
            f"requantise. Available: {', '.join(rule.allowed_quants or ())}.",
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
