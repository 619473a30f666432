"""The shape issue 13 set: no function in the product (tools, knowledge, assistant, launch.py) a reader cannot
hold on one screen."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60


def _trees(paths: list[Path]) -> dict[str, ast.Module]:
    return {str(p.relative_to(REPO)): ast.parse(p.read_text(encoding="utf-8")) for p in paths}


def test_no_function_in_the_product_is_over_sixty_lines() -> None:
    files = [p for layer in ("tools", "knowledge", "assistant") for p in sorted((REPO / layer).rglob("*.py"))]
    long = [
        f"{name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for name, tree in _trees([*files, REPO / "launch.py"]).items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long
