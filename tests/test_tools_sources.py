"""`sources` shown to users cite files that exist in this repository (or the article by its title).

Every source string the tools can show is collected (the data files' source fields, the tools' fixed source
lists, and real tool calls), and every word in it that looks like a file path must name a file here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tools import REGISTRY
from tools.chips import chip_bins
from tools.cluster import SOURCE as CLUSTER_SOURCE
from tools.data_files import load_yaml
from tools.fit import SOURCES_FIT, runtime_spec
from tools.models import catalog
from tools.quants import quants
from tools.recommend import SOURCES as RECOMMEND_SOURCES

ROOT = Path(__file__).resolve().parents[1]
_FILE = re.compile(r"\.(md|txt|csv|ya?ml|py)$")


def paths_in(text: str) -> list[str]:
    """Words that look like a file path ('tools/data/chips.yaml', 'notes.md'); URLs and hosts are not."""
    out = []
    for word in text.split():
        word = word.strip("()[]{},;:'\"")
        if "://" in word or ("/" in word and "." in word.split("/", 1)[0]):
            continue  # a URL or host/path (huggingface.co/..., ollama.com/...)
        if _FILE.search(word):
            out.append(word)
    return out


def test_paths_in_finds_paths_and_skips_urls() -> None:
    text = (
        "tools/data/chips.yaml (https://x.org/a.md; github.com/o/r/README.md), reference/domain-notes.md 2.2"
    )
    assert paths_in(text) == ["tools/data/chips.yaml", "reference/domain-notes.md"]


def _data_sources() -> list[str]:
    out = [b.source for b in chip_bins()] + [q.source for q in quants().values()]
    for m in catalog().values():
        out += [m.source, m.size_src or "", m.moe.src if m.moe else ""]
    out += [str(v["source"]) for v in load_yaml("image_models.yaml")["image_models"].values()]
    out += [str(m["price_source"]) for m in load_yaml("machines.yaml")["machines"]]
    out += [runtime_spec(name).source for name in ("ollama", "llama.cpp", "mlx")]
    out.append(str(load_yaml("article_benchmarks.yaml")["source"]))
    return out + SOURCES_FIT + RECOMMEND_SOURCES + [CLUSTER_SOURCE]


CALLS: list[Any] = [
    ("check_memory_fit", {"chip": "M4 Pro", "memory_gb": 48, "model": "llama3.3:70b"}),
    (
        "check_memory_fit",
        {"chip": "M3 Ultra", "memory_gb": 512, "model": "deepseek-r1:671b", "runtime": "mlx"},
    ),
    ("lookup_benchmarks", {"query": "m4 pro 70b"}),
    ("lookup_benchmarks", {"query": "flux"}),
    ("recommend_machine", {"budget_usd": 3000, "workload": "both"}),
    ("recommend_machine", {"target_model": "deepseek-r1:671b"}),
    ("estimate_speed", {"chip": "M3 Max", "model": "gpt-oss:120b", "memory_gb": 128}),
]


def _missing(sources: list[str]) -> list[str]:
    return sorted({p for s in sources for p in paths_in(s) if not (ROOT / p).is_file()})


def test_data_and_fixed_sources_cite_files_that_exist() -> None:
    assert _missing(_data_sources()) == []


@pytest.mark.parametrize("name,arguments", CALLS)
def test_tool_output_sources_cite_files_that_exist(name: str, arguments: dict[str, Any]) -> None:
    out = REGISTRY.get(name).run(arguments)
    sources = list(getattr(out, "sources", []))
    sources += [r.source for r in [*getattr(out, "llm_rows", []), *getattr(out, "image_rows", [])]]
    assert sources and _missing(sources) == []
