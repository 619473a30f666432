"""Quantisations: the quant table (bits per weight, measured) and forgiving quant-name resolution."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache

from tools.data_files import closest, from_row, load_yaml
from tools.registry import ToolError


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
        q = from_row(QuantSpec, row)
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
    "2BIT": "Q2_K",
    "3BIT": "Q3_K_M",
    "5BIT": "Q5_K_M",
    "6BIT": "Q6_K",
    "FP32": "F32",
    "FLOAT32": "F32",
    "FP8": "Q8_0",  # 8-bit floats (E4M3, one scale per tensor or block): sized as the 8-bit GGUF quant
}


def _bare(name: str) -> str:
    """'Q4-K-M', 'q4km', 'iq4xs', 'mxfp4_q8' and the table's 'Q4_K_M', 'IQ4_XS', 'MXFP4-Q8' compare equal."""
    return re.sub(r"[-_\s]", "", name.upper())


def _mlx_name(key: str, notes: list[str]) -> str:
    """'MLX-4bit', 'mlx 8 bit', 'mlx-bf16', 'mlx' -> the MLX table name (a bare 'mlx' is assumed 4-bit)."""
    core = key.replace("MLX", "").strip("-_ ")
    m = re.search(r"(\d+)", core)
    if "BF16" in core or "F16" in core or (m and m.group(1) == "16"):
        return "MLX-BF16"
    if m:
        return f"MLX-{m.group(1)}bit"
    notes.append("MLX quant without bit count: assumed MLX-4bit.")
    return "MLX-4bit"


def resolve_quant(text: str | None) -> tuple[QuantSpec, list[str]]:
    table = quants()
    if text is None:
        return table["Q4_K_M"], [
            "Quantisation not given: assumed Q4_K_M (Ollama's default for library tags)."
        ]
    raw = text.strip()
    key = raw.upper().replace(" ", "-")
    notes: list[str] = []
    if "MLX" in key:
        name = _mlx_name(key, notes)
        if name in table:
            return table[name], notes
    by_upper = {k.upper(): k for k in table}
    by_bare = {_bare(k): k for k in table if table[k].engine != "mlx" or k == "NVFP4"}
    exact = by_upper.get(key) or by_bare.get(_bare(key))
    if exact is not None:
        return table[exact], notes
    key = {_bare(k): k for k in _QUANT_SYNONYMS}.get(_bare(key), key)
    if key in _QUANT_SYNONYMS:
        name = _QUANT_SYNONYMS[key]
        if name != key:
            notes.append(f"quant {raw!r} read as {name}.")
        return table[name], notes
    # Unsloth "dynamic" GGUFs (UD-Q4_K_XL, Q2_K_XL): a K-quant with some tensors kept at higher precision,
    # sized here as the nearest standard K-quant (a little smaller than the real file), and said so.
    ud = re.fullmatch(r"(?:UD[-_])?(I?Q\d(?:_K)?)(?:_(XL|L|M|S|XS|XXS))?", key)
    if ud and key not in by_upper:
        base = ud.group(1)
        plain = f"{base.split('_')[0]}_0"  # UD-Q8_K_XL: there is no Q8_K_* family, the 8-bit quant is Q8_0
        for cand in (f"{base}_{ud.group(2)}" if ud.group(2) else None, f"{base}_L", f"{base}_M", base, plain):
            if cand is not None and cand in by_upper:
                name = by_upper[cand]
                notes.append(
                    f"quant {raw!r} (an Unsloth dynamic or non-standard variant) sized as {name}; the "
                    "real file keeps some tensors at higher precision and is a little larger."
                )
                return table[name], notes
    close = closest(raw, list(table))
    raise ToolError(
        f"quant: unknown quantisation {raw!r}. Closest: {', '.join(close) or 'none'}. "
        f"Accepted: {', '.join(table)}.",
        fields=["quant"],
    )
