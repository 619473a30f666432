"""The data files under tools/data: YAML and commented CSV loaders, units, and closest-name hints."""

from __future__ import annotations

import csv
import difflib
import io
from functools import cache
from pathlib import Path
from typing import Any

import yaml

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


def closest(word: str, options: list[str], n: int = 3) -> list[str]:
    lowered = {o.lower(): o for o in options}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.4)
    return [lowered[h] for h in hits]
