"""Read this Mac's chip, memory, GPU cores and GPU wired limit (only on macOS; otherwise None).

Why: when a user on a Mac asks "will it fit?", the honest default machine is the one they are sitting at. The
read is local (sysctl, system_profiler), read-only and cached; any failure simply means "no default".
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class ThisMac:
    chip: str | None  # e.g. "M3 Max"
    brand: str  # machdep.cpu.brand_string, e.g. "Apple M3 Max"
    memory_gb: float | None  # marketed size (hw.memsize / 2^30)
    gpu_cores: int | None
    wired_limit_mb: int | None  # iogpu.wired_limit_mb when set (0 / absent = OS default)

    def describe(self) -> str:
        parts = [
            self.brand or "unknown chip",
            f"{self.gpu_cores}-core GPU" if self.gpu_cores else "",
            f"{self.memory_gb:g} GB" if self.memory_gb else "",
            f"iogpu.wired_limit_mb={self.wired_limit_mb}" if self.wired_limit_mb else "",
        ]
        return ", ".join(p for p in parts if p)


def _run(cmd: list[str], timeout: float = 5.0) -> str | None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def parse_brand(brand: str) -> str | None:
    m = re.search(r"\bM([1-9])(?:\s+(Pro|Max|Ultra))?\b", brand)
    if not m:
        return None
    return f"M{m.group(1)}" + (f" {m.group(2)}" if m.group(2) else "")


def parse_gpu_cores(profiler_json: str) -> int | None:
    try:
        data = json.loads(profiler_json)
    except json.JSONDecodeError:
        return None
    for item in data.get("SPDisplaysDataType", []) if isinstance(data, dict) else []:
        cores = item.get("sppci_cores") if isinstance(item, dict) else None
        if cores is not None:
            try:
                return int(str(cores).strip())
            except ValueError:
                continue
    return None


@cache
def detect() -> ThisMac | None:
    if platform.system() != "Darwin":
        return None
    brand = _run(["sysctl", "-n", "machdep.cpu.brand_string"]) or ""
    memsize = _run(["sysctl", "-n", "hw.memsize"])
    wired = _run(["sysctl", "-n", "iogpu.wired_limit_mb"])
    prof = _run(["system_profiler", "-json", "SPDisplaysDataType"], timeout=15.0)
    mem_gb = round(int(memsize) / 2**30) if memsize and memsize.isdigit() else None
    wired_mb = int(wired) if wired and wired.isdigit() and int(wired) > 0 else None
    return ThisMac(
        chip=parse_brand(brand),
        brand=brand,
        memory_gb=float(mem_gb) if mem_gb else None,
        gpu_cores=parse_gpu_cores(prof) if prof else None,
        wired_limit_mb=wired_mb,
    )
