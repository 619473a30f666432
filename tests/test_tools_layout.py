"""The shape of tools/ that issue 13 set: small functions, and the catalog shim kept for assistant/ only."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60


def _trees(paths: list[Path]) -> dict[str, ast.Module]:
    return {str(p.relative_to(REPO)): ast.parse(p.read_text(encoding="utf-8")) for p in paths}


def test_no_function_in_tools_is_over_sixty_lines() -> None:
    long = [
        f"{name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for name, tree in _trees(sorted((REPO / "tools").rglob("*.py"))).items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long


def test_tools_bench_and_tool_tests_import_the_split_modules_not_the_catalog_shim() -> None:
    paths = [p for p in (REPO / "tools").rglob("*.py") if p.name != "catalog.py"]
    paths += sorted((REPO / "bench").glob("*.py")) + sorted((REPO / "tests").glob("test_tools_*.py"))
    importers = []
    for name, tree in _trees(paths).items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                mods = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                continue
            if "tools.catalog" in mods:
                importers.append(f"{name}:{node.lineno}")
    assert not importers, f"import tools.chips/models/... instead of the shim: {importers}"
