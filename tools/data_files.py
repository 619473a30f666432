"""The data files under tools/data: YAML and commented CSV loaders, units, and closest-name hints."""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Mapping
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

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


T = TypeVar("T")


def from_row(cls: type[T], row: Mapping[str, Any]) -> T:
    """A dataclass of plain str/int/float/bool fields, from a data-file row keyed by its field names."""
    hints = get_type_hints(cls)
    return cls(**{f.name: hints[f.name](row[f.name]) for f in fields(cls)})  # type: ignore[arg-type]


def load_csv(name: str) -> list[dict[str, str]]:
    """CSV with leading ``#`` comment lines (they name the sources)."""
    text = (DATA_DIR / name).read_text(encoding="utf-8")
    body = "".join(line for line in io.StringIO(text) if not line.startswith("#"))
    return list(csv.DictReader(io.StringIO(body)))


def closest(word: str, options: list[str]) -> list[str]:
    lowered = {o.lower(): o for o in options}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=3, cutoff=0.4)
    return [lowered[h] for h in hits]
